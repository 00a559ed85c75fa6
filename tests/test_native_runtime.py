"""edgeslm-runner on tiny llama bundles (fp32, int8): host and qemu-aarch64 against eager PyTorch and
the Python ExecuTorch runtime; native logits vs Python logits; the metric JSON schema; error exits.

Golden tokens: greedy continuation of the bundle's first accuracy prompt (manifest accuracy.prompts[0]).
Eager PyTorch runs the float decoder with the bundle's quantization recipe applied eagerly (int8: torchao),
so quantized bundles are held to their own eager model, not to the float one.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edgeslm.native import NativeModel, build_runner, run_runner, runner_argv
from edgeslm.native.run import run_qemu
from tests.native_helpers import eager_greedy, llama_bundle, once, planned_arena_from_pte, require_qemu

STEPS = 16
QUANTS = ("fp32", "int8")
DEVICES = {"host": "host", "qemu-aarch64": "linux-arm64"}     # device -> target whose build runs there
METRIC_FIELDS = {
    "schema": str, "edgeslm_version": str, "backend": str, "threads": int, "bundle": str, "vocab_size": int,
    "max_seq_len": int, "reps": int, "warmup": int, "temperature": (int, float), "top_p": (int, float),
    "seed": int, "model_load_ms": (int, float), "ttft_ms": dict, "prefill_tokens_per_s": dict,
    "decode_tokens_per_s": dict, "peak_rss_bytes": int, "peak_heap_bytes": int, "planned_arena_bytes": int,
    "weights_huge_page_bytes": int,
    "prompt_tokens": int, "max_new_tokens": int, "generated_tokens": int, "stop_reason": str, "generated": list,
}
SUMMARY_FIELDS = ("mean", "std", "median", "min", "max", "samples")


def _deploy(device: str) -> Path:
    if device != "host":
        require_qemu()
    target = DEVICES[device]
    return once(f"deploy-{target}", lambda: build_runner(target, progress=False))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.getbasetemp() / "native-llama"
    return once("llama-bundles", lambda: {q: llama_bundle(root, q) for q in QUANTS})


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _python_greedy(bundle: Path, prompt: list[int], steps: int) -> list[int]:
    """The Python ExecuTorch runtime: prefill, then one forward per token, argmax."""
    from edgeslm.compilers.executorch.session import ExecuTorchSession

    session = ExecuTorchSession(bundle / "model.pte")
    logits, out, pos = session.forward(prompt, 0), [], len(prompt)
    for _ in range(steps):
        out.append(int(np.argmax(logits)))
        logits = session.forward([out[-1]], pos)
        pos += 1
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("quant", QUANTS)
def test_runner_greedy_equals_eager_and_python(bundles, quant, device):
    bundle = bundles[quant]
    manifest = _manifest(bundle)
    prompt = manifest["accuracy"]["prompts"][0]
    golden = once(f"golden-{quant}", lambda: {
        "eager": eager_greedy(bundle, STEPS), "python": _python_greedy(bundle, prompt, STEPS)})
    result = run_runner(_deploy(device), bundle, prompt, target=DEVICES[device], max_new_tokens=STEPS,
                        ignore_eos=True, timeout_s=600)
    assert result["generated"] == golden["python"], "native vs Python ExecuTorch runtime"
    assert result["generated"] == golden["eager"], "native vs eager PyTorch"
    assert result["generated"] == manifest["accuracy"]["bundle_greedy"], "native vs manifest golden"
    if quant == "fp32":
        assert result["generated"] == manifest["accuracy"]["reference_greedy"]


@pytest.mark.parametrize("quant", QUANTS)
def test_native_logits_equal_python_runtime(bundles, quant):
    """Teacher-forced over every accuracy prompt: prefill half, then decode steps through the cache."""
    from edgeslm.compilers.executorch.session import ExecuTorchSession

    bundle = bundles[quant]
    session = ExecuTorchSession(bundle / "model.pte")
    worst = 0.0
    with NativeModel(bundle, _deploy("host")) as model:   # threads=0: Python ExecuTorch shares the pool
        for prompt in _manifest(bundle)["accuracy"]["prompts"]:
            half = len(prompt) // 2
            pairs = [(model.forward(prompt[:half], 0), session.forward(prompt[:half], 0))]
            for pos in range(half, len(prompt)):
                pairs.append((model.forward([prompt[pos]], pos), session.forward([prompt[pos]], pos)))
            worst = max(worst, max(float(np.abs(a - b).max()) for a, b in pairs))
    print(f"{quant}: max |native - python| logit diff {worst:g}")
    assert worst <= 1e-5


@pytest.mark.parametrize("device", DEVICES)
def test_metric_json_schema(bundles, device):
    bundle = bundles["int8"]
    prompt = _manifest(bundle)["accuracy"]["prompts"][1][:20]
    result = run_runner(_deploy(device), bundle, prompt, target=DEVICES[device], max_new_tokens=8, reps=3,
                        warmup=1, ignore_eos=True, timeout_s=600)
    for field, kind in METRIC_FIELDS.items():
        assert isinstance(result.get(field), kind), f"{field}: {result.get(field)!r}"
    for field in ("ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s"):
        assert set(SUMMARY_FIELDS) <= set(result[field]) and len(result[field]["samples"]) == 3, field
        assert result[field]["min"] > 0 and result[field]["min"] <= result[field]["median"] <= result[field]["max"]
    assert result["schema"] == "edgeslm.runner/1" and result["backend"] == "executorch"
    assert (result["reps"], result["warmup"], result["prompt_tokens"]) == (3, 1, 20)
    assert result["generated_tokens"] == len(result["generated"]) == 8 and result["stop_reason"] == "max_tokens"
    assert result["model_load_ms"] > 0 and result["peak_rss_bytes"] > 0 and result["peak_heap_bytes"] > 0
    planned = planned_arena_from_pte(bundle / "model.pte")
    assert result["planned_arena_bytes"] == planned == _manifest(bundle)["memory"]["planned_arena_bytes"]


def test_planned_arena_pages_resident_only_when_written(tmp_path_factory):
    """A long context plans a large arena (KV caches, [rep*T, S] masks) that a short generation barely
    touches: the runner maps it lazily, so its peak RSS stays far below the planned bytes. (ExecuTorch's
    Module default, a zero-filled std::vector, made every planned page resident: RSS > arena.)"""
    root = tmp_path_factory.getbasetemp() / "native-long-context"
    bundle = once("llama-long-context", lambda: llama_bundle(root, "fp32", max_seq_len=32768))
    prompt = _manifest(bundle)["accuracy"]["prompts"][0][:8]
    result = run_runner(_deploy("host"), bundle, prompt, max_new_tokens=8, ignore_eos=True, timeout_s=600)
    planned = planned_arena_from_pte(bundle / "model.pte")
    assert result["planned_arena_bytes"] == planned > 48 * 2**20
    assert result["peak_rss_bytes"] < planned / 2, (result["peak_rss_bytes"], planned)
    assert result["generated"] == _python_greedy(bundle, prompt, 8)


def test_runner_error_exits(bundles, tmp_path):
    runner = _deploy("host")
    bundle = bundles["fp32"]
    ctx = _manifest(bundle)["model"]["max_seq_len"]

    def run(argv):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        return proc.returncode, json.loads(proc.stdout), proc.stderr.strip()

    code, out, err = run(runner_argv(runner, tmp_path / "nope", [1, 2]))
    assert code == 1 and out["status"] == "EDGESLM_ERR_NOT_FOUND" and len(err.splitlines()) == 1
    code, out, _ = run(runner_argv(runner, bundle, [1] * (ctx + 1)))
    assert code == 1 and out["status"] == "EDGESLM_ERR_CONTEXT_FULL" and str(ctx) in out["error"]
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "model.pte").write_bytes((bundle / "model.pte").read_bytes()[:1000])
    code, out, _ = run(runner_argv(runner, tmp_path / "corrupt", [1, 2]))
    assert code == 1 and out["status"] == "EDGESLM_ERR_LOAD"
    code, out, _ = run([str(runner / "edgeslm-runner"), str(bundle), "--tokens", "1,x"])
    assert code == 2 and out["status"] == "usage"
    code, out, _ = run([str(runner / "edgeslm-runner"), str(bundle)])
    assert code == 2 and "--tokens" in out["error"]


def test_weight_pages_modes_generate_the_same_tokens(bundles):
    """EDGESLM_WEIGHT_PAGES=huge (the .pte read into 2 MB-aligned anonymous memory, advised as huge pages)
    and =mmap (the file mapping) run the same program: same tokens; mmap reports no huge-page bytes (the
    tiny bundle is under 2 MB, so huge advises no page either: test_smollm2_slow checks a real one). A
    value that is not a mode is refused with the fix."""
    import os

    runner = _deploy("host")
    bundle = bundles["int8"]
    prompt = _manifest(bundle)["accuracy"]["prompts"][0]

    def run(mode):
        proc = subprocess.run(runner_argv(runner, bundle, prompt, max_new_tokens=8), capture_output=True,
                              text=True, timeout=120, env={**os.environ, "EDGESLM_WEIGHT_PAGES": mode})
        return proc.returncode, json.loads(proc.stdout), proc.stderr.strip()

    (code_h, huge, _), (code_m, mapped, _) = run("huge"), run("mmap")
    assert code_h == code_m == 0
    assert huge["generated"] == mapped["generated"] and len(huge["generated"]) == 8
    assert mapped["weights_huge_page_bytes"] == 0
    assert huge["weights_huge_page_bytes"] == 0          # under 2 MB: no whole huge page to advise
    code, out, err = run("big")
    assert code == 1 and out["status"] == "EDGESLM_ERR_INVALID_ARGUMENT"
    assert "EDGESLM_WEIGHT_PAGES=big" in err and "huge, mmap or auto" in err and len(err.splitlines()) == 1


def test_runner_error_exit_under_qemu(tmp_path):
    proc = run_qemu(runner_argv(_deploy("qemu-aarch64"), tmp_path / "nope", [1]), timeout_s=120)
    assert proc.returncode == 1 and json.loads(proc.stdout)["status"] == "EDGESLM_ERR_NOT_FOUND"


def test_android_folder_runs_through_its_own_loader(bundles):
    """android-arm64: glibc runner + its own ld-linux and libs (no sysroot given to qemu)."""
    require_qemu()
    deploy = once("deploy-android-arm64", lambda: build_runner("android-arm64", progress=False))
    assert (deploy / "run.sh").is_file() and (deploy / "lib" / "ld-linux-aarch64.so.1").is_file()
    bundle = bundles["int8"]
    manifest = _manifest(bundle)
    result = run_runner(deploy, bundle, manifest["accuracy"]["prompts"][0], target="android-arm64",
                        max_new_tokens=STEPS, ignore_eos=True)
    assert result["generated"] == manifest["accuracy"]["bundle_greedy"]


@pytest.mark.parametrize("quant", QUANTS)
def test_decode_speed_native_vs_python(bundles, quant, record_property):
    """Reported, loosely checked: the native loop must not be slower than Python's per-token calls."""
    from edgeslm.compilers.executorch.session import ExecuTorchSession

    bundle = bundles[quant]
    prompt = _manifest(bundle)["accuracy"]["prompts"][0]
    steps = 48
    native = run_runner(_deploy("host"), bundle, prompt, max_new_tokens=steps + 1, reps=5, warmup=1,
                        ignore_eos=True)["decode_tokens_per_s"]["median"]
    session = ExecuTorchSession(bundle / "model.pte")
    rates = []
    for _ in range(5):
        logits, pos = session.forward(prompt, 0), len(prompt)
        t0 = time.perf_counter()
        for _ in range(steps):
            logits = session.forward([int(np.argmax(logits))], pos)
            pos += 1
        rates.append(steps / (time.perf_counter() - t0))
    python = float(np.median(rates))
    record_property(f"decode_tok_s_{quant}", {"native": native, "python": python})
    print(f"{quant}: decode native {native:.0f} tok/s, python {python:.0f} tok/s ({native / python:.2f}x)")
    assert native > 0.8 * python


@pytest.mark.parametrize("device", DEVICES)
def test_greedy_argmax_equals_the_plain_scan(device):
    """runtime/tests/test_sampler.cpp: the sampler's blocked argmax (8 lanes over blocks of 64) against the
    plain first-maximum scan: ties, NaNs (first, and in the lane of a larger value), infinities, block edges,
    vocabularies 1 to 49152; built by the runner's CMake, run on the host and under qemu-aarch64."""
    if device != "host":
        require_qemu()
    deploy = build_runner(DEVICES[device], progress=False)
    exe = Path(json.loads((deploy / "build-info.json").read_text())["build_dir"]) / "test_sampler"
    proc = (subprocess.run([str(exe)], capture_output=True, text=True, timeout=300) if device == "host"
            else run_qemu([str(exe)], timeout_s=300))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout, proc.stdout
