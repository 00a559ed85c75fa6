"""Profile an MCU bundle (backend micro) on qemu-cortex-m devices, in the common metric schema.

Steps of profile_mcu(bundle, devices): open each device on the bundle's target -> push firmware.elf ->
accuracy gate: greedy tokens of accuracy.prompts[0] must equal the manifest's bundle_greedy (the bit-exact
integer reference) -> per prompt length: real text ids -> firmware run (prefill + max_new_tokens) ->
parse its lines (runtime/micro/main.c) -> instructions per token (prefill and decode, from SysTick under
icount), stack high-water mark, flash/RAM/arena from the manifest -> the results document of
farm/profile.py (same top-level keys; MCU fields: instructions_per_token, prefill_instructions_per_token,
flash_bytes, ram_bytes, stack_bytes). Latency fields stay None: QEMU instructions are not time.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from edgeslm.bundle import Bundle, load_bundle
from edgeslm.errors import EdgeSLMError
from edgeslm.farm.metrics import accuracy_gate, empty_metrics, provenance, summarize

MCU_FIELDS = ("instructions_per_token", "instructions_per_token_by_prompt", "prefill_instructions_per_token",
              "cycles_per_token",
              "flash_bytes", "ram_bytes", "stack_bytes", "flash_budget_bytes", "ram_budget_bytes")


class FirmwareFailed(Exception):
    """A firmware run without a result; str() is the one-line reason (fault with PC, timeout, error)."""


def parse_output(text: str) -> dict:
    """The firmware's lines -> {prompt, prefill_ticks, tokens, decode_ticks, stack, logits{pos: [..]}}."""
    out = {"tokens": [], "decode_ticks": [], "logits": {}, "stack": None, "prefill_ticks": None}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        if tag == "FAULT":
            raise FirmwareFailed(f"firmware fault: {line.strip()}")
        if tag == "ERROR":
            raise FirmwareFailed(f"firmware refused its input: {' '.join(parts[1:])}")
        if tag == "P":
            out["prompt_len"], out["prefill_ticks"] = int(parts[1]), int(parts[2])
        elif tag == "T":
            out["tokens"].append(int(parts[1]))
            out["decode_ticks"].append(int(parts[2]))
            out.setdefault("decode_cycles", []).append(int(parts[3]) if len(parts) > 3 else 0)
        elif tag == "L":
            out["logits"][int(parts[1])] = [int(v) for v in parts[2:]]
        elif tag == "S":
            out["stack"] = int(parts[1].split("=")[1])
        elif tag == "I":
            out["info"] = dict(kv.split("=") for kv in parts[1:])
    if out["stack"] is None:
        raise FirmwareFailed("firmware output ended early (no final S line)")
    return out


def run_firmware(device, elf_remote: str, prompt: list[int], max_new_tokens: int, timeout_s: float,
                 dump_logits: bool = False) -> dict:
    argv = [elf_remote, str(max_new_tokens), "1" if dump_logits else "0", ":".join(str(int(t)) for t in prompt)]
    done = device.run(argv, timeout_s)
    if done.timed_out:
        raise FirmwareFailed(f"firmware hung: no exit after {timeout_s:g} s (killed)")
    text = done.stdout + "\n" + done.stderr
    parsed = parse_output(text)                      # raises on FAULT / ERROR lines
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FirmwareFailed(f"qemu-system-arm exited {done.returncode}: {tail}")
    return parsed


def _device_for(spec, bundle: Bundle):
    from edgeslm.farm.device import open_device
    from edgeslm.farm.qemu_cortex_m import QemuCortexMDevice
    if isinstance(spec, str):
        name, _, arg = spec.partition(":")
        if name == QemuCortexMDevice.driver and not arg:
            spec = f"{name}:{bundle.target_name}"     # the firmware's own board
        device = open_device(spec)
    else:
        device = spec
    if not hasattr(device, "instructions") or device.target.name != bundle.target_name:
        raise EdgeSLMError(f"device '{device.id}' cannot run a {bundle.target_name} firmware",
                           path=bundle.path, fix=f"use --device qemu-cortex-m (the bundle's board: {bundle.target_name})")
    return device


def measure(device, bundle: Bundle, prompt: list[int], lengths: list[int], *, max_new_tokens: int,
            timeout_s: float) -> dict:
    m = bundle.manifest
    mem = m.get("memory", {})
    elf_remote = f"bundles/{m['files'][m['artifact']]['sha256'][:12]}/firmware.elf"
    device.push(bundle.artifact, elf_remote)
    gate = accuracy_gate(m, None)
    gate["expected_source"] = "manifest accuracy.bundle_greedy (bit-exact integer reference at export)"
    runs, error, t0 = {}, None, time.perf_counter()
    try:
        first = run_firmware(device, elf_remote, m["accuracy"]["prompts"][0], len(gate["expected"]), timeout_s)
        gate = dict(accuracy_gate(m, first["tokens"]), expected_source=gate["expected_source"])
        for n in lengths:
            new = max(1, min(max_new_tokens, bundle.max_seq_len - n))
            runs[n] = run_firmware(device, elf_remote, prompt[:n], new, timeout_s)
    except FirmwareFailed as err:
        error = str(err)
    metrics = empty_metrics(bundle.artifact.stat().st_size, device.rss_note)
    metrics.update(dict.fromkeys(MCU_FIELDS))
    metrics.update(planned_arena_bytes=mem.get("arena_bytes", mem.get("planned_arena_bytes")),
                   flash_bytes=mem.get("flash_bytes"), ram_bytes=mem.get("ram_bytes"),
                   flash_budget_bytes=mem.get("flash_budget_bytes"), ram_budget_bytes=mem.get("ram_budget_bytes"),
                   memory_bytes=mem.get("ram_bytes"), memory_source="static RAM of the firmware (.data + .bss + stack)")
    if runs:
        by = {str(n): summarize([device.instructions(t) for t in r["decode_ticks"] if t] or [0.0])
              for n, r in runs.items()}
        metrics.update(
            instructions_per_token=summarize([x for s in by.values() for x in s["samples"]]),
            instructions_per_token_by_prompt=by,
            prefill_instructions_per_token={str(n): device.instructions(r["prefill_ticks"]) / n for n, r in runs.items()},
            stack_bytes=max(r["stack"] for r in runs.values()))
        cycles = [c for r in runs.values() for c in r.get("decode_cycles", []) if c]
        # DWT->CYCCNT: real cycles on a board; QEMU does not emulate it (all zero): then None, never faked
        metrics["cycles_per_token"] = summarize(cycles) if cycles else None
    status = "error" if error else gate["status"]
    return {"device": device.id, "target": device.target.name, "status": status, "error": error,
            "latency_kind": device.latency_kind, **metrics, "accuracy": gate,
            "provenance": provenance(device, m, {}, {"compiler": m.get("lowering", {}).get("metadata", {}).get("compiler")}, 1),
            "duration_s": round(time.perf_counter() - t0, 3),
            "runs": {str(n): {k: v for k, v in r.items() if k != "logits"} for n, r in runs.items()}}


def profile_mcu(bundle_path, devices: list, *, prompt_lengths=(16, 128), max_new_tokens: int = 64,
                timeout_s: float = 600.0, out=None, progress: bool = True, **_ignored) -> dict:
    """profile() for kind = "mcu" bundles; reps/threads/warmup do not apply (icount is deterministic)."""
    from edgeslm.farm.profile import SCHEMA, TEXT, bundle_summary, check_lengths, prompt_tokens
    from edgeslm.fsutil import write_text_atomic
    from edgeslm.progress import steps

    bundle = load_bundle(bundle_path)
    if not bundle.manifest["artifact"].endswith(".elf"):   # micro, or tvm's MCU route (same firmware layout)
        raise EdgeSLMError(f"this {bundle.backend} bundle holds no Cortex-M firmware (.elf)",
                           path=bundle.path, fix="export with --backend micro --target cortex-m4")
    if not devices:
        raise EdgeSLMError("no device given", fix="pass --device qemu-cortex-m")
    lengths = check_lengths(prompt_lengths, bundle.max_seq_len)
    prompt = prompt_tokens(bundle, lengths[-1])
    devs = [_device_for(d, bundle) for d in devices]
    results = []
    for dev in devs:
        with steps(f"profile {dev.id}", ["firmware"], enabled=progress) as step:
            step("firmware")
            results.append(measure(dev, bundle, prompt, lengths, max_new_tokens=max_new_tokens, timeout_s=timeout_s))
    statuses = {r["status"] for r in results}
    doc = {
        "schema": SCHEMA, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": next(s for s in ("wrong", "error", "ok") if s in statuses),
        "bundle": bundle_summary(bundle),
        "settings": {"prompt_lengths": lengths, "max_new_tokens": max_new_tokens, "reps": 1, "warmup": 0,
                     "threads": 1, "timeout_s": timeout_s, "prompt_text": TEXT},
        "results": results, "out": str(Path(out).resolve()) if out else None,
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(out), json.dumps(doc, indent=2) + "\n")
    return doc
