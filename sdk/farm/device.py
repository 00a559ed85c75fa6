"""The Device seam: one class per transport, registered by name; farm code never branches on the kind.

A device owns a work directory. `remote` paths are POSIX paths relative to it (the profiler pushes
`runners/<key>` and `bundles/<name>`), and `run()` starts argv with that directory as cwd, so one argv
works on every transport. argv is always a list handed to exec (never a shell string): paths with
spaces, quotes, `;` or `$(...)` reach the program verbatim. A later ssh/adb driver that must go through
a remote shell quotes with `shlex.join` in one place, its own run().

Beyond DESIGN.md's id/target/push/run/pull, a device says what its numbers mean (latency_kind,
rss_note) and describes itself (fingerprint()), so the profiler never asks which kind it is.

Registry: DRIVERS maps a driver name to its class; `open_device("qemu-aarch64:android-arm64")` splits the
spec at the first ':' and calls `DRIVERS[name].from_spec(rest)`. The CLI lists `--device` from DRIVERS.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from edgeslm.errors import EdgeSLMError

if TYPE_CHECKING:
    from edgeslm.targets import Target

MEASURED = "measured"


class TransportError(Exception):
    """The device could not be reached (connection refused/lost, no adb device): retried with backoff, then
    the device is marked unhealthy. Not a runner failure: a crash or hang on a reachable device is a result."""


@dataclass
class Completed:
    """What one run on a device returned. returncode < 0: killed by that signal (a crash)."""
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False


@runtime_checkable
class Device(Protocol):
    id: str                      # the spec it was opened with: "local", "qemu-aarch64:android-arm64"
    target: Target               # the target profile whose runner build runs here
    latency_kind: str            # "measured" or "emulated (...)": how far timings speak for the device
    rss_note: str | None         # None: the runner's peak RSS is the device process's own; else why not

    def push(self, local: Path, remote: str) -> None: ...
    def run(self, argv: list[str], timeout_s: float) -> Completed: ...
    def pull(self, remote: str, local: Path) -> None: ...
    def fingerprint(self) -> dict: ...


DRIVERS: dict[str, type] = {}


def register(cls):
    """Class decorator: make a driver selectable as `--device <cls.driver>[:<arg>]`."""
    DRIVERS[cls.driver] = cls
    return cls


def open_device(spec: str) -> Device:
    """'local' | 'qemu-aarch64' | 'qemu-aarch64:<target>' (or any registered driver) -> Device."""
    import edgeslm.farm  # noqa: F401  (importing the package registers the built-in drivers)

    name, _, arg = spec.partition(":")
    cls = DRIVERS.get(name)
    if cls is None:
        raise EdgeSLMError(f"unknown device '{spec}'", fix=f"choose one of: {', '.join(sorted(DRIVERS))} "
                                                            "(optionally DRIVER:TARGET)")
    return cls.from_spec(arg)


# ---- helpers shared by drivers whose work directory is a folder on this machine

def remote_path(workdir: Path, remote: str) -> Path:
    """The host path of a device-relative remote path; refuses paths that leave the work directory."""
    rel = PurePosixPath(remote)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise EdgeSLMError(f"remote path '{remote}' must be relative to the device's work directory",
                           fix="pass a path like 'bundles/<name>'")
    return workdir.joinpath(*rel.parts)


def copy_in(src: Path, dest: Path) -> None:
    """Copy a file or folder to dest, hard-linking files when possible (same filesystem: no bytes copied).
    Staged under a sibling name and renamed, so dest is either the old or the whole new copy."""
    src = Path(src)
    if not src.exists():
        raise EdgeSLMError("nothing to push: no such file or folder", path=src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.with_name(f".{dest.name}.push-{os.getpid()}")
    _remove(stage)

    def link_or_copy(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    if src.is_dir():
        shutil.copytree(src, stage, copy_function=link_or_copy, symlinks=True)
    else:
        link_or_copy(src, stage)
    _remove(dest)
    os.replace(stage, dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def run_argv(argv: list[str], *, timeout_s: float, cwd: Path, env: dict | None = None) -> Completed:
    """Run argv (no shell) in its own process group; on timeout kill the whole group (qemu + children)."""
    if not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError("argv must be a non-empty list of str (never a shell string)")
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    except OSError as err:   # missing program, not executable, wrong arch without binfmt
        return Completed(127, "", f"cannot start {argv[0]}: {err.strerror}", time.perf_counter() - t0)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        return Completed(proc.returncode, out, err, time.perf_counter() - t0)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return Completed(proc.returncode, out or "", err or "", time.perf_counter() - t0, timed_out=True)


def default_workdir(driver: str) -> Path:
    from edgeslm.native import cache_root
    return cache_root() / "farm" / driver
