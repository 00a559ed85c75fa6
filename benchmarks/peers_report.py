"""Summaries, physical bound and output for benchmarks/peers.py.

Steps of finish(rows): 1. per (peer, bits, prompt length): mean/std of decode tok/s and TTFT over reps,
leading greedy tokens equal to eager fp32 -> 2. ratios vs llama.cpp at matched bits (fp32 ~ F32, int8 ~ Q8_0,
int4 ~ Q4_0, q4_1 ~ the original Q4_1 file) -> 3. bandwidth bound: weight bytes read per decoded token
(every linear + the lm_head once; the embedding contributes one row: GGUF tensor bytes for llama.cpp, the
.pte's quantized-linear constants for edgeslm's ExecuTorch bundles, else weights x bytes per weight)
-> fraction = decode x bytes / bandwidth, with the bandwidth of the triad readings adjacent to each run
(adjacent_fraction: per round the larger of the readings just before and just after, the median over rounds)
and, as before, of the run's best reading; "fits L3" when those bytes fit the last-level cache; `+KV`: the
fraction with the KV cache bytes a step reads added (mean context over the generated tokens, each peer's cache
dtype) -> 4. Markdown + JSON (atomic writes), printed.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

REF_BITS = {"fp32": "fp32", "int8": "int8", "int4": "int4", "q4_1": "q4_1"}
# bytes per weight when not read from the file (GGUF rows are exact): int4 = 4-bit + a 32-bit scale per 32
BYTES_PER_WEIGHT = {"fp32": 4.0, "int8": 1.0, "int4": 0.625, "q4_1": 0.625}


def _mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x == x]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def read_params(ckpt: Path) -> tuple[int, int]:
    """(weights read per decoded token, all weights) from config.json."""
    cfg = json.loads((ckpt / "config.json").read_text())
    c, h, hkv, f, v = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                       cfg["intermediate_size"], cfg["vocab_size"])
    d = cfg.get("head_dim") or c // h
    per_layer = 2 * c * h * d + 2 * c * hkv * d + 3 * c * f
    read = cfg["num_hidden_layers"] * per_layer + v * c          # + lm_head (tied or not)
    tied = cfg.get("tie_word_embeddings", False)
    return read, read + (0 if tied else v * c)


# Bytes per KV-cache element each peer's decode reads, when the row does not say (edgeslm rows carry their
# bundle's kv_cache_dtype): llama.cpp's default cache is f16; transformers, ONNX and ExecuTorch's llama export
# (dtype fp32) keep float32.
KV_ELEM_BYTES = {"llamacpp": 2}


def kv_values_per_position(ckpt: Path) -> int:
    """K and V values of one token position over all layers (what a decode step reads per cached token)."""
    cfg = json.loads((ckpt / "config.json").read_text())
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    return cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * d


def l3_bytes() -> int:
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
        return int(text[:-1]) * 1024 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return 32 << 20


def bytes_per_token(row: dict, read: int, total: int) -> tuple[float, str]:
    if row.get("gguf_types"):
        return sum(row["gguf_types"].values()) * read / total, "GGUF tensor bytes"
    if row.get("read_bytes"):
        return row["read_bytes"], "the .pte's quantized-linear weights and scales"
    return read * BYTES_PER_WEIGHT[row["bits"]], f"estimate: {read / 1e6:.1f} M weights x {BYTES_PER_WEIGHT[row['bits']]} B"


def _agree(tokens, ref) -> int | None:
    if not tokens or not ref:
        return None
    n = 0
    for a, b in zip(tokens, ref):
        if a != b:
            break
        n += 1
    return n


def adjacent_fraction(rounds: list[dict], readings: list[float], step_bytes: float) -> float | None:
    """Median over rounds of decode tok/s x bytes per token / bandwidth, each round ({"reading": i,
    "decode_mean"}) against the larger of readings[i] (taken just before that run) and readings[i + 1]
    (just after). A shared VM's bandwidth drifts 2x within minutes (sessions 11-13: 18-65 GB/s in one run),
    so the run's best reading, taken minutes away, says little about a given round; the larger of the two
    neighbours keeps a dip around a run from flattering it. None without readings."""
    fractions = []
    for r in rounds:
        near = [readings[j] for j in (r["reading"], r["reading"] + 1) if 0 <= j < len(readings)]
        if near and r["decode_mean"] == r["decode_mean"]:
            fractions.append(r["decode_mean"] * step_bytes / (max(near) * 1e9))
    return statistics.median(fractions) if fractions else None


def summarize(rows: list[dict], ckpt: Path, bw_gbps: float, new_tokens: int = 0,
              adjacent: list[float] | None = None) -> list[dict]:
    from edgeslm.text import Tokenizer
    tok = Tokenizer.from_dir(ckpt)
    read, total = read_params(ckpt)
    kv_values = kv_values_per_position(ckpt)
    l3 = l3_bytes()
    eager = next((r for r in rows if r["peer"] == "eager" and r["status"] == "ok"), None)
    out = []
    for r in rows:
        if r["status"] != "ok":
            out.append({"peer": r["peer"], "bits": r["bits"], "len": None, "status": r["status"], "reason": r.get("reason")})
            continue
        bpt, how = bytes_per_token(r, read, total)
        for n, run in r["runs"].items():
            if run.get("skipped"):
                out.append({"peer": r["peer"], "bits": r["bits"], "len": int(n), "status": "skipped",
                            "reason": run["skipped"]})
                continue
            d_mean, d_std = _mean_std(run["decode_tokens_per_s"])
            t_mean, t_std = _mean_std(run["ttft_ms"])
            toks = run.get("tokens")
            if toks is None and run.get("text") is not None:   # etllama: text only -> re-tokenized (approximate)
                toks = tok.encode(run["text"], add_bos=False)
            ref = eager["runs"][n].get("tokens") if eager else None
            bound = bw_gbps * 1e9 / bpt
            # + the KV cache a decode step reads: the mean context over the generated tokens
            kv_bpt = kv_values * (int(n) + new_tokens / 2) * r.get("kv_elem_bytes", KV_ELEM_BYTES.get(r["peer"], 4))
            out.append({"peer": r["peer"], "bits": r["bits"], "len": int(n), "status": "ok",
                        "decode_mean": d_mean, "decode_std": d_std, "ttft_mean": t_mean, "ttft_std": t_std,
                        "agree": _agree(toks, ref), "new": len(ref) if ref else None,
                        "bytes_per_token": bpt, "bytes_how": how, "bound_tok_s": bound,
                        "frac_bound": d_mean / bound, "fits_l3": bpt <= l3, "kv_bytes_per_token": kv_bpt,
                        "frac_bound_kv": d_mean * (bpt + kv_bpt) / (bw_gbps * 1e9),
                        "frac_adjacent": adjacent_fraction(run.get("rounds", []), adjacent or [], bpt),
                        "frac_adjacent_kv": adjacent_fraction(run.get("rounds", []), adjacent or [], bpt + kv_bpt),
                        "file_mb": r["file_bytes"] / 1e6, "export_s": r.get("export_s"),
                        "rss_mb": r["peak_rss_bytes"] / 1e6, "load_s": r.get("load_s")})
    for s in out:
        if s["status"] != "ok":
            continue
        for peer in ("llamacpp", "etllama"):      # > 1: faster than that peer at the same bits and prompt
            ref = next((x for x in out if x["peer"] == peer and x["bits"] == REF_BITS[s["bits"]]
                        and x["len"] == s["len"] and x["status"] == "ok"), None)
            s[f"decode_vs_{peer}"] = s["decode_mean"] / ref["decode_mean"] if ref else None
            s[f"ttft_vs_{peer}"] = ref["ttft_mean"] / s["ttft_mean"] if ref else None
    return out


def _f(x, fmt: str) -> str:
    return "—" if x is None or x != x else format(x, fmt)


def markdown(summary: list[dict], meta: dict) -> str:
    bw = meta["bandwidth_best_gbps"]
    lines = [f"# Peers: {meta['model']} on this host ({meta['threads']} threads, {meta['new_tokens']} greedy tokens, "
             f"EOS ignored, mean ± std of {meta['reps']} reps"
             + (f" x {meta['rounds']} rounds, peers round-robin" if meta.get("rounds", 1) > 1 else "") + ")", "",
             f"**Contended numbers**: shared 2-core machine, load average {meta['loadavg_start']} at start, "
             f"{meta['loadavg_end']} at end. Memory bandwidth (STREAM-like triad, best): {bw:.1f} GB/s "
             f"(all runs: {', '.join(f'{b:.1f}' for b in meta['bandwidth_all_gbps'])}; just before each peer's "
             f"runs: {', '.join(f'{b:.1f}' for b in meta.get('bandwidth_adjacent_gbps', []))}). "
             "Ratios are against llama.cpp and ExecuTorch's own runner (etllama) at matched bits and prompt "
             "(> 1: faster than that peer; decode / TTFT). "
             "`of bound` = decode x weight bytes read per token / bandwidth, each round against the larger triad "
             "reading of the two taken just before and after it, the median over rounds; `+KV` = the same with "
             "the KV cache bytes a step reads at the mean context (each peer's cache dtype); `of best` = against "
             "the best reading of the whole run (weights only); `agree` = leading greedy tokens equal to eager fp32.",
             "",
             "| peer | bits | prompt | decode tok/s | x llama.cpp | TTFT ms | x llama.cpp | x ET runner | of bound | "
             "+KV | of best | agree | file MB | export s | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary:
        if s["status"] != "ok":
            lines.append(f"| {s['peer']} | {s['bits']} | {s['len'] or '—'} | {s['status']}: {s['reason']} | | | | | | | | | | | |")
            continue
        frac = _f(s.get("frac_adjacent"), ".0%") + (" (fits L3)" if s["fits_l3"] else "")
        agree = f"{s['agree']}/{s['new']}" if s["agree"] is not None else "—"
        et = "—" if s.get("decode_vs_etllama") is None else \
            f"{s['decode_vs_etllama']:.2f} / {s['ttft_vs_etllama']:.2f}"
        lines.append(f"| {s['peer']} | {s['bits']} | {s['len']} | {s['decode_mean']:.1f} ± {s['decode_std']:.1f} | "
                     f"{_f(s['decode_vs_llamacpp'], '.2f')} | {s['ttft_mean']:.1f} ± {s['ttft_std']:.1f} | "
                     f"{_f(s['ttft_vs_llamacpp'], '.2f')} | {et} | {frac} | {_f(s.get('frac_adjacent_kv'), '.0%')} | {s['frac_bound']:.0%} | {agree} | {s['file_mb']:.1f} | "
                     f"{_f(s['export_s'], '.0f')} | {s['rss_mb']:.0f} |")
    lines += ["", "Notes per peer:"]
    for note in meta["notes"]:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def finish(rows, *, ckpt, model, ids, args, ctx, bandwidth, stem: Path, adjacent: list[float] | None = None) -> None:
    import os
    from edgeslm.fsutil import write_text_atomic
    adjacent = list(adjacent or [])
    if getattr(args, "append", False) and stem.with_suffix(".json").is_file():
        # merge with an earlier run of the same settings: its rows for (peer, bits) not re-measured now stay
        old = json.loads(stem.with_suffix(".json").read_text())
        done = {(r["peer"], r["bits"]) for r in rows}
        order = {p: i for i, p in enumerate(["eager", "onnxruntime", "llamacpp", "etllama",
                                             "edgeslm-executorch", "edgeslm-tvm"])}
        rows = sorted([r for r in old["rows"] if (r["peer"], r["bits"]) not in done] + rows,
                      key=lambda r: (order.get(r["peer"], 99), ["fp32", "int8", "int4", "q4_1"].index(r["bits"])))
        bandwidth = old.get("bandwidth", []) + bandwidth
        old_adjacent = old.get("bandwidth_adjacent_gbps", [])       # the new rounds' indices move past them
        for r in rows:
            if (r["peer"], r["bits"]) in done:
                for run in r.get("runs", {}).values():
                    for rd in run.get("rounds", []):
                        rd["reading"] += len(old_adjacent)
        adjacent = old_adjacent + adjacent
    bw_best = max(b["gbps"] for b in bandwidth)
    summary = summarize(rows, ckpt, bw_best, args.new_tokens, adjacent)
    notes = sorted({f"{r['peer']} {r['bits']}: {r['note']}" for r in rows if r.get("note")})
    loads = [r.get("load_before") for r in rows if r.get("load_before")] + [os.getloadavg()]
    meta = {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model": model,
            "checkpoint": str(ckpt), "threads": args.threads, "new_tokens": args.new_tokens, "reps": args.reps,
            "rounds": getattr(args, "rounds", 1),
            "warmup": args.warmup, "context": ctx, "prompt_lengths": {k: len(v) for k, v in ids.items()},
            "contended": True, "loadavg_start": tuple(round(x, 2) for x in loads[0]),
            "loadavg_end": tuple(round(x, 2) for x in loads[-1]), "bandwidth": bandwidth,
            "bandwidth_best_gbps": bw_best, "bandwidth_all_gbps": [b["gbps"] for b in bandwidth],
            "bandwidth_adjacent_gbps": adjacent,
            "l3_bytes": l3_bytes(), "edgeslm_commit": _commit(), "notes": notes}
    try:
        from edgeslm.api import toolchain_versions
        meta["toolchain"] = toolchain_versions()
    except Exception:   # provenance is best effort
        pass
    md = markdown(summary, meta)
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stem.with_suffix(".md"), md)
    write_text_atomic(stem.with_suffix(".json"), json.dumps({**meta, "summary": summary, "rows": rows},
                                                            indent=1, default=str) + "\n")
    print(md)
    print(f"results: {stem.with_suffix('.md')} {stem.with_suffix('.json')}")
