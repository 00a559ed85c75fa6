"""Device profiles as data: one TOML file per target in this folder.

Pipeline: targets/*.toml -> Target (frozen dataclass) -> TARGETS registry (name -> Target).
The CLI takes its --target choices from TARGETS; nothing else hard-codes a target name.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources

from edgeslm.errors import EdgeSLMError


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    kind: str                      # "cpu" (phones, boards, host) or "mcu"
    triple: str                    # LLVM/GNU triple, "native" for the host
    os: str
    arch: str
    backends: tuple[str, ...]      # compilers that can build for it
    memory_bytes: int = 0          # RAM budget for one model (0 = unbounded)
    flash_bytes: int = 0           # MCU flash budget (0 = not an MCU)
    threads: int = 1
    emulation: str = "none"        # how this machine runs it: none | qemu-aarch64 | qemu-system-arm
    cpu: str = ""
    cpu_flags: tuple[str, ...] = ()
    qemu_cpu: str = ""
    qemu_machine: str = ""
    extra: dict = field(default_factory=dict)  # keys a later backend reads (kept, not interpreted here)

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(text: str, source: str) -> Target:
    raw = tomllib.loads(text)
    known = {f.name for f in fields(Target)}
    missing = [k for k in ("name", "description", "kind", "triple", "os", "arch", "backends") if k not in raw]
    if missing:
        raise EdgeSLMError(f"target profile lacks {', '.join(missing)}", path=source,
                           fix="add the missing keys (see targets/host.toml)")
    extra = {k: raw.pop(k) for k in list(raw) if k not in known}
    for key in ("backends", "cpu_flags"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return Target(**raw, extra=extra)


def _load_all() -> dict[str, Target]:
    found: dict[str, Target] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            target = _parse(entry.read_text(), entry.name)
            found[target.name] = target
    return found


TARGETS: dict[str, Target] = _load_all()


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise EdgeSLMError(f"unknown target '{name}'",
                           fix=f"choose one of: {', '.join(sorted(TARGETS))} (edgeslm targets)") from None
