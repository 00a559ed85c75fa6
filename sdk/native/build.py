"""build_runner(target) -> deployable folder of the native runtime, built once and cached.

Steps: target -> toolchain (host g++ or Debian's aarch64 cross g++) -> ExecuTorch libraries for that
arch (host: the installed wheel; aarch64: `pip download` of the same version, extracted once), and
likewise TVM's runtime (apache-tvm: libtvm_runtime.so; apache-tvm-ffi: headers + libtvm_ffi.so) when
installed ->
cache key = (target, triple, executorch version, compiler version, sha256 of runtime/ sources) ->
cmake configure + build (-j2) + ctest-able build tree -> cmake --install into <key>/deploy.

Cache layout under $EDGESLM_CACHE (default ~/.cache/edgeslm):
  executorch/<version>-<platform>/executorch/{include,lib}   extracted wheels (aarch64)
  wheels/                                                    downloaded wheels
  runners/<target>-<key16>/{build,deploy,build.log}          one build per key; deploy/build-info.json
                                                             marks it complete
Deployable folder: edgeslm-runner, libedgeslm.so, include/edgeslm.h, lib/libexecutorch*.so ($ORIGIN
rpaths); for Android also lib/ld-linux-aarch64.so.1 + glibc and run.sh (glibc runner, own loader).
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgeslm.errors import EdgeSLMError

SOURCE_SUFFIXES = (".c", ".cpp", ".h", ".txt", ".cmake")
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu")
# glibc pieces a self-contained aarch64 folder carries on Android (no system glibc there).
GLIBC_RUNTIME = ("ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2",
                 "libstdc++.so.6", "libgcc_s.so.1")


def cache_root() -> Path:
    return Path(os.environ.get("EDGESLM_CACHE") or Path.home() / ".cache" / "edgeslm")


def runtime_sources() -> Path:
    """runtime/ with CMakeLists.txt: package data `edgeslm.runtime` when installed, else the repo folder."""
    spec = importlib.util.find_spec("edgeslm.runtime") if importlib.util.find_spec("edgeslm") else None
    candidates = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    candidates.append(Path(__file__).resolve().parents[2] / "runtime")
    for path in candidates:
        if (path / "CMakeLists.txt").is_file():
            return path
    raise EdgeSLMError("runtime sources not found (runtime/CMakeLists.txt)",
                       fix="reinstall edgeslm; the wheel ships runtime/ as package data")


def sources_digest(root: Path) -> str:
    digest = hashlib.sha256()
    # runtime/micro/ is the Cortex-M firmware runtime (compilers/micro), not part of the native runner
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES
                       and p.relative_to(root).parts[0] != "micro"):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Toolchain:
    name: str                  # "host" | "aarch64-linux-gnu"
    cc: str
    cxx: str
    packages: str              # Debian packages providing it
    cmake_args: tuple[str, ...]
    wheel_platform: str | None  # None: use the installed executorch wheel
    self_contained: bool       # ship the glibc loader + libs (Android)


def toolchain_for(target) -> Toolchain:
    triple = target.triple
    host_arch = platform.machine()
    if triple == "native" or (triple.startswith(host_arch) and triple.endswith("linux-gnu")):
        return Toolchain("host", "cc", "c++", "cmake g++", (), None, False)
    if triple in ("aarch64-linux-gnu", "aarch64-linux-android"):
        toolchain_file = runtime_sources() / "cmake" / "aarch64-linux-gnu.cmake"
        return Toolchain("aarch64-linux-gnu", "aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++",
                         "cmake gcc-aarch64-linux-gnu g++-aarch64-linux-gnu",
                         (f"-DCMAKE_TOOLCHAIN_FILE={toolchain_file}",), "manylinux_2_28_aarch64",
                         triple.endswith("android"))
    raise EdgeSLMError(f"target '{target.name}' ({triple}) has no native runtime build",
                       fix="native runners exist for host, linux-arm64 and android-arm64")


def _check_tools(tc: Toolchain) -> str:
    """Fail with one line naming the Debian packages if a tool is missing; return the compiler version."""
    missing = [t for t in ("cmake", tc.cc, tc.cxx) if shutil.which(t) is None]
    if missing:
        raise EdgeSLMError(f"{', '.join(missing)} not found: the {tc.name} toolchain is not installed",
                           fix=f"apt-get install -y {tc.packages}")
    out = subprocess.run([tc.cxx, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else tc.cxx


def executorch_version() -> str:
    return importlib.metadata.version("executorch")


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def executorch_root(tc: Toolchain, version: str, progress: bool) -> Path:
    """The `executorch` folder (include/, lib/) for the toolchain's arch."""
    return wheel_package(tc, "executorch", "executorch", version, progress,
                         lambda n: n.startswith("executorch/include/")
                         or (n.startswith("executorch/lib/") and n.endswith(".so")),
                         marker="lib/libexecutorch.so")


def tvm_roots(tc: Toolchain, progress: bool) -> tuple[Path, Path] | None:
    """The `tvm` (lib/libtvm_runtime.so) and `tvm_ffi` (include/, lib/libtvm_ffi.so) folders for the
    toolchain's arch, or None when the apache-tvm wheel is not installed (the runner is then
    ExecuTorch-only)."""
    try:
        tvm_version = importlib.metadata.version("apache-tvm")
        ffi_version = importlib.metadata.version("apache-tvm-ffi")
    except importlib.metadata.PackageNotFoundError:
        return None
    tvm = wheel_package(tc, "apache-tvm", "tvm", tvm_version, progress,
                        lambda n: n == "tvm/lib/libtvm_runtime.so", marker="lib/libtvm_runtime.so")
    ffi = wheel_package(tc, "apache-tvm-ffi", "tvm_ffi", ffi_version, progress,
                        lambda n: n.startswith("tvm_ffi/include/") or n == "tvm_ffi/lib/libtvm_ffi.so",
                        marker="lib/libtvm_ffi.so")
    return tvm, ffi


def wheel_package(tc: Toolchain, dist: str, package: str, version: str, progress: bool, keep,
                  marker: str) -> Path:
    """The folder of `package` from the `dist` wheel for the toolchain's arch: the installed one for the
    host, else `pip download` of the same version for tc.wheel_platform, members `keep(name)` extracted
    once into the cache."""
    if tc.wheel_platform is None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise EdgeSLMError(f"the {dist} wheel is not installed", fix=f"pip install {dist}=={version}")
        return Path(list(spec.submodule_search_locations)[0])
    folder = "executorch" if package == "executorch" else package   # cache layout kept for executorch
    dest = cache_root() / folder / f"{version}-{tc.wheel_platform}"
    if (dest / package / marker).is_file():
        return dest / package
    wheels = cache_root() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"{dist.replace('-', '_')}-{version}-*{tc.wheel_platform}*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform",
               tc.wheel_platform, "--python-version", py, f"{dist}=={version}", "-d", str(wheels)]
        if progress:
            print(f"fetching {dist} {version} for {tc.wheel_platform} ...", file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = sorted(wheels.glob(pattern))
        if proc.returncode != 0 or not found:
            last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise EdgeSLMError(f"cannot download the {dist} {version} wheel for {tc.wheel_platform}: {last}",
                               fix="check network access to PyPI, or put the wheel in " + str(wheels))
    stage = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    with zipfile.ZipFile(found[-1]) as wheel:   # only headers and shared libraries are needed
        wheel.extractall(stage, [n for n in wheel.namelist() if keep(n)])
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(stage, dest)
    return dest / package


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines[-1:]
        raise EdgeSLMError(f"{what} failed: {errors[0].strip() if errors else 'see log'}", path=log,
                           fix="read the log; rebuild with force=True after fixing")


def _make_self_contained(deploy: Path) -> None:
    """Android: copy the glibc loader and libs; run.sh starts the runner through them."""
    for name in GLIBC_RUNTIME:
        src = AARCH64_SYSROOT / "lib" / name
        if not src.exists():
            raise EdgeSLMError(f"{src} missing", fix="apt-get install -y libc6-arm64-cross libstdc++6-arm64-cross")
        shutil.copy2(src.resolve(), deploy / "lib" / name)
    script = deploy / "run.sh"
    script.write_text('#!/system/bin/sh\n# glibc runner on Android: start it through its own loader and libs.\n'
                      'd=$(cd "$(dirname "$0")" && pwd)\n'
                      'exec "$d/lib/ld-linux-aarch64.so.1" --library-path "$d/lib" "$d/edgeslm-runner" "$@"\n')
    script.chmod(0o755)


def build_runner(target_name: str = "host", *, force: bool = False, progress: bool = True) -> Path:
    """Build (or reuse) the native runtime for a target; returns the deployable folder."""
    from edgeslm.progress import steps
    from edgeslm.targets import get_target

    target = get_target(target_name)
    tc = toolchain_for(target)
    compiler = _check_tools(tc)
    src = runtime_sources()
    version = executorch_version()
    tvm_versions = [_dist_version("apache-tvm"), _dist_version("apache-tvm-ffi")]
    key_text = json.dumps([target.name, target.triple, tc.name, version, compiler, sources_digest(src), tvm_versions])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    root = cache_root() / "runners" / f"{target.name}-{key}"
    deploy, build, log = root / "deploy", root / "build", root / "build.log"
    info_path = deploy / "build-info.json"

    with _locked(cache_root() / "runners" / f".{target.name}-{key}.lock"):
        if info_path.is_file() and not force:
            return deploy
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        started = time.perf_counter()
        with steps(f"build-runner {target.name}", ["executorch", "configure", "build", "install"],
                   enabled=progress) as step:
            step("executorch")
            et_root = executorch_root(tc, version, progress)
            tvm = tvm_roots(tc, progress)
            tvm_args = [f"-DTVM_ROOT={tvm[0]}", f"-DTVM_FFI_ROOT={tvm[1]}"] if tvm else []
            step("configure")
            generator = ["-G", "Ninja"] if shutil.which("ninja") else []
            _run(["cmake", "-S", str(src), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
                  f"-DEXECUTORCH_ROOT={et_root}", *tvm_args, *tc.cmake_args], log, "cmake configure")
            step("build")
            _run(["cmake", "--build", str(build), "--parallel", "2"], log, "cmake build")
            step("install")
            _run(["cmake", "--install", str(build), "--prefix", str(deploy)], log, "cmake install")
            if tc.self_contained:
                _make_self_contained(deploy)
        info = {"target": target.name, "triple": target.triple, "toolchain": tc.name, "compiler": compiler,
                "executorch": version, "tvm": tvm_versions[0] if tvm else None,
                "backends": ["executorch", "tvm"] if tvm else ["executorch"], "sources_sha256": sources_digest(src), "key": key,
                "build_s": round(time.perf_counter() - started, 1), "build_dir": str(build)}
        info_path.write_text(json.dumps(info, indent=2) + "\n")   # written last: marks the build complete
    return deploy
