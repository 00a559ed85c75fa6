"""Build the firmware of an emitted project with arm-none-eabi-gcc (argv lists, no make needed) and read
its memory use back from the ELF.

Steps: find the toolchain (missing -> the Debian packages to install) -> compile + link in the project
folder (a linker budget overflow -> EdgeSLMError with the bytes over) -> arm-none-eabi-size -A ->
{flash_bytes, ram_bytes, ...}.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgeslm.compilers.micro.project import cflags, ldflags, sources
from edgeslm.errors import EdgeSLMError

TOOLCHAIN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
QEMU_PACKAGE = "qemu-system-arm"


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EdgeSLMError(f"{name} not found: the Cortex-M cross toolchain is missing",
                           fix=f"apt-get install -y {TOOLCHAIN_PACKAGES}")
    return path


def gcc_version() -> str:
    out = subprocess.run([find_tool("arm-none-eabi-gcc"), "--version"], capture_output=True, text=True)
    return (out.stdout.splitlines() or ["?"])[0]


def build_firmware(folder: Path, target, kernel: str, out_name: str = "firmware.elf") -> Path:
    gcc = find_tool("arm-none-eabi-gcc")
    argv = [gcc, *cflags(target, kernel), *sources(kernel), *ldflags(), "-o", out_name]
    done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        over = re.findall(r"region [`']?(\w+)'? overflowed by (\d+) bytes", done.stderr)
        if over:
            what = ", ".join(f"{region} by {int(n):,} bytes" for region, n in over)
            raise EdgeSLMError(f"the firmware does not fit {target.name}: the linker reports {what}",
                               path=folder / "link.ld",
                               fix="use a smaller model, a shorter --max-seq-len, or a target with more memory")
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise EdgeSLMError(f"arm-none-eabi-gcc failed building the firmware: {tail}", path=folder,
                           fix="report this as an edgeslm bug with the bundle's firmware/ folder")
    return folder / out_name


def section_sizes(elf: Path) -> dict[str, int]:
    """Section name -> bytes, from arm-none-eabi-size -A."""
    size = find_tool("arm-none-eabi-size")
    out = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def memory_use(elf: Path) -> dict[str, int]:
    """flash = what the board must store (.text incl. rodata/weights, .ARM.exidx, .data initialisers);
    ram = .data + .bss (arena inside) + .stack (the reserved stack)."""
    s = section_sizes(elf)
    flash = s.get(".text", 0) + s.get(".ARM.exidx", 0) + s.get(".data", 0)
    ram = s.get(".data", 0) + s.get(".bss", 0) + s.get(".stack", 0)
    return {"flash_bytes": flash, "ram_bytes": ram, "stack_reserved_bytes": s.get(".stack", 0), "sections": s}
