"""Store rows -> flat records, one per result, the same for every renderer.

Steps: store.results(run_id) -> for each row: identity (device, requested device, target, backend, quant,
prompt length, threads, status) + headline numbers (decode tok/s mean/std/samples, TTFT median for its
prompt length, prefill, memory, artifact) + any other scalar metric the row carries (MCU drivers add
instructions_per_token, flash/ram/stack bytes) under `extra`. Missing fields are None, never an error.
"""
from __future__ import annotations

KNOWN = {"id", "job_key", "created_utc", "device", "requested_device", "target", "bundle", "bundle_sha256",
         "backend", "quant", "model", "prompt_length", "threads", "status", "error", "attempts", "worker",
         "provenance", "runs", "accuracy", "latency_kind", "duration_s", "model_load_ms", "ttft_ms",
         "ttft_ms_range", "prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_by_prompt",
         "peak_rss_bytes", "peak_rss_note", "guest_heap_bytes", "planned_arena_bytes", "memory_bytes",
         "memory_source", "artifact_bytes", "started_unix_s", "finished_unix_s"}


def _summary(value, key: str | None = None) -> dict | None:
    if isinstance(value, dict) and key is not None and key in value:
        value = value[key]
    if isinstance(value, dict) and value.get("samples") is not None:
        return value
    if isinstance(value, dict) and len(value) == 1:
        return _summary(next(iter(value.values())))
    return None


def record(row: dict) -> dict:
    n = row.get("prompt_length")
    decode = _summary(row.get("decode_tokens_per_s"))
    ttft = _summary(row.get("ttft_ms"), str(n))
    prefill = _summary(row.get("prefill_tokens_per_s"), str(n))
    acc = row.get("accuracy") or {}
    extra = {k: v for k, v in row.items() if k not in KNOWN and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {
        "job_key": row.get("job_key"), "device": row.get("device"), "requested_device": row.get("requested_device"),
        "target": row.get("target"), "backend": row.get("backend"), "quant": row.get("quant"),
        "model": row.get("model"), "bundle_sha256": row.get("bundle_sha256"), "prompt_length": n,
        "threads": row.get("threads"), "status": row.get("status"), "error": row.get("error"),
        "latency_kind": row.get("latency_kind"),
        "decode_tps_mean": decode and decode["mean"], "decode_tps_std": decode and decode["std"],
        "decode_tps_samples": decode["samples"] if decode else [],
        "ttft_ms_median": ttft and ttft["median"], "prefill_tps_median": prefill and prefill["median"],
        "memory_bytes": row.get("memory_bytes"), "memory_source": row.get("memory_source"),
        "artifact_bytes": row.get("artifact_bytes"), "first_mismatch": acc.get("first_mismatch"),
        "got": acc.get("got"), "expected": acc.get("expected"), "extra": extra,
    }


def load_run(store, run_id: str) -> dict:
    run = store.run(run_id)
    return {**run, "records": [record(r) for r in store.results(run_id)]}
