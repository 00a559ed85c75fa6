"""`edgeslm package BUNDLE --ios DIR`: a Swift package (ios/ template) with the bundle as a resource.

Steps: load the bundle (every sha256 verified) -> refuse what no iOS engine runs (backend, target OS) ->
stage DIR: copy the template (Package.swift, Sources/, Tests/, README.md) -> copy the bundle into
Sources/EdgeSLMBundle/Resources/model -> copy runtime/include/edgeslm.h next to the C module map (the
ExecuTorch engine) -> re-verify the copied bundle's hashes -> write edgeslm-package.json -> rename into
place (nothing half-written on error).
"""
from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from edgeslm.bundle import load_bundle
from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import staged_directory, write_text_atomic

RESOURCE_DIR = "Sources/EdgeSLMBundle/Resources/model"
ENGINES = {"coreml": "Core ML engine (MLModel + MLState)",
           "executorch": "ExecuTorch engine over the C API (build with EDGESLM_EXECUTORCH=1 and libedgeslm for iOS)"}
APPLE_OS = ("ios", "macos")
SKIP = {"__init__.py", "__pycache__"}


def _template() -> Path:
    return Path(str(resources.files("edgeslm.ios")))


def _header() -> Path:
    return Path(str(resources.files("edgeslm.runtime"))) / "include" / "edgeslm.h"


def package_ios(bundle_path: str | Path, out_dir: str | Path, *, force: bool = False) -> dict:
    from edgeslm.targets import TARGETS

    bundle = load_bundle(bundle_path)
    out = Path(out_dir)
    if bundle.backend not in ENGINES:
        raise EdgeSLMError(f"backend '{bundle.backend}' has no iOS engine (the Swift package runs "
                           f"{', '.join(ENGINES)} bundles)", path=bundle.path,
                           fix="export with --backend coreml --target ios-arm64")
    target = TARGETS.get(bundle.target_name)
    if target is None or target.os not in APPLE_OS:
        raise EdgeSLMError(f"bundle was exported for target '{bundle.target_name}', not an Apple device",
                           path=bundle.path, fix="re-export with --target ios-arm64 (or macos-arm64)")
    if out.exists() and not force:
        raise EdgeSLMError("output directory exists", path=out, fix="choose another DIR or pass --force")

    with staged_directory(out, force=force) as stage:
        template = _template()
        shutil.copytree(template, stage, dirs_exist_ok=True, ignore=lambda d, names: [n for n in names if n in SKIP])
        resource = stage / RESOURCE_DIR
        shutil.rmtree(resource)
        shutil.copytree(bundle.path, resource)
        shutil.copyfile(_header(), stage / "Sources/CEdgeSLM/edgeslm.h")
        modulemap = stage / "Sources/CEdgeSLM/module.modulemap"
        text = modulemap.read_text().replace('header "../../../runtime/include/edgeslm.h"', 'header "edgeslm.h"')
        write_text_atomic(modulemap, text)
        copied = load_bundle(resource)                    # the resource is byte-identical to the bundle
        report = {
            "schema": "edgeslm.package.ios/1",
            "bundle": str(bundle.path.resolve()),
            "resource": RESOURCE_DIR,
            "backend": bundle.backend,
            "engine": ENGINES[bundle.backend],
            "target": bundle.target_name,
            "artifact": bundle.manifest["artifact"],
            "files_verified": len(copied.manifest["files"]),
            "bundle_bytes": sum(f["bytes"] for f in copied.manifest["files"].values()),
            "commands": {"build": ["swift", "build"], "test": ["swift", "test"],
                         "app": ["xcodebuild", "-scheme", "EdgeSLMSample", "-destination",
                                 "generic/platform=iOS", "build"]},
        }
        write_text_atomic(stage / "edgeslm-package.json", json.dumps(report, indent=2) + "\n")
    return dict(report, path=str(out))
