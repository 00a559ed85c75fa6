"""edgeslm.farm: devices and the profiling job (`from edgeslm.farm.profile import profile`).

- device.py: the Device protocol, Completed, the DRIVERS registry, open_device(spec)
- local.py, qemu_aarch64.py: the built-in drivers (importing this package registers them)
- profile.py: profile(bundle, devices, ...) -> results document (build/push/run the native runner, accuracy gate)
- ssh.py, adb.py: Linux boards over OpenSSH, Android phones over adb (farm.toml devices)
- farmfile.py, matrix.py, store.py: farm.toml, matrix runs (retries, failover, resume), the SQLite results store
  (store_pg.py: the same on PostgreSQL for a shared store)
- scaleout.py: the same jobs on Dask distributed workers that declare their devices as resources
- qemu_cortex_m.py, micro_profile.py: MCU firmware (backend micro) on qemu-system-arm, instructions per token
- metrics.py: runner JSON -> the one metric schema of DESIGN.md; provenance
"""
from __future__ import annotations

from edgeslm.farm.device import DRIVERS, Completed, Device, open_device, register
from edgeslm.farm import local, qemu_aarch64  # noqa: F401,E402  (registers the drivers)
from edgeslm.farm import ssh, adb  # noqa: F401,E402  (ssh boards, Android phones over adb)
from edgeslm.farm import qemu_cortex_m  # noqa: F401,E402  (Cortex-M boards in qemu-system-arm)
from edgeslm.farm import ios  # noqa: F401,E402  (iPhones over xcrun devicectl; needs a macOS host)

__all__ = ["DRIVERS", "Completed", "Device", "open_device", "register"]
