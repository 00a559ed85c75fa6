"""`make demo`: the real SmolLM2-135M-Instruct, exported for this host, answers a chat prompt.

Steps: quickstart checkpoint (cached) -> ExecuTorch bundle with edgeslm's kernels (cached) ->
`edgeslm run --chat --json` in a fresh process (so peak RSS is the runtime's, not the exporter's) -> summary
table. Exit 1 if no "Paris".
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeslm import api
from edgeslm.bundle import load_bundle
from edgeslm.errors import EdgeSLMError

PROMPT = "What is the capital of France? Answer in one sentence."   # see tests/test_smollm2_slow.py


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=Path(".cache"))
    parser.add_argument("--quant", default="int8")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)

    ckpt = api.quickstart(args.cache / "quickstart-smollm2")
    out = args.cache / "demo" / f"smollm2-executorch-host-{args.quant}"
    try:
        bundle = load_bundle(out)
        console.print(f"[dim]reusing bundle {out} (delete it to export again)[/dim]")
    except EdgeSLMError:
        bundle = api.export(ckpt, out=out, backend="executorch", target="host", quant=args.quant, force=True)

    console.print(f"[bold]> {PROMPT}[/bold]")
    proc = subprocess.run([sys.executable, "-m", "edgeslm.cli.main", "run", str(out), "--chat", "--prompt", PROMPT,
                           "--max-new-tokens", "32", "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        console.print(proc.stderr.strip())
        return proc.returncode
    result = json.loads(proc.stdout)
    console.print(result["text"].strip())
    stats, m = result["stats"], bundle.manifest

    table = Table(title="SmolLM2-135M-Instruct on this host (ExecuTorch + edgeslm kernels, Python runtime)")
    for col in ("recipe", "export time", "bundle size", "TTFT", "decode", "peak RSS", "top-1 vs float"):
        table.add_column(col)
    table.add_row(m["quant"]["name"], f"{m['export_seconds']:.0f} s", f"{m['memory']['artifact_bytes'] / 1e6:.1f} MB",
                  f"{stats['ttft_ms']:.1f} ms ({stats['prompt_tokens']} tok)",
                  f"{stats['decode_tokens_per_s']:.1f} tok/s", f"{stats['peak_rss_bytes'] / 2**20:.0f} MB",
                  f"{m['accuracy']['top1_agreement']:.3f}")
    console.print(table)
    if "paris" not in result["text"].lower():
        console.print("[red]the answer does not mention Paris[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
