"""Plots of one run as inline SVG strings (matplotlib's Agg-free SVG backend; no files, no network).

Each function takes the flat records (data.py) and returns (title, svg) or None when the run has no data
for it (e.g. an MCU-only run has no decode tok/s). Wrong results are drawn in red everywhere.
  decode_bars       decode tok/s (mean ± std, pooled reps) per device x backend x recipe
  ttft_lines        time to first token vs prompt length, one line per device x recipe x threads
  memory_scatter    peak memory vs bundle (artifact) size
  latency_boxes     per-token latency distribution: 1000 / decode tok/s of every repetition (ms/token);
                    the runner reports per-repetition means, so each sample is one repetition's mean
  status_grid       ok / wrong / error for every job (device rows x bundle/prompt/threads columns)
"""
from __future__ import annotations

import io
from collections import defaultdict

RED, GREEN, GREY, BLUE = "#d62728", "#2ca02c", "#7f7f7f", "#1f77b4"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight",     # no RDF metadata block (no date, no URLs)
                metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]          # drop the XML prolog and DOCTYPE: inline in HTML


def _fig(w: float, h: float):
    """A Figure without pyplot (no global backend state, no GUI); text stays text in the SVG."""
    import matplotlib
    from matplotlib.figure import Figure
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "edgeslm", "font.size": 9})
    fig = Figure(figsize=(w, h))
    return fig, fig.subplots()


def _label(r: dict) -> str:
    return f"{r['device']}\n{r['backend']}/{r['quant']}"


def decode_bars(records: list[dict]):
    groups: dict[str, list] = defaultdict(list)
    wrong: dict[str, bool] = defaultdict(bool)
    for r in records:
        if r["decode_tps_samples"]:
            groups[_label(r)] += r["decode_tps_samples"]
            wrong[_label(r)] |= r["status"] == "wrong"
    if not groups:
        return None
    import statistics
    names = sorted(groups)
    fig, ax = _fig(max(4, 1.4 * len(names)), 3.2)
    means = [statistics.fmean(groups[n]) for n in names]
    stds = [statistics.pstdev(groups[n]) for n in names]
    ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=[RED if wrong[n] else BLUE for n in names])
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("decode tokens/s (mean ± std)")
    return "Decode tokens/s per device x backend x recipe", _svg(fig)


def ttft_lines(records: list[dict]):
    lines: dict[str, list] = defaultdict(list)
    for r in records:
        if r["ttft_ms_median"] is not None:
            lines[f"{r['device']} {r['quant']} t{r['threads']}"].append((r["prompt_length"], r["ttft_ms_median"],
                                                                       r["status"] == "wrong"))
    if not lines:
        return None
    fig, ax = _fig(5.5, 3.2)
    for name, pts in sorted(lines.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        bad = [p for p in pts if p[2]]
        if bad:
            ax.plot([p[0] for p in bad], [p[1] for p in bad], "x", color=RED, markersize=10)
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("TTFT median (ms)")
    ax.legend(fontsize=7)
    return "Time to first token vs prompt length", _svg(fig)


def memory_scatter(records: list[dict]):
    pts = [r for r in records if r["memory_bytes"] and r["artifact_bytes"]]
    if not pts:
        return None
    fig, ax = _fig(5.5, 3.2)
    for r in pts:
        ax.scatter(r["artifact_bytes"] / 2**20, r["memory_bytes"] / 2**20,
                   color=RED if r["status"] == "wrong" else BLUE)
    seen = set()
    for r in pts:
        key = (r["device"], r["quant"])
        if key not in seen:
            seen.add(key)
            ax.annotate(f"{r['device']} {r['quant']}", (r["artifact_bytes"] / 2**20, r["memory_bytes"] / 2**20),
                        fontsize=7)
    ax.set_xlabel("bundle artifact (MiB)")
    ax.set_ylabel("peak memory (MiB)")
    return "Peak memory vs bundle size", _svg(fig)


def latency_boxes(records: list[dict]):
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[_label(r)] += [1000.0 / x for x in r["decode_tps_samples"] if x > 0]
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return None
    names = sorted(groups)
    fig, ax = _fig(max(4, 1.4 * len(names)), 3.2)
    ax.boxplot([groups[n] for n in names])
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel("ms per token (one sample per repetition)")
    return "Per-token latency distribution", _svg(fig)


def status_grid(records: list[dict]):
    if not records:
        return None
    from matplotlib.patches import Rectangle
    devices = sorted({r["device"] for r in records})
    cols = sorted({(r["quant"] or "", r["prompt_length"] or 0, r["threads"] or 0) for r in records})
    color = {"ok": GREEN, "wrong": RED, "error": GREY}
    fig, ax = _fig(max(4, 0.5 * len(cols) + 2), 0.5 * len(devices) + 1.2)
    for r in records:
        x = cols.index((r["quant"] or "", r["prompt_length"] or 0, r["threads"] or 0))
        y = devices.index(r["device"])
        ax.add_patch(Rectangle((x, y), 0.9, 0.9, color=color.get(r["status"], GREY)))
    ax.set_xlim(0, len(cols))
    ax.set_ylim(0, len(devices))
    ax.set_xticks([i + 0.45 for i in range(len(cols))], [f"{q} p{p} t{t}" for q, p, t in cols], rotation=60,
                  fontsize=7)
    ax.set_yticks([i + 0.45 for i in range(len(devices))], devices)
    ax.set_title("green ok, red wrong tokens, grey error", fontsize=8)
    return "Accuracy gate per job (wrong tokens in red)", _svg(fig)


PLOTS = (decode_bars, ttft_lines, memory_scatter, latency_boxes, status_grid)


def all_plots(records: list[dict]) -> list[tuple[str, str]]:
    return [p for p in (fn(records) for fn in PLOTS) if p is not None]
