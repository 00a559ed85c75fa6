"""`qemu-cortex-m[:TARGET]`: a Cortex-M board emulated by qemu-system-arm (bare metal, semihosting).

Steps of run(): argv = [firmware.elf (remote path), firmware args...] -> qemu-system-arm -M <board of the
target> -nographic with semihosting (the firmware's argv are `arg=` values; its console goes to stdout)
and `-icount shift=3,sleep=off` (deterministic virtual time) -> Completed. A hang is killed at timeout_s;
a fault ends the run with exit status 3 and a "FAULT HardFault pc=..." line (runtime/micro/startup.c).

What the numbers mean: SysTick ticks under icount count retired instructions (instructions = ticks *
(1e9 / systick_hz) / 2^ICOUNT_SHIFT), not cycles and not latency. On a real board the same firmware runs
from flash; read DWT->CYCCNT for cycles (see README "Microcontrollers").
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import Completed, copy_in, default_workdir, register, remote_path, run_argv
from edgeslm.farm.local import cpu_model

ICOUNT_SHIFT = 3
INSTRUCTIONS = "instructions (QEMU icount: retired instructions, not cycles, not latency)"


@register
class QemuCortexMDevice:
    driver = "qemu-cortex-m"
    default_target = "cortex-m4"
    latency_kind = INSTRUCTIONS
    rss_note = "bare-metal MCU: no process RSS; see flash_bytes, ram_bytes, stack_bytes and planned_arena_bytes"

    def __init__(self, target: str | None = None, workdir: Path | None = None, qemu: str | None = None):
        from edgeslm.targets import get_target
        self.target = get_target(target or self.default_target)
        if self.target.kind != "mcu" or not self.target.qemu_machine:
            raise EdgeSLMError(f"target '{self.target.name}' is not a Cortex-M board QEMU emulates",
                               fix="use qemu-cortex-m:cortex-m4, :cortex-m7 or :cortex-m55")
        self.qemu = qemu or shutil.which("qemu-system-arm")
        if self.qemu is None:
            raise EdgeSLMError("qemu-system-arm not found", fix="apt-get install -y qemu-system-arm")
        self.id = self.driver if self.target.name == self.default_target else f"{self.driver}:{self.target.name}"
        self.machine = self.target.qemu_machine
        self.systick_hz = int(self.target.extra.get("systick_hz", 25_000_000))
        self.workdir = Path(workdir) if workdir else default_workdir(self.driver)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_spec(cls, arg: str) -> "QemuCortexMDevice":
        return cls(arg or None)

    def instructions(self, ticks: int) -> float:
        """SysTick ticks -> retired instructions under -icount shift=ICOUNT_SHIFT."""
        return ticks * (1e9 / self.systick_hz) / 2 ** ICOUNT_SHIFT

    def push(self, local: Path, remote: str) -> None:
        copy_in(Path(local), remote_path(self.workdir, remote))

    def pull(self, remote: str, local: Path) -> None:
        copy_in(remote_path(self.workdir, remote), Path(local))

    def command(self, argv: list[str]) -> list[str]:
        if not argv:
            raise TypeError("argv must start with the firmware ELF")
        elf = remote_path(self.workdir, argv[0])
        # QEMU option syntax: a ',' inside a value is written ',,'
        args = ",".join(f"arg={a.replace(',', ',,')}" for a in [elf.name, *argv[1:]])
        return [self.qemu, "-M", self.machine, "-nographic", "-monitor", "none", "-serial", "none",
                "-chardev", "stdio,id=semihost", "-semihosting-config", f"enable=on,target=native,chardev=semihost,{args}",
                "-icount", f"shift={ICOUNT_SHIFT},sleep=off", "-kernel", str(elf)]

    def run(self, argv: list[str], timeout_s: float) -> Completed:
        return run_argv(self.command(argv), timeout_s=timeout_s, cwd=self.workdir)

    def fingerprint(self) -> dict:
        out = subprocess.run([self.qemu, "--version"], capture_output=True, text=True).stdout
        return {"driver": self.driver, "qemu": (out.splitlines() or ["?"])[0], "machine": self.machine,
                "cpu": self.target.cpu, "icount_shift": ICOUNT_SHIFT, "systick_hz": self.systick_hz,
                "emulated_target": self.target.name, "host_cpu_model": cpu_model(), "host_cpu_count": os.cpu_count()}
