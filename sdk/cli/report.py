"""edgeslm report RUN_ID [--format html|md|json|csv] [-o FILE] [--store DB | --farm farm.toml]

Renders one farm run from the results store. HTML is one self-contained file (inline SVG plots).
Without -o the text formats print to stdout; html defaults to report-<RUN_ID>.html.
"""
from __future__ import annotations

import sys
from pathlib import Path

from edgeslm.cli.common import STDOUT


def add_store_flags(parser) -> None:
    parser.add_argument("--store", default=None, help="results store (default: the farm file's [store] path, "
                                                      "$EDGESLM_STORE, or <cache>/farm/results.sqlite)")
    parser.add_argument("--farm", default=None, help="farm.toml whose [store] path to read")


def open_store(args):
    from edgeslm.farm.store import default_store_path, open_store as open_any
    if args.store:
        return open_any(args.store)
    if args.farm:
        from edgeslm.farm.farmfile import load_farm
        farm = load_farm(args.farm)
        if farm.store:
            return open_any(farm.store)
    return open_any(default_store_path())


def add_arguments(parser) -> None:
    from edgeslm.report import FORMATS
    parser.add_argument("run", help="run id (printed by edgeslm profile --farm)")
    parser.add_argument("--format", "-f", choices=list(FORMATS), default="html")
    parser.add_argument("--out", "-o", default=None, help="output file")
    add_store_flags(parser)


def run(args) -> int:
    from edgeslm.report import render, write_report
    store = open_store(args)
    if args.out is None and args.format != "html":
        sys.stdout.write(render(store, args.run, args.format))
        return 0
    out = write_report(store, args.run, args.format, args.out or Path(f"report-{args.run}.html"))
    STDOUT.print(f"report: {out}", highlight=False, soft_wrap=True)
    return 0
