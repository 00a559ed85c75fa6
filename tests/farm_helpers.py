"""Helpers for the farm tests: a real OpenSSH server on loopback, farm.toml writing, the shared bundle.

- Sshd(tmp): generates an ed25519 host key and a user key, writes its own sshd_config (own port on
  127.0.0.1, AuthorizedKeysFile in tmp, no PAM) and runs `/usr/sbin/sshd -D -e` as the current user.
  As root sshd needs its privilege-separation dir /run/sshd; StrictModes is off because pytest's tmp
  folders sit under world-writable /tmp (StrictModes walks the key file's parents). kill_all() kills the
  listener and every per-connection child (the "sshd killed mid-run" fault).
- write_farm(path, devices, store): farm.toml from dicts (values as TOML literals).
- farm_bundle(factory): the tiny int8 llama bundle, shared with test_farm_profile.py in one session
  ($EDGESLM_TEST_BUNDLES=DIR keeps it between sessions while developing).
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.native_helpers import llama_bundle, once

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if missing:
        msg = f"{', '.join(missing)} not installed (make setup installs openssh-server, adb, chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


class Sshd:
    def __init__(self, root: Path):
        require(SSHD, "ssh", "ssh-keygen")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.port, self.user = free_port(), getpass.getuser()
        self.host_key, self.identity = self.root / "host_ed25519", self.root / "id_ed25519"
        for key in (self.host_key, self.identity):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        shutil.copy(f"{self.identity}.pub", self.root / "authorized_keys")
        self.known_hosts = self.root / "known_hosts"
        pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n")
        self.config = self.root / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", f"PidFile {self.root / 'sshd.pid'}",
            "PermitRootLogin prohibit-password", "MaxStartups 50", "MaxSessions 50", "LogLevel ERROR", ""]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = None
        self.start()

    def start(self) -> None:
        self.log = open(self.root / "sshd.log", "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.root / "sshd.log").read_text())
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    def kill_all(self) -> None:
        """SIGKILL the listener and every session child it forked (only processes this fixture started)."""
        import psutil
        if self.proc is None or self.proc.poll() is not None:
            return
        parent = psutil.Process(self.proc.pid)
        family = [parent, *parent.children(recursive=True)]
        for p in family:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait()
        self.log.close()

    def device_table(self, id: str, workdir: str, target: str = "host") -> dict:
        return {"id": id, "driver": "ssh", "target": target, "host": "127.0.0.1", "port": self.port,
                "user": self.user, "identity": str(self.identity), "known_hosts": str(self.known_hosts),
                "workdir": workdir}


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))        # a JSON string is a valid TOML basic string


def write_farm(path: Path, devices: list[dict], store: Path | None = None) -> Path:
    lines = ["[store]", f"path = {toml_value(store)}", ""] if store else []
    for d in devices:
        lines.append("[[device]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in d.items()]
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)


def farm_bundle(factory, quant: str = "int8") -> Path:
    """Shared with test_farm_profile.py / native tests; $EDGESLM_TEST_BUNDLES keeps it across sessions (dev)."""
    root = Path(os.environ["EDGESLM_TEST_BUNDLES"]) if os.environ.get("EDGESLM_TEST_BUNDLES") \
        else factory.getbasetemp() / "native-llama"
    return once(f"llama-bundle-{quant}", lambda: llama_bundle(root, quant))
