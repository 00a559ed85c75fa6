"""edgeslm build-runner --target TARGET [--force] [--json]: build (or reuse) the native runner folder."""
from __future__ import annotations

import json

from edgeslm.cli.common import add_output_flags, human_bytes, print_json, print_table


def add_arguments(parser) -> None:
    from edgeslm.targets import TARGETS
    parser.add_argument("--target", default="host", help=f"one of: {', '.join(sorted(TARGETS))} (default host)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a cached build exists")
    add_output_flags(parser)


def run(args) -> int:
    from edgeslm import api
    deploy = api.build_runner(args.target, force=args.force, progress=not (args.quiet or args.json))
    info_file = deploy / "build-info.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    files = sorted(p.relative_to(deploy).as_posix() for p in deploy.rglob("*") if p.is_file())
    size = sum((deploy / f).stat().st_size for f in files)
    if args.json:
        print_json({"path": str(deploy), "files": files, "bytes": size, **info})
        return 0
    print_table(f"runner for {args.target}", [
        ("folder", str(deploy)),
        ("toolchain", f"{info.get('toolchain', '?')}: {info.get('compiler', '?')}"),
        ("executorch", str(info.get("executorch", "?"))),
        ("cache key", str(info.get("key", "?"))),
        ("build time", f"{info['build_s']} s" if "build_s" in info else "?"),
        ("files", f"{len(files)} ({human_bytes(size)}): edgeslm-runner, libedgeslm.so, "
                  f"{sum(f.startswith('lib/') for f in files)} libraries in lib/"),
    ])
    return 0
