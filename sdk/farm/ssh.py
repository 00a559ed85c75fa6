"""`ssh`: a Linux board reached with the OpenSSH client binary (push, run, pull), host-key checking on.

farm.toml keys: host (required), port, user, identity (private key), known_hosts (the file whose entry
must match the board's host key; StrictHostKeyChecking=yes), workdir (remote; default "edgeslm-farm",
relative to the login's home), ssh (client binary).

Steps of run(argv, timeout): the remote command string is built in ONE place, remote_command(), with
shlex.join over [sh -c SCRIPT edgeslm WORKDIR TIMEOUT argv...]; SCRIPT cds into WORKDIR and runs argv
under coreutils `timeout` (kills the hung runner on the board, not just the local client). Exit 255 is
ssh's own failure: a TransportError (retried, then the device is unhealthy), except a host key mismatch,
which is an input error. Exit 124 is the remote timeout; 129-192 a runner killed by signal (128+N).
push = local `tar c` piped to a remote `tar x` into a staging folder then renamed; pull the reverse.
"""
from __future__ import annotations

import shlex
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import MEASURED, Completed, TransportError, copy_in, register

# $1 workdir, $2 timeout seconds (0: none), then argv. The program's exit status (128+N for a signal)
# comes back through ssh unchanged.
RUN = ('cd -- "$1" || exit 125; t=$2; shift 2; '
       'if [ "$t" = 0 ]; then "$@"; else timeout -k 5 "$t" "$@"; fi')
# $1 parent, $2 staging name, $3 final name, $4 name inside the tar stream (stdin).
PUSH = ('set -e; mkdir -p -- "$1"; cd -- "$1"; rm -rf -- "$2"; mkdir -- "$2"; tar -xf - -C "$2"; '
        'rm -rf -- "$3"; mv -- "$2/$4" "$3"; rmdir -- "$2"')
FINGERPRINT = ('uname -srm; hostname; nproc; grep -m1 -E "model name|Hardware|CPU part" /proc/cpuinfo '
               '| cut -d: -f2; grep MemTotal /proc/meminfo | tr -s " " | cut -d" " -f2')
THERMAL = ('for z in /sys/class/thermal/thermal_zone*; do [ -r "$z/temp" ] && '
           'echo "$(cat "$z/type" 2>/dev/null || echo "${z##*/}") $(cat "$z/temp")"; done; '
           'cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null | sed "s/^/governor /"; true')


def check_remote(remote: str) -> PurePosixPath:
    rel = PurePosixPath(remote)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise EdgeSLMError(f"remote path '{remote}' must be relative to the device's work directory",
                           fix="pass a path like 'bundles/<name>'")
    return rel


def parse_thermal(text: str) -> dict:
    """'<zone type> <millidegrees>' lines (+ 'governor <name>') -> {"thermal_c": {...}, "governor": ...}."""
    zones, governor = {}, None
    for line in text.splitlines():
        name, _, value = line.strip().rpartition(" ")
        if name == "governor":
            governor = value
        elif name and value.lstrip("-").isdigit():
            key, k = name, 2
            while key in zones:
                key, k = f"{name}#{k}", k + 1
            zones[key] = int(value) / 1000.0
    return {"thermal_c": zones, "governor": governor}


@register
class SshDevice:
    driver = "ssh"
    latency_kind = MEASURED
    rss_note = None
    CONFIG_KEYS = ("host", "port", "user", "identity", "known_hosts", "ssh")

    def __init__(self, host: str, target: str = "linux-arm64", *, port: int = 22, user: str | None = None,
                 identity: str | Path | None = None, known_hosts: str | Path | None = None,
                 workdir: str = "edgeslm-farm", ssh: str = "ssh", connect_timeout: float = 10):
        from edgeslm.targets import get_target
        self.target = get_target(target)
        self.host, self.port, self.user, self.ssh = host, int(port), user, ssh
        self.identity = Path(identity) if identity else None
        self.known_hosts = Path(known_hosts) if known_hosts else None
        if self.known_hosts is not None and not self.known_hosts.is_file():
            raise EdgeSLMError("known_hosts file not found (host-key checking stays on)", path=self.known_hosts,
                               fix=f"ssh-keyscan -p {self.port} {host} > {self.known_hosts} after checking the key")
        self.workdir = str(workdir)
        self.connect_timeout = connect_timeout
        self.id = f"ssh:{user + '@' if user else ''}{host}:{port}"
        self.labels: list[str] = []

    @classmethod
    def from_config(cls, cfg: dict, base: Path) -> "SshDevice":
        if not cfg.get("host"):
            raise EdgeSLMError("an ssh device needs 'host'", fix='host = "pi5.lab" (and known_hosts = "...")')
        rel = lambda p: None if p is None else (base / p if not Path(p).is_absolute() else Path(p))  # noqa: E731
        return cls(cfg["host"], cfg["target"], port=cfg.get("port", 22), user=cfg.get("user"),
                   identity=rel(cfg.get("identity")), known_hosts=rel(cfg.get("known_hosts")),
                   workdir=cfg.get("workdir", "edgeslm-farm"), ssh=cfg.get("ssh", "ssh"))

    @classmethod
    def from_spec(cls, arg: str) -> "SshDevice":
        raise EdgeSLMError("ssh devices are declared in farm.toml (host, user, known_hosts)",
                           fix="edgeslm profile BUNDLE --farm farm.toml (see README: the device farm)")

    # ---- the one place that builds ssh argv and the remote command string

    def ssh_argv(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={self.connect_timeout:g}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR", "-p", str(self.port)]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity:
            opts += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.user:
            opts += ["-l", self.user]
        return [self.ssh, *opts, "--", self.host]

    def remote_command(self, argv: list[str], timeout_s: float | None = None, *, cwd: str | None = None) -> str:
        """The remote shell sees exactly this string: every word quoted by shlex.join, once."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of str (never a shell string)")
        secs = "0" if timeout_s is None else str(max(1, int(round(timeout_s))))
        return shlex.join(["sh", "-c", RUN, "edgeslm", cwd or self.workdir, secs, *argv])

    def _ssh(self, argv: list[str], timeout_s: float | None, *, stdin=None, cwd: str | None = None,
             text: bool = True) -> subprocess.CompletedProcess:
        cmd = [*self.ssh_argv(), self.remote_command(argv, timeout_s, cwd=cwd)]
        limit = (timeout_s or 600) + self.connect_timeout + 15     # the remote timeout fires first
        try:
            done = subprocess.run(cmd, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=limit, text=text)
        except subprocess.TimeoutExpired:
            raise TransportError(f"{self.id}: ssh did not return within {limit:g} s") from None
        except OSError as err:
            raise EdgeSLMError(f"cannot start {self.ssh}: {err.strerror}", fix="apt-get install openssh-client")
        if done.returncode == 255:
            err = done.stderr if text else done.stderr.decode(errors="replace")
            last = (err.strip().splitlines() or ["connection failed"])[-1]
            if "Host key verification failed" in err or "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
                raise EdgeSLMError(f"{self.id}: host key verification failed", path=self.known_hosts,
                                   fix="check the board's key and update known_hosts")
            raise TransportError(f"{self.id}: ssh: {last}")
        return done

    # ---- Device protocol

    def ensure_workdir(self) -> None:
        self._ssh(["mkdir", "-p", "--", self.workdir], 60, cwd=".")

    def check(self) -> None:
        """Reachable, host key accepted, work directory present (TransportError / EdgeSLMError otherwise)."""
        self.ensure_workdir()

    def run(self, argv: list[str], timeout_s: float) -> Completed:
        t0 = time.perf_counter()
        done = self._ssh(list(argv), timeout_s)
        rc, dt = done.returncode, time.perf_counter() - t0
        if rc == 124 or (rc == 137 and dt >= timeout_s):
            return Completed(rc, done.stdout, done.stderr, dt, timed_out=True)
        if rc == 125 and "can't cd" in done.stderr:
            raise EdgeSLMError(f"{self.id}: remote workdir '{self.workdir}' missing", fix="push first")
        if 128 < rc <= 192:          # killed by signal rc-128 on the board
            rc = -(rc - 128)
        return Completed(rc, done.stdout, done.stderr, dt)

    def push(self, local: Path, remote: str) -> None:
        local = Path(local)
        if not local.exists():
            raise EdgeSLMError("nothing to push: no such file or folder", path=local)
        rel = check_remote(remote)
        stage = f".push-{rel.name}"
        tar = subprocess.Popen(["tar", "-C", str(local.parent), "-cf", "-", "--", local.name],
                               stdout=subprocess.PIPE)
        try:
            self.ensure_workdir()
            done = self._ssh(["sh", "-c", PUSH, "push", str(rel.parent), stage, rel.name, local.name], 600,
                             stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()
        if done.returncode != 0:
            raise TransportError(f"{self.id}: push {remote} failed: {done.stderr.strip()[-300:]}")

    def pull(self, remote: str, local: Path) -> None:
        rel = check_remote(remote)
        done = self._ssh(["tar", "-C", str(rel.parent), "-cf", "-", "--", rel.name], 600, text=False)
        if done.returncode != 0:
            raise TransportError(f"{self.id}: pull {remote} failed: {done.stderr.decode(errors='replace')[-300:]}")
        with tempfile.TemporaryDirectory() as tmp:
            tf = Path(tmp) / "x.tar"
            tf.write_bytes(done.stdout)
            with tarfile.open(tf) as archive:
                archive.extractall(Path(tmp) / "out", filter="data")
            copy_in(Path(tmp) / "out" / rel.name, Path(local))

    def fingerprint(self) -> dict:
        """uname, host name, CPU model and count, memory: read once per device object (one ssh round trip)."""
        if getattr(self, "_fingerprint", None):
            return self._fingerprint
        done = self._ssh(["sh", "-c", FINGERPRINT], 60, cwd=".")
        lines = [ln.strip() for ln in done.stdout.splitlines()] + [""] * 5
        fp = {"driver": self.driver, "host": self.host, "port": self.port, "uname": lines[0],
                "hostname": lines[1], "cpu_count": int(lines[2]) if lines[2].isdigit() else None,
                "cpu_model": lines[3] or None,
                "memory_bytes": int(lines[4]) * 1024 if lines[4].isdigit() else None}
        self._fingerprint = fp
        return fp

    def environment(self) -> dict:
        """Thermal zone temperatures (deg C) and the CPU governor, when the board exposes them."""
        return parse_thermal(self._ssh(["sh", "-c", THERMAL], 30, cwd=".").stdout)

