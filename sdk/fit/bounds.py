"""The bounds of `edgeslm fit` and how each candidate row is judged against them.

A row (one per candidate, kept in fit.json) moves through: estimated -> skipped (estimate over the budget,
or no runner) | exported -> rejected (KL) | measured -> pass | rejected (memory, speed) | failed (export or
device error). Every miss records the bound, the value, the limit and the relative miss, so the closest
candidate of a budget nothing meets can be named with the amount it missed by.

Measured memory, per device kind (what the profile reports, named in `memory_source`):
  local / ssh          peak RSS of the runner process; compared with the estimate's total
  qemu-user (arm64)    the guest heap (mallinfo2): the emulator's RSS is not the guest's. The estimate's heap
                       part is compared with it; the bound is checked on heap + the estimate's non-heap part
                       (code, mapped weights), and the row says so
  qemu-system-arm      the firmware's static RAM (.data + .bss + stack) against the micro RAM plan
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from edgeslm.errors import EdgeSLMError

UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2, "MIB": 1024 ** 2,
         "G": 1024 ** 3, "GB": 1024 ** 3, "GIB": 1024 ** 3}


def parse_size(text) -> int:
    """'512MB', '1.5G', '256KiB', '1048576' -> bytes (K/M/G are powers of 1024)."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in UNITS or float(m.group(1)) <= 0:
        raise EdgeSLMError(f"--max-memory '{text}' is not a size", fix="e.g. --max-memory 512MB (or 1.5GB, 256KB)")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def mb(n: float) -> str:
    return f"{n / 1024 ** 2:.1f} MB" if abs(n) >= 1024 ** 2 else f"{n / 1024:.1f} KB"


@dataclass
class Bounds:
    max_memory: int
    min_decode_tps: float | None
    max_kl: float | None
    mcu: bool

    @classmethod
    def parse(cls, max_memory, min_decode_tps, max_kl, target) -> "Bounds":
        mcu = target.kind == "mcu"
        if min_decode_tps is not None and (mcu or min_decode_tps <= 0):
            raise EdgeSLMError("--min-decode-tps needs a positive number on a CPU target" if not mcu else
                               f"--min-decode-tps does not apply to {target.name}: QEMU counts instructions, "
                               "not time", fix="drop --min-decode-tps; fit ranks MCU bundles by instructions "
                                               "per token")
        if max_kl is not None and max_kl < 0:
            raise EdgeSLMError("--max-quality-loss must be >= 0 (KL divergence in nats)", fix="e.g. 0.05")
        return cls(parse_size(max_memory), min_decode_tps, max_kl, mcu)

    def to_dict(self) -> dict:
        return asdict(self)

    def estimate_miss(self, est, target) -> str | None:
        flash = getattr(target, "flash_bytes", 0)
        if self.mcu and flash and est.stored_bytes > flash:
            return f"estimated flash {mb(est.stored_bytes)} > the target's {mb(flash)} (not exported)"
        if est.total_bytes > self.max_memory:
            return (f"estimated memory {mb(est.total_bytes)} > --max-memory {mb(self.max_memory)} "
                    f"(over by {mb(est.total_bytes - self.max_memory)}; not exported)")
        return None

    def quality_miss(self, kl: float | None) -> str | None:
        if self.max_kl is None:
            return None
        if kl is None:
            return "KL not measured at export (this host cannot run the bundle), --max-quality-loss cannot be checked"
        if kl > self.max_kl:
            return f"KL {kl:.4g} > --max-quality-loss {self.max_kl:g} (over by {kl - self.max_kl:.3g})"
        return None


def new_row(cand, est) -> dict:
    return {"candidate": cand.name, "backend": cand.backend, "recipe": cand.recipe.name, "status": "estimated",
            "reasons": [], "estimate": est.to_dict(), "artifact_bytes": None, "kl": None, "measured": None,
            "misses": []}


def row_refused(name: str, why: str) -> dict:
    backend, _, recipe = name.partition("/")
    return {"candidate": name, "backend": backend, "recipe": recipe, "status": "refused", "reasons": [why],
            "estimate": None, "artifact_bytes": None, "kl": None, "measured": None, "misses": []}


def kl_of(manifest: dict) -> float | None:
    """Mean KL(float || bundle) per position of the export's teacher-forced accuracy check (nats)."""
    acc = manifest.get("accuracy") or {}
    return float(acc["kl_mean"]) if acc.get("kl_mean") is not None else None


def measured(result: dict, est, target) -> dict:
    """The profile's device result -> what fit compares (see the module docstring)."""
    out = {"device_status": result["status"], "error": result.get("error"),
           "latency_kind": result.get("latency_kind"), "memory_source": result.get("memory_source"),
           "decode_tokens_per_s": None, "decode_tokens_per_s_std": None, "instructions_per_token": None}
    if result["status"] != "ok":
        return out
    decode = result.get("decode_tokens_per_s")
    if decode:
        out.update(decode_tokens_per_s=decode["mean"], decode_tokens_per_s_std=decode["std"])
    if result.get("instructions_per_token"):
        out["instructions_per_token"] = result["instructions_per_token"]["mean"]
    if target.kind == "mcu":
        raw, compared, bound_value, kind = result["ram_bytes"], est.total_bytes, result["ram_bytes"], "static RAM"
    elif result.get("peak_rss_bytes") is not None:
        raw, compared, kind = result["peak_rss_bytes"], est.total_bytes, "peak RSS"
        bound_value = raw
    else:   # emulated: only the guest heap is seen; add the estimate's non-heap part for the bound
        raw, compared, kind = result["guest_heap_bytes"], est.heap_bytes, "guest heap"
        bound_value = raw + (est.total_bytes - est.heap_bytes)
        out["memory_note"] = (f"bound checked on the measured guest heap {mb(raw)} + estimated non-heap "
                              f"{mb(est.total_bytes - est.heap_bytes)} (code, mapped weights)")
    out.update(memory_kind=kind, measured_memory_bytes=raw, compared_estimate_bytes=compared,
               memory_for_bound_bytes=bound_value,
               estimate_error=(compared - raw) / raw if raw else None)
    return out


def judge(row: dict, bounds: Bounds) -> None:
    m = row["measured"]
    if m["device_status"] != "ok":
        row.update(status="failed", reasons=[f"device run {m['device_status']}: {m['error'] or 'wrong tokens'}"])
        return
    misses = []
    if m["memory_for_bound_bytes"] > bounds.max_memory:
        v = m["memory_for_bound_bytes"]
        misses.append(dict(bound="max_memory", value=v, limit=bounds.max_memory,
                           relative=(v - bounds.max_memory) / bounds.max_memory,
                           text=f"measured memory ({m['memory_kind']}) {mb(v)} > --max-memory "
                                f"{mb(bounds.max_memory)} (over by {mb(v - bounds.max_memory)})"))
    tps = m["decode_tokens_per_s"]
    if bounds.min_decode_tps is not None and (tps or 0) < bounds.min_decode_tps:
        misses.append(dict(bound="min_decode_tps", value=tps, limit=bounds.min_decode_tps,
                           relative=(bounds.min_decode_tps - (tps or 0)) / bounds.min_decode_tps,
                           text=f"decode {tps or 0:.1f} tok/s < --min-decode-tps {bounds.min_decode_tps:g} "
                                f"(short by {bounds.min_decode_tps - (tps or 0):.1f} tok/s)"))
    row["misses"] = misses
    row.update(status="rejected" if misses else "pass", reasons=[x["text"] for x in misses])


def speed_key(row: dict) -> float:
    m = row["measured"]
    if m.get("instructions_per_token") is not None and m.get("decode_tokens_per_s") is None:
        return -m["instructions_per_token"]
    return m["decode_tokens_per_s"] or 0.0


def nothing_fits_message(rows: list[dict], bounds: Bounds) -> tuple[str, str]:
    """(message, fix) naming the closest candidate: the smallest total relative miss over its bounds."""
    def misses(row):
        if row["misses"]:
            return row["misses"]
        est = row.get("estimate")
        if row["status"] == "skipped" and est and est["total_bytes"] > bounds.max_memory:
            v = est["total_bytes"]
            return [dict(bound="max_memory", relative=(v - bounds.max_memory) / bounds.max_memory,
                         text=f"estimated memory {mb(v)} > --max-memory {mb(bounds.max_memory)} "
                              f"(over by {mb(v - bounds.max_memory)})")]
        if row["status"] == "rejected" and row["kl"] is not None and bounds.max_kl:
            return [dict(bound="max_quality_loss", relative=(row["kl"] - bounds.max_kl) / bounds.max_kl,
                         text=row["reasons"][0])]
        return []
    scored = [(sum(x["relative"] for x in misses(r)), r, misses(r)) for r in rows if misses(r)]
    tried = len([r for r in rows if r["status"] != "refused"])
    if not scored:
        reasons = "; ".join(f"{r['candidate']}: {r['reasons'][0]}" for r in rows if r["reasons"])
        return (f"no candidate meets the bounds ({tried} tried): {reasons}",
                "see the table; fix the failures above or try other --backends/--recipes")
    _, row, missed = min(scored, key=lambda s: s[0])
    fixes = {"max_memory": "raise --max-memory, use a shorter --context (smaller KV cache) or a smaller model",
             "min_decode_tps": "lower --min-decode-tps, or try more --threads or a smaller model",
             "max_quality_loss": "raise --max-quality-loss, or allow a higher-precision recipe (--recipes)"}
    return (f"no candidate meets the bounds ({tried} tried); closest: {row['candidate']}: "
            + "; ".join(x["text"] for x in missed),
            "; ".join(dict.fromkeys(fixes[x["bound"]] for x in missed)))
