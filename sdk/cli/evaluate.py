"""edgeslm eval BUNDLE --text FILE [--reference CKPT] [--max-tokens N] [--json]"""
from __future__ import annotations

from edgeslm.cli.common import print_json, print_table


def add_arguments(parser) -> None:
    parser.add_argument("bundle")
    parser.add_argument("--text", required=True, help="UTF-8 text file")
    parser.add_argument("--reference", default=None, help="float checkpoint (default: the bundle's source)")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from edgeslm.evaluate import evaluate
    r = evaluate(args.bundle, args.text, reference=args.reference, max_tokens=args.max_tokens,
                 progress=not args.json)
    if args.json:
        print_json(r)
        return 0
    print_table(f"eval {r['bundle']} on {r['text']}", [
        ("tokens scored", str(r["tokens"])),
        (f"perplexity bundle ({r['quant']})", f"{r['perplexity_bundle']:.3f}"),
        ("perplexity float", f"{r['perplexity_float']:.3f}"),
        ("top-1 agreement", f"{r['top1_agreement']:.4f}"),
        ("KL(float || bundle)", f"{r['kl_mean']:.2e}"),
    ])
    return 0
