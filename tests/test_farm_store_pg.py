"""The PostgreSQL results store against a real server started by the test (initdb in a temp dir, own port,
trust auth on 127.0.0.1; as root the server runs as the `postgres` user, which PostgreSQL requires).
Skips with the reason when psycopg or the server binaries (initdb, postgres) are not installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.farm_helpers import farm_bundle, free_port, write_farm


def _server_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(hits[-1]) if hits else None


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'psycopg[binary]')")
    initdb, postgres = _server_bin("initdb"), _server_bin("postgres")
    if not initdb or not postgres:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not installed")
    as_user = []
    data = Path(tempfile.mkdtemp(prefix="edgeslm-pg-"))
    if os.geteuid() == 0:                        # postgres refuses to run as root
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            pytest.skip("running as root and no 'postgres' user to run the server as")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data / "db"), "-A", "trust", "-U", "edgeslm"], check=True,
                   capture_output=True)
    server = subprocess.Popen([*as_user, postgres, "-D", str(data / "db"), "-p", str(port), "-k", str(data),
                               "-c", "listen_addresses=127.0.0.1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    import psycopg
    url = f"postgresql://edgeslm@127.0.0.1:{port}/postgres"
    deadline = time.time() + 60
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.time() > deadline or server.poll() is not None:
                raise
            time.sleep(0.2)
    yield url
    os.killpg(server.pid, 15)                    # smart shutdown of the server this fixture started
    server.wait(60)
    shutil.rmtree(data, ignore_errors=True)


def test_pg_store_roundtrip_and_idempotence(pg_url):
    from edgeslm.errors import EdgeSLMError
    from edgeslm.farm.store import open_store
    store = open_store(pg_url)
    store.create_run("pg-1", {"k": 1})
    assert store.add_result("pg-1", "job", {"status": "ok", "instructions_per_token": 42, "provenance": {"a": 1}})
    assert not store.add_result("pg-1", "job", {"status": "wrong"})
    (row,) = store.results("pg-1")
    assert row["status"] == "ok" and row["instructions_per_token"] == 42 and row["provenance"] == {"a": 1}
    assert store.done_keys("pg-1") == {"job"} and store.run("pg-1")["spec"] == {"k": 1}
    with pytest.raises(EdgeSLMError, match="already exists"):
        store.create_run("pg-1", {})


def test_farm_run_into_postgres_and_report(pg_url, tmp_path, tmp_path_factory):
    from edgeslm.farm.farmfile import load_farm
    from edgeslm.farm.matrix import Settings, run_matrix
    from edgeslm.farm.store import open_store
    from edgeslm.report import render
    bundle = farm_bundle(tmp_path_factory)
    farm = load_farm(write_farm(tmp_path / "farm.toml", [
        {"id": "pc", "driver": "local", "target": "host", "workdir": str(tmp_path / "w")}], store=pg_url))
    assert farm.store == pg_url
    store = open_store(farm.store)
    doc = run_matrix(farm, [str(bundle)], store, prompt_lengths=(8, 16), threads=(1,), progress=False,
                     settings=Settings(max_new_tokens=4, reps=2, warmup=0, timeout_s=120))
    assert doc["status"] == "ok" and len(doc["results"]) == 2 and doc["store"] == pg_url
    md = render(store, doc["run_id"], "md")
    mean = doc["results"][0]["decode_tokens_per_s"]["mean"]
    assert f"{mean:.3f}" in md
