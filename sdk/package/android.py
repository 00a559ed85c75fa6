"""`edgeslm package BUNDLE --android DIR`: the Android Gradle project (android/ template) with the bundle as
an asset of the library module and the native runtime for arm64-v8a.

Steps: load the bundle (every sha256 verified) -> refuse what the Android library cannot run (not arm64,
not a decoder of a libedgeslm backend) -> build (or reuse) the runtime with sdk/native/build.py for
android-arm64 -> DIR new: stage a copy of the template; DIR an edgeslm Android project: stage only the
parts we own; DIR an Android app module of the user's: the bundle into its src/main/assets/edgeslm/<name>/
only; DIR anything else: refuse -> into the stage: the bundle in
edgeslm-android/src/main/assets/edgeslm/<name>/ (hashes re-verified), libedgeslm.so + ExecuTorch libs in
src/main/jniLibs/arm64-v8a/, edgeslm.h in src/main/cpp/include/, runtime/ sources in src/main/cpp/runtime/
(the NDK build of the runtime), INTEGRATION.md and edgeslm-package.json -> rename into place.

The runtime placed in jniLibs is the android-arm64 build of build_runner: glibc, made with Debian's
aarch64-linux-gnu toolchain against the aarch64 ExecuTorch wheel (it runs on Android only as a separate
process through its own loader, like the adb farm driver does). Android's bionic linker cannot load it into
an app: a phone needs runtime/ built with the NDK (-Pedgeslm.buildRuntime=true, see INTEGRATION.md). The
report and the guide say so; nothing here pretends otherwise.
"""
from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

from edgeslm.bundle import load_bundle
from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import staged_directory, write_text_atomic

LIBRARY = "edgeslm-android"
ASSETS = f"{LIBRARY}/src/main/assets/edgeslm"
ABI = "arm64-v8a"
JNILIBS = f"{LIBRARY}/src/main/jniLibs/{ABI}"
CPP = f"{LIBRARY}/src/main/cpp"
BACKENDS = ("executorch", "tvm")                    # what libedgeslm opens
ANDROID_ARCH = "aarch64"
SKIP = {"__init__.py", "__pycache__", "build", ".gradle", ".cxx"}
RUNTIME_SKIP = {"__init__.py", "__pycache__", "micro", "tests"}   # micro: Cortex-M firmware, not the runner
STAND_IN = ("jniLibs holds the glibc android-arm64 build (stand-in: bionic cannot load it into an app); "
            "build runtime/ with the NDK for a phone: -Pedgeslm.buildRuntime=true (INTEGRATION.md)")


def _template() -> Path:
    return Path(str(resources.files("edgeslm.android")))


def _header() -> Path:
    return Path(str(resources.files("edgeslm.runtime"))) / "include" / "edgeslm.h"


def asset_name(bundle_path: Path) -> str:
    """The bundle's folder name, made a safe asset folder name (letters, digits, . _ -)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", bundle_path.resolve().name).strip(".-")
    return name or "model"


def is_android_project(path: Path) -> bool:
    gradle = path / LIBRARY / "build.gradle.kts"
    return (path / "settings.gradle.kts").is_file() and gradle.is_file() and 'namespace = "dev.edgeslm"' in gradle.read_text()


def is_app_module(path: Path) -> bool:
    """An Android Gradle module of the user's (e.g. MyApp/app): gets the bundle in its assets only."""
    return (path / "src/main/AndroidManifest.xml").is_file() and \
        any((path / f).is_file() for f in ("build.gradle.kts", "build.gradle"))


def _package_into_module(bundle, module: Path) -> dict:
    """The bundle into <module>/src/main/assets/edgeslm/<name>/ (staged, renamed in). The runtime libraries
    come with the edgeslm-android library the app depends on, so none are copied here."""
    name = asset_name(bundle.path)
    rel = f"src/main/assets/edgeslm/{name}"
    counts: dict = {}
    with staged_directory(module / rel, force=True) as folder:
        _parts(bundle, name, [], counts)[f"{ASSETS}/{name}"](folder)
    return {"schema": "edgeslm.package.android/1", "bundle": str(bundle.path.resolve()), "resource": rel,
            "asset": f"edgeslm/{name}", "backend": bundle.backend, "target": bundle.target_name, "abi": ABI,
            "mode": "module", "runtime": None, **counts, "path": str(module),
            "engine": "libedgeslm over JNI (Kotlin API dev.edgeslm.EdgeSlm / EdgeSlmModel)",
            "note": f"assets only: the app also needs the {LIBRARY} library (runtime + Kotlin API): "
                    f"'edgeslm package BUNDLE --android NEWDIR' writes it; then "
                    f"implementation(project(\":{LIBRARY}\")) and EdgeSlm.load(context, \"edgeslm/{name}\")",
            "commands": {"app": ["./gradlew", "installDebug"]}}


def _check_bundle(bundle) -> None:
    from edgeslm.targets import TARGETS

    target = TARGETS.get(bundle.target_name)
    if target is None or target.arch != ANDROID_ARCH or target.os not in ("android", "linux"):
        raise EdgeSLMError(f"bundle was exported for target '{bundle.target_name}', not an arm64 Android "
                           "device", path=bundle.path, fix="re-export with --target android-arm64")
    if bundle.backend not in BACKENDS:
        raise EdgeSLMError(f"backend '{bundle.backend}' does not run in the Android library (libedgeslm runs "
                           f"{', '.join(BACKENDS)} bundles)", path=bundle.path,
                           fix="re-export with --backend executorch --target android-arm64")
    if bundle.manifest["model"].get("kind") == "graph":
        raise EdgeSLMError("this bundle is a plain graph, not a decoder: the Android library generates text",
                           path=bundle.path, fix="package a decoder bundle (edgeslm export CKPT --target android-arm64)")


def _runtime_libraries(deploy: Path) -> list[Path]:
    """libedgeslm.so and the libraries it needs (ExecuTorch, TVM): every lib*.so of the deploy folder. The
    glibc loader and libc of the self-contained folder (ld-linux-aarch64.so.1, libc.so.6 ...) are left out:
    an app process has bionic."""
    libs = [deploy / "libedgeslm.so", *sorted((deploy / "lib").glob("lib*.so"))]
    missing = [p for p in libs if not p.is_file()]
    if missing or not (deploy / "lib").is_dir():
        raise EdgeSLMError("runtime build is incomplete (libedgeslm.so or lib/ missing)", path=deploy,
                           fix="rebuild it: edgeslm build-runner --target android-arm64 --force")
    return libs


def _parts(bundle, name: str, libs: list[Path], counts: dict) -> dict:
    """The folders `package` owns, relative to the project root -> fn(folder) filling that (empty) folder.
    The bundle comes first: its verification is the likeliest failure, and then nothing else was touched."""
    def assets(d: Path) -> None:
        shutil.copytree(bundle.path, d, dirs_exist_ok=True)
        copied = load_bundle(d)                      # byte-identical to the bundle: every sha256 re-checked
        counts.update(files_verified=len(copied.manifest["files"]),
                      bundle_bytes=sum(f["bytes"] for f in copied.manifest["files"].values()))

    def jnilibs(d: Path) -> None:
        for lib in libs:
            shutil.copy2(lib, d / lib.name)

    def include(d: Path) -> None:
        shutil.copyfile(_header(), d / "edgeslm.h")

    def runtime(d: Path) -> None:
        from edgeslm.native.build import runtime_sources
        shutil.copytree(runtime_sources(), d, dirs_exist_ok=True,
                        ignore=lambda _, names: [n for n in names if n in RUNTIME_SKIP])

    return {f"{ASSETS}/{name}": assets, JNILIBS: jnilibs, f"{CPP}/include": include, f"{CPP}/runtime": runtime}


def _integration_guide(name: str, report: dict) -> str:
    libs = ", ".join(report["runtime"]["libraries"])
    return f"""# Integrating {name} (written by `edgeslm package --android`)

This is the edgeslm Android project (library `:edgeslm-android`, sample app `:sample`) with your bundle.

- Bundle: `{ASSETS}/{name}/` ({report['backend']} / {report['target']}, {report['files_verified']} files,
  sha256 verified after copying). In the app it is opened with `EdgeSlm.load(context, "edgeslm/{name}")`,
  which copies it once to `filesDir/edgeslm/{name}` (the runtime mmaps model.pte).
- Runtime libraries ({ABI}): `{JNILIBS}/` ({libs}).
  **These are the glibc android-arm64 build of `edgeslm build-runner`** (Debian's aarch64-linux-gnu
  toolchain, the aarch64 ExecuTorch wheel). They fix the layout but do not load inside an app: Android's
  bionic linker cannot load glibc libraries. For a phone, build the runtime with the NDK (below).
- Sources of the runtime for that NDK build: `{CPP}/runtime/`; the C header: `{CPP}/include/edgeslm.h`.

## Use it from your app
```kotlin
// settings.gradle.kts: include(":edgeslm-android") (this folder's module); app: implementation(project(":edgeslm-android"))
EdgeSlm.loadAsync(context, "edgeslm/{name}", {{ model ->
    model.generate("What is the capital of France?", GenerationConfig(maxNewTokens = 64, chat = true),
        EdgeSlm.onMainThread(object : GenerationCallback {{
            override fun onToken(text: String) {{ textView.append(text) }}
            override fun onStats(stats: Stats) {{ statsView.text = "%.1f tok/s".format(stats.decodeTokensPerS) }}
            override fun onError(error: EdgeSlmException) {{ statsView.text = error.message }}
        }}))
}}, {{ error -> Log.e("edgeslm", error.message ?: "") }})
// model.stop() from any thread; model.close() in onDestroy (waits for the worker)
```

## Build (Android SDK, NDK {{ndk}}, JDK 17)
```bash
./gradlew :edgeslm-android:assembleRelease          # AAR: Kotlin API + libedgeslm_jni.so + jniLibs
./gradlew :sample:installDebug                      # the sample app on a connected arm64 device
# the real runtime for phones: runtime/ built by the NDK against ExecuTorch built for {ABI}
./gradlew -Pedgeslm.buildRuntime=true -Pedgeslm.executorchRoot=/path/to/executorch-android-arm64 :sample:installDebug
```
`executorchRoot` must look like the ExecuTorch wheel's `executorch/` folder (include/, lib/libexecutorch.so,
libexecutorch_threadpool.so, libexecutorch_kernels_optimized.so, libexecutorch_kernels_quantized.so,
libexecutorch_backend_xnnpack.so) built for {ABI} with the same NDK; copy those libraries into
`{JNILIBS}/` too. Not verified on the machine that wrote this package: it has no Android SDK/NDK and no
phone. What was verified there: the JNI bridge and the Kotlin API on a host JVM against the host runtime.
""".replace("{ndk}", "r27c (27.2.12479018)")


def package_android(bundle_path: str | Path, out_dir: str | Path, *, force: bool = False,
                    runtime: str | Path | None = None) -> dict:
    """runtime: a deploy folder of build_runner("android-arm64") (default: build or reuse it)."""
    bundle = load_bundle(bundle_path)
    _check_bundle(bundle)
    out = Path(out_dir)
    update = out.exists() and not force
    if update and not is_android_project(out):
        if is_app_module(out):
            return _package_into_module(bundle, out)
        raise EdgeSLMError("DIR exists and is neither an edgeslm Android project (settings.gradle.kts + "
                           f"{LIBRARY}/build.gradle.kts of namespace dev.edgeslm) nor an Android module "
                           "(src/main/AndroidManifest.xml + build.gradle[.kts])", path=out,
                           fix="choose a new DIR (the project is created), a project written by "
                               "'edgeslm package --android', your app module, or pass --force to replace DIR")
    if runtime is None:
        from edgeslm.native import build_runner
        runtime = build_runner("android-arm64")
    libs = _runtime_libraries(Path(runtime))
    name = asset_name(bundle.path)
    report = {"schema": "edgeslm.package.android/1", "bundle": str(bundle.path.resolve()),
              "resource": f"{ASSETS}/{name}", "asset": f"edgeslm/{name}", "backend": bundle.backend,
              "target": bundle.target_name, "abi": ABI, "mode": "update" if update else "new",
              "engine": "libedgeslm over JNI (Kotlin API dev.edgeslm.EdgeSlm / EdgeSlmModel)",
              "note": STAND_IN,
              "commands": {"library": ["./gradlew", ":edgeslm-android:assembleRelease"],
                           "app": ["./gradlew", ":sample:installDebug"],
                           "ndk-runtime": ["./gradlew", "-Pedgeslm.buildRuntime=true",
                                           "-Pedgeslm.executorchRoot=/path/to/executorch-android-arm64",
                                           ":sample:installDebug"]}}

    counts: dict = {}
    parts = _parts(bundle, name, libs, counts)
    report["runtime"] = {"build": "android-arm64 (glibc, stand-in)", "libraries": [lib.name for lib in libs],
                         "bytes": sum(lib.stat().st_size for lib in libs)}
    if not update:                                   # a new project: the template + our parts, one rename
        template = _template()
        if not (template / LIBRARY / "build.gradle.kts").is_file():
            raise EdgeSLMError("the Android template is missing from this installation", path=template,
                               fix="reinstall edgeslm; the wheel ships android/ as package data")
        with staged_directory(out, force=force) as stage:
            shutil.copytree(template, stage, dirs_exist_ok=True, ignore=lambda d, names: [n for n in names if n in SKIP])
            for rel, fill in parts.items():
                (stage / rel).mkdir(parents=True, exist_ok=True)
                fill(stage / rel)
            report.update(counts, path=str(out))
            write_text_atomic(stage / "INTEGRATION.md", _integration_guide(name, report))
            write_text_atomic(stage / "edgeslm-package.json", json.dumps(report, indent=2) + "\n")
        return report

    # An existing edgeslm project (another bundle, a refresh): each owned folder is staged whole next to its
    # place and renamed in; the user's own files (app modules, other bundles) are left alone.
    for rel, fill in parts.items():
        with staged_directory(out / rel, force=True) as folder:
            fill(folder)
    report.update(counts, path=str(out))
    write_text_atomic(out / "INTEGRATION.md", _integration_guide(name, report))
    write_text_atomic(out / "edgeslm-package.json", json.dumps(report, indent=2) + "\n")
    return report
