"""edgeslm.farm: devices and the profiling job (`from edgeslm.farm.profile import profile`).

- device.py: the Device protocol, Completed, the DRIVERS registry, open_device(spec)
- local.py, qemu_aarch64.py: the built-in drivers (importing this package registers them)
- profile.py: profile(bundle, devices, ...) -> results document (build/push/run the native runner, accuracy gate)
- metrics.py: runner JSON -> the one metric schema of DESIGN.md; provenance
"""
from __future__ import annotations

from edgeslm.farm.device import DRIVERS, Completed, Device, open_device, register
from edgeslm.farm import local, qemu_aarch64  # noqa: F401,E402  (registers the drivers)

__all__ = ["DRIVERS", "Completed", "Device", "open_device", "register"]
