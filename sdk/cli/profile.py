"""edgeslm profile BUNDLE --device local --device qemu-aarch64[:TARGET] [--prompt-lengths 16,128]
[--max-new-tokens 64] [--reps 5] [--warmup 1] [--threads N] [--timeout S] [--out FILE] [--json]

edgeslm profile BUNDLE... --farm farm.toml [--device ID]... [--threads 1,2] [--retries N] [--store DB]
edgeslm profile --farm farm.toml --resume RUN_ID
  a matrix run over the farm's devices (bundles x devices x prompt lengths x threads), every result
  committed to the results store; prints the run_id (with --json: the run_id and every result).

Builds or reuses the runner for each device's target, pushes it and the bundle, runs it, checks the
device's greedy tokens against the bundle's reference, prints a table and writes the JSON document.
Exit codes: 0 all ok, 3 a device computed wrong tokens, 4 a device run failed (crash, hang), 2 bad input.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeslm.cli.common import STDOUT, add_output_flags, human_bytes, print_json
from edgeslm.errors import EdgeSLMError

STDERR = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
STYLE = {"ok": "bold green", "wrong": "bold red", "error": "red"}


def add_arguments(parser) -> None:
    from edgeslm.farm import DRIVERS
    parser.add_argument("bundle", nargs="*", help="bundle folder(s); several only with --farm")
    parser.add_argument("--device", "-d", action="append", default=None, metavar="DEVICE",
                        help=f"repeatable; one of: {', '.join(sorted(DRIVERS))}, optionally DRIVER:TARGET "
                             "(e.g. qemu-aarch64:android-arm64); default local")
    parser.add_argument("--prompt-lengths", default="16,128", help="comma-separated prompt lengths in tokens")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5, help="measured repetitions per prompt length")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured repetitions before them")
    parser.add_argument("--threads", default="0", help="runner threads (0: the runtime's default); with --farm a "
                                                       "comma-separated list, e.g. 1,2")
    parser.add_argument("--farm", default=None, help="farm.toml: run the matrix on its devices (--device picks "
                                                     "ids); default $EDGESLM_FARM or ./farm.toml with --resume")
    parser.add_argument("--resume", default=None, metavar="RUN_ID", help="finish an interrupted farm run")
    parser.add_argument("--store", default=None, help="results store (default: the farm's [store] path, "
                                                      "$EDGESLM_STORE, or <cache>/farm/results.sqlite)")
    parser.add_argument("--retries", type=int, default=2, help="farm: retries per job on transport errors")
    parser.add_argument("--dask", default=None, metavar="SCHEDULER", help="farm: run the jobs on Dask workers "
                        "that declare their devices as resources (dask worker ... --resources 'device:ID=1')")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per runner invocation")
    parser.add_argument("--runner-dir", action="append", default=[], metavar="TARGET=DIR",
                        help="use a prebuilt runner folder for a target instead of building one")
    parser.add_argument("--out", "-o", default=None,
                        help="results JSON (default profiles/<bundle>-<UTC time>.json in the current dir)")
    add_output_flags(parser)


def _parse(args) -> tuple[list[int], dict[str, Path]]:
    try:
        lengths = [int(x) for x in args.prompt_lengths.split(",") if x.strip()]
    except ValueError:
        raise EdgeSLMError(f"--prompt-lengths '{args.prompt_lengths}' is not a comma-separated list of "
                           "integers", fix="e.g. --prompt-lengths 16,128") from None
    dirs = {}
    for item in args.runner_dir:
        target, sep, folder = item.partition("=")
        if not sep or not target or not folder:
            raise EdgeSLMError(f"--runner-dir '{item}' is not TARGET=DIR", fix="e.g. --runner-dir host=deploy/")
        dirs[target] = Path(folder)
    return lengths, dirs


def _ms(summary) -> str:
    return "-" if summary is None else f"{summary['median']:.1f}"


def _table(doc: dict) -> Table:
    lengths = [str(n) for n in doc["settings"]["prompt_lengths"]]
    b = doc["bundle"]
    table = Table(title=f"edgeslm profile {b['model']} ({b['backend']}/{b['quant']})")
    for col in ("device", "status", "timing", "load ms", *(f"TTFT@{n} ms" for n in lengths),
                f"prefill@{lengths[-1]} tok/s", "decode tok/s", "memory", "arena", "artifact"):
        table.add_column(col, justify="left" if col in ("device", "status", "timing") else "right")
    for r in doc["results"]:
        decode = r["decode_tokens_per_s"]
        prefill = (r["prefill_tokens_per_s"] or {}).get(lengths[-1])
        memory = "-" if r["memory_bytes"] is None else human_bytes(r["memory_bytes"]) + (
            "" if r["peak_rss_bytes"] is not None else " heap")
        table.add_row(
            escape(r["device"]), f"[{STYLE[r['status']]}]{r['status'].upper()}[/]",
            "measured" if r["latency_kind"] == "measured" else "[yellow]emulated[/]",
            _ms(r["model_load_ms"]), *(_ms((r["ttft_ms"] or {}).get(n)) for n in lengths),
            "-" if prefill is None else f"{prefill['median']:.0f}",
            "-" if decode is None else f"{decode['mean']:.1f} ± {decode['std']:.1f}",
            memory, "-" if r["planned_arena_bytes"] is None else human_bytes(r["planned_arena_bytes"]),
            human_bytes(r["artifact_bytes"]))
    return table


def _mcu_table(doc: dict) -> Table:
    """Microcontroller rows (farm/micro_profile.py): QEMU instructions, never latency; static memory vs budget."""
    table = Table(title="microcontroller (QEMU icount instructions, not latency)")
    for col in ("device", "instr/token", "prefill instr/token", "flash / budget", "RAM / budget", "stack"):
        table.add_column(col, justify="left" if col == "device" else "right")
    for r in doc["results"]:
        if not r.get("instructions_per_token"):
            continue
        prefill = r["prefill_instructions_per_token"] or {}
        table.add_row(escape(r["device"]), f"{r['instructions_per_token']['mean']:,.0f}",
                      ", ".join(f"{v:,.0f}@{n}" for n, v in prefill.items()),
                      f"{human_bytes(r['flash_bytes'])} / {human_bytes(r['flash_budget_bytes'])}",
                      f"{human_bytes(r['ram_bytes'])} / {human_bytes(r['ram_budget_bytes'])}",
                      human_bytes(r["stack_bytes"]))
    return table


def _shout(doc: dict) -> None:
    """One loud line per device that is not ok (stderr, red)."""
    for r in doc["results"]:
        acc = r["accuracy"]
        if r["status"] == "wrong":
            i = acc["first_mismatch"]
            STDERR.print(f"[bold red]WRONG[/] {escape(r['device'])}: greedy tokens differ from the bundle's "
                         f"reference at step {i}: got {acc['got']}, expected {acc['expected']}"
                         + (f" (float reference {acc['reference_greedy']})" if acc["checks_reference"] else ""),
                         soft_wrap=True, highlight=False)
        elif r["status"] == "error":
            STDERR.print(f"[red]ERROR[/] {escape(r['device'])}: {escape(str(r['error']))}", soft_wrap=True,
                         highlight=False)
    for r in doc["results"]:
        if r["status"] != "error" and r["latency_kind"] != "measured":
            memory = ("static RAM of the firmware" if r.get("instructions_per_token")
                      else "the guest heap (mallinfo2), not the emulator's RSS")
            STDERR.print(f"note: {escape(r['device'])} timings are {r['latency_kind']}; memory is {memory}",
                         highlight=False)


def _threads(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise EdgeSLMError(f"--threads '{text}' is not a comma-separated list of integers",
                           fix="e.g. --threads 1,2") from None


def run(args) -> int:
    from edgeslm import api
    from edgeslm.farm.profile import exit_code

    if args.farm or args.resume:
        from edgeslm.cli.farm_run import run_farm
        return run_farm(args, *_parse(args), _threads(args.threads))
    if len(args.bundle) != 1:
        raise EdgeSLMError("profile takes one bundle without --farm", fix="pass one BUNDLE, or use --farm FILE")
    threads = _threads(args.threads)
    if len(threads) != 1:
        raise EdgeSLMError("several --threads values need --farm", fix="pass one --threads N")
    args.bundle, args.threads = args.bundle[0], threads[0]
    lengths, runner_dirs = _parse(args)
    out = args.out or Path("profiles") / f"{Path(args.bundle).resolve().name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = api.profile(args.bundle, args.device or ["local"], prompt_lengths=lengths,
                      max_new_tokens=args.max_new_tokens, reps=args.reps, warmup=args.warmup, threads=args.threads,
                      timeout_s=args.timeout, runner_dirs=runner_dirs, out=out,
                      progress=not (args.quiet or args.json))
    if args.json:
        print_json(doc)
    else:
        STDOUT.print(_table(doc))
        if any(r.get("instructions_per_token") for r in doc["results"]):
            STDOUT.print(_mcu_table(doc))
        STDOUT.print(f"results: {doc['out']}", highlight=False, soft_wrap=True)
    _shout(doc)
    return exit_code(doc)
