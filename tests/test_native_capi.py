"""The C API (runtime/include/edgeslm.h) from Python through ctypes, plus its C tests under ctest.

Uses the toy bundle of tests/native_helpers.py (hand-written model with the bundle contract, lowered
in seconds) so every path of the API runs without the real decoder; eager logits are exact there.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeslm.errors import EdgeSLMError
from edgeslm.native import NativeError, NativeModel, build_runner
from edgeslm.native import build as native_build
from tests.native_helpers import (TOY_BOS, TOY_EOS, TOY_SEQ, TOY_VOCAB, once, planned_arena_from_pte,
                                  require_qemu, toy_bundle, toy_forward_reference)


@pytest.fixture(scope="module")
def deploy() -> Path:
    return once("deploy-host", lambda: build_runner("host", progress=False))


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return once("toy", lambda: toy_bundle(tmp_path_factory.getbasetemp() / "native-toy"))


@pytest.fixture
def model(deploy, toy):
    # threads=0: this process also runs ExecuTorch from Python; resizing the shared pool is unsafe then.
    with NativeModel(toy, deploy) as m:
        yield m


def test_open_errors_are_codes_not_crashes(deploy, toy, tmp_path):
    with pytest.raises(NativeError) as err:
        NativeModel(tmp_path / "missing", deploy)
    assert err.value.status == "EDGESLM_ERR_NOT_FOUND" and "missing" in str(err.value)
    with pytest.raises(NativeError, match="expected model.pte") as err:
        NativeModel(tmp_path, deploy)                                   # a dir without model.pte
    assert err.value.status == "EDGESLM_ERR_NOT_FOUND"
    bad = tmp_path / "bad"
    bad.mkdir()
    good = (toy / "model.pte").read_bytes()
    for data in (b"not a program at all" * 8, good[: len(good) // 2], good[:4] + b"XXXX" + good[8:]):
        (bad / "model.pte").write_bytes(data)
        with pytest.raises(NativeError) as err:
            NativeModel(bad, deploy)
        assert err.value.status == "EDGESLM_ERR_LOAD", str(err.value)
        assert "model.pte" in str(err.value)


def test_metadata_and_planned_arena(model, toy):
    assert (model.vocab_size, model.max_seq_len, model.bos_id) == (TOY_VOCAB, TOY_SEQ, TOY_BOS)
    assert model.eos_ids == list(TOY_EOS)
    assert model.backend == "executorch"
    stats = model.stats()
    assert stats["planned_arena_bytes"] == planned_arena_from_pte(toy / "model.pte") > 0
    assert stats["model_load_ms"] > 0 and stats["threads"] >= 1 and stats["position"] == 0


def test_logits_equal_eager_and_python_runtime(model, toy):
    from edgeslm.compilers.executorch.session import ExecuTorchSession

    session = ExecuTorchSession(toy / "model.pte")
    ids = [1, 5, 7, 9, 11]
    native = model.forward(ids[:3], 0)                               # prefill [1, 3] at positions 0..2
    assert native.shape == (TOY_VOCAB,) and native.dtype == np.float32
    np.testing.assert_array_equal(native, session.forward(ids[:3], 0))
    np.testing.assert_allclose(native, toy_forward_reference(ids[:3]), atol=1e-5)
    for pos in (3, 4):                                               # decode steps through the cache
        native = model.forward([ids[pos]], pos)
        np.testing.assert_array_equal(native, session.forward([ids[pos]], pos))
    np.testing.assert_allclose(native, toy_forward_reference(ids), atol=1e-5)


def test_state_and_argument_errors(model):
    with pytest.raises(NativeError) as err:
        model.sample()
    assert err.value.status == "EDGESLM_ERR_STATE"
    with pytest.raises(NativeError) as err:
        model.prefill([1, TOY_VOCAB])
    assert err.value.status == "EDGESLM_ERR_INVALID_ARGUMENT" and str(TOY_VOCAB) in str(err.value)
    with pytest.raises(NativeError) as err:
        model.prefill([])
    assert err.value.status == "EDGESLM_ERR_INVALID_ARGUMENT"
    with pytest.raises(NativeError) as err:
        model.generate([1] * (TOY_SEQ + 1), 4)
    assert err.value.status == "EDGESLM_ERR_CONTEXT_FULL" and str(TOY_SEQ) in str(err.value)
    assert len(model.generate([1, 2, 3], 4, stop_at_eos=False)) == 4   # still usable afterwards


def test_generate_greedy_equals_stepwise_and_stats(model):
    prompt = [1, 5, 7, 9]
    model.prefill(prompt)
    steps = [model.sample()]
    for _ in range(7):
        model.decode_step(steps[-1])
        steps.append(model.sample())
    assert model.generate(prompt, 8, stop_at_eos=False) == steps
    st = model.stats()
    assert (st["prompt_tokens"], st["generated_tokens"], st["position"], st["stop_reason"]) == (4, 8, 11, "max_tokens")
    assert st["ttft_ms"] > 0 and st["prefill_tokens_per_s"] > 0 and st["decode_tokens_per_s"] > 0
    assert st["peak_rss_bytes"] > 0 and st["peak_heap_bytes"] > 0


def test_sampling_seeded_and_stops(model):
    run = lambda seed: model.generate([1, 5], 12, temperature=5.0, top_p=0.95, seed=seed, stop_at_eos=False)
    assert run(7) == run(7)
    assert len({tuple(run(s)) for s in range(4)}) > 1
    assert model.generate([1, 5], 12, temperature=5.0, top_p=1e-6, seed=3, stop_at_eos=False) == \
        model.generate([1, 5], 12, stop_at_eos=False)                # top_p -> 0 is greedy
    assert model.generate([1, 5], 20, stop_at_eos=False, on_token=lambda t: True) and \
        model.stats()["stop_reason"] == "callback" and model.stats()["generated_tokens"] == 1
    out = model.generate([1, 5], TOY_SEQ * 2, stop_at_eos=False)
    assert len(out) == TOY_SEQ - 2 + 1 and model.stats()["stop_reason"] == "context"
    for seed in range(200):                                          # near-uniform sampling meets an eos
        out = model.generate([1], 24, temperature=50.0, seed=seed)
        if model.stats()["stop_reason"] == "eos":
            assert out[-1] in TOY_EOS and all(t not in TOY_EOS for t in out[:-1])
            break
    else:
        pytest.fail("no eos sampled in 200 seeds")


def _ctest(deploy: Path, bundle: Path) -> str:
    build_dir = json.loads((deploy / "build-info.json").read_text())["build_dir"]
    env = {**os.environ, "EDGESLM_TEST_BUNDLE": str(bundle)}
    proc = subprocess.run(["ctest", "--test-dir", build_dir, "--output-on-failure"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "100% tests passed" in proc.stdout and "Skipped" not in proc.stdout
    return proc.stdout


def test_c_tests_under_ctest_host(deploy, toy):
    _ctest(deploy, toy)


def test_c_tests_under_ctest_qemu_aarch64(toy):
    require_qemu()
    deploy = once("deploy-linux-arm64", lambda: build_runner("linux-arm64", progress=False))
    _ctest(deploy, toy)


def test_build_runner_is_cached_and_keyed_by_sources(deploy, tmp_path):
    assert build_runner("host", progress=False) == deploy
    info = json.loads((deploy / "build-info.json").read_text())
    assert info["executorch"] and info["sources_sha256"] == native_build.sources_digest(native_build.runtime_sources())
    for name in ("edgeslm-runner", "libedgeslm.so", "include/edgeslm.h", "lib/libexecutorch.so",
                 "lib/libexecutorch_backend_xnnpack.so", "lib/libexecutorch_kernels_quantized.so"):
        assert (deploy / name).is_file(), name
    copy = tmp_path / "runtime"
    shutil.copytree(native_build.runtime_sources(), copy)
    before = native_build.sources_digest(copy)
    (copy / "common" / "sampler.cpp").write_text((copy / "common" / "sampler.cpp").read_text() + "\n// edit\n")
    assert native_build.sources_digest(copy) != before


def test_missing_toolchain_names_debian_packages(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(native_build.shutil, "which",
                        lambda name: None if name.startswith("aarch64-linux-gnu-") else real(name))
    with pytest.raises(EdgeSLMError, match="g\\+\\+-aarch64-linux-gnu") as err:
        build_runner("linux-arm64", progress=False)
    assert "\n" not in str(err.value)
