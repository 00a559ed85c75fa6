"""The profiling job: one bundle on several devices through the native runner, one metric schema.

Steps of profile(bundle, devices):
  1. check the input (raises EdgeSLMError, nothing has run yet): every device spec names a registered
     driver, the bundle loads and verifies, its backend has a native runner, it records
     accuracy.prompts/bundle_greedy, every prompt length fits the context
  2. prepare each device: build_runner(device.target) (cached) or the given runner folder -> push the
     runner folder and the bundle (content-named remote paths) -> start the runner with --help: a missing
     runtime library is an input error, a crash or hang marks the device "error"
  3. accuracy gate: greedy tokens of accuracy.prompts[0] on the device == manifest's bundle_greedy
     (and reference_greedy for fp32) -> "ok" | "wrong"
  4. per prompt length: real text tokenized by the bundle's tokenizer, cut to the length -> runner with
     warmup + reps -> its JSON
  5. map into the metric schema (metrics.py) + provenance; status ok | wrong | error per device and
     overall (wrong > error > ok); optionally write the document to `out` (atomic)
A runner that crashes (signal), fails, or hangs past timeout_s gives status "error" with the reason.
"""
from __future__ import annotations

import hashlib
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edgeslm.bundle import Bundle, load_bundle
from edgeslm.errors import EdgeSLMError
from edgeslm.farm.device import Device, open_device
from edgeslm.farm.metrics import accuracy_gate, device_metrics, empty_metrics, provenance

SCHEMA = "edgeslm.profile/1"
RUNNER_BACKENDS = ("executorch", "tvm")   # what edgeslm-runner can load (runtime/common/capi.cpp kBackends)
EXIT_CODES = {"ok": 0, "wrong": 3, "error": 4}
LOADER = "lib/ld-linux-aarch64.so.1"  # a self-contained runner folder (android) starts through it
# Real prose, repeated until the longest prompt length is reached.
TEXT = ("Edge devices run small language models close to their users: phones, boards and microcontrollers. "
        "Latency, memory and accuracy decide what ships, so every bundle is measured where apps run. ")


class RunFailed(Exception):
    """A device run that produced no metrics; str() is the one-line reason."""


@dataclass
class Prepared:
    device: Device
    runner: str                         # remote path of the runner folder
    bundle: str                         # remote path of the bundle
    loader: bool
    build_info: dict
    error: str | None = None
    runs: dict = field(default_factory=dict)


def check_bundle(bundle: Bundle) -> None:
    if bundle.backend not in RUNNER_BACKENDS:
        raise EdgeSLMError(f"backend '{bundle.backend}' has no native runner (edgeslm-runner loads "
                           f"{', '.join(RUNNER_BACKENDS)} bundles)", path=bundle.path,
                           fix="export with --backend executorch to profile on devices")
    acc = bundle.manifest.get("accuracy") or {}
    if not acc.get("prompts") or not acc.get("bundle_greedy"):
        raise EdgeSLMError("manifest lacks accuracy.prompts / accuracy.bundle_greedy (the device accuracy "
                           "gate needs them)", path=bundle.path / "manifest.json", fix="re-export the bundle")


def bundle_summary(bundle: Bundle) -> dict:
    """What a profile document says about the bundle it measured."""
    m = bundle.manifest
    return {"path": str(bundle.path.resolve()), "model": m["model"].get("name"), "backend": m["backend"],
            "quant": m["quant"].get("name"), "target": m["target"]["name"], "artifact": m["artifact"],
            "artifact_sha256": m["files"][m["artifact"]]["sha256"], "max_seq_len": bundle.max_seq_len}


def check_lengths(lengths, max_seq_len: int) -> list[int]:
    lengths = sorted({int(n) for n in lengths})
    if not lengths or lengths[0] < 1:
        raise EdgeSLMError(f"prompt lengths must be >= 1 (got {lengths})", fix="e.g. --prompt-lengths 16,128")
    too_long = [n for n in lengths if n >= max_seq_len]
    if too_long:
        raise EdgeSLMError(f"prompt length {too_long[0]} does not fit the bundle's context of {max_seq_len} "
                           f"tokens (max_seq_len)", fix=f"use prompt lengths below {max_seq_len}, or "
                           "re-export with a larger --max-seq-len")
    return lengths


def prompt_tokens(bundle: Bundle, length: int) -> list[int]:
    """At least `length` ids of real text from the bundle's own tokenizer (BOS as the tokenizer adds it)."""
    from edgeslm.text import Tokenizer
    tokenizer = Tokenizer.from_dir(bundle.path)
    text = TEXT
    while len(ids := tokenizer.encode(text)) < length:
        text += TEXT
    return ids


def runner_cmd(prep: Prepared, *args: str) -> list[str]:
    """argv starting edgeslm-runner from its pushed folder (through its own loader when it has one)."""
    runner = PurePosixPath(prep.runner)
    head = [str(runner / LOADER), "--library-path", str(runner / "lib")] if prep.loader else []
    return [*head, str(runner / "edgeslm-runner"), *args]


def failure_reason(done, timeout_s: float) -> str | None:
    """None when the run ended normally (exit 0 or the runner's own JSON error), else why it did not."""
    if done.timed_out:
        return f"timed out after {timeout_s:g} s (runner hung or too slow; raise --timeout)"
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        tail = (done.stderr.strip().splitlines() or [""])[-1]
        return f"runner crashed ({name})" + (f": {tail}" if tail else "")
    return None


def run_json(prep: Prepared, args: list[str], timeout_s: float) -> dict:
    done = prep.device.run(runner_cmd(prep, *args), timeout_s)
    reason = failure_reason(done, timeout_s)
    if reason:
        raise RunFailed(reason)
    from edgeslm.native.run import RunnerFailed, parse_runner_output
    try:
        return parse_runner_output(done.stdout, done.stderr, done.returncode)
    except RunnerFailed as err:
        raise RunFailed(f"runner {err}") from None


def runner_args(prep: Prepared, tokens: list[int], *, max_new_tokens: int, reps: int, warmup: int,
                threads: int) -> list[str]:
    return [prep.bundle, "--tokens", ",".join(str(int(t)) for t in tokens), "--max-new-tokens",
            str(max_new_tokens), "--reps", str(reps), "--warmup", str(warmup), "--threads", str(threads),
            "--ignore-eos"]


def prepare(device: Device, bundle: Bundle, runner_dir: Path | None, timeout_s: float, progress: bool) -> Prepared:
    from edgeslm.native import build_runner

    target = device.target.name
    deploy = Path(runner_dir) if runner_dir else build_runner(target, progress=progress)
    if not (deploy / "edgeslm-runner").is_file():
        raise EdgeSLMError(f"no edgeslm-runner in the runner folder for {target}", path=deploy,
                           fix=f"edgeslm build-runner --target {target} --force")
    info_file = deploy / "build-info.json"
    build_info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    key = hashlib.sha256(str(deploy.resolve()).encode()).hexdigest()[:12]
    digest = hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest()[:12]
    prep = Prepared(device, f"runners/{target}-{key}", f"bundles/{digest}/{bundle.path.name}",
                    (deploy / LOADER).is_file(), build_info)
    device.push(deploy, prep.runner)
    device.push(bundle.path, prep.bundle)
    done = device.run(runner_cmd(prep, "--help"), timeout_s)
    if "error while loading shared libraries" in done.stderr:
        line = next(ln for ln in done.stderr.splitlines() if "error while loading shared libraries" in ln)
        lib = line.split("shared libraries:", 1)[1].split(":")[0].strip()
        raise EdgeSLMError(f"{device.id}: the runner cannot start: runtime library {lib} is missing",
                           path=deploy, fix=f"edgeslm build-runner --target {target} --force")
    prep.error = failure_reason(done, timeout_s)
    if prep.error is None and done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        prep.error = f"the runner does not start (exit {done.returncode}): {tail}"
    return prep


def measure(prep: Prepared, bundle: Bundle, prompt: list[int], lengths: list[int], *, max_new_tokens: int,
            reps: int, warmup: int, threads: int, timeout_s: float, progress: bool) -> dict:
    from edgeslm.progress import steps

    dev, manifest = prep.device, bundle.manifest
    gate = accuracy_gate(manifest, None)
    t0 = time.perf_counter()
    with steps(f"profile {dev.id}", ["accuracy", *(f"prompt {n}" for n in lengths)],
               enabled=progress and prep.error is None) as step:
        try:
            if prep.error:
                raise RunFailed(prep.error)
            step("accuracy")
            out = run_json(prep, runner_args(prep, manifest["accuracy"]["prompts"][0],
                                             max_new_tokens=len(gate["expected"]), reps=1, warmup=0,
                                             threads=threads), timeout_s)
            if not isinstance(out.get("generated"), list):
                raise RunFailed("runner JSON lacks the generated token ids")
            gate = accuracy_gate(manifest, out["generated"])
            for n in lengths:
                step(f"prompt {n}")
                new = max(1, min(max_new_tokens, bundle.max_seq_len - n))   # never past the context
                prep.runs[n] = run_json(prep, runner_args(prep, prompt[:n], max_new_tokens=new, reps=reps,
                                                          warmup=warmup, threads=threads), timeout_s)
        except RunFailed as err:
            prep.error = str(err)
    status = "error" if prep.error else gate["status"]
    try:
        metrics = device_metrics(prep.runs, artifact_bytes=bundle.artifact.stat().st_size, rss_note=dev.rss_note)
    except (KeyError, TypeError, ValueError) as err:   # a runner JSON without the fields we read
        metrics, status = empty_metrics(bundle.artifact.stat().st_size, dev.rss_note), "error"
        prep.error = f"runner JSON lacks a metric field: {err}"
    return {"device": dev.id, "target": dev.target.name, "status": status, "error": prep.error,
            "latency_kind": dev.latency_kind, **metrics, "accuracy": gate,
            "provenance": provenance(dev, manifest, prep.runs, prep.build_info, threads),
            "duration_s": round(time.perf_counter() - t0, 3),
            "runs": {str(n): r for n, r in prep.runs.items()}}


def profile(bundle_path: str | Path, devices: list, *, prompt_lengths=(16, 128), max_new_tokens: int = 64,
            reps: int = 5, warmup: int = 1, threads: int = 0, timeout_s: float = 600.0,
            runner_dirs: dict[str, Path] | None = None, out: str | Path | None = None,
            progress: bool = True) -> dict:
    """Profile a bundle on devices (spec strings like "local", "qemu-aarch64:android-arm64", or Device
    objects). Returns the results document; writes it to `out` when given."""
    from edgeslm.fsutil import write_text_atomic

    if max_new_tokens < 1 or reps < 1 or warmup < 0 or threads < 0 or timeout_s <= 0:
        raise EdgeSLMError("need --max-new-tokens >= 1, --reps >= 1, --threads >= 0 and --timeout > 0")
    if not devices:
        raise EdgeSLMError("no device given", fix="pass --device local (and/or --device qemu-aarch64)")
    if _target_kind(bundle_path) == "mcu":   # microcontroller firmware, no native runner: farm/micro_profile.py
        from edgeslm.farm.micro_profile import profile_mcu
        return profile_mcu(bundle_path, devices, prompt_lengths=prompt_lengths, max_new_tokens=max_new_tokens,
                           timeout_s=timeout_s, out=out, progress=progress)
    devs = [open_device(d) if isinstance(d, str) else d for d in devices]
    ids = [d.id for d in devs]
    if len(set(ids)) != len(ids):
        raise EdgeSLMError(f"device given twice: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    bundle = load_bundle(bundle_path)
    check_bundle(bundle)
    lengths = check_lengths(prompt_lengths, bundle.max_seq_len)
    prompt = prompt_tokens(bundle, lengths[-1])
    runner_dirs = runner_dirs or {}
    prepared = [prepare(d, bundle, runner_dirs.get(d.target.name), timeout_s, progress) for d in devs]
    results = [measure(p, bundle, prompt, lengths, max_new_tokens=max_new_tokens, reps=reps, warmup=warmup,
                       threads=threads, timeout_s=timeout_s, progress=progress) for p in prepared]
    statuses = {r["status"] for r in results}
    doc = {
        "schema": SCHEMA, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": next(s for s in ("wrong", "error", "ok") if s in statuses),
        "bundle": bundle_summary(bundle),
        "settings": {"prompt_lengths": lengths, "max_new_tokens": max_new_tokens, "reps": reps, "warmup": warmup,
                     "threads": threads, "timeout_s": timeout_s, "prompt_text": TEXT},
        "results": results, "out": str(Path(out).resolve()) if out else None,
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(out), json.dumps(doc, indent=2) + "\n")
    return doc


def _target_kind(bundle_path) -> str:
    from edgeslm.targets import TARGETS
    target = TARGETS.get(load_bundle(bundle_path).target_name)
    return target.kind if target else "cpu"


def exit_code(doc: dict) -> int:
    """0 all ok, 3 any device wrong (accuracy gate), 4 any device error (crash, hang, failure)."""
    return EXIT_CODES[doc["status"]]
