"""Renderers of one run: html (self-contained: inline CSS, inline SVG plots, no network), md, json, csv.

Steps of write_report(store, run_id, fmt, out): load_run (data.py) -> render(fmt) -> atomic write.
The HTML table marks each number with data-key/data-field (what the browser test compares with the DB)
and wrong-token rows in red; a tiny inline script counts the plots that actually laid out with a size
(body[data-plots-rendered]) so a headless browser can tell a drawn page from a broken one.
"""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from edgeslm.errors import EdgeSLMError
from edgeslm.report.data import load_run

COLUMNS = ("device", "requested_device", "target", "backend", "quant", "prompt_length", "threads", "status",
           "decode_tps_mean", "decode_tps_std", "ttft_ms_median", "prefill_tps_median", "memory_bytes",
           "artifact_bytes", "latency_kind", "first_mismatch", "error")
NUMBER = {"decode_tps_mean": "{:.3f}", "decode_tps_std": "{:.3f}", "ttft_ms_median": "{:.3f}",
          "prefill_tps_median": "{:.1f}"}
CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td.t,th{text-align:left}tr.wrong td{color:#b00;
background:#fee;font-weight:bold}tr.error td{color:#777}figure{display:inline-block;margin:8px;vertical-align:top}
figcaption{font-weight:bold;margin-bottom:4px}.meta{color:#555;font-size:12px}"""
RENDER_CHECK = """<script>(function(){var n=0;document.querySelectorAll('figure.plot svg').forEach(function(s){
var r=s.getBoundingClientRect();if(r.width>50&&r.height>50&&s.querySelectorAll('path,rect,line,text').length>0)n++;});
document.body.setAttribute('data-plots-rendered',String(n));})();</script>"""


def _cell(rec: dict, col: str) -> str:
    v = rec.get(col)
    if v is None:
        return "-"
    return NUMBER[col].format(v) if col in NUMBER else str(v)


def to_html(run: dict) -> str:
    from edgeslm.report.plots import all_plots
    recs = run["records"]
    plots = all_plots(recs)
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in COLUMNS)
    rows = []
    for r in recs:
        cells = "".join(f'<td class="{"t" if not isinstance(r.get(c), (int, float)) else "n"}" '
                        f'data-key="{e(str(r["job_key"]))}" data-field="{c}">{e(_cell(r, c))}</td>' for c in COLUMNS)
        extra = "; ".join(f"{k}={v}" for k, v in sorted(r["extra"].items()))
        rows.append(f'<tr class="{e(str(r["status"]))}">{cells}<td class="t">{e(extra)}</td></tr>')
    wrong = [r for r in recs if r["status"] == "wrong"]
    flags = "".join(f'<li class="wrong-flag" style="color:#b00">WRONG {e(r["device"])} {e(str(r["quant"]))} '
                    f'p{r["prompt_length"]} t{r["threads"]}: first mismatch at step {r["first_mismatch"]}, '
                    f'got {e(str(r["got"]))}, expected {e(str(r["expected"]))}</li>' for r in wrong)
    figures = "".join(f'<figure class="plot"><figcaption>{e(t)}</figcaption>{svg}</figure>' for t, svg in plots)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>edgeslm run {e(run["run_id"])}</title>'
            f"<style>{CSS}</style></head><body>"
            f'<h1>edgeslm farm run <span id="run-id">{e(run["run_id"])}</span></h1>'
            f'<p class="meta">created {e(run["created_utc"])} · edgeslm {e(str(run["edgeslm_version"]))} '
            f'({e(str(run["edgeslm_commit"]))}) · {len(recs)} results · <span id="n-wrong">{len(wrong)}</span> '
            f"wrong · timings under emulation are not device latency</p>"
            f'<ul id="wrong-flags">{flags}</ul><div id="plots" data-plots="{len(plots)}">{figures}</div>'
            f'<h2>Results</h2><table id="results"><tr>{head}<th>other metrics</th></tr>{"".join(rows)}</table>'
            f"{RENDER_CHECK}</body></html>\n")


def to_md(run: dict) -> str:
    lines = [f"# edgeslm farm run {run['run_id']}", "",
             f"created {run['created_utc']}, edgeslm {run['edgeslm_version']} ({run['edgeslm_commit']})", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in run["records"]:
        cells = [_cell(r, c).replace("|", "\\|") for c in COLUMNS]
        if r["status"] == "wrong":
            cells[COLUMNS.index("status")] = "**WRONG**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_json(run: dict) -> str:
    return json.dumps(run, indent=2, default=str) + "\n"


def to_csv(run: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run_id", "job_key", *COLUMNS])
    for r in run["records"]:
        w.writerow([run["run_id"], r["job_key"], *("" if r.get(c) is None else r[c] for c in COLUMNS)])
    return buf.getvalue()


FORMATS = {"html": to_html, "md": to_md, "json": to_json, "csv": to_csv}


def render(store, run_id: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise EdgeSLMError(f"unknown report format '{fmt}'", fix=f"one of {', '.join(FORMATS)}")
    return FORMATS[fmt](load_run(store, run_id))


def write_report(store, run_id: str, fmt: str, out: str | Path) -> Path:
    from edgeslm.fsutil import write_text_atomic
    text = render(store, run_id, fmt)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)
    return out
