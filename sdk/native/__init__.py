"""edgeslm.native: build and call the native runtime (runtime/ C/C++ sources, C API in edgeslm.h).

- build_runner(target) -> deployable folder (edgeslm-runner, libedgeslm.so, lib/*.so), cached
- NativeModel(bundle_dir, lib_path): ctypes binding of the C API
- run_runner / run_qemu: run edgeslm-runner on the host or under qemu-aarch64 (argv lists, timeouts)
"""
from __future__ import annotations

from edgeslm.native.build import build_runner, cache_root, runtime_sources
from edgeslm.native.capi import NativeError, NativeModel
from edgeslm.native.run import run_qemu, run_runner, runner_argv

__all__ = ["build_runner", "cache_root", "runtime_sources", "NativeError", "NativeModel", "run_qemu",
           "run_runner", "runner_argv"]
