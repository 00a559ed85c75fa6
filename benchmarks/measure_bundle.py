"""Measure one bundle in this (fresh) process: TTFT per prompt length, decode tok/s over reps, peak RSS.

Usage: python benchmarks/measure_bundle.py BUNDLE --prompt-lengths 16,128 --new-tokens 32 --reps 5
Prints one JSON object. Prompts are real text tokenized by the bundle's tokenizer, cut to each length.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

from edgeslm.api import open_session
from edgeslm.bundle import load_bundle
from edgeslm.generate import generate, peak_rss_bytes
from edgeslm.text import Tokenizer

TEXT = ("Edge devices run small language models close to their users: phones, boards and microcontrollers. "
        "Latency, memory and accuracy decide what ships. ") * 40


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--prompt-lengths", default="16,128")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    bundle = load_bundle(args.bundle)
    ids = Tokenizer.from_dir(bundle.path).encode(TEXT)
    session = open_session(bundle)
    argmax = lambda logits: int(logits.argmax())  # noqa: E731  greedy; never stop early on EOS
    out = {"bundle": str(bundle.path), "model_load_ms": session.load_ms, "ttft_ms": {}, "prefill_tokens_per_s": {}}
    decode_rates = []
    for length in (int(x) for x in args.prompt_lengths.split(",")):
        ttfts = []
        for _ in range(args.reps):
            r = generate(session, ids[:length], max_new_tokens=args.new_tokens, max_seq_len=bundle.max_seq_len,
                         sample=argmax, eos_ids=set())
            ttfts.append(r.stats.ttft_ms)
            decode_rates.append(r.stats.decode_tokens_per_s)
        out["ttft_ms"][length] = statistics.median(ttfts)
        out["prefill_tokens_per_s"][length] = length / (statistics.median(ttfts) / 1e3)
    out["decode_tokens_per_s"] = {"mean": statistics.mean(decode_rates), "std": statistics.pstdev(decode_rates),
                                  "samples": decode_rates}
    out["peak_rss_bytes"] = peak_rss_bytes()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
