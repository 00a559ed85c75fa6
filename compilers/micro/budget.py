"""Refuse early, with the numbers, when a model cannot fit the target (before any C is compiled).

flash ~ weights blob + runtime code; RAM = arena (activations + int8 KV cache) + stack + statics.
The linker script enforces the same budget exactly (build.py reports its overflow the same way).
"""
from __future__ import annotations

from edgeslm.compilers.micro import memory_plan
from edgeslm.errors import EdgeSLMError

CODE_BYTES = 12 * 1024        # runtime code + exp tables + vector table (measured ~8 KB with -O2)
STATIC_BYTES = 2048 + 64      # semihosting command line buffer + counters


def estimate(blob_bytes: int, meta: dict, target) -> dict:
    _, arena = memory_plan.plan(meta)
    stack = int(target.extra.get("stack_bytes", 8192))
    return {"flash_bytes": blob_bytes + CODE_BYTES,
            "ram_bytes": arena + stack + STATIC_BYTES + 4 * meta["seq"],
            "arena_bytes": arena, "kv_cache_bytes": memory_plan.kv_cache_bytes(meta), "stack_bytes": stack}


def check(est: dict, target, params: int) -> None:
    over = []
    if target.flash_bytes and est["flash_bytes"] > target.flash_bytes:
        over.append(f"flash {est['flash_bytes']:,} B > {target.flash_bytes:,} B "
                    f"(over by {est['flash_bytes'] - target.flash_bytes:,} B)")
    if target.memory_bytes and est["ram_bytes"] > target.memory_bytes:
        over.append(f"RAM {est['ram_bytes']:,} B > {target.memory_bytes:,} B "
                    f"(over by {est['ram_bytes'] - target.memory_bytes:,} B; arena {est['arena_bytes']:,} B "
                    f"of which int8 KV cache {est['kv_cache_bytes']:,} B, stack {est['stack_bytes']:,} B)")
    if over:
        raise EdgeSLMError(f"model too big for {target.name} ({params:,} parameters, int8): " + "; ".join(over),
                           fix="use a smaller model or a shorter --max-seq-len (the KV cache grows with it), "
                               "or a target with more memory (edgeslm targets)")
