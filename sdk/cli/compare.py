"""edgeslm compare RUN_A RUN_B [--store DB | --farm farm.toml] [--json]

Matches the same jobs (bundle, device, prompt length, threads) in two runs and flags changes in the bad
direction larger than Z=3 times the measured noise (Welch standard error of the raw samples), and jobs
that went from ok to wrong/error. Exit 0: no regression, 1: regressions (listed on stderr in red).
"""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from edgeslm.cli.common import STDOUT, add_output_flags, print_json
from edgeslm.cli.report import add_store_flags, open_store


def add_arguments(parser) -> None:
    parser.add_argument("run_a", help="baseline run id")
    parser.add_argument("run_b", help="candidate run id")
    add_store_flags(parser)
    add_output_flags(parser, quiet=False)


def _fmt(d) -> str:
    if not d:
        return "-"
    noise = "n/a" if d["noise"] is None else f"{d['noise']:.3g}"
    return f"{d['mean_a']:.4g} -> {d['mean_b']:.4g} (noise {noise})"


def run(args) -> int:
    from edgeslm.progress import STDERR
    from edgeslm.report.compare import compare
    store = open_store(args)
    store.run(args.run_a), store.run(args.run_b)           # unknown ids: one-line error
    doc = compare(store, args.run_a, args.run_b)
    if args.json:
        print_json(doc)
    else:
        table = Table(title=f"edgeslm compare {args.run_a} -> {args.run_b} ({doc['matched']} matched jobs)")
        for col in ("device", "prompt", "threads", "status", "decode tok/s", "TTFT ms", "verdict"):
            table.add_column(col)
        for i in doc["items"]:
            table.add_row(escape(str(i["device"])), str(i["prompt_length"]), str(i["threads"]),
                          f"{i['status_a']} -> {i['status_b']}", _fmt(i["metrics"].get("decode_tokens_per_s")),
                          _fmt(i["metrics"].get("ttft_ms")),
                          "[bold red]REGRESSION[/]" if i["regressions"] else "[green]within noise[/]")
        STDOUT.print(table)
    for i in doc["items"]:
        for why in i["regressions"]:
            STDERR.print(f"[bold red]REGRESSION[/] {escape(str(i['device']))} p{i['prompt_length']} "
                         f"t{i['threads']}: {escape(why)}", soft_wrap=True, highlight=False)
    return 1 if doc["regressions"] else 0
