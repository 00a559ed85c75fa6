"""`ios`: an iPhone attached to a macOS host, driven with `xcrun devicectl` (Xcode 15+).

`--device ios` (first paired device) or `--device ios:<device identifier>`. push copies files into the app
data container of the profiling app (bundle id EDGESLM_IOS_APP, default com.edgeslm.runner), run launches
it with argv (`devicectl device process launch --console`), pull copies back. On Linux (or any host without
xcrun) opening the device fails with one line: it needs macOS.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import Completed, register, run_argv

APP_ID = os.environ.get("EDGESLM_IOS_APP", "com.edgeslm.runner")


def _check_host() -> None:
    if platform.system() != "Darwin" or shutil.which("xcrun") is None:
        raise EdgeSLMError(f"device 'ios' needs a macOS host with Xcode (xcrun devicectl); this host is "
                           f"{platform.system()}", fix="run the profile on a Mac with the iPhone attached")


@register
class IOSDevice:
    driver = "ios"
    latency_kind = "measured"
    rss_note = "iOS reports the app's footprint, not a runner process RSS"

    def __init__(self, udid: str = ""):
        from edgeslm.targets import get_target
        _check_host()
        self.target = get_target("ios-arm64")
        self.udid = udid or self._first_device()
        self.id = f"{self.driver}:{self.udid}"

    @classmethod
    def from_spec(cls, arg: str) -> "IOSDevice":
        return cls(arg)

    def _devicectl(self, *args: str, timeout_s: float = 300) -> Completed:
        return run_argv(["xcrun", "devicectl", *args], timeout_s=timeout_s, cwd=Path.cwd())

    def _first_device(self) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "devices.json"
            done = self._devicectl("list", "devices", "--json-output", str(out), timeout_s=60)
            if done.returncode != 0 or not out.is_file():
                raise EdgeSLMError(f"xcrun devicectl list devices failed: {done.stderr.strip()[:200]}",
                                   fix="install Xcode 15+ and pair the iPhone")
            devices = json.loads(out.read_text()).get("result", {}).get("devices", [])
        if not devices:
            raise EdgeSLMError("no paired iOS device", fix="connect and trust the iPhone, then retry")
        return devices[0]["identifier"]

    def push(self, local: Path, remote: str) -> None:
        done = self._devicectl("device", "copy", "to", "--device", self.udid, "--domain-type",
                               "appDataContainer", "--domain-identifier", APP_ID, "--source", str(local),
                               "--destination", str(PurePosixPath("Documents") / remote))
        if done.returncode != 0:
            raise EdgeSLMError(f"push to {self.id} failed: {done.stderr.strip()[:200]}", path=local)

    def pull(self, remote: str, local: Path) -> None:
        done = self._devicectl("device", "copy", "from", "--device", self.udid, "--domain-type",
                               "appDataContainer", "--domain-identifier", APP_ID, "--source",
                               str(PurePosixPath("Documents") / remote), "--destination", str(local))
        if done.returncode != 0:
            raise EdgeSLMError(f"pull from {self.id} failed: {done.stderr.strip()[:200]}", path=local)

    def run(self, argv: list[str], timeout_s: float) -> Completed:
        if not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of str (never a shell string)")
        return self._devicectl("device", "process", "launch", "--device", self.udid, "--console",
                               "--terminate-existing", APP_ID, *argv, timeout_s=timeout_s)

    def fingerprint(self) -> dict:
        return {"driver": self.driver, "udid": self.udid, "app": APP_ID, "host": platform.node()}
