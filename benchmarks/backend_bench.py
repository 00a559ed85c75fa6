"""TVM (untuned, tuned) vs ExecuTorch XNNPACK on this host: same model, same precision, same native runner
loop (edgeslm-runner on the `local` device), greedy. Prints decode tokens/s, time to first token and
compile time, with ratios against ExecuTorch measured in the same run, and writes JSON under
benchmarks/results/.

Steps: bundles per (model, precision): executorch, tvm untuned (backend_options tuned=False), tvm tuned,
exported once and cached under .cache/backend-bench -> for each bundle in turn, the runner with warmup +
reps (edgeslm.farm.profile) -> medians -> table + JSON.

Precision pairs: fp32 vs fp32; int8 is ExecuTorch's 8da8w (int8 activations x int8 weights) vs TVM's int8
weight-only (float activations): the same weight bytes, not the same arithmetic (said in the table).

  python benchmarks/backend_bench.py [--models tiny,smollm2] [--quants fp32,int8] [--prompt-length 32]
                                     [--max-new-tokens 32] [--reps 3] [--max-seq-len 512]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / ".cache" / "backend-bench"
FLOWS = {"executorch": ("executorch", {}), "tvm-untuned": ("tvm", {"tuned": False}), "tvm-tuned": ("tvm", {})}


def checkpoint(model: str) -> Path:
    from edgeslm import api
    if model == "smollm2":
        return api.quickstart(ROOT / ".cache" / "quickstart-smollm2", progress=False)
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_checkpoints import make_tiny_checkpoint
    path = CACHE / "ckpt-tiny-llama"
    return path if (path / "config.json").is_file() else make_tiny_checkpoint("llama", path)


def get_bundle(model: str, flow: str, quant: str, max_seq_len: int) -> Path:
    from edgeslm import api
    from edgeslm.bundle import load_bundle
    from edgeslm.errors import EdgeSLMError
    out = CACHE / f"{model}-{flow}-{quant}-{max_seq_len}"
    try:
        load_bundle(out)
        return out
    except EdgeSLMError:
        pass
    backend, options = FLOWS[flow]
    print(f"exporting {out.name} ...", file=sys.stderr)
    api.export(checkpoint(model), out=out, backend=backend, target="host", quant=quant, max_seq_len=max_seq_len,
               force=True, progress=True, backend_options=options)
    return out


def measure(bundle: Path, length: int, new: int, reps: int) -> dict:
    from edgeslm.bundle import load_bundle
    from edgeslm.farm.profile import profile
    result = profile(bundle, ["local"], prompt_lengths=[length], max_new_tokens=new, reps=reps, warmup=1,
                     progress=False)["results"][0]
    if result["status"] not in ("ok", "wrong"):
        raise SystemExit(f"runner on {bundle}: {result['status']}: {result.get('error')}")
    run = result["runs"][str(length)]
    manifest = load_bundle(bundle).manifest
    return {"decode_tokens_per_s": run["decode_tokens_per_s"]["samples"], "ttft_ms": run["ttft_ms"]["samples"],
            "accuracy": result["accuracy"]["status"], "export_s": manifest["export_seconds"],
            "lower_s": sum(manifest["lowering"]["timings_s"].values()),
            "artifact_bytes": manifest["memory"]["artifact_bytes"]}


def table(rows: list[dict]) -> Table:
    t = Table(title="TVM vs ExecuTorch XNNPACK: edgeslm-runner on this host, greedy, median of reps "
                    "(ratio > 1: faster than ExecuTorch)")
    for col in ("model", "quant", "flow", "decode tok/s", "vs ET", "TTFT ms", "vs ET", "lower s", "size MB", "gate"):
        t.add_column(col, justify="left" if col in ("model", "quant", "flow", "gate") else "right")
    for r in rows:
        t.add_row(r["model"], r["quant"], r["flow"], f"{r['decode']:.1f}", f"{r['decode_ratio']:.2f}x",
                  f"{r['ttft']:.1f}", f"{r['ttft_ratio']:.2f}x", f"{r['lower_s']:.0f}",
                  f"{r['artifact_bytes'] / 1e6:.1f}", r["accuracy"])
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--quants", default="fp32,int8")
    parser.add_argument("--prompt-length", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--flows", default=",".join(FLOWS))
    args = parser.parse_args()

    rows = []
    for model in args.models.split(","):
        for quant in args.quants.split(","):
            measured = {}
            for flow in args.flows.split(","):
                bundle = get_bundle(model, flow, quant, args.max_seq_len)
                measured[flow] = measure(bundle, args.prompt_length, args.max_new_tokens, args.reps)
            base = measured.get("executorch")
            for flow, m in measured.items():
                decode, ttft = statistics.median(m["decode_tokens_per_s"]), statistics.median(m["ttft_ms"])
                ref_d = statistics.median(base["decode_tokens_per_s"]) if base else decode
                ref_t = statistics.median(base["ttft_ms"]) if base else ttft
                rows.append({"model": model, "quant": quant, "flow": flow, "decode": decode, "ttft": ttft,
                             "decode_ratio": decode / ref_d, "ttft_ratio": ref_t / ttft, **m})
    Console(width=160).print(table(rows))
    print("int8: ExecuTorch = 8-bit dynamic activations x 8-bit weights; TVM = 8-bit weights, float activations")
    out = HERE / "results" / "backend_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from edgeslm.api import toolchain_versions
    from edgeslm.farm.local import LocalDevice
    doc = {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "settings": vars(args),
           "host": LocalDevice().fingerprint(), "toolchain": toolchain_versions(), "rows": rows}
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
