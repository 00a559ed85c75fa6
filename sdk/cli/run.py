"""edgeslm run BUNDLE --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T --top-p P --seed S] [--json]"""
from __future__ import annotations

import sys

from edgeslm.cli.common import print_json


def add_arguments(parser) -> None:
    parser.add_argument("bundle")
    parser.add_argument("--prompt", "-p", required=True)
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    parser.add_argument("--max-new-tokens", "-n", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=None, help="sample; greedy when omitted")
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print prompt_tokens, tokens, text and stats as JSON")


def run(args) -> int:
    from edgeslm import api

    def stream(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = api.run(args.bundle, args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                     top_p=args.top_p, seed=args.seed, chat=args.chat, on_text=None if args.json else stream)
    if args.json:
        out = result.to_dict()
        print_json({k: out[k] for k in ("prompt_tokens", "tokens", "text", "stop_reason", "stats")})
    else:
        s = result.stats
        sys.stdout.write("\n")
        print(f"[{s.prompt_tokens} prompt tokens, {s.generated_tokens} generated, TTFT {s.ttft_ms:.1f} ms, "
              f"decode {s.decode_tokens_per_s:.1f} tok/s, peak RSS {s.peak_rss_bytes / 2**20:.0f} MB]",
              file=sys.stderr)
    return 0
