"""Export benchmark: export time, .pte size, TTFT at prompt lengths 16/128, decode tok/s (mean, std over 5 runs)
and peak RSS, for fp32/int8/int4 ExecuTorch bundles of the real SmolLM2-135M quickstart model (--tiny: a
tiny random Llama, for a quick run). Exports and measurements each run in a fresh process so peak RSS is
their own. Prints a table and writes JSON (default benchmarks/results/export_bench.json).

  python benchmarks/export_bench.py [--tiny] [--recipes fp32,int8,int4] [--reps 5]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _export(ckpt: Path, out: Path, recipe: str) -> dict:
    """Export in a child process; returns wall time and the child's peak RSS."""
    code = ("import json,sys,resource; from edgeslm import api; "
            f"b = api.export({str(ckpt)!r}, out={str(out)!r}, quant={recipe!r}, force=True, progress=False); "
            "print(json.dumps({'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "
            "'manifest': b.manifest}))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"export {recipe} failed:\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"export_s": time.perf_counter() - t0, "export_peak_rss_bytes": info["rss"], "manifest": info["manifest"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random Llama instead of SmolLM2-135M")
    parser.add_argument("--recipes", default="fp32,int8,int4")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json-out", type=Path, default=HERE / "results" / "export_bench.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="edgeslm-bench-"))
    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_checkpoints import make_tiny_checkpoint
        ckpt, name = make_tiny_checkpoint("llama", work / "tiny-llama"), "tiny-llama"
    else:
        from edgeslm import api
        ckpt, name = api.quickstart(ROOT / ".cache" / "quickstart-smollm2"), "SmolLM2-135M-Instruct"

    rows = []
    for recipe in args.recipes.split(","):
        out = work / f"bundle-{recipe}"
        exp = _export(ckpt, out, recipe)
        proc = subprocess.run([sys.executable, str(HERE / "measure_bundle.py"), str(out), "--reps", str(args.reps)],
                              capture_output=True, text=True, check=True)
        meas = json.loads(proc.stdout)
        m = exp.pop("manifest")
        rows.append({"model": name, "recipe": recipe, **exp, "pte_bytes": m["memory"]["artifact_bytes"],
                     "top1_agreement": m["accuracy"]["top1_agreement"], "kl_mean": m["accuracy"]["kl_mean"],
                     "export_timings_s": m["timings_s"], **meas})

    table = Table(title=f"ExecuTorch/XNNPACK export benchmark: {name} (Python runtime, this host)")
    for col in ("recipe", "export s", ".pte MB", "TTFT@16 ms", "TTFT@128 ms", "decode tok/s", "peak RSS MB",
                "export RSS MB", "top-1"):
        table.add_column(col, justify="right")
    for r in rows:
        d = r["decode_tokens_per_s"]
        table.add_row(r["recipe"], f"{r['export_s']:.1f}", f"{r['pte_bytes'] / 1e6:.1f}",
                      f"{r['ttft_ms'].get('16', r['ttft_ms'].get(16, 0)):.1f}",
                      f"{r['ttft_ms'].get('128', r['ttft_ms'].get(128, 0)):.1f}",
                      f"{d['mean']:.1f} ± {d['std']:.1f}", f"{r['peak_rss_bytes'] / 2**20:.0f}",
                      f"{r['export_peak_rss_bytes'] / 2**20:.0f}", f"{r['top1_agreement']:.3f}")
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
