"""Matrix runs and their faults: every job recorded exactly once, whatever happens to the controller.

- farm.toml mistakes: one line naming file:line (unknown key, missing field, unknown driver, bad TOML)
- kill -9 of `edgeslm profile --farm` mid-run, then --resume: committed rows kept, the rest run once
- two `edgeslm profile` processes writing one store at once (WAL + busy timeout): both runs complete
- results disk full: a real 256 KiB tmpfs when running as root (mount), else RLIMIT_FSIZE on the
  controller (a stand-in: the kernel refuses writes past the limit with EFBIG); exit 2 naming the store,
  committed rows intact (integrity_check), --resume finishes once space is back
- runner that segfaults / hangs on a device: an "error" result each (recorded once), the others ok
- store: schema version recorded, a newer schema refused, a repeated job key is a no-op
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import register
from edgeslm.farm.farmfile import load_farm
from edgeslm.farm.local import LocalDevice
from edgeslm.farm.matrix import Settings, run_matrix
from edgeslm.farm.store import SCHEMA_VERSION, Store
from tests.farm_helpers import farm_bundle, write_farm

EDGESLM = [sys.executable, "-m", "edgeslm.cli.main"]
FAST = ["--max-new-tokens", "4", "--reps", "1", "--warmup", "0", "--threads", "1,2"]


def local(id: str, tmp: Path) -> dict:
    return {"id": id, "driver": "local", "target": "host", "workdir": str(tmp / f"w-{id}")}


def profile(*args, **kw):
    return subprocess.Popen([*EDGESLM, "profile", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kw)


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as c:
        try:
            return c.execute("SELECT id, run_id, job_key FROM results ORDER BY id").fetchall()
        except sqlite3.OperationalError:         # the controller has not created the schema yet
            return []


@pytest.mark.parametrize("text,needle,line", [
    ('[[device]]\nid = "a"\ndriver = "local"\ntarget = "host"\nport = 22\n', "unknown key 'port'", 5),
    ('[[device]]\nid = "a"\ndriver = "local"\ntarget = "host"\n\n[[device]]\nid = "b"\ndriver = "local"\n',
     "[[device]] #2 lacks 'target'", 6),
    ('[[device]]\nid = "a"\ndriver = "pixel"\ntarget = "host"\n', "unknown driver 'pixel'", 3),
    ('[[device]]\nid = "a"\ndriver = "local"\ntarget = host\n', "not valid TOML", None),
    ('colour = "red"\n[[device]]\nid = "a"\ndriver = "local"\ntarget = "host"\n', "unknown key 'colour'", 1),
    ('[[device]]\nid = "a"\ndriver = "local"\ntarget = "host"\n[[device]]\nid = "a"\ndriver = "local"\n'
     'target = "host"\n', "device id 'a' given twice", 6),
])
def test_farm_file_errors_name_the_line(tmp_path, text, needle, line):
    path = tmp_path / "farm.toml"
    path.write_text(text)
    with pytest.raises(EdgeSLMError) as err:
        load_farm(path)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    assert (f"{path}:{line}:" in msg) if line else ("line 4" in msg)


def test_farm_file_error_on_the_cli_is_one_line(tmp_path):
    path = tmp_path / "farm.toml"
    path.write_text('[[device]]\nid = "a"\ndriver = "local"\ntarget = "host"\nhostname = "x"\n')
    proc = subprocess.run([*EDGESLM, "profile", "b", "--farm", path], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeslm ")]
    assert proc.returncode == 2 and len(lines) == 1 and f"{path}:5" in lines[0] and "Traceback" not in proc.stderr


def test_kill_9_then_resume_records_every_job_once(tmp_path, tmp_path_factory):
    bundle = farm_bundle(tmp_path_factory)
    db = tmp_path / "r.sqlite"
    farm = write_farm(tmp_path / "farm.toml", [local("a", tmp_path), local("b", tmp_path)], store=db)
    proc = profile(bundle, "--farm", farm, "--prompt-lengths", "8,16,24,32,40,48", *FAST, "--quiet")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (db.exists() and len(rows(db)) >= 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)                 # the controller and its runners, no cleanup
    proc.wait()
    before = rows(db)
    assert 2 <= len(before) < 24, "the run finished before the kill: the test proves nothing"
    run_id = before[0][1]
    done = subprocess.run([*EDGESLM, "profile", "--farm", farm, "--resume", run_id, "--json", "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    after = rows(db)
    keys = [k for _, _, k in after]
    assert doc["run_id"] == run_id and doc["jobs"] == 24 and len(keys) == len(set(keys)) == 24
    assert after[:len(before)] == before                # nothing committed was lost or rewritten
    again = subprocess.run([*EDGESLM, "profile", "--farm", farm, "--resume", run_id, "--json", "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and rows(db) == after  # resuming a finished run adds nothing


def test_two_controllers_write_one_store_at_once(tmp_path, tmp_path_factory):
    bundle = farm_bundle(tmp_path_factory)
    db = tmp_path / "shared.sqlite"
    farm = write_farm(tmp_path / "farm.toml", [local("a", tmp_path), local("b", tmp_path)], store=db)
    procs = [profile(bundle, "--farm", farm, "--device", d, "--prompt-lengths", "8,16,24", *FAST, "--json",
                     "--quiet") for d in ("a", "b")]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
        docs.append(json.loads(out))
    assert docs[0]["run_id"] != docs[1]["run_id"]
    got = rows(db)
    assert len(got) == 12 and len({(r, k) for _, r, k in got}) == 12
    for doc in docs:
        assert len(doc["results"]) == 6 and doc["status"] == "ok"
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.fixture
def small_disk(tmp_path):
    """(folder, how): a 256 KiB tmpfs if we may mount (root), else a plain folder + RLIMIT_FSIZE
    (EDGESLM_TEST_DISK=rlimit forces the stand-in)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.environ.get("EDGESLM_TEST_DISK") != "rlimit" and os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                             capture_output=True).returncode == 0:
        yield mnt, "tmpfs"
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    else:
        yield mnt, "rlimit"


def test_results_disk_full_keeps_committed_rows_and_resumes(tmp_path, tmp_path_factory, small_disk):
    disk, how = small_disk
    bundle = farm_bundle(tmp_path_factory)
    db = disk / "r.sqlite"
    farm = write_farm(tmp_path / "farm.toml", [local("a", tmp_path)], store=db)
    Store(db).close()                                   # the schema fits; results will not
    filler = disk / "filler"
    limit = None
    if how == "tmpfs":
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 48 * 1024))
    else:
        limit = db.stat().st_size + 48 * 1024

    def cap():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG instead of death past the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([*EDGESLM, "profile", bundle, "--farm", farm, "--prompt-lengths", "8,16,24,32,40,48",
                           *FAST, "--quiet"], capture_output=True, text=True, timeout=600,
                          preexec_fn=cap if limit else None)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgeslm ")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert "cannot write the results store" in lines[0] and str(db) in lines[0] and "--resume" in lines[0]
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        run_id = c.execute("SELECT run_id FROM runs").fetchone()[0]
    before = rows(db)
    assert len(before) < 12
    filler.unlink(missing_ok=True)
    if how == "tmpfs":
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
    done = subprocess.run([*EDGESLM, "profile", "--farm", farm, "--resume", run_id, "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = rows(db)
    assert len(after) == len({k for _, _, k in after}) == 12 and after[:len(before)] == before


@register
class SegfaultDevice(LocalDevice):
    """Test driver: the runner starts (--help) but every measured run segfaults."""
    driver = "test-segfault"

    def run(self, argv, timeout_s):
        if "--help" in argv:
            return super().run(argv, timeout_s)
        return super().run(["sh", "-c", "kill -SEGV $$"], timeout_s)


@register
class HangDevice(LocalDevice):
    """Test driver: the runner starts (--help) but every measured run hangs."""
    driver = "test-hang"

    def run(self, argv, timeout_s):
        if "--help" in argv:
            return super().run(argv, timeout_s)
        return super().run(["sleep", "60"], timeout_s)


def test_segfault_and_hang_are_error_results_recorded_once(tmp_path, tmp_path_factory):
    bundle = farm_bundle(tmp_path_factory)
    farm = load_farm(write_farm(tmp_path / "farm.toml", [
        local("good", tmp_path), {**local("crashy", tmp_path), "driver": "test-segfault"},
        {**local("stuck", tmp_path), "driver": "test-hang"}]))
    store = Store(tmp_path / "r.sqlite")
    t0 = time.perf_counter()
    doc = run_matrix(farm, [str(bundle)], store, prompt_lengths=(8, 16), threads=(1,), progress=False,
                     settings=Settings(max_new_tokens=4, reps=1, warmup=0, timeout_s=1.5, retries=2))
    assert time.perf_counter() - t0 < 60 and doc["status"] == "error" and doc["pending"] == []
    by = {(r["device"], r["prompt_length"]): r for r in doc["results"]}
    assert len(doc["results"]) == len(by) == 6
    for n in (8, 16):
        assert by[("good", n)]["status"] == "ok"
        assert by[("crashy", n)]["status"] == "error" and "crashed (SIGSEGV)" in by[("crashy", n)]["error"]
        assert by[("stuck", n)]["status"] == "error" and "timed out after 1.5 s" in by[("stuck", n)]["error"]
        assert by[("crashy", n)]["attempts"] == 1          # a crash is a result, not a transport retry
    assert doc["unhealthy"] == []


def test_store_schema_and_idempotent_results(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.create_run("r1", {"x": 1})
    assert store.add_result("r1", "k", {"status": "ok", "decode_tokens_per_s": None, "new_field": [1, 2]})
    assert not store.add_result("r1", "k", {"status": "wrong"})
    (row,) = store.results("r1")
    assert row["status"] == "ok" and row["new_field"] == [1, 2] and row["decode_tokens_per_s"] is None
    with pytest.raises(EdgeSLMError, match="already exists"):
        store.create_run("r1", {})
    store.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    store.close()
    with pytest.raises(EdgeSLMError, match=f"schema {SCHEMA_VERSION + 1}"):
        Store(tmp_path / "s.sqlite")
