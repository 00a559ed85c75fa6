"""edgeslm package BUNDLE --ios DIR: a ready app-side package with the bundle as a resource.
One flag per platform in edgeslm.package.PLATFORMS (ios, android)."""
from __future__ import annotations

from edgeslm.cli.common import add_output_flags, human_bytes, print_json, print_table
from edgeslm.errors import EdgeSLMError


def add_arguments(parser) -> None:
    from edgeslm.package import PLATFORMS
    parser.add_argument("bundle", help="bundle directory written by 'edgeslm export'")
    for name in PLATFORMS:
        parser.add_argument(f"--{name}", metavar="DIR", help=f"write a {name} package to DIR")
    parser.add_argument("--force", action="store_true", help="replace DIR if it exists")
    add_output_flags(parser, quiet=False)


def run(args) -> int:
    from edgeslm.package import PLATFORMS
    chosen = [(name, getattr(args, name)) for name in PLATFORMS if getattr(args, name)]
    if not chosen:
        raise EdgeSLMError("no platform given", fix=f"pass one of: {', '.join('--' + p + ' DIR' for p in PLATFORMS)}")
    for name, out in chosen:
        report = PLATFORMS[name](args.bundle, out, force=args.force)
        if args.json:
            print_json(report)
            continue
        print_table(f"{name} package {report['path']}", [
            ("bundle", f"{report['bundle']} ({report['backend']} / {report['target']})"),
            ("resource", f"{report['resource']} ({report['files_verified']} files verified, "
                         f"{human_bytes(report['bundle_bytes'])})"),
            ("engine", report["engine"]),
            *([("note", report["note"])] if report.get("note") else []),
            *[(k, " ".join(v)) for k, v in report["commands"].items()],
        ])
    return 0
