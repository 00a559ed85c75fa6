"""Scale-out on Dask distributed: a real LocalCluster scheduler and two real `dask worker` processes,
each declaring a different device as a worker resource. Checks placement (each result ran on the worker
that holds its device), that no two jobs ran on one device at once (one resource unit), and that every
result landed in the controller's store exactly once.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from edgeslm.farm.farmfile import load_farm
from edgeslm.farm.matrix import Settings
from edgeslm.farm.scaleout import resource, run_matrix_dask
from edgeslm.farm.store import Store
from tests.farm_helpers import farm_bundle, write_farm


def test_two_workers_with_different_devices(tmp_path, tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    from edgeslm.native import build_runner
    bundle = farm_bundle(tmp_path_factory)
    build_runner("host", progress=False)        # cached; workers on one host must not build it concurrently
    farm = load_farm(write_farm(tmp_path / "farm.toml", [
        {"id": "board-a", "driver": "local", "target": "host", "workdir": str(tmp_path / "a")},
        {"id": "board-b", "driver": "local", "target": "host", "workdir": str(tmp_path / "b")}]))
    store = Store(tmp_path / "r.sqlite")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                    dashboard_address=None) as cluster:
        workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
                                     "--name", f"w-{d}", "--nthreads", "2", "--no-dashboard", "--resources",
                                     f"{resource('board-' + d)}=1"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for d in ("a", "b")]
        try:
            with distributed.Client(cluster) as client:
                client.wait_for_workers(2, timeout=60)
                held = {w["name"]: w["resources"] for w in client.scheduler_info()["workers"].values()}
                assert held == {"w-a": {"device:board-a": 1}, "w-b": {"device:board-b": 1}}
                doc = run_matrix_dask(client, farm, [str(bundle)], store, prompt_lengths=(8, 16), threads=(1, 2),
                                      settings=Settings(max_new_tokens=4, reps=1, warmup=0, timeout_s=120))
            cli = subprocess.run([sys.executable, "-m", "edgeslm.cli.main", "profile", str(bundle), "--farm",
                                  str(farm.path), "--store", str(store.path), "--dask", cluster.scheduler_address,
                                  "--device", "board-b", "--prompt-lengths", "8", "--threads", "1", "--reps", "1",
                                  "--max-new-tokens", "4", "--json"], capture_output=True, text=True, timeout=300)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
    assert cli.returncode == 0, cli.stderr[-2000:]
    via_cli = json.loads(cli.stdout)
    assert [(r["device"], r["worker"]) for r in via_cli["results"]] == [("board-b", "w-b")]
    rows = store.results(doc["run_id"])
    assert doc["status"] == "ok" and doc["pending"] == [] and len(rows) == doc["jobs"] == 8
    assert len({r["job_key"] for r in rows}) == 8
    for r in rows:
        assert r["worker"] == "w-" + r["device"][-1] and r["device"] == r["requested_device"]
        assert r["status"] == "ok" and r["decode_tokens_per_s"]["mean"] > 0
    # one job per device at a time (one resource unit, although each worker has 2 threads): no overlap
    for dev in ("board-a", "board-b"):
        spans = sorted((r["started_unix_s"], r["finished_unix_s"]) for r in rows if r["device"] == dev)
        assert len(spans) == 4 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
