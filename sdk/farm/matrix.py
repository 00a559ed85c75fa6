"""Matrix runs over a farm: bundles x devices x prompt lengths x thread counts, every result in the store.

Steps of run_matrix(farm, bundles, ...):
  1. check input (nothing runs yet): bundles load and have a native runner, lengths fit, devices exist
  2. plan: one Job per (bundle, device, prompt length, threads); its key names the *requested* device, so
     a job that fails over to a peer is still the same job; resume skips keys the store already holds
  3. one thread per device, one job at a time per device: check the device is reachable -> prepare (build
     the runner once per target under a lock, push runner + bundle; cached per device and bundle) ->
     accuracy gate + measure that prompt length -> commit the result (one transaction)
  4. TransportError (device unreachable): retry with exponential backoff; after the last retry the device
     is unhealthy and its current and queued jobs move to healthy devices of the same target; with none
     left they stay pending (no row), so `--resume RUN_ID` runs them later
  5. a store that cannot be written (disk full) stops every thread; committed rows stay, the error names
     the store and how to resume
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from pathlib import Path

from edgeslm.bundle import Bundle, load_bundle
from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import TransportError
from edgeslm.farm.profile import EXIT_CODES, check_bundle, check_lengths, measure, prepare, prompt_tokens

SCHEMA = "edgeslm.farm-run/1"


@dataclass(frozen=True)
class Job:
    key: str
    bundle: str              # resolved bundle path
    bundle_sha256: str       # the artifact's sha256 (from the manifest)
    device: str              # requested device id
    target: str
    prompt_length: int
    threads: int


@dataclass
class Settings:
    max_new_tokens: int = 16
    reps: int = 3
    warmup: int = 1
    timeout_s: float = 600.0
    retries: int = 2
    backoff_s: float = 1.0


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def plan(bundles: dict[str, Bundle], farm, device_ids: list[str], lengths: list[int], threads: list[int]) -> list[Job]:
    jobs = []
    for path, b in bundles.items():
        sha = b.manifest["files"][b.manifest["artifact"]]["sha256"]
        for dev in device_ids:
            target = farm.devices[dev]["target"]
            for n in lengths:
                for t in threads:
                    key = f"{sha[:16]}|{dev}|p{n}|t{t}"
                    jobs.append(Job(key, path, sha, dev, target, n, t))
    return jobs


def environment(dev) -> dict | None:
    """Thermal zones / governor readings of a device that has them (ssh, adb), else None."""
    read = getattr(dev, "environment", None)
    if read is None:
        return None
    try:
        return read()
    except TransportError:
        raise
    except Exception as err:      # noqa: BLE001  (a reading is provenance, never a reason to fail a job)
        return {"error": str(err)}


class Context:
    """What jobs share on one controller (or one Dask worker): loaded bundles, prompts, prepared devices."""

    def __init__(self, settings: Settings, runner_dirs: dict[str, Path] | None = None):
        self.settings, self.runner_dirs = settings, runner_dirs or {}
        self.bundles: dict[str, Bundle] = {}
        self.prompts: dict[str, list[int]] = {}
        self.prepared: dict[tuple[str, str], object] = {}
        self.target_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    def bundle(self, path: str, max_len: int) -> tuple[Bundle, list[int]]:
        if path not in self.bundles:
            self.bundles[path] = load_bundle(path)
        if len(self.prompts.get(path, ())) < max_len:
            self.prompts[path] = prompt_tokens(self.bundles[path], max_len)
        return self.bundles[path], self.prompts[path]

    def execute(self, dev, job: Job, attempts: int = 1) -> dict:
        """One job on one device -> a result row (status ok | wrong | error). Raises TransportError."""
        s = self.settings
        bundle, prompt = self.bundle(job.bundle, job.prompt_length)
        key = (dev.id, job.bundle)
        if key not in self.prepared:
            if hasattr(dev, "check"):
                dev.check()               # an unreachable device fails fast, before any runner is built
            # one prepare per target at a time: two threads never build the same runner folder at once
            with self.target_locks[dev.target.name]:
                self.prepared[key] = prepare(dev, bundle, self.runner_dirs.get(dev.target.name), s.timeout_s,
                                             False)
        prep = replace(self.prepared[key], runs={})
        started = time.time()
        before = environment(dev)
        row = measure(prep, bundle, prompt, [job.prompt_length], max_new_tokens=s.max_new_tokens, reps=s.reps,
                      warmup=s.warmup, threads=job.threads, timeout_s=s.timeout_s, progress=False)
        row["provenance"].update(environment_before=before, environment_after=environment(dev),
                                 bundle_sha256=job.bundle_sha256, labels=getattr(dev, "labels", []))
        m = bundle.manifest
        row.update(requested_device=job.device, bundle=job.bundle, bundle_sha256=job.bundle_sha256,
                   backend=m["backend"], quant=m["quant"].get("name"), model=m["model"].get("name"),
                   prompt_length=job.prompt_length, threads=job.threads, attempts=attempts,
                   started_unix_s=started, finished_unix_s=time.time())
        return row


def load_inputs(bundle_paths: list[str], lengths) -> tuple[dict[str, Bundle], list[int]]:
    if not bundle_paths:
        raise EdgeSLMError("no bundle given", fix="edgeslm profile BUNDLE... --farm farm.toml")
    bundles = {}
    for p in bundle_paths:
        b = load_bundle(p)
        check_bundle(b)
        bundles[str(b.path.resolve())] = b
    lengths = check_lengths(lengths, min(b.max_seq_len for b in bundles.values()))
    return bundles, lengths


def open_run(store, farm, bundle_paths, device_ids, prompt_lengths, threads, settings, resume, **spec_extra):
    """A new run recorded in the store, or the spec of the run to resume -> (run_id, bundles, lengths,
    device ids, jobs, threads, settings). Shared by the thread scheduler and the Dask one."""
    settings = settings or Settings()
    if resume:
        spec = store.run(resume)["spec"]
        run_id, bundle_paths, device_ids = resume, spec["bundles"], spec["devices"]
        prompt_lengths, threads, settings = spec["prompt_lengths"], spec["threads"], Settings(**spec["settings"])
    threads = sorted({int(t) for t in threads})
    if not threads or threads[0] < 0:
        raise EdgeSLMError(f"thread counts must be >= 0 (got {threads})", fix="e.g. --threads 1,2")
    bundles, lengths = load_inputs(bundle_paths, prompt_lengths)
    ids = farm.select(device_ids)
    jobs = plan(bundles, farm, ids, lengths, threads)
    if not resume:
        run_id = new_run_id()
        store.create_run(run_id, {"farm": str(farm.path), "bundles": list(bundles), "devices": ids,
                                  "prompt_lengths": lengths, "threads": threads, "settings": vars(settings),
                                  **spec_extra})
    return run_id, bundles, lengths, ids, jobs, threads, settings


def run_matrix(farm, bundle_paths: list[str], store, *, device_ids: list[str] | None = None,
               prompt_lengths=(16, 128), threads=(0,), settings: Settings | None = None,
               resume: str | None = None, runner_dirs: dict[str, Path] | None = None, progress: bool = True) -> dict:
    """Run (or resume) a matrix on the farm's devices; returns the run document (rows from the store)."""
    run_id, bundles, lengths, ids, jobs, threads, settings = open_run(
        store, farm, bundle_paths, device_ids, prompt_lengths, threads, settings, resume)
    devices = {i: farm.open(i) for i in ids}
    done = store.done_keys(run_id)
    todo = [j for j in jobs if j.key not in done]

    ctx = Context(settings, runner_dirs)
    sched = Scheduler(devices, todo, ctx, store, run_id, progress)
    sched.run()
    rows = store.results(run_id)
    recorded = {r["job_key"] for r in rows}
    pending = [j.key for j in jobs if j.key not in recorded]
    statuses = {r["status"] for r in rows}
    status = "incomplete" if pending else next((s for s in ("wrong", "error", "ok") if s in statuses), "ok")
    return {"schema": SCHEMA, "run_id": run_id, "store": str(store.path), "status": status,
            "jobs": len(jobs), "pending": pending, "unhealthy": sorted(sched.unhealthy), "events": sched.events,
            "settings": {"prompt_lengths": lengths, "threads": threads, **vars(settings)}, "results": rows}


def exit_code(doc: dict) -> int:
    return EXIT_CODES.get(doc["status"], 4)


class Scheduler:
    """One thread per device, one job at a time each; failover to same-target peers on transport loss."""

    def __init__(self, devices: dict, jobs: list[Job], ctx: Context, store, run_id: str, progress: bool):
        self.devices, self.ctx, self.store, self.run_id, self.progress = devices, ctx, store, run_id, progress
        self.queues = {i: deque(j for j in jobs if j.device == i) for i in devices}
        self.outstanding = len(jobs)
        self.unhealthy: set[str] = set()
        self.events: list[dict] = []
        self.fatal: BaseException | None = None
        self.cond = threading.Condition()
        self.bar = None

    def run(self) -> None:
        from edgeslm.progress import STDERR
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        threads = [threading.Thread(target=self._loop, args=(i,), name=f"farm-{i}", daemon=True)
                   for i in self.devices]
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=STDERR, disable=not self.progress) as bar:
            self.bar, self.task = bar, bar.add_task(f"run {self.run_id}", total=self.outstanding)
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if self.fatal is not None:
            raise self.fatal

    def _event(self, kind: str, device: str, **info) -> None:
        self.events.append({"t": time.strftime("%H:%M:%S", time.gmtime()), "event": kind, "device": device, **info})

    def _next(self, dev_id: str) -> Job | None:
        with self.cond:
            while True:
                if self.fatal is not None or dev_id in self.unhealthy:
                    return None
                if self.queues[dev_id]:
                    return self.queues[dev_id].popleft()
                if self.outstanding == 0:
                    return None
                self.cond.wait(0.5)      # a failing peer may still hand jobs over

    def _finish(self, n: int = 1) -> None:
        with self.cond:
            self.outstanding -= n
            self.bar.advance(self.task, n)
            self.cond.notify_all()

    def _loop(self, dev_id: str) -> None:
        dev = self.devices[dev_id]
        s = self.ctx.settings
        while (job := self._next(dev_id)) is not None:
            row, err = None, None
            for attempt in range(s.retries + 1):
                try:
                    row = self.ctx.execute(dev, job, attempts=attempt + 1)
                    break
                except TransportError as e:
                    err = e
                    self._event("transport-error", dev_id, job=job.key, attempt=attempt + 1, error=str(e))
                    if attempt < s.retries:
                        time.sleep(s.backoff_s * 2 ** attempt)
                except BaseException as e:      # input errors (EdgeSLMError) and bugs stop the whole run
                    with self.cond:
                        self.fatal = self.fatal or e
                        self.cond.notify_all()
                    return
            if row is None:
                self._drop(dev_id, job, err)
                return
            try:
                self.store.add_result(self.run_id, job.key, row)
            except BaseException as e:          # disk full: stop, committed rows stay
                with self.cond:
                    self.fatal = self.fatal or e
                    self.cond.notify_all()
                return
            self._finish()

    def _drop(self, dev_id: str, job: Job, err: Exception | None) -> None:
        """Mark the device unhealthy; hand its current and queued jobs to healthy same-target peers."""
        with self.cond:
            self.unhealthy.add(dev_id)
            moved = [job, *self.queues[dev_id]]
            self.queues[dev_id].clear()
            target = self.devices[dev_id].target.name
            peers = [i for i, d in self.devices.items() if i not in self.unhealthy and d.target.name == target]
            self._event("unhealthy", dev_id, error=str(err), moved_to=peers, jobs=len(moved))
            if peers:
                for k, j in enumerate(moved):
                    self.queues[peers[k % len(peers)]].append(j)
            else:
                self.outstanding -= len(moved)      # left pending (no row): --resume runs them
                self.bar.advance(self.task, len(moved))
            self.cond.notify_all()


