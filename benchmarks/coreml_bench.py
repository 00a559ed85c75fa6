"""Core ML benchmark: per recipe (fp16, int8, int4, pal4) the export time, .mlpackage size and its ratio to
fp16, and the accuracy the manifest records (through the numpy MIL interpreter stand-in off macOS: top-1
agreement, KL and max logit difference against eager float32). Latency needs Core ML (macOS): not measured
here. Default: the real SmolLM2-135M quickstart model; --tiny: a tiny random Llama.

  python benchmarks/coreml_bench.py [--tiny] [--recipes fp16,int8,int4,pal4] [--max-seq-len 256]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--recipes", default="fp16,int8,int4,pal4")
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--out", default=str(HERE / "results" / "coreml_bench.json"))
    args = parser.parse_args()
    from edgeslm import api
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_checkpoints import make_tiny_checkpoint
            ckpt = make_tiny_checkpoint("llama", Path(tmp) / "ckpt")
        else:
            ckpt = api.quickstart(ROOT / ".cache" / "quickstart-smollm2", progress=False)
        rows = []
        for recipe in args.recipes.split(","):
            t0 = time.perf_counter()
            bundle = api.export(ckpt, out=Path(tmp) / recipe, backend="coreml", target="ios-arm64", quant=recipe,
                                max_seq_len=args.max_seq_len, progress=True)
            m = bundle.manifest
            rows.append({"recipe": recipe, "export_s": time.perf_counter() - t0,
                         "artifact_bytes": m["memory"]["artifact_bytes"], "accuracy": m["accuracy"],
                         "compression": m["lowering"]["metadata"]["compression"]})
    base = next((r["artifact_bytes"] for r in rows if r["recipe"] == "fp16"), rows[0]["artifact_bytes"])
    table = Table(title=f"Core ML bundles ({'tiny llama' if args.tiny else 'SmolLM2-135M'}, ios-arm64)")
    for col in ("recipe", "export s", "mlpackage MB", "size / fp16", "top-1 vs float", "KL mean", "max |dlogit|"):
        table.add_column(col)
    for r in rows:
        a = r["accuracy"]
        table.add_row(r["recipe"], f"{r['export_s']:.1f}", f"{r['artifact_bytes'] / 1e6:.2f}",
                      f"{r['artifact_bytes'] / base:.3f}", f"{a.get('top1_agreement', float('nan')):.3f}",
                      f"{a.get('kl_mean', float('nan')):.2e}", f"{a.get('max_abs_logit_diff', float('nan')):.3f}")
    Console(width=160).print(table)
    print(f"accuracy runtime: {rows[0]['accuracy'].get('runtime') or rows[0]['accuracy'].get('status')}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
