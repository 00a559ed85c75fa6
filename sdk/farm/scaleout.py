"""Scale-out on Dask distributed: the same jobs as matrix.py, placed on the workers that hold the devices.

Deployment: each host that has devices runs a worker declaring them as resources, one unit each:
    dask worker tcp://CONTROLLER:8786 --nthreads 1 --resources "device:pi5=1 device:phone=1"
and the controller runs `edgeslm profile BUNDLE --farm farm.toml --dask tcp://CONTROLLER:8786`.
Bundle paths and the farm file's device tables travel with each job; the bundle folder must be readable at
the same path on the workers (a shared folder), and each worker builds or reuses its runner.

Steps of run_matrix_dask(client, farm, ...):
  1. the same input checks, plan and resume as run_matrix (skip job keys already in the store)
  2. submit each job with resources={"device:<requested id>": 1}: only a worker holding that device runs it,
     and never two jobs on one device at once (one unit per device); retries on worker loss by Dask
  3. as each job finishes, the CONTROLLER commits its row (one transaction; the worker never opens the
     store); a job whose device is unreachable (TransportError) stays pending for --resume
"""
from __future__ import annotations

from pathlib import Path

from edgeslm.farm.matrix import SCHEMA, Context, Job, Settings, open_run

PREFIX = "device:"
_WORKER: dict = {}          # per worker process: the Context and the opened devices


def resource(device_id: str) -> str:
    return PREFIX + device_id


def run_job(cfg: dict, farm_dir: str, job: Job, settings: dict, runner_dirs: dict) -> dict:
    """Runs on a Dask worker: open the device from its farm table (once per worker), run the job."""
    from distributed import get_worker

    from edgeslm.farm.farmfile import open_from_config
    ctx = _WORKER.setdefault("ctx", Context(Settings(**settings), {k: Path(v) for k, v in runner_dirs.items()}))
    devices = _WORKER.setdefault("devices", {})
    if cfg["id"] not in devices:
        devices[cfg["id"]] = open_from_config(cfg, Path(farm_dir))
    row = ctx.execute(devices[cfg["id"]], job)
    worker = get_worker()
    row["worker"] = worker.name if worker.name is not None else worker.address
    return row


def run_matrix_dask(client, farm, bundle_paths: list[str], store, *, device_ids: list[str] | None = None,
                    prompt_lengths=(16, 128), threads=(0,), settings: Settings | None = None,
                    resume: str | None = None, runner_dirs: dict | None = None) -> dict:
    from distributed import as_completed

    run_id, bundles, lengths, ids, jobs, threads, settings = open_run(
        store, farm, bundle_paths, device_ids, prompt_lengths, threads, settings, resume, scheduler="dask")
    done = store.done_keys(run_id)
    dirs = {k: str(v) for k, v in (runner_dirs or {}).items()}
    futures = {}
    for job in (j for j in jobs if j.key not in done):
        cfg = {k: v for k, v in farm.devices[job.device].items() if not k.startswith("_")}
        fut = client.submit(run_job, cfg, str(farm.path.parent), job, vars(settings), dirs,
                            resources={resource(job.device): 1}, pure=False, retries=settings.retries,
                            key=f"edgeslm-{run_id}-{len(futures)}")
        futures[fut] = job
    events = []
    for fut in as_completed(list(futures)):
        job = futures[fut]
        try:
            row = fut.result()
        except Exception as err:      # noqa: BLE001  (TransportError etc. on the worker: the job stays pending)
            events.append({"event": "job-failed", "device": job.device, "job": job.key, "error": str(err)})
            continue
        store.add_result(run_id, job.key, row)
    rows = store.results(run_id)
    recorded = {r["job_key"] for r in rows}
    pending = [j.key for j in jobs if j.key not in recorded]
    statuses = {r["status"] for r in rows}
    status = "incomplete" if pending else next((s for s in ("wrong", "error", "ok") if s in statuses), "ok")
    return {"schema": SCHEMA, "run_id": run_id, "store": str(store.path), "status": status, "jobs": len(jobs),
            "pending": pending, "unhealthy": [], "events": events, "scheduler": client.scheduler.address,
            "settings": {"prompt_lengths": lengths, "threads": threads, **vars(settings)}, "results": rows}
