"""Native runner vs the Python ExecuTorch runtime on this host: same bundle, same prompt tokens, greedy,
same thread pool default. Prints decode tokens/s and time to first token side by side with ratios
(> 1.00x: native is faster) and writes JSON under benchmarks/results/.

Steps: bundle(s) (tiny random Llama fp32 + int8 by default, cached under .cache/runner-bench; --smollm2:
the real quickstart model, int8, reusing .cache/demo/smollm2-executorch-host-int8 when it loads) ->
for each prompt length, alternately: edgeslm-runner on the `local` device (edgeslm.farm.profile, warmup +
reps in one process) and the Python runtime (ExecuTorchSession + edgeslm.generate, warmup + reps) ->
medians/means -> table + JSON. --qemu adds the qemu-aarch64 device (emulated timings, never latency).

  python benchmarks/runner_bench.py [--smollm2] [--quants fp32,int8] [--prompt-lengths 16,128]
                                    [--max-new-tokens 64] [--reps 5] [--qemu]
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
CACHE = ROOT / ".cache" / "runner-bench"
DEMO_INT8 = ROOT / ".cache" / "demo" / "smollm2-executorch-host-int8"


def _loads(path: Path) -> bool:
    from edgeslm.bundle import load_bundle
    from edgeslm.errors import EdgeSLMError
    try:
        return load_bundle(path).backend == "executorch"
    except EdgeSLMError:
        return False


def get_bundle(smollm2: bool, quant: str, max_seq_len: int) -> Path:
    """A cached bundle for (model, quant), exported once; a bundle that no longer loads is re-exported."""
    from edgeslm import api
    if smollm2 and quant == "int8" and _loads(DEMO_INT8):
        return DEMO_INT8
    out = CACHE / f"{'smollm2' if smollm2 else 'tiny-llama'}-{quant}-{max_seq_len}"
    if _loads(out):
        return out
    if smollm2:
        ckpt = api.quickstart(ROOT / ".cache" / "quickstart-smollm2")
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_checkpoints import make_tiny_checkpoint
        ckpt = make_tiny_checkpoint("llama", CACHE / "ckpt-tiny-llama")
    api.export(ckpt, out=out, backend="executorch", target="host", quant=quant, max_seq_len=max_seq_len,
               force=True, progress=True)
    return out


def python_runtime(bundle, ids: list[int], new: int, reps: int, warmup: int) -> dict:
    """Python ExecuTorch runtime through edgeslm.generate (the `edgeslm run` path), EOS ignored."""
    from edgeslm.api import open_session
    from edgeslm.generate import generate

    session = open_session(bundle)
    ttft, decode = [], []
    for rep in range(warmup + reps):
        r = generate(session, ids, max_new_tokens=new, max_seq_len=bundle.max_seq_len,
                     sample=lambda logits: int(logits.argmax()), eos_ids=set())
        if rep >= warmup:
            ttft.append(r.stats.ttft_ms)
            decode.append(r.stats.decode_tokens_per_s)
    return {"ttft_ms": ttft, "decode_tokens_per_s": decode, "tokens": r.tokens}


def bench(bundle_path: Path, lengths: list[int], new: int, reps: int, qemu: bool) -> dict:
    from edgeslm.bundle import load_bundle
    from edgeslm.farm.profile import profile, prompt_tokens

    bundle = load_bundle(bundle_path)
    ids = prompt_tokens(bundle, max(lengths))
    rows = {}
    for n in lengths:   # alternate native / python per length, so background load hits both alike
        native = profile(bundle.path, ["local"], prompt_lengths=[n], max_new_tokens=new, reps=reps, warmup=1,
                         progress=False)["results"][0]
        if native["status"] != "ok":
            raise SystemExit(f"native runner on {bundle.path}: {native['status']}: {native['error']}")
        py = python_runtime(bundle, ids[:n], new, reps, warmup=1)
        run = native["runs"][str(n)]
        rows[n] = {
            "native": {"ttft_ms": run["ttft_ms"]["samples"],
                       "decode_tokens_per_s": run["decode_tokens_per_s"]["samples"],
                       "tokens": run["generated"], "accuracy": native["accuracy"]["status"]},
            "python": py,
            "same_tokens": run["generated"] == py["tokens"],
        }
    out = {"bundle": str(bundle.path), "quant": bundle.manifest["quant"]["name"],
           "model": bundle.manifest["model"].get("name"), "by_prompt_length": rows}
    if qemu:
        q = profile(bundle.path, ["qemu-aarch64"], prompt_lengths=lengths, max_new_tokens=new, reps=max(2, reps // 2),
                    warmup=1, progress=False)["results"][0]
        out["qemu_aarch64"] = {k: q[k] for k in ("status", "error", "latency_kind", "decode_tokens_per_s",
                                                   "ttft_ms", "guest_heap_bytes")}
    return out


def med(xs):
    return statistics.median(xs)


def table(results: list[dict], lengths: list[int]) -> Table:
    t = Table(title="edgeslm-runner (native) vs Python ExecuTorch runtime, host, greedy, median of reps")
    for col in ("bundle", "prompt", "metric", "native", "python", "native advantage", "same tokens"):
        t.add_column(col, justify="right" if col in ("native", "python", "native advantage") else "left")
    for res in results:
        for n in lengths:
            row = res["by_prompt_length"][n]
            nat, py = row["native"], row["python"]
            d_n, d_p = med(nat["decode_tokens_per_s"]), med(py["decode_tokens_per_s"])
            f_n, f_p = med(nat["ttft_ms"]), med(py["ttft_ms"])
            name = f"{res['model']} {res['quant']}"
            t.add_row(name, str(n), "decode tok/s", f"{d_n:.1f}", f"{d_p:.1f}", f"{d_n / d_p:.2f}x",
                      str(row["same_tokens"]))
            t.add_row("", "", "TTFT ms", f"{f_n:.2f}", f"{f_p:.2f}", f"{f_p / f_n:.2f}x", "")
        q = res.get("qemu_aarch64")
        if q and q["status"] == "ok":
            t.add_row("", "all", "qemu decode tok/s (emulated)", f"{q['decode_tokens_per_s']['median']:.1f}", "-",
                      "-", "")
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smollm2", action="store_true", help="the real SmolLM2-135M quickstart model (int8)")
    parser.add_argument("--quants", default=None, help="default fp32,int8 (tiny) or int8 (--smollm2)")
    parser.add_argument("--prompt-lengths", default="16,128")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--qemu", action="store_true", help="also run the qemu-aarch64 device (emulated)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()

    lengths = [int(x) for x in args.prompt_lengths.split(",")]
    quants = (args.quants or ("int8" if args.smollm2 else "fp32,int8")).split(",")
    ctx = 1 << (max(lengths) + args.max_new_tokens).bit_length()          # power of two above the need
    results = []
    for quant in quants:
        bundle = get_bundle(args.smollm2, quant, ctx)
        print(f"benchmarking {bundle} ...", file=sys.stderr)
        results.append(bench(bundle, lengths, args.max_new_tokens, args.reps, args.qemu))
    Console(width=160).print(table(results, lengths))
    out = args.json_out or HERE / "results" / f"runner_bench{'-smollm2' if args.smollm2 else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from edgeslm.api import toolchain_versions
    from edgeslm.farm.local import LocalDevice
    doc = {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "settings": vars(args) | {
        "json_out": str(out), "prompt_lengths": lengths, "quants": quants}, "host": LocalDevice().fingerprint(),
        "toolchain": toolchain_versions(), "results": results}
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"results: {out}")
    slower = [r for r in results for n in lengths
              if med(r["by_prompt_length"][n]["native"]["decode_tokens_per_s"])
              < med(r["by_prompt_length"][n]["python"]["decode_tokens_per_s"])]
    if slower:
        print("note: the native runner decoded slower than the Python runtime in "
              f"{len(slower)} case(s) (see the table)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
