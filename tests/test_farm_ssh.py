"""The ssh driver against a real OpenSSH server on loopback (tests/farm_helpers.Sshd), and the adb driver
with the real adb binary and no phone attached.

- push/run/pull with shell metacharacters in paths and argv, the remote timeout, a remote segfault
- host-key checking on: a known_hosts with another key is a one-line input error, never a retry
- sshd killed mid-run: the board's jobs fail over to the local device of the same target; every job is
  recorded exactly once (the store's job keys), the board is reported unhealthy
- adb with no device: a clean "no device" (TransportError naming the serial); a farm run leaves the
  jobs pending (exit 4) instead of recording anything. Push/run/getprop/thermal need a phone: not run here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import TransportError
from edgeslm.farm.farmfile import load_farm, open_from_config
from edgeslm.farm.matrix import Settings, run_matrix
from edgeslm.farm.store import Store
from tests.farm_helpers import Sshd, farm_bundle, free_port, require, write_farm

METACHARS = "b; $(touch pwned) 'q' `id` & |x \"y\" *"
EDGESLM = [sys.executable, "-m", "edgeslm.cli.main"]


@pytest.fixture
def sshd(tmp_path):
    server = Sshd(tmp_path / "sshd")
    yield server
    server.kill_all()


def test_ssh_push_run_pull_timeout_crash(sshd, tmp_path):
    dev = open_from_config(sshd.device_table("board", str(tmp_path / "remote dir")), tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("hello")
    dev.push(src, f"bundles/{METACHARS}")
    dev.push(src, f"bundles/{METACHARS}")                      # replaces, never nests
    assert (tmp_path / "remote dir" / "bundles" / METACHARS / "f.txt").read_text() == "hello"
    assert not (tmp_path / "remote dir" / "bundles" / METACHARS / "src").exists()
    args = ["a b", METACHARS, "$HOME", "--x=;ls", ""]
    done = dev.run(["printf", "%s\\n", *args], timeout_s=30)
    assert done.returncode == 0 and done.stdout.split("\n")[:-1] == args
    assert dev.run(["cat", f"bundles/{METACHARS}/f.txt"], 30).stdout == "hello"
    dev.pull(f"bundles/{METACHARS}/f.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "hello"
    hung = dev.run(["sleep", "60"], timeout_s=2)
    assert hung.timed_out and hung.duration_s < 20
    crashed = dev.run(["sh", "-c", "kill -SEGV $$"], timeout_s=30)
    assert crashed.returncode == -11 and not crashed.timed_out
    fp = dev.fingerprint()
    assert fp["driver"] == "ssh" and fp["cpu_count"] >= 1 and fp["uname"].startswith("Linux")
    assert set(dev.environment()) == {"thermal_c", "governor"}
    assert not list(tmp_path.rglob("pwned")) and not Path("pwned").exists()


def test_ssh_host_key_mismatch_is_an_input_error(sshd, tmp_path):
    other = tmp_path / "other_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} " + " ".join(Path(f"{other}.pub").read_text().split()[:2]) + "\n")
    dev = open_from_config({**sshd.device_table("board", "w"), "known_hosts": str(wrong)}, tmp_path)
    with pytest.raises(EdgeSLMError, match="host key verification failed"):
        dev.run(["true"], 10)
    with pytest.raises(EdgeSLMError, match="known_hosts file not found"):
        open_from_config({**sshd.device_table("board", "w"), "known_hosts": "missing"}, tmp_path)


def test_sshd_killed_mid_run_fails_over_to_same_target(sshd, tmp_path, tmp_path_factory):
    bundle = farm_bundle(tmp_path_factory)
    farm = load_farm(write_farm(tmp_path / "farm.toml", [
        sshd.device_table("board", str(tmp_path / "board")),
        {"id": "pc", "driver": "local", "target": "host", "workdir": str(tmp_path / "pc")}]))
    store = Store(tmp_path / "r.sqlite")
    out = {}
    worker = threading.Thread(target=lambda: out.update(doc=run_matrix(
        farm, [str(bundle)], store, prompt_lengths=(8, 16), threads=(1, 2), progress=False,
        settings=Settings(max_new_tokens=4, reps=1, warmup=0, timeout_s=60, retries=1, backoff_s=0.2))))
    worker.start()
    def board_rows():
        runs = store.runs()
        return [r for r in store.results(runs[-1]["run_id"]) if r["device"] == "board"] if runs else []

    deadline = time.time() + 240
    while time.time() < deadline and not board_rows():
        time.sleep(0.2)
    sshd.kill_all()                                               # listener and open sessions
    worker.join(300)
    doc = out["doc"]
    rows = doc["results"]
    assert doc["status"] == "ok" and doc["pending"] == [] and doc["unhealthy"] == ["board"], doc["events"]
    keys = [r["job_key"] for r in rows]
    assert len(keys) == len(set(keys)) == doc["jobs"] == 8
    moved = [r for r in rows if r["requested_device"] == "board" and r["device"] == "pc"]
    assert 1 <= len(moved) <= 3 and all(r["status"] == "ok" for r in rows)
    on_board = [r for r in rows if r["device"] == "board"]
    assert on_board and on_board[0]["provenance"]["device_fingerprint"]["driver"] == "ssh"
    assert any(e["event"] == "unhealthy" and e["moved_to"] == ["pc"] for e in doc["events"])


@pytest.fixture
def adb_port():
    require("adb")
    port = free_port()
    yield port
    subprocess.run(["adb", "kill-server"], env={**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)},
                   capture_output=True, timeout=30)


def test_adb_without_a_phone_reports_no_device(adb_port, tmp_path, tmp_path_factory):
    from edgeslm.farm.adb import AdbDevice
    dev = AdbDevice("edgeslm-test-serial", server_port=adb_port)
    with pytest.raises(TransportError, match="no device 'edgeslm-test-serial'"):
        dev.check()
    with pytest.raises(TransportError, match="no device"):
        dev.run(["true"], 10)
    bundle = farm_bundle(tmp_path_factory)
    farm = write_farm(tmp_path / "farm.toml", [{"id": "phone", "driver": "adb", "target": "android-arm64",
                                                "serial": "edgeslm-test-serial", "server_port": adb_port}],
                      store=tmp_path / "r.sqlite")
    proc = subprocess.run([*EDGESLM, "profile", str(bundle), "--farm", str(farm), "--prompt-lengths", "8",
                           "--retries", "0", "--json", "--quiet"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 4, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "incomplete" and doc["results"] == [] and len(doc["pending"]) == 1
    assert "UNHEALTHY phone" in proc.stderr and "no device 'edgeslm-test-serial'" in proc.stderr
    assert f"--resume {doc['run_id']}" in proc.stderr.replace("\n", "")
