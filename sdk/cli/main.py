"""`edgeslm VERB ...`: one table of verbs; each verb module has add_arguments(parser) and run(args) -> int.

User errors (EdgeSLMError) print one line on stderr and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from edgeslm import __version__
from edgeslm.errors import EdgeSLMError

# verb -> (module under edgeslm.cli, one-line help)
VERBS = {
    "export": ("export", "export a checkpoint into a bundle for a backend and target"),
    "run": ("run", "generate text from a bundle on this host"),
    "info": ("info", "show a bundle's manifest"),
    "targets": ("targets", "list device profiles"),
    "eval": ("evaluate", "perplexity and agreement of a bundle vs its float model on a text file"),
    "quickstart": ("quickstart", "write the quickstart checkpoint (SmolLM2-135M-Instruct) as an HF directory"),
    "profile": ("profile", "measure a bundle on devices (local, qemu-aarch64) with the native runner"),
    "report": ("report", "render a farm run from the results store (html with plots, md, json, csv)"),
    "compare": ("compare", "compare two farm runs: regressions beyond the measured noise"),
    "fit": ("fit", "the best bundle within a device budget: backend x recipe searched, measured on a device"),
    "build-runner": ("build_runner", "build (or reuse) the native runner folder for a target"),
    "package": ("package", "write an app-side package (--ios DIR: Swift package) with the bundle as a resource"),
    "tokenize": ("tokenize", "print the token ids of a text (Python tokenizer, or the C++ one with --native)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeslm", description="Export small language models to edge devices.")
    parser.add_argument("--version", action="version", version=f"edgeslm {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, (module, help_text) in VERBS.items():
        verb_parser = sub.add_parser(verb, help=help_text, description=help_text)
        mod = importlib.import_module(f"edgeslm.cli.{module}")
        mod.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=mod.run)
    return parser


def quiet_third_party() -> None:
    """Keep the terminal for edgeslm's own output: torch/torchao/executorch chatter that users cannot act on."""
    import logging
    import warnings
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message="Mutation on a buffer")   # the KV cache, by design
    warnings.filterwarnings("ignore", message="This API is experimental")
    for name in ("torchao", "torch.utils._pytree", "torch._export", "torch.export", "coremltools"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    quiet_third_party()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except EdgeSLMError as err:
        print(f"edgeslm {args.verb}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"edgeslm {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
