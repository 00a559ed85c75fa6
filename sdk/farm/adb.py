"""`adb`: an Android phone through the real `adb` binary. Runner folder and bundle go to /data/local/tmp.

farm.toml keys: serial (required: `adb devices` name), adb (binary), server_port (adb server port;
default adb's own 5037), workdir (default /data/local/tmp/edgeslm).

Steps: check() = `adb -s SERIAL get-state` (a missing/offline phone is a TransportError that names the
serial: retried, then the device is unhealthy) -> push = `adb push` into a staging name then `mv` ->
run = `adb -s SERIAL shell <one string>`, the string built once with shlex.join (adb's shell joins its
arguments with spaces: the phone's sh parses them, so they must be quoted here) -> pull = `adb pull`.
fingerprint() reads getprop (ro.build.fingerprint, model, soc, abi); environment() reads the thermal zones
and every CPU's scaling governor, before and after each job (matrix.environment()).

Verified here: only the no-device path (the real adb binary with no phone attached). Push/run/getprop/
thermal need a phone and were not run on this machine.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import MEASURED, Completed, TransportError, register
from edgeslm.farm.ssh import RUN, THERMAL, check_remote, parse_thermal

PROPS = ("ro.build.fingerprint", "ro.product.model", "ro.product.manufacturer", "ro.soc.model",
         "ro.product.cpu.abi", "ro.build.version.release", "ro.build.version.sdk")
GOVERNORS = "for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do echo $g $(cat $g); done"


@register
class AdbDevice:
    driver = "adb"
    latency_kind = MEASURED
    rss_note = None
    CONFIG_KEYS = ("serial", "adb", "server_port")

    def __init__(self, serial: str, target: str = "android-arm64", *, adb: str | None = None,
                 server_port: int | None = None, workdir: str = "/data/local/tmp/edgeslm"):
        from edgeslm.targets import get_target
        self.target = get_target(target)
        self.serial, self.workdir = serial, str(workdir)
        self.adb = adb or shutil.which("adb")
        if self.adb is None:
            raise EdgeSLMError("adb not found", fix="apt-get install -y adb")
        self.env = {**os.environ, **({"ANDROID_ADB_SERVER_PORT": str(server_port)} if server_port else {})}
        self.id = f"adb:{serial}"
        self.labels: list[str] = []

    @classmethod
    def from_config(cls, cfg: dict, base: Path) -> "AdbDevice":
        if not cfg.get("serial"):
            raise EdgeSLMError("an adb device needs 'serial'", fix="serial = \"<name from `adb devices`>\"")
        return cls(cfg["serial"], cfg["target"], adb=cfg.get("adb"), server_port=cfg.get("server_port"),
                   workdir=cfg.get("workdir", "/data/local/tmp/edgeslm"))

    @classmethod
    def from_spec(cls, arg: str) -> "AdbDevice":
        if not arg:
            raise EdgeSLMError("adb needs a serial", fix="--device adb:SERIAL (see `adb devices`)")
        return cls(arg)

    def _adb(self, *args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run([self.adb, "-s", self.serial, *args], capture_output=True, text=True,
                                  errors="replace", timeout=timeout_s, env=self.env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise TransportError(f"{self.id}: adb {args[0]} did not return within {timeout_s:g} s") from None
        if check and done.returncode != 0:
            text = (done.stderr or done.stdout).strip()
            if "not found" in text or "no devices" in text or "offline" in text or "unauthorized" in text:
                raise TransportError(f"{self.id}: no device '{self.serial}' attached ({text.splitlines()[-1]})")
            raise TransportError(f"{self.id}: adb {args[0]} failed: {text[-300:]}")
        return done

    def check(self) -> str:
        """'device' when the phone is attached and authorized, else TransportError naming the serial."""
        return self._adb("get-state", timeout_s=30).stdout.strip()

    def _shell(self, argv: list[str], timeout_s: float | None, cwd: str | None = None):
        secs = "0" if timeout_s is None else str(max(1, int(round(timeout_s))))
        return self._adb("shell", shlex.join(["sh", "-c", RUN, "edgeslm", cwd or self.workdir, secs, *argv]),
                         timeout_s=(timeout_s or 600) + 30, check=False)

    def run(self, argv: list[str], timeout_s: float) -> Completed:
        self.check()
        t0 = time.perf_counter()
        done = self._shell(list(argv), timeout_s)
        rc, dt = done.returncode, time.perf_counter() - t0
        if rc == 124:
            return Completed(rc, done.stdout, done.stderr, dt, timed_out=True)
        if 128 < rc <= 192:
            rc = -(rc - 128)
        return Completed(rc, done.stdout, done.stderr, dt)

    def push(self, local: Path, remote: str) -> None:
        rel = check_remote(remote)
        dest = str(PurePosixPath(self.workdir) / rel)
        stage = f"{dest}.push"
        self.check()
        self._shell(["mkdir", "-p", str(PurePosixPath(dest).parent)], 60, cwd="/")
        self._shell(["rm", "-rf", stage], 60, cwd="/")
        self._adb("push", str(local), stage, timeout_s=600)
        done = self._shell(["sh", "-c", 'rm -rf -- "$2" && mv -- "$1" "$2"', "mv", stage, dest], 60, cwd="/")
        if done.returncode != 0:
            raise TransportError(f"{self.id}: could not move {stage} into place: {done.stderr.strip()}")

    def pull(self, remote: str, local: Path) -> None:
        self.check()
        self._adb("pull", str(PurePosixPath(self.workdir) / check_remote(remote)), str(local), timeout_s=600)

    def fingerprint(self) -> dict:
        self.check()
        props = {p: self._adb("shell", "getprop", p, timeout_s=30).stdout.strip() or None for p in PROPS}
        return {"driver": self.driver, "serial": self.serial, **props}

    def environment(self) -> dict:
        out = parse_thermal(self._shell(["sh", "-c", THERMAL], 30, cwd="/").stdout)
        govs = self._shell(["sh", "-c", GOVERNORS], 30, cwd="/").stdout.split("\n")
        out["governors"] = {ln.split("/")[5]: ln.split()[-1] for ln in govs if ln.count("/") >= 5 and " " in ln}
        return out
