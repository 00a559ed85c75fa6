"""`qemu-aarch64[:TARGET]`: an arm64 Linux "phone/board" emulated with qemu-user on this machine.

Steps of run(): argv (an aarch64 program and its arguments, relative to the guest root) ->
`qemu-aarch64 [-L /usr/aarch64-linux-gnu] argv...` with cwd = guest root and QEMU_CPU from the target's
`qemu_cpu` -> Completed. Targets with a self-contained runner folder (android-arm64: its own glibc
loader in lib/) run without -L, as they would on a phone.

What the numbers mean here: latency is emulated (instruction translation on the host CPU, not device
latency) and the process RSS is qemu's own, so the profiler reports the guest's heap (mallinfo2) and
the planned arena instead (rss_note says why).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import Completed, copy_in, default_workdir, register, remote_path, run_argv
from edgeslm.farm.local import cpu_model

SYSROOT = "/usr/aarch64-linux-gnu"
EMULATED = "emulated (qemu-user, not device latency)"


@register
class QemuAarch64Device:
    driver = "qemu-aarch64"
    default_target = "linux-arm64"
    latency_kind = EMULATED
    rss_note = ("qemu-user: the process RSS is the emulator's own, not the guest's; "
                "see guest_heap_bytes (mallinfo2 in the guest) and planned_arena_bytes")

    def __init__(self, target: str | None = None, workdir: Path | None = None, qemu: str | None = None):
        from edgeslm.targets import get_target
        self.target = get_target(target or self.default_target)
        if self.target.emulation != self.driver:
            raise EdgeSLMError(f"target '{self.target.name}' is not emulated by qemu-aarch64 "
                               f"(emulation = {self.target.emulation})",
                               fix="use a target with emulation = \"qemu-aarch64\" (edgeslm targets)")
        self.qemu = qemu or shutil.which("qemu-aarch64")
        if self.qemu is None:
            raise EdgeSLMError("qemu-aarch64 not found", fix="apt-get install -y qemu-user")
        self.id = self.driver if self.target.name == self.default_target else f"{self.driver}:{self.target.name}"
        self.cpu = self.target.qemu_cpu or "cortex-a76"
        # Android folders carry their own loader and glibc; everything else uses Debian's cross sysroot.
        self.sysroot = None if self.target.triple.endswith("android") else SYSROOT
        if self.sysroot and not Path(self.sysroot, "lib").is_dir():
            raise EdgeSLMError(f"{self.sysroot} missing: no aarch64 glibc to run guests with",
                               fix="apt-get install -y libc6-arm64-cross libstdc++6-arm64-cross")
        self.workdir = Path(workdir) if workdir else default_workdir(self.driver)   # the guest root
        self.workdir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_spec(cls, arg: str) -> "QemuAarch64Device":
        return cls(arg or None)

    def push(self, local: Path, remote: str) -> None:
        copy_in(Path(local), remote_path(self.workdir, remote))

    def pull(self, remote: str, local: Path) -> None:
        copy_in(remote_path(self.workdir, remote), Path(local))

    def run(self, argv: list[str], timeout_s: float) -> Completed:
        cmd = [self.qemu, *(["-L", self.sysroot] if self.sysroot else []), *argv]
        return run_argv(cmd, timeout_s=timeout_s, cwd=self.workdir, env={"QEMU_CPU": self.cpu})

    def fingerprint(self) -> dict:
        out = subprocess.run([self.qemu, "--version"], capture_output=True, text=True).stdout
        return {"driver": self.driver, "qemu": (out.splitlines() or ["?"])[0], "qemu_cpu": self.cpu,
                "sysroot": self.sysroot, "emulated_target": self.target.name,
                "host_cpu_model": cpu_model(), "host_cpu_count": os.cpu_count()}
