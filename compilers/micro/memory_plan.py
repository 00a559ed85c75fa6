"""The static arena of the micro runtime: every activation buffer and the int8 KV cache, with offsets
fixed at build time (model_config.h). No heap: RAM = arena + stack + a few hundred bytes of statics.

Buffers (model.c names):  x, xb [dim] i32 | q8 [max in] i8 | scratch [max in / 2] u32 (DSP unpacked input)
q, ao [H*D] i32 | k, v [Hkv*D] i32 | att [seq] i32 | hb, hb2 [ff] i32 | logits [vocab] i32
kcache, vcache [layers, seq, Hkv*D] i8 | kexp, vexp [layers, seq, Hkv] i8
"""
from __future__ import annotations

ALIGN = 8


def plan(meta: dict) -> tuple[dict[str, int], int]:
    """-> ({buffer: offset}, arena bytes)."""
    dim, ff, h, hkv, d = meta["dim"], meta["ff"], meta["heads"], meta["kv_heads"], meta["head_dim"]
    seq, layers, vocab = meta["seq"], meta["layers"], meta["vocab"]
    widest = max(dim, ff, h * d)
    sizes = {
        "x": 4 * dim, "xb": 4 * dim, "q8": widest, "scratch": 4 * (widest // 2 + 2),
        "q": 4 * h * d, "ao": 4 * h * d, "k": 4 * hkv * d, "v": 4 * hkv * d, "att": 4 * seq,
        "hb": 4 * ff, "hb2": 4 * ff, "logits": 4 * vocab,
        "kcache": layers * seq * hkv * d, "vcache": layers * seq * hkv * d,
        "kexp": layers * seq * hkv, "vexp": layers * seq * hkv,
    }
    offsets, top = {}, 0
    for name, size in sizes.items():
        offsets[name] = top
        top += -(-size // ALIGN) * ALIGN
    return offsets, top


def kv_cache_bytes(meta: dict) -> int:
    """int8 K and V plus their per-(position, KV head) exponents."""
    return 2 * meta["layers"] * meta["seq"] * meta["kv_heads"] * (meta["head_dim"] + 1)
