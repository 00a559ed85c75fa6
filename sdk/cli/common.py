"""Helpers shared by verbs: output flags and printing JSON/tables."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

# Pipes and CI logs get a wide table instead of rich's 80-column default.
STDOUT = Console(width=None if sys.stdout.isatty() else 160)


def add_output_flags(parser, *, json_flag: bool = True, quiet: bool = True) -> None:
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    if quiet:
        parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, value)
    STDOUT.print(table)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"
