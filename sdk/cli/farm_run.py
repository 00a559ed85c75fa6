"""`edgeslm profile --farm F` / `--resume RUN_ID`: the matrix run behind the profile verb (sdk/cli/profile.py).

Steps: farm file (default $EDGESLM_FARM or ./farm.toml) -> store (--store, else the farm's [store] path,
else $EDGESLM_STORE / <cache>/farm/results.sqlite) -> run_matrix (or run_matrix_dask with --dask) -> table (or --json: run_id + results)
-> one loud line per wrong/error result and per unhealthy device -> exit 0 ok, 3 wrong, 4 error/incomplete.
"""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from edgeslm.cli.common import STDOUT, human_bytes, print_json
from edgeslm.errors import EdgeSLMError

STYLE = {"ok": "bold green", "wrong": "bold red", "error": "red"}


def open_store(args, farm=None):
    from edgeslm.farm.store import default_store_path, open_store as open_any
    return open_any(args.store or (farm.store if farm and farm.store else None) or default_store_path())


def _table(doc: dict) -> Table:
    table = Table(title=f"edgeslm farm run {doc['run_id']} ({doc['status']})")
    for col in ("device", "model/quant", "prompt", "threads", "status", "TTFT ms", "decode tok/s", "memory"):
        table.add_column(col, justify="left" if col in ("device", "model/quant", "status") else "right")
    for r in doc["results"]:
        moved = r["device"] != r["requested_device"]
        dev = escape(f"{r['requested_device']} -> {r['device']}" if moved else r["device"])
        if r.get("latency_kind") not in (None, "measured"):
            dev += " [yellow](emulated)[/]"
        ttft = (r.get("ttft_ms") or {}).get(str(r["prompt_length"]))
        decode = r.get("decode_tokens_per_s")
        table.add_row(dev, escape(f"{r.get('model')}/{r['quant']}"), str(r["prompt_length"]),
                      str(r["threads"]), f"[{STYLE.get(r['status'], 'red')}]{r['status'].upper()}[/]",
                      "-" if not ttft else f"{ttft['median']:.1f}",
                      "-" if not decode else f"{decode['mean']:.1f} ± {decode['std']:.1f}",
                      "-" if r.get("memory_bytes") is None else human_bytes(r["memory_bytes"]))
    return table


def run_farm(args, lengths, runner_dirs, threads) -> int:
    from edgeslm.farm.farmfile import load_farm
    from edgeslm.farm.matrix import Settings, exit_code, run_matrix
    from edgeslm.progress import STDERR

    if args.resume and args.bundle:
        raise EdgeSLMError("--resume takes no bundle (the run's spec names them)", fix=f"edgeslm profile "
                           f"--farm FILE --resume {args.resume}")
    farm = load_farm(args.farm)
    store = open_store(args, farm)
    settings = Settings(max_new_tokens=args.max_new_tokens, reps=args.reps, warmup=args.warmup,
                        timeout_s=args.timeout, retries=args.retries)
    if min(settings.max_new_tokens, settings.reps) < 1 or settings.warmup < 0 or settings.timeout_s <= 0 \
            or settings.retries < 0:
        raise EdgeSLMError("need --max-new-tokens >= 1, --reps >= 1, --warmup >= 0, --timeout > 0, --retries >= 0")
    if getattr(args, "dask", None):
        from distributed import Client
        from edgeslm.farm.scaleout import run_matrix_dask
        with Client(args.dask, timeout=30) as client:
            doc = run_matrix_dask(client, farm, args.bundle, store, device_ids=args.device, prompt_lengths=lengths,
                                  threads=threads, settings=settings, resume=args.resume, runner_dirs=runner_dirs)
    else:
        doc = run_matrix(farm, args.bundle, store, device_ids=args.device, prompt_lengths=lengths, threads=threads,
                         settings=settings, resume=args.resume, runner_dirs=runner_dirs,
                         progress=not (args.quiet or args.json))
    if args.json:
        print_json(doc)
    else:
        STDOUT.print(_table(doc))
        STDOUT.print(f"run_id: {doc['run_id']}  store: {doc['store']}", highlight=False, soft_wrap=True)
    for r in doc["results"]:
        if r["status"] != "ok":
            STDERR.print(f"[red]{r['status'].upper()}[/] {escape(r['device'])} p{r['prompt_length']} "
                         f"t{r['threads']}: {escape(str(r.get('error') or r.get('accuracy', {}).get('got')))}",
                         soft_wrap=True, highlight=False)
    for e in doc["events"]:
        if e["event"] == "unhealthy":
            STDERR.print(f"[red]UNHEALTHY[/] {escape(e['device'])}: {escape(e['error'])}; {e['jobs']} job(s) "
                         f"moved to {', '.join(e['moved_to']) or 'no device (pending)'}", soft_wrap=True,
                         highlight=False)
    if doc["pending"]:
        STDERR.print(f"[red]INCOMPLETE[/] {len(doc['pending'])} job(s) pending: edgeslm profile --farm "
                     f"{farm.path} --resume {doc['run_id']}", soft_wrap=True, highlight=False)
    return exit_code(doc)
