"""Micro end to end as a user meets it: `edgeslm export --backend micro`, `edgeslm profile --device
qemu-cortex-m`, `edgeslm run` on the host (integer reference), and the CLI's one-line refusals."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

EDGESLM = [sys.executable, "-m", "edgeslm.cli.main"]


def cli(*args):
    return subprocess.run([*EDGESLM, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def micro_bundle(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("micro") / "bundle-m7"
    proc = cli("export", tiny_checkpoint("llama"), "--backend", "micro", "--target", "cortex-m7", "--quant", "int8",
               "-o", out, "--max-seq-len", "48", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_export_manifest_records_memory_and_accuracy(micro_bundle):
    m = json.loads((micro_bundle / "manifest.json").read_text())
    assert m["backend"] == "micro" and m["artifact"] == "firmware/firmware.elf"
    assert m["target"]["name"] == "cortex-m7"
    mem = m["memory"]
    assert mem["flash_budget_bytes"] == 2_097_152 and mem["ram_budget_bytes"] == 1_048_576
    assert mem["weights_bytes"] < mem["flash_bytes"] < mem["flash_budget_bytes"]
    assert mem["planned_arena_bytes"] == mem["arena_bytes"] < mem["ram_bytes"]
    acc = m["accuracy"]
    assert len(acc["bundle_greedy"]) == 16 and len(acc["reference_greedy"]) == 16
    assert acc["top1_agreement"] > 0.8      # int8 integer model vs float, teacher-forced
    for name in ("Makefile", "link.ld", "weights.bin", "model_config.h", "kernels.c", "startup.c"):
        assert (micro_bundle / "firmware" / name).is_file(), name
    assert "LENGTH = 2097152" in (micro_bundle / "firmware" / "link.ld").read_text()


def test_profile_on_qemu_cortex_m(micro_bundle, tmp_path):
    out = tmp_path / "p.json"
    proc = cli("profile", micro_bundle, "--device", "qemu-cortex-m", "--prompt-lengths", "4,12",
               "--max-new-tokens", "4", "--json", "-o", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    r = doc["results"][0]
    assert doc["status"] == r["status"] == "ok" and r["device"] == "qemu-cortex-m:cortex-m7"
    assert r["accuracy"]["got"] == r["accuracy"]["expected"]     # bit-exact: no near-tie allowance used
    assert "near_tie" not in r["accuracy"]
    assert r["instructions_per_token"]["mean"] > 10_000 and set(r["prefill_instructions_per_token"]) == {"4", "12"}
    assert 0 < r["stack_bytes"] < 8192
    assert r["flash_bytes"] > 0 and r["ram_bytes"] > r["planned_arena_bytes"] > 0
    assert r["decode_tokens_per_s"] is None and "not latency" in r["latency_kind"]
    assert r["cycles_per_token"] is None     # DWT->CYCCNT reads 0 in QEMU: reported as unknown, never faked


def test_run_on_host_uses_the_integer_reference(micro_bundle):
    from edgeslm import api
    from edgeslm.bundle import load_bundle
    bundle = load_bundle(micro_bundle)
    acc = bundle.manifest["accuracy"]
    logits = api.open_session(bundle).forward(acc["prompts"][0], 0)
    assert int(logits.argmax()) == acc["bundle_greedy"][0]
    result = api.run(micro_bundle, "The capital of France", max_new_tokens=5)
    assert 1 <= len(result.tokens) <= 5


def test_cli_refusals_are_one_line(tiny_checkpoint, tmp_path):
    proc = cli("export", tiny_checkpoint("llama"), "--backend", "micro", "--target", "host", "--quant", "int8",
               "-o", tmp_path / "a")
    assert proc.returncode == 2 and "backend 'micro' cannot build for target 'host'" in proc.stderr
    proc = cli("export", tiny_checkpoint("llama"), "--backend", "micro", "--target", "cortex-m4", "--quant", "int4",
               "-o", tmp_path / "b")
    assert proc.returncode == 2 and "int8 per-row weights only" in proc.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
