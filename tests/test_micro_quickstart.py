"""`edgeslm quickstart --size micro`: a real tiny model trained here that fits a Cortex-M4.

Fast: the whole pipeline with 3 training steps (corpus, tokenizer, HF checkpoint, cache reuse, loads in
edgeslm, fits the cortex-m4 budget). Slow: the real training (cached under $EDGESLM_CACHE), exported
to cortex-m4 firmware, generating recognisable text in QEMU, bit-exact with the integer reference.
"""
from __future__ import annotations

import json
import re

import pytest

from edgeslm.micro_model import make_micro_model
from edgeslm.micro_model.corpus import stdlib_docstrings


def test_pipeline_with_three_steps(tmp_path):
    from edgeslm.compilers.micro import budget
    from edgeslm.compilers.micro.quantize import quantize_model
    from edgeslm.ingest import load_checkpoint
    from edgeslm.targets import get_target

    cache = tmp_path / "cache"
    out = make_micro_model(tmp_path / "m", steps=3, progress=False, cache=cache)
    info = json.loads((out / "micro_model.json").read_text())
    assert 200_000 <= info["parameters"] <= 1_000_000 and info["steps"] == 3
    assert info["first_loss"] > 5.5                                  # ~ln(512) before training
    loaded = load_checkpoint(out)
    assert loaded.model.config.vocab_size == 512 and loaded.model.config.tie_word_embeddings
    packed, meta = quantize_model(loaded.model)
    budget.check(budget.estimate(len(packed.blob), meta, get_target("cortex-m4")), get_target("cortex-m4"),
                 info["parameters"])                                   # fits 1 MB flash / 256 KB RAM
    cached = next((cache / "micro-model").iterdir()) / "model.safetensors"
    before = cached.stat().st_mtime_ns
    make_micro_model(tmp_path / "m2", steps=3, progress=False, cache=cache)   # from the cache, no retraining
    assert cached.stat().st_mtime_ns == before
    assert (tmp_path / "m2" / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_refuses_foreign_directory(tmp_path):
    from edgeslm.errors import EdgeSLMError
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(EdgeSLMError, match="not an edgeslm micro model"):
        make_micro_model(tmp_path / "x", steps=1, progress=False, cache=tmp_path / "cache")


@pytest.mark.slow
def test_trained_micro_model_speaks_in_qemu(tmp_path):
    from edgeslm import api
    from edgeslm.farm.micro_profile import run_firmware
    from edgeslm.farm.qemu_cortex_m import QemuCortexMDevice
    from edgeslm.text import Tokenizer

    ckpt = api.quickstart(tmp_path / "ckpt", progress=False, size="micro")
    info = json.loads((ckpt / "micro_model.json").read_text())
    assert info["final_loss"] < info["first_loss"] - 2.0, info        # it learned
    bundle = api.export(ckpt, out=tmp_path / "fw", backend="micro", target="cortex-m4", quant="int8",
                        progress=False)
    mem = bundle.manifest["memory"]
    assert mem["flash_bytes"] <= 1_048_576 and mem["ram_bytes"] <= 262_144
    tok = Tokenizer.from_dir(bundle.path)
    prompt = tok.encode("Return the")
    device = QemuCortexMDevice("cortex-m4", workdir=tmp_path / "dev")
    device.push(bundle.artifact, "fw.elf")
    run = run_firmware(device, "fw.elf", prompt, 40, timeout_s=600)
    from edgeslm.compilers.micro.reference import IntegerModel
    assert run["tokens"] == IntegerModel.from_dir(bundle.artifact.parent).greedy(prompt, 40)[0]
    text = tok.decode(run["tokens"])
    vocabulary = set(re.findall(r"[a-z]+", " ".join(stdlib_docstrings()).lower()))
    words = re.findall(r"[a-z]+", text.lower())
    real = [w for w in words if w in vocabulary and len(w) > 1]
    assert len(words) >= 5 and len(real) >= 0.6 * len(words), text   # recognisable English words
