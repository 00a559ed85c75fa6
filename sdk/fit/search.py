"""edgeslm fit: the best bundle for a device budget, searched over backend x recipe and verified on a device.

Steps of fit(checkpoint, target=..., max_memory=..., out=...):
  1. check the input before any work: target, bounds, OUT (exists without force), the device (--device ID
     from --farm farm.toml or a built-in driver spec; default: the target's own emulation or `local`)
  2. read the checkpoint's shapes without loading weights (shape.py) -> candidates (candidates.py)
  3. estimate every candidate's memory (estimate.py); skip those over --max-memory (or an MCU's flash),
     and those the device has no runner for, recording why
  4. per remaining candidate, smallest estimate first: export into the work folder (a bundle there that
     matches checkpoint, backend, recipe, target, context and edgeslm version is reused) -> quality bound
     (KL from the export's accuracy check) -> measure on the device (farm profile) -> memory and speed
     bounds; the estimate's error against the measured memory is recorded
  5. best = highest decode tok/s among candidates meeting every bound (MCU: fewest instructions per token),
     ties -> smaller artifact; copy it with fit.json + fit.md into OUT (staged, renamed into place)
  6. nothing meets the bounds: NothingFits (exit 2) naming the closest candidate and the bound it missed by
     how much; OUT untouched (the report is left in the work folder)
"""
from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edgeslm.errors import EdgeSLMError
from edgeslm.fit import bounds as B
from edgeslm.fit.report import render_markdown, write_reports

SCHEMA = "edgeslm.fit/1"
RULE = ("best = highest decode tok/s among the candidates meeting every bound (on a microcontroller: fewest "
        "instructions per token); ties go to the smaller artifact")


class NothingFits(EdgeSLMError):
    """No candidate meets every bound; the message names the closest one. `report` holds the whole table."""

    def __init__(self, message: str, report: dict, fix: str):
        super().__init__(message, fix=fix)
        self.report = report


@dataclass
class Settings:
    prompt_length: int = 32
    max_new_tokens: int = 32
    reps: int = 3
    threads: int = 0
    timeout_s: float = 600.0


def open_fit_device(target, device: str | None, farm: str | Path | None):
    """The Device fit measures on; it must be a device of `target`."""
    from edgeslm.farm import open_device
    if farm:
        from edgeslm.farm.farmfile import load_farm
        f = load_farm(Path(farm))
        ids = [i for i in f.devices if f.devices[i].get("target") == target.name]
        if device is None and not ids:
            raise EdgeSLMError(f"no device of target '{target.name}' in the farm", path=farm,
                               fix="add one, or pass --device with a built-in driver (local, qemu-aarch64, ...)")
        if device is None or device in f.devices:
            dev = f.open(f.select([device or ids[0]])[0])
        else:
            dev = open_device(device)
    else:
        spec = device or {"none": "local", "qemu-aarch64": "qemu-aarch64", "qemu-system-arm": "qemu-cortex-m",
                          "ios": "ios"}.get(target.emulation, "local")
        if ":" not in spec and spec in ("local", "qemu-aarch64", "qemu-cortex-m") and target.name != "host":
            spec = f"{spec}:{target.name}"
        dev = open_device(spec)
    if dev.target.name != target.name:
        raise EdgeSLMError(f"device '{dev.id}' runs target '{dev.target.name}', not '{target.name}'",
                           fix=f"pick a device of {target.name} (e.g. --device "
                               f"{'local' if target.emulation == 'none' else target.emulation}:{target.name})")
    return dev


def _runnable(candidate, target) -> str | None:
    """Why the farm cannot measure this candidate's bundle (None when it can)."""
    from edgeslm.farm.profile import RUNNER_BACKENDS
    if target.kind == "mcu" or candidate.backend in RUNNER_BACKENDS:
        if target.extra.get("executorch_delegate") == "coreml" and candidate.backend == "executorch":
            return "no runner for ExecuTorch's Core ML delegate on this farm (needs an Apple device)"
        return None
    return f"no native runner for backend '{candidate.backend}' (edgeslm-runner loads {', '.join(RUNNER_BACKENDS)})"


def _work_dir(work, shape, target) -> Path:
    if work:
        return Path(work)
    from edgeslm.api import cache_dir
    key = hashlib.sha256(f"{shape.root.resolve()}|{target.name}|{shape.max_seq_len}".encode()).hexdigest()[:16]
    return cache_dir() / "fit" / key


def _reusable(folder: Path, candidate, target, shape, weights_sha: str) -> bool:
    from edgeslm import __version__
    from edgeslm.bundle import load_bundle
    if not (folder / "manifest.json").is_file():
        return False
    try:
        m = load_bundle(folder).manifest
    except EdgeSLMError:
        return False
    kv = (m.get("lowering") or {}).get("metadata", {}).get("kv_cache_dtype")
    return (m["backend"] == candidate.backend and m["quant"] == candidate.recipe.to_dict()
            and (candidate.kv_cache is None or kv == candidate.kv_cache)
            and m["target"]["name"] == target.name and m["model"]["max_seq_len"] == shape.max_seq_len
            and m["model"].get("weights_sha256") == weights_sha and m.get("edgeslm_version") == __version__)


def _export(row, candidate, target, shape, folder: Path, weights_sha: str):
    from edgeslm import api
    from edgeslm.bundle import load_bundle
    if _reusable(folder, candidate, target, shape, weights_sha):
        row["export"] = {"reused": True, "path": str(folder)}
        return load_bundle(folder)
    t0 = time.perf_counter()
    bundle = api.export(shape.root, out=folder, backend=candidate.backend, target=target.name,
                        quant=candidate.quant, max_seq_len=shape.max_seq_len, force=True, progress=False,
                        backend_options={"kv_cache": candidate.kv_cache} if candidate.kv_cache else None)
    row["export"] = {"reused": False, "path": str(folder), "seconds": round(time.perf_counter() - t0, 1)}
    return bundle


def _measure(row, bundle, device, target, settings: Settings, est) -> dict:
    from edgeslm import api
    prompt = max(1, min(settings.prompt_length, bundle.max_seq_len // 2))
    doc = api.profile(bundle.path, [device], prompt_lengths=[prompt],
                      max_new_tokens=max(1, min(settings.max_new_tokens, bundle.max_seq_len - prompt - 1)),
                      reps=settings.reps, warmup=1, threads=settings.threads, timeout_s=settings.timeout_s,
                      progress=False)
    return B.measured(doc["results"][0], est, target)


def fit(checkpoint, *, target: str, out, max_memory, min_decode_tps: float | None = None,
        max_quality_loss: float | None = None, context: int | None = None, device: str | None = None,
        farm=None, backends: list[str] | None = None, recipes: list[str] | None = None,
        kv_caches: list[str] | None = None, work=None,
        settings: Settings | None = None, force: bool = False, dry_run: bool = False,
        progress: bool = True) -> dict:
    """Steps in the module docstring. Returns the report (also written as OUT/fit.json unless dry_run)."""
    from edgeslm.fit.candidates import enumerate_candidates
    from edgeslm.fit.estimate import estimate
    from edgeslm.fit.shape import read_shape
    from edgeslm.ingest.safetensors_files import sha256_files
    from edgeslm.progress import steps
    from edgeslm.targets import get_target

    settings = settings or Settings()
    tgt = get_target(target)
    bounds = B.Bounds.parse(max_memory, min_decode_tps, max_quality_loss, tgt)
    out = Path(out)
    if out.exists() and not force and not dry_run:
        raise EdgeSLMError("output directory exists", path=out, fix="choose another -o or pass --force to replace it")
    dev = None if dry_run else open_fit_device(tgt, device, farm)
    shape = read_shape(checkpoint, context, progress=progress)
    candidates, refused = enumerate_candidates(tgt, backends, recipes, kv_caches)
    rows = [B.row_refused(name, why) for name, why in refused]
    todo = []
    for cand in candidates:
        est = estimate(shape, cand.backend, cand.recipe, tgt, settings.prompt_length, cand.kv_cache)
        row = B.new_row(cand, est)
        why = bounds.estimate_miss(est, tgt) or (None if dry_run else _runnable(cand, tgt))
        if why:
            row.update(status="skipped", reasons=[why])
        else:
            todo.append((est.total_bytes, cand, est, row))
        rows.append(row)
    report = {"schema": SCHEMA, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "checkpoint": str(shape.root), "parameters": shape.parameters, "context": shape.max_seq_len,
              "target": tgt.name, "device": getattr(dev, "id", None), "bounds": bounds.to_dict(), "rule": RULE,
              "settings": vars(settings), "candidates": rows, "best": None, "out": None}
    if dry_run:
        return report
    work_dir = _work_dir(work, shape, tgt)
    report["work"] = str(work_dir)
    weights_sha = sha256_files(shape.weight_files)
    todo.sort(key=lambda item: item[0])
    names = [f"{c.name}: {s}" for _, c, _, _ in todo for s in ("export", "measure")]
    with steps(f"fit {tgt.name}", names, enabled=progress) as step:
        for _, cand, est, row in todo:
            step(f"{cand.name}: export")
            try:
                bundle = _export(row, cand, tgt, shape, work_dir / cand.name.replace("/", "-"), weights_sha)
            except Exception as err:     # one candidate failing (a backend bug, a refused op) ends only its row
                row.update(status="failed", reasons=[f"export: {_one_line(err)}"])
                continue
            row["artifact_bytes"] = bundle.manifest["memory"]["artifact_bytes"]
            row["kl"] = B.kl_of(bundle.manifest)
            step(f"{cand.name}: measure")
            if (why := bounds.quality_miss(row["kl"])):
                row.update(status="rejected", reasons=[why + " (not measured)"])
                continue
            try:
                row["measured"] = _measure(row, bundle, dev, tgt, settings, est)
            except Exception as err:
                row.update(status="failed", reasons=[f"measure: {_one_line(err)}"])
                continue
            B.judge(row, bounds)
    passing = [r for r in rows if r["status"] == "pass"]
    if not passing:
        report["out"] = None
        work_dir.mkdir(parents=True, exist_ok=True)
        write_reports(work_dir, report)
        msg, fix = B.nothing_fits_message(rows, bounds)
        raise NothingFits(f"{msg} (table: {work_dir / 'fit.md'})", report, fix)
    best = max(passing, key=lambda r: (B.speed_key(r), -r["artifact_bytes"]))
    best["status"] = "best"
    report["best"] = best["candidate"]
    report["out"] = str(out.resolve())
    _write_out(out, Path(best["export"]["path"]), report, force)
    return report


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else "") if isinstance(err, EdgeSLMError) else f"{type(err).__name__}: {text[0] if text else ''}"


def _write_out(out: Path, bundle_dir: Path, report: dict, force: bool) -> None:
    from edgeslm.fsutil import staged_directory
    with staged_directory(out, force=force) as stage:
        for item in bundle_dir.iterdir():
            if item.name in ("fit.json", "fit.md"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)
        write_reports(stage, report)


__all__ = ["NothingFits", "RULE", "Settings", "fit", "render_markdown"]
