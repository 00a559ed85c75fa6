"""The table of `edgeslm fit`: one row per candidate, as fit.json, fit.md and a rich table.

Columns: candidate, result (best / pass / rejected / skipped / failed / refused), estimated memory,
measured memory (and what it is), the estimate's error ("estimate 412 MB, measured 398 MB, +3.5%"),
decode tok/s (or instructions per token on an MCU), KL vs float, artifact size, why.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgeslm.fit.bounds import mb

COLUMNS = ("candidate", "result", "estimate", "measured", "estimate error", "decode", "KL", "artifact", "why")
STYLE = {"best": "bold green", "pass": "green", "rejected": "yellow", "skipped": "dim", "failed": "red",
         "refused": "dim"}


def error_text(m: dict | None) -> str:
    """'estimate 412.0 MB, measured 398.0 MB, +3.5%' (the figure the estimate is compared with)."""
    if not m or m.get("estimate_error") is None:
        return "-"
    return (f"estimate {mb(m['compared_estimate_bytes'])}, measured {mb(m['measured_memory_bytes'])}, "
            f"{m['estimate_error'] * 100:+.1f}%")


def cells(row: dict) -> list[str]:
    m, est = row["measured"] or {}, row["estimate"]
    if m.get("decode_tokens_per_s") is not None:
        speed = f"{m['decode_tokens_per_s']:.1f} ± {m['decode_tokens_per_s_std']:.1f} tok/s"
        if m.get("latency_kind") not in (None, "measured"):
            speed += " (emulated)"
    elif m.get("instructions_per_token") is not None:
        speed = f"{m['instructions_per_token']:,.0f} instr/token"
    else:
        speed = "-"
    measured = f"{mb(m['measured_memory_bytes'])} {m['memory_kind']}" if m.get("measured_memory_bytes") else "-"
    return [row["candidate"], row["status"], mb(est["total_bytes"]) if est else "-", measured, error_text(m),
            speed, "-" if row["kl"] is None else f"{row['kl']:.3g}",
            "-" if row["artifact_bytes"] is None else mb(row["artifact_bytes"]), "; ".join(row["reasons"]) or "-"]


def render_markdown(report: dict) -> str:
    b = report["bounds"]
    lines = [f"# edgeslm fit: {report['target']}" + (f" on {report['device']}" if report.get("device") else ""),
             "", f"Checkpoint `{report['checkpoint']}` ({report['parameters']:,} parameters), context "
             f"{report['context']}.", "",
             f"Bounds: memory <= {mb(b['max_memory'])}"
             + (f", decode >= {b['min_decode_tps']:g} tok/s" if b["min_decode_tps"] is not None else "")
             + (f", KL <= {b['max_kl']:g}" if b["max_kl"] is not None else "") + ".", "",
             f"Rule: {report['rule']}.", "",
             f"Best: **{report['best']}**" if report.get("best") else "Best: none (no candidate meets every bound)",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in report["candidates"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |")
    notes = sorted({n for r in report["candidates"] if r["estimate"] for n in r["estimate"]["notes"]}
                   | {r["measured"]["memory_note"] for r in report["candidates"]
                      if r["measured"] and r["measured"].get("memory_note")})
    if notes:
        lines += ["", "Notes:", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def write_reports(folder: Path, report: dict) -> None:
    from edgeslm.fsutil import write_text_atomic
    write_text_atomic(Path(folder) / "fit.json", json.dumps(report, indent=2, default=str) + "\n")
    write_text_atomic(Path(folder) / "fit.md", render_markdown(report))


def rich_table(report: dict):
    from rich.markup import escape
    from rich.table import Table
    table = Table(title=f"edgeslm fit {report['target']}" + (f" on {report['device']}" if report.get("device")
                                                              else " (estimates only)"))
    for col in COLUMNS:
        table.add_column(col, overflow="fold")
    for row in report["candidates"]:
        c = [escape(x) for x in cells(row)]
        c[1] = f"[{STYLE.get(row['status'], 'bold')}]{c[1]}[/]"
        table.add_row(*c)
    return table
