"""One metric schema for every device (DESIGN.md "Metrics"), filled from edgeslm-runner's JSON.

Steps: runner JSON per prompt length ({length: run}) -> device result:
  model_load_ms                 summary over the runner processes (one load each)
  ttft_ms, prefill_tokens_per_s {str(length): summary}; ttft_ms_range = [min, max] of the medians
  decode_tokens_per_s           summary pooled over every rep of every length (raw samples kept);
                                decode_tokens_per_s_by_prompt per length
  peak_rss_bytes                the runner process's own (None under emulation; peak_rss_note says why)
  guest_heap_bytes              peak heap in use inside the runner (mallinfo2), over all runs
  planned_arena_bytes, artifact_bytes
  memory_bytes + memory_source  the headline memory figure: RSS where measured, else the guest heap
A summary is {mean, std (population), median, min, max, samples}. Every field is present in every
result; a device that failed has None values and status "error".
"""
from __future__ import annotations

import functools
import statistics
import subprocess
from pathlib import Path

FIELDS = ("model_load_ms", "ttft_ms", "ttft_ms_range", "prefill_tokens_per_s", "decode_tokens_per_s",
          "decode_tokens_per_s_by_prompt", "peak_rss_bytes", "peak_rss_note", "guest_heap_bytes",
          "planned_arena_bytes", "memory_bytes", "memory_source", "artifact_bytes")
GUEST_HEAP_SOURCE = ("guest heap peak (mallinfo2 inside the runner; includes the planned arena, which "
                     "ExecuTorch's Module allocates on the heap)")


def summarize(samples: list[float]) -> dict:
    xs = [float(x) for x in samples]
    return {"mean": statistics.fmean(xs), "std": statistics.pstdev(xs), "median": statistics.median(xs),
            "min": min(xs), "max": max(xs), "samples": xs}


def empty_metrics(artifact_bytes: int, rss_note: str | None) -> dict:
    out = dict.fromkeys(FIELDS)
    out.update(artifact_bytes=artifact_bytes, peak_rss_note=rss_note)
    return out


def device_metrics(runs: dict[int, dict], *, artifact_bytes: int, rss_note: str | None) -> dict:
    """runs: prompt length -> the runner's JSON (schema edgeslm.runner/1) for that length."""
    out = empty_metrics(artifact_bytes, rss_note)
    if not runs:
        return out
    keys = sorted(runs)
    ttft = {str(n): summarize(runs[n]["ttft_ms"]["samples"]) for n in keys}
    decode_by = {str(n): summarize(runs[n]["decode_tokens_per_s"]["samples"]) for n in keys}
    heap = max(int(r["peak_heap_bytes"]) for r in runs.values())
    rss = None if rss_note else max(int(r["peak_rss_bytes"]) for r in runs.values())
    out.update(
        model_load_ms=summarize([runs[n]["model_load_ms"] for n in keys]),
        ttft_ms=ttft,
        ttft_ms_range=[min(s["median"] for s in ttft.values()), max(s["median"] for s in ttft.values())],
        prefill_tokens_per_s={str(n): summarize(runs[n]["prefill_tokens_per_s"]["samples"]) for n in keys},
        decode_tokens_per_s=summarize([x for s in decode_by.values() for x in s["samples"]]),
        decode_tokens_per_s_by_prompt=decode_by,
        peak_rss_bytes=rss,
        guest_heap_bytes=heap if heap >= 0 else None,
        planned_arena_bytes=int(runs[keys[0]]["planned_arena_bytes"]),
        memory_bytes=rss if rss is not None else (heap if heap >= 0 else None),
        memory_source="peak RSS of the runner process (getrusage)" if rss is not None else GUEST_HEAP_SOURCE,
    )
    return out


# A flip between the host's top-2 tokens whose logits differ by less than this is a near-tie: ARM and x86
# kernels round (dynamic quantization, FMA order) differently, and after the flip the continuations
# legitimately differ. Measured: SmolLM2-135M int8 (8da8w) under qemu-aarch64 flips step 2 to the host's
# runner-up at host margins of 0.34 (stock attention export) and 0.77 logits (edgeslm::sdpa_cached export);
# dynamic activation quantization moves that model's logits by up to ~6.5 against float.
NEAR_TIE_LOGITS = {"fp32": 0.05, "quantized": 1.0}


def _near_tie(acc: dict, step: int, token: int, quant: str) -> float | None:
    """The host's margin at `step` if the device picked the host's runner-up within tolerance, else None."""
    runner_up, margins = acc.get("bundle_greedy_runner_up"), acc.get("bundle_greedy_margins")
    if not runner_up or not margins or step >= len(margins) or runner_up[step] != token:
        return None
    limit = NEAR_TIE_LOGITS["fp32" if quant == "fp32" else "quantized"]
    return margins[step] if margins[step] < limit else None


def accuracy_gate(manifest: dict, generated: list[int] | None) -> dict:
    """The device's greedy tokens on accuracy.prompts[0] vs the bundle's own (Python ExecuTorch) greedy
    tokens; fp32 bundles must also equal the eager float reference. status: ok | wrong | not run."""
    acc = manifest["accuracy"]
    expected = [int(t) for t in acc["bundle_greedy"]]
    check_reference = manifest["quant"].get("name") == "fp32"
    out = {"status": "not run", "prompt_tokens": len(acc["prompts"][0]), "expected": expected,
           "expected_source": "manifest accuracy.bundle_greedy (Python ExecuTorch runtime at export)",
           "reference_greedy": [int(t) for t in acc.get("reference_greedy", [])],
           "checks_reference": check_reference, "got": generated, "first_mismatch": None}
    if generated is None:
        return out
    got = [int(t) for t in generated[:len(expected)]]
    wanted = [expected] + ([out["reference_greedy"]] if check_reference else [])
    mismatch = [_first_diff(got, w) for w in wanted]
    bad = [m for m in mismatch if m is not None]
    out.update(got=got, status="wrong" if bad else "ok", first_mismatch=min(bad) if bad else None)
    # Only the bundle's own tokens may differ by a near-tie; for fp32 the float reference must match too.
    if bad and mismatch[0] is not None and not (check_reference and mismatch[1] is not None
                                                and mismatch[1] != mismatch[0]):
        step = mismatch[0]
        margin = _near_tie(acc, step, got[step], manifest["quant"].get("name", ""))
        if margin is not None:
            out.update(status="ok", near_tie={"step": step, "host_margin_logits": margin,
                                              "note": "device picked the host's runner-up at a near-tie; "
                                                      "tokens after it legitimately differ"})
    return out


def _first_diff(a: list[int], b: list[int]) -> int | None:
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@functools.lru_cache(maxsize=1)
def edgeslm_commit() -> dict:
    """git commit of the edgeslm checkout this code runs from (None when installed from a wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    commit = head.stdout.strip() or None
    return {"commit": commit, "dirty": bool(status.stdout.strip()) if commit else None}


def provenance(device, manifest: dict, runs: dict[int, dict], build_info: dict, threads: int) -> dict:
    from edgeslm import __version__
    from edgeslm.api import toolchain_versions

    first = next(iter(runs.values()), {})
    git = edgeslm_commit()
    return {
        "device_id": device.id, "device_fingerprint": device.fingerprint(), "target": device.target.name,
        "latency_kind": device.latency_kind, "backend": manifest["backend"],
        "quant": manifest["quant"].get("name"), "threads": first.get("threads"), "threads_requested": threads,
        "edgeslm_version": __version__, "edgeslm_commit": git["commit"], "edgeslm_dirty": git["dirty"],
        "runner_version": first.get("edgeslm_version"),
        "toolchain": {**toolchain_versions(), "runner_compiler": build_info.get("compiler"),
                      "runner_executorch": build_info.get("executorch")},
        "bundle_toolchain": manifest.get("toolchain", {}),
        "runner_build": {k: build_info.get(k) for k in ("target", "triple", "key", "sources_sha256")},
    }
