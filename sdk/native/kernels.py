"""The project's own ExecuTorch kernels (runtime/kernels/*.cpp) for the Python runtime.

The native runner links them into libedgeslm.so (runtime/CMakeLists.txt). The Python runtime (export's
accuracy check, `edgeslm run`, evaluation) runs .pte files through the executorch wheel's pybindings,
whose kernel registry lives in the wheel's libexecutorch.so: a small shared library built against that
same libexecutorch.so registers the kernels there when loaded.

Steps: sources + executorch version + compiler -> cache key -> g++ -O3 -shared (one command, ~10 s,
cached under $EDGESLM_CACHE/kernels/<key>/) -> ctypes.CDLL(RTLD_GLOBAL) once per process.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from edgeslm.errors import EdgeSLMError

_loaded: Path | None = None
_lock = threading.Lock()


def kernel_sources() -> list[Path]:
    from edgeslm.native.build import runtime_sources
    return sorted((runtime_sources() / "kernels").glob("*.cpp"))


def _executorch_package() -> Path:
    import executorch
    return Path(list(executorch.__path__)[0]).resolve()   # a namespace package: no __file__


def build_kernels(force: bool = False) -> Path:
    """Build (or reuse) libedgeslm_kernels.so for this machine's Python runtime; returns its path."""
    from edgeslm.native.build import _locked, cache_root, executorch_version

    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        raise EdgeSLMError("no C++ compiler found: edgeslm's ExecuTorch kernels are compiled on first use",
                           fix="apt-get install -y g++")
    et = _executorch_package()
    sources = kernel_sources()
    headers = sorted((sources[0].parent).glob("*.h")) if sources else []
    compiler = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    digest = hashlib.sha256(repr((executorch_version(), compiler, str(et))).encode())
    for src in sources + headers:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    root = cache_root() / "kernels" / digest.hexdigest()[:16]
    lib = root / "libedgeslm_kernels.so"
    with _locked(cache_root() / "kernels" / f".{root.name}.lock"):
        if lib.is_file() and not force:
            return lib
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".libedgeslm_kernels.{os.getpid()}.so"
        cmd = [cxx, "-O3", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-Wno-psabi",
               "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_USE_THREADPOOL",
               "-isystem", str(et / "include"),
               "-isystem", str(et / "include/executorch/runtime/core/portable_type/c10"),
               *map(str, sources), "-o", str(tmp),
               str(et / "lib/libexecutorch.so"), str(et / "lib/libexecutorch_threadpool.so"),
               f"-Wl,-rpath,{et / 'lib'}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            (root / "build.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:200])
            raise EdgeSLMError(f"building edgeslm's ExecuTorch kernels failed: {first}", path=root / "build.log",
                               fix="read the log (a C++17 g++ and the executorch wheel's headers are needed)")
        os.replace(tmp, lib)
    return lib


def load_kernels() -> Path:
    """Register edgeslm's kernels in this process's ExecuTorch runtime (idempotent)."""
    global _loaded
    with _lock:
        if _loaded is None:
            from executorch.extension.pybindings import portable_lib  # noqa: F401  (loads libexecutorch.so)
            lib = build_kernels()
            handle = ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            if handle.edgeslm_kernels_registered() != 1:
                raise EdgeSLMError("edgeslm's ExecuTorch kernels did not register", path=lib,
                                   fix="rebuild: delete the folder and run again")
            _loaded = lib
        return _loaded
