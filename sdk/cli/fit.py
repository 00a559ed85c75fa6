"""edgeslm fit CKPT --target T --max-memory SIZE [--min-decode-tps X] [--max-quality-loss KL] [--context N]
[--device ID] [--farm farm.toml] [--backends B,..] [--recipes R,..] [--kv-caches D,..] [--work DIR] [--dry-run]
-o OUT [--json]

Search backend x recipe for the best bundle that fits a device budget (edgeslm.fit.search): estimate the
memory of every candidate, skip those over the budget without exporting them, export and measure the rest
on a device of the target, write the best one with fit.json + fit.md to OUT. Exit 2 with the closest
candidate when nothing meets the bounds (OUT untouched).
"""
from __future__ import annotations

from edgeslm.cli.common import STDOUT, add_output_flags, print_json

RULE_HELP = ("The best bundle is the one with the highest decode tok/s among the candidates meeting every bound "
             "(on a microcontroller: the fewest instructions per token); ties go to the smaller artifact.")


def _list(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def add_arguments(parser) -> None:
    from edgeslm.targets import TARGETS
    parser.description = (parser.description or "") + ". " + RULE_HELP
    parser.add_argument("checkpoint", help="HF checkpoint dir, HF cache dir (models--org--name) or .gguf file")
    parser.add_argument("--target", "-t", required=True, help=f"one of: {', '.join(sorted(TARGETS))}")
    parser.add_argument("--max-memory", required=True, metavar="SIZE",
                        help="memory budget of the device, e.g. 512MB, 1.5GB, 256KB (powers of 1024): peak RSS "
                             "on local/ssh devices, guest heap + estimated code/mapped weights under qemu-user, "
                             "static RAM on a microcontroller")
    parser.add_argument("--min-decode-tps", type=float, default=None, metavar="X",
                        help="slowest acceptable decode speed in tokens/s (CPU targets)")
    parser.add_argument("--max-quality-loss", type=float, default=None, metavar="KL",
                        help="largest acceptable mean KL(float || bundle) per token, in nats, from export's "
                             "teacher-forced accuracy check")
    parser.add_argument("--context", type=int, default=None, metavar="N",
                        help="context length of the bundles (default: min(model, 2048)); the KV cache grows with it")
    parser.add_argument("--device", "-d", default=None, metavar="ID",
                        help="device to measure on: an id of --farm, or a built-in driver spec (local, "
                             "qemu-aarch64:linux-arm64, qemu-cortex-m:cortex-m4); default: the target's own")
    parser.add_argument("--farm", default=None, help="farm.toml holding the device (see `edgeslm profile --farm`)")
    parser.add_argument("--backends", default=None, help="comma-separated subset of the target's backends")
    parser.add_argument("--recipes", default=None, help="comma-separated recipes (names or .json files); default all")
    parser.add_argument("--kv-caches", default=None, metavar="D,..",
                        help="ExecuTorch: try each candidate with these KV-cache dtypes (float16, float32, int8; "
                             "default: the backend's own, float16 for int4/int8)")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="folder for the candidate bundles (default <cache>/fit/<key>); a matching bundle "
                             "there is reused, so a re-run with other bounds does not export again")
    parser.add_argument("--prompt-length", type=int, default=32, help="prompt tokens of the measurement")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="decoded tokens of the measurement")
    parser.add_argument("--reps", type=int, default=3, help="measured repetitions per candidate")
    parser.add_argument("--threads", type=int, default=0, help="runner threads (0: the runtime's default)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per runner invocation")
    parser.add_argument("--dry-run", action="store_true", help="only list candidates and memory estimates")
    parser.add_argument("-o", "--out", required=True, help="folder to write the best bundle (+ fit.json, fit.md) to")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    add_output_flags(parser)


def run(args) -> int:
    from edgeslm.fit import NothingFits, Settings, fit
    from edgeslm.fit.report import rich_table

    settings = Settings(prompt_length=args.prompt_length, max_new_tokens=args.max_new_tokens, reps=args.reps,
                        threads=args.threads, timeout_s=args.timeout)
    try:
        report = fit(args.checkpoint, target=args.target, out=args.out, max_memory=args.max_memory,
                     min_decode_tps=args.min_decode_tps, max_quality_loss=args.max_quality_loss,
                     context=args.context, device=args.device, farm=args.farm, backends=_list(args.backends),
                     recipes=_list(args.recipes), kv_caches=_list(args.kv_caches), work=args.work,
                     settings=settings, force=args.force, dry_run=args.dry_run,
                     progress=not (args.quiet or args.json))
    except NothingFits as err:
        if args.json:
            print_json(dict(err.report, error=str(err)))
        else:
            STDOUT.print(rich_table(err.report))
        raise
    if args.json:
        print_json(report)
        return 0
    STDOUT.print(rich_table(report))
    if report.get("best"):
        STDOUT.print(f"best: {report['best']} -> {report['out']} (table: fit.md, fit.json there)",
                     highlight=False, soft_wrap=True)
    return 0
