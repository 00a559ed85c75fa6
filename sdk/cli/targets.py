"""edgeslm targets [--json]"""
from __future__ import annotations

from rich.table import Table

from edgeslm.cli.common import STDOUT, human_bytes, print_json


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    from edgeslm import api
    rows = api.targets()
    if args.json:
        print_json(rows)
        return 0
    table = Table(title="edgeslm targets")
    for col in ("name", "triple", "backends (available)", "memory budget", "emulated here by", "description"):
        table.add_column(col)
    for t in rows:
        table.add_row(t["name"], t["triple"], ", ".join(t["available_backends"]) or "-",
                      human_bytes(t["memory_bytes"]) if t["memory_bytes"] else "-",
                      t["emulation"], t["description"])
    STDOUT.print(table)
    return 0
