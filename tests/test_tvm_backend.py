"""TVM backend on tiny llama checkpoints: the Relax VM in Python, the native runner on the host and under
qemu-aarch64, against eager PyTorch; int8 against the same integer scheme run eagerly; bad input.

Bundles are exported once per session through the public API (edgeslm.api.export, backend "tvm").
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeslm import api
from edgeslm.errors import EdgeSLMError
from tests.native_helpers import once, require_qemu

MAX_SEQ = 64
STEPS = 12


def _bundle(tmp_root: Path, ckpt: Path, target: str, quant: str, dump: Path | None = None) -> Path:
    out = tmp_root / f"tvm-{target}-{quant}"
    if not (out / "manifest.json").is_file():
        import os
        if dump:
            os.environ["EDGESLM_TVM_DUMP"] = str(dump)
        try:
            api.export(ckpt, out=out, backend="tvm", target=target, quant=quant, max_seq_len=MAX_SEQ,
                       force=True, progress=False)
        finally:
            os.environ.pop("EDGESLM_TVM_DUMP", None)
    return out


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint("llama")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "tvm-bundles"


def host_bundle(root, ckpt, quant):
    return once(f"tvm-host-{quant}", lambda: _bundle(root, ckpt, "host", quant,
                                                     dump=root / "ir-dump" if quant == "fp32" else None))


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _eager(ckpt, quant: str | None = None):
    """The float decoder, or (quant="int8") the TVM-shaped decoder run eagerly: same int8 weights and
    scales, the KV write as the eager custom op, so only kernel rounding may differ from TVM."""
    from edgeslm.ingest import load_checkpoint
    model = load_checkpoint(ckpt, max_seq_len=MAX_SEQ).model
    if quant is None:
        model.full_logits = False
        return lambda ids, pos: model(torch.tensor([ids]), torch.arange(pos, pos + len(ids)))[0].numpy()
    from edgeslm.compilers.tvm.wrap import prepare
    from edgeslm.quant import load_recipe
    wrapped = prepare(model, load_recipe(quant))
    caches = [torch.zeros(s) for s in wrapped.cache_shapes()]

    def step(ids, pos):
        out = wrapped(torch.tensor([ids]), torch.arange(pos, pos + len(ids)), *caches)
        caches[:] = out[1:]
        return out[0][0].numpy()
    return step


def _greedy_logits(run, prompt: list[int], steps: int) -> tuple[list[int], list[np.ndarray]]:
    logits, tokens, all_logits = run(prompt, 0), [], []
    all_logits.append(logits)
    for pos in range(len(prompt), len(prompt) + steps):
        tokens.append(int(np.argmax(logits)))
        logits = run([tokens[-1]], pos)
        all_logits.append(logits)
    return tokens, all_logits


def test_relax_vm_matches_eager_fp32(root, ckpt):
    from edgeslm.compilers.tvm.session import TVMSession
    with torch.no_grad():
        bundle = host_bundle(root, ckpt, "fp32")
        prompt = _manifest(bundle)["accuracy"]["prompts"][0]
        session = TVMSession(bundle / "model.so")
        got_tokens, got = _greedy_logits(session.forward, prompt, STEPS)
        want_tokens, want = _greedy_logits(_eager(ckpt), prompt, STEPS)
    assert got_tokens == want_tokens
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, want)) < 1e-4
    assert session.vocab_size == want[0].shape[0] and session.max_seq_len == MAX_SEQ


def test_relax_vm_int8_matches_eager_int8_scheme(root, ckpt):
    from edgeslm.compilers.tvm.session import TVMSession
    with torch.no_grad():
        bundle = host_bundle(root, ckpt, "int8")
        prompt = _manifest(bundle)["accuracy"]["prompts"][0]
        got_tokens, got = _greedy_logits(TVMSession(bundle / "model.so").forward, prompt, STEPS)
        want_tokens, want = _greedy_logits(_eager(ckpt, "int8"), prompt, STEPS)
    assert got_tokens == want_tokens
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, want)) < 1e-4


def test_manifest_accuracy_and_layout(root, ckpt):
    fp32, int8 = _manifest(host_bundle(root, ckpt, "fp32")), _manifest(host_bundle(root, ckpt, "int8"))
    assert fp32["backend"] == "tvm" and fp32["artifact"] == "model.so"
    assert fp32["accuracy"]["top1_agreement"] == 1.0 and fp32["accuracy"]["max_abs_logit_diff"] < 1e-4
    assert fp32["accuracy"]["greedy_match"] is True
    acc = int8["accuracy"]
    assert acc["top1_agreement"] >= 0.85 and 0 < acc["kl_mean"] < 0.02, acc
    meta = int8["lowering"]["metadata"]
    # the manifest states the known limit: int8-rounded linears stored as float32 (see compilers/tvm/lower.py)
    assert meta["tuned"] is True and "stored dequantized as float32" in meta["quantization"]
    # weight_bytes counts the weights bound as parameters (int8 embedding, float norms and scales); the
    # folded float32 linears are constants of the library and not in it
    assert meta["weight_bytes"] < 0.4 * fp32["lowering"]["metadata"]["weight_bytes"]
    layers, cfg = fp32["model"]["config"]["num_layers"], fp32["model"]["config"]
    assert len(meta["cache_shapes"]) == 2 * layers
    assert meta["cache_shapes"][0] == [cfg["num_kv_heads"], cfg["head_dim"], MAX_SEQ]


def test_ir_dumped_per_phase(root, ckpt):
    from edgeslm.compilers.tvm.pipeline import PHASES
    host_bundle(root, ckpt, "fp32")
    names = sorted(p.name for p in (root / "ir-dump").glob("*.py"))
    assert names == ["00-import.py"] + [f"{i:02d}-{name}.py" for i, (name, _) in enumerate(PHASES, start=1)]
    scheduled = (root / "ir-dump" / "04-schedule.py").read_text()
    assert "T.parallel" in scheduled and "T.vectorized" in scheduled     # the GEMV schedule was applied
    assert "call_tir_inplace" in (root / "ir-dump" / "01-legalize.py").read_text()   # KV write in place


def _needed(lib: Path) -> set[str]:
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    return {line.split("[")[1].split("]")[0] for line in out.splitlines() if "(NEEDED)" in line}


def test_model_library_depends_on_libc_only(root, ckpt):
    assert _needed(host_bundle(root, ckpt, "fp32") / "model.so") <= {"libc.so.6", "libm.so.6"}


@pytest.mark.parametrize("quant", ["fp32", "int8"])
def test_native_runner_host(root, ckpt, quant):
    from edgeslm.native import build_runner, run_runner
    bundle = host_bundle(root, ckpt, quant)
    manifest = _manifest(bundle)
    deploy = once("deploy-host", lambda: build_runner("host", progress=False))
    result = run_runner(deploy, bundle, manifest["accuracy"]["prompts"][0], max_new_tokens=STEPS,
                        ignore_eos=True, timeout_s=300)
    assert result["backend"] == "tvm"
    assert result["generated"] == manifest["accuracy"]["bundle_greedy"][:STEPS]
    if quant == "fp32":
        assert result["generated"] == manifest["accuracy"]["reference_greedy"][:STEPS]
    assert result["planned_arena_bytes"] == manifest["memory"]["planned_arena_bytes"]


def test_native_runner_qemu_aarch64(root, ckpt):
    require_qemu()
    from edgeslm.native import build_runner, run_runner
    bundle = once("tvm-arm64-fp32", lambda: _bundle(root, ckpt, "linux-arm64", "fp32"))
    assert _needed(bundle / "model.so") <= {"libc.so.6", "libm.so.6", "ld-linux-aarch64.so.1"}
    arch = subprocess.run(["readelf", "-h", str(bundle / "model.so")], capture_output=True, text=True).stdout
    assert "AArch64" in arch
    manifest = _manifest(bundle)
    deploy = once("deploy-linux-arm64", lambda: build_runner("linux-arm64", progress=False))
    result = run_runner(deploy, bundle, manifest["accuracy"]["prompts"][0], target="linux-arm64",
                        max_new_tokens=STEPS, ignore_eos=True, timeout_s=600)
    assert result["backend"] == "tvm"
    assert result["generated"] == manifest["accuracy"]["reference_greedy"][:STEPS]


# ---- bad input

def test_int4_refused_in_one_line(ckpt, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgeslm.cli.main", "export", str(ckpt), "--backend", "tvm", "--quant", "int4",
                           "-o", str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "int4" in proc.stderr and "fp32" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_missing_cross_compiler_names_the_package(monkeypatch, tmp_path):
    from edgeslm.compilers.tvm.target import tvm_target
    from edgeslm.targets import get_target
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EdgeSLMError, match="apt-get install g\\+\\+-aarch64-linux-gnu"):
        tvm_target(get_target("linux-arm64"))


def test_unbuildable_triple(monkeypatch):
    import dataclasses

    from edgeslm.compilers.tvm.target import tvm_target
    from edgeslm.targets import get_target
    riscv = dataclasses.replace(get_target("linux-arm64"), name="riscv-board", triple="riscv64-linux-gnu")
    with pytest.raises(EdgeSLMError, match="riscv64-linux-gnu"):
        tvm_target(riscv)
    bad_cpu = dataclasses.replace(get_target("linux-arm64"), cpu="cortex-a999")
    with pytest.raises(EdgeSLMError, match="cortex-a999"):
        tvm_target(bad_cpu)


def test_unsupported_op_named_with_its_node():
    from edgeslm.compilers.tvm.lower import check_ops

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.cummax(x, dim=0).values * 2          # no Relax conversion for cummax

    ep = torch.export.export(Odd(), (torch.randn(4, 3),)).run_decompositions()
    with pytest.raises(EdgeSLMError) as err:
        check_ops(ep)
    message = str(err.value)
    assert "cummax.default" in message and "node cummax" in message and "test_tvm_backend.py" in message


def test_cortex_m_route_builds_firmware_with_tvm_kernels(ckpt, tmp_path):
    """--backend tvm on an MCU target: TVM-generated C kernels inside the micro firmware (no TVM runtime
    fits a Cortex-M); the firmware runs in QEMU and matches the micro integer reference bit for bit."""
    import shutil
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("gcc-arm-none-eabi / qemu-system-arm not installed")
    bundle = api.export(ckpt, out=tmp_path / "m4", backend="tvm", target="cortex-m4", quant="int8",
                        max_seq_len=32, progress=False)
    assert bundle.backend == "tvm" and bundle.manifest["lowering"]["metadata"]["kernel"] == "tvm"
    assert "TVMBackendAllocWorkspace" in (tmp_path / "m4" / "firmware" / "kernels.c").read_text() or \
        "tvm" in (tmp_path / "m4" / "firmware" / "kernels.c").read_text().lower()
    from edgeslm.farm.profile import profile
    doc = profile(tmp_path / "m4", ["qemu-cortex-m"], prompt_lengths=[8], max_new_tokens=4, progress=False)
    assert doc["results"][0]["status"] == "ok", doc["results"][0]
