"""Tokenizer encode throughput: the runtime's C++ tokenizer (libedgeslm.so) vs the `tokenizers` library
(Rust) on the same corpus (tests/tokenizer_corpus.py, 10,000 lines, ~0.8 MB) and the same tokenizer.json
files. Prints MB/s of UTF-8 input per tokenizer and the ratio C++ / tokenizers; writes JSON under
benchmarks/results/.

Single thread on both sides: `tokenizers` encode() of one sequence runs on the calling thread
(RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false are set anyway); the C++ tokenizer has no threads.
Two shapes: "lines" = one encode call per corpus line (both pay a Python call per line: ctypes vs
PyO3), "chunks" = the corpus joined into ~64 KB texts (the tokenizers' own speed dominates). Each is
run once to warm the caches (both keep a word -> ids cache), then timed `--reps` times; the median is
reported. Ids are checked equal before timing.

  python benchmarks/tokenizer_bench.py [--reps 3] [--tokenizers smollm2,llama3,qwen2,llama2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn, reps: int) -> float:
    fn()   # warm-up
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> int:
    from rich.console import Console
    from rich.table import Table
    from tokenizer_corpus import corpus, make_tokenizers, reference_text
    from tokenizers import Tokenizer

    from edgeslm.native.build import build_runner
    from edgeslm.native.capi import NativeTokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokenizers", default="smollm2,llama3,qwen2,llama2")
    args = ap.parse_args()

    lines = corpus()
    texts = [reference_text(ln) for ln in lines]
    raw = [t.encode("utf-8") for t in texts]   # both sides see the same (valid) UTF-8
    mb = sum(len(b) for b in raw) / 1e6
    joined = "\n".join(texts)
    chunks = [joined[i:i + 65536] for i in range(0, len(joined), 65536)]
    raw_chunks = [c.encode("utf-8") for c in chunks]

    deploy = build_runner("host", progress=False)
    files = make_tokenizers(Path(tempfile.mkdtemp(prefix="tokbench-")), lines)
    files["smollm2"] = ROOT / ".cache" / "quickstart-smollm2" / "tokenizer.json"
    rows = []
    for name in args.tokenizers.split(","):
        path = files[name]
        if not path.is_file():
            print(f"skip {name}: {path} missing (run `edgeslm quickstart` for smollm2)")
            continue
        ref = Tokenizer.from_file(str(path))
        with NativeTokenizer(path, deploy) as tok:
            for shape, ref_in, cpp_in in (("lines", texts, raw), ("chunks", chunks, raw_chunks)):
                assert [tok.encode(b) for b in cpp_in[:500]] == [ref.encode(t, add_special_tokens=False).ids
                                                                 for t in ref_in[:500]], name
                t_ref = timed(lambda: [ref.encode(t, add_special_tokens=False) for t in ref_in], args.reps)
                t_cpp = timed(lambda: [tok.encode(b) for b in cpp_in], args.reps)
                rows.append({"tokenizer": name, "shape": shape, "mb": round(mb, 3),
                             "tokenizers_mb_s": round(mb / t_ref, 2), "cpp_mb_s": round(mb / t_cpp, 2),
                             "ratio_cpp_over_tokenizers": round(t_ref / t_cpp, 3)})

    table = Table(title=f"tokenizer encode throughput, {mb:.2f} MB corpus, single thread (median of {args.reps})")
    for col in ("tokenizer", "shape", "tokenizers MB/s", "C++ MB/s", "C++ / tokenizers"):
        table.add_column(col, justify="right" if "MB" in col or "/" in col else "left")
    for r in rows:
        table.add_row(r["tokenizer"], r["shape"], f"{r['tokenizers_mb_s']:.2f}", f"{r['cpp_mb_s']:.2f}",
                      f"{r['ratio_cpp_over_tokenizers']:.2f}x")
    Console().print(table)
    import tokenizers
    out = HERE / "results" / "tokenizer_bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "reps": args.reps, "threads": 1, "tokenizers": tokenizers.__version__,
                               "machine": platform.processor() or platform.machine(),
                               "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
