"""`local`: this machine as a device. Push hard-links (or copies) into a work directory, run execs argv
there with a timeout; timings are measured, and the runner's peak RSS is its own process's.

Work directory: $EDGESLM_CACHE/farm/local (pushes are content-named by the profiler and replace
older copies atomically).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import MEASURED, Completed, copy_in, default_workdir, register, remote_path, run_argv


def cpu_model() -> str:
    """'model name' of /proc/cpuinfo (x86), else the arm 'CPU part' fields, else platform.processor()."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for key in ("model name", "Hardware", "CPU part"):
        for line in lines:
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


@register
class LocalDevice:
    driver = "local"
    latency_kind = MEASURED
    rss_note = None

    def __init__(self, target: str = "host", workdir: Path | None = None):
        from edgeslm.targets import get_target
        self.target = get_target(target)
        if self.target.emulation != "none":
            raise EdgeSLMError(f"device 'local' cannot run target '{target}' natively",
                               fix=f"use --device {self.target.emulation}:{target}")
        self.id = self.driver if target == "host" else f"{self.driver}:{target}"
        self.workdir = Path(workdir) if workdir else default_workdir(self.driver)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_spec(cls, arg: str) -> "LocalDevice":
        return cls(arg or "host")

    def push(self, local: Path, remote: str) -> None:
        copy_in(Path(local), remote_path(self.workdir, remote))

    def pull(self, remote: str, local: Path) -> None:
        copy_in(remote_path(self.workdir, remote), Path(local))

    def run(self, argv: list[str], timeout_s: float) -> Completed:
        return run_argv(list(argv), timeout_s=timeout_s, cwd=self.workdir)

    def fingerprint(self) -> dict:
        u = platform.uname()
        return {"driver": self.driver, "system": u.system, "release": u.release, "machine": u.machine,
                "node": u.node, "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                "memory_bytes": memory_total_bytes(), "python": platform.python_version()}
