"""Compare two runs: flag regressions larger than the measured noise.

Steps of compare(store, run_a, run_b):
  1. match results by (bundle sha256, requested device, prompt length, threads) -- the same job in both runs
  2. per metric with samples (decode tok/s: higher is better; TTFT ms: lower is better): delta of means and
     the noise of that delta, sqrt(std_a^2/n_a + std_b^2/n_b) (Welch's standard error from the raw
     samples each run kept); a change in the bad direction larger than Z (3) noise units is a regression
  3. a job ok in A but wrong/error in B is a regression whatever the numbers; jobs in only one run are listed
"""
from __future__ import annotations

import math
import statistics

Z = 3.0
# field in the stored row -> (name, +1 if higher is better else -1)
METRICS = {"decode_tokens_per_s": ("decode_tokens_per_s", +1), "ttft_ms": ("ttft_ms", -1)}


def _key(row: dict) -> tuple:
    return (row.get("bundle_sha256"), row.get("requested_device"), row.get("prompt_length"), row.get("threads"))


def _samples(row: dict, field: str) -> list[float]:
    v = row.get(field)
    if isinstance(v, dict) and "samples" not in v:           # per prompt length: {"16": summary}
        v = v.get(str(row.get("prompt_length")))
    return [float(x) for x in (v or {}).get("samples") or []]


def delta(a: list[float], b: list[float], sign: int) -> dict | None:
    if not a or not b:
        return None
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:      # one sample: no measured noise, so nothing can be called a regression
        return {"mean_a": ma, "mean_b": mb, "change": mb - ma, "change_pct": 100 * (mb - ma) / ma if ma else None,
                "noise": None, "regression": False, "z": None, "note": "noise not measured (needs reps >= 2)"}
    noise = math.sqrt(statistics.pvariance(a) / len(a) + statistics.pvariance(b) / len(b))
    change = mb - ma
    worse = -sign * change                                     # > 0: B is worse
    return {"mean_a": ma, "mean_b": mb, "change": change, "change_pct": 100 * change / ma if ma else None,
            "noise": noise, "regression": worse > Z * noise and worse > 0, "z": worse / noise if noise else None}


def compare(store, run_a: str, run_b: str) -> dict:
    rows_a = {_key(r): r for r in store.results(run_a)}
    rows_b = {_key(r): r for r in store.results(run_b)}
    items = []
    for key in sorted(set(rows_a) & set(rows_b), key=str):
        a, b = rows_a[key], rows_b[key]
        item = {"bundle_sha256": key[0], "device": key[1], "prompt_length": key[2], "threads": key[3],
                "status_a": a["status"], "status_b": b["status"], "metrics": {}, "regressions": []}
        if a["status"] == "ok" and b["status"] != "ok":
            item["regressions"].append(f"status {a['status']} -> {b['status']}")
        for field, (name, sign) in METRICS.items():
            d = delta(_samples(a, field), _samples(b, field), sign)
            if d:
                item["metrics"][name] = d
                if d["regression"]:
                    item["regressions"].append(f"{name} {d['mean_a']:.4g} -> {d['mean_b']:.4g} "
                                               f"({d['change_pct']:+.1f}%, {d['z']:.1f} noise units)"
                                               if d["z"] is not None else f"{name} {d['mean_a']:.4g} -> "
                                                                           f"{d['mean_b']:.4g}")
        items.append(item)
    return {"run_a": run_a, "run_b": run_b, "z": Z, "matched": len(items),
            "only_in_a": len(set(rows_a) - set(rows_b)), "only_in_b": len(set(rows_b) - set(rows_a)),
            "regressions": sum(bool(i["regressions"]) for i in items), "items": items}
