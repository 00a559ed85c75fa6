"""edgeslm.ingest: checkpoint layouts (plain, HF cache, sharded) and every refusal, one line each.

Each bad input must raise EdgeSLMError whose message names the file and the fix, with no chained
exception (the CLI prints str(err) and no traceback). Pickle files are refused without being opened.
"""
from __future__ import annotations

import builtins
import hashlib
import io
import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from edgeslm.errors import EdgeSLMError
from edgeslm.ingest import load_checkpoint
from edgeslm.models import SUPPORTED_ARCHITECTURES


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path) -> Path:
    """A private copy of the tiny llama checkpoint that a test may break."""
    return Path(shutil.copytree(tiny_checkpoint("llama"), tmp_path / "llama"))


def _logits(model) -> torch.Tensor:
    model.reset_cache()
    with torch.no_grad():
        return model(torch.tensor([[5, 6, 7, 8]]), torch.arange(4))


def _refused(path, *needles: str) -> str:
    with pytest.raises(EdgeSLMError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    assert "fix:" in msg
    return msg


# ---- layouts ----

def test_plain_directory(ckpt):
    loaded = load_checkpoint(ckpt)
    assert loaded.root == ckpt.resolve() and loaded.tokenizer_path == ckpt.resolve() / "tokenizer.json"
    assert loaded.model.max_seq_len == 256                          # min(max_position_embeddings, 2048)
    assert loaded.tokenizer_config["chat_template"] and loaded.generation_config["eos_token_id"] == 2
    assert loaded.hf_config["architectures"] == ["LlamaForCausalLM"]
    assert loaded.weights_sha256 == hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    m = loaded.model
    assert (m.vocab_size, m.bos_id, m.eos_ids, m.full_logits) == (384, 1, [2], True)
    assert not m.training and all(not p.is_meta for p in m.parameters())
    assert all(b.abs().sum() == 0 for n, b in m.named_buffers() if ".cache." in n)


def test_hf_cache_layout(ckpt, tmp_path):
    repo = tmp_path / "hub" / "models--tiny--llama"
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    for f in ckpt.iterdir():                                        # blobs named by hash, symlinked
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    plain = load_checkpoint(ckpt)
    for path in (repo, snap):
        loaded = load_checkpoint(path)
        assert loaded.root == snap.resolve()
        assert loaded.weights_sha256 == plain.weights_sha256
        assert torch.equal(_logits(loaded.model), _logits(plain.model))


def test_sharded_safetensors(ckpt):
    tensors = load_file(ckpt / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, ckpt / shard, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    plain_logits = _logits(load_checkpoint(ckpt).model)             # the index wins over model.safetensors
    (ckpt / "model.safetensors").unlink()
    loaded = load_checkpoint(ckpt)
    assert torch.equal(_logits(loaded.model), plain_logits)
    h = hashlib.sha256()
    for shard in sorted(shards):
        h.update((ckpt / shard).read_bytes())
    assert loaded.weights_sha256 == h.hexdigest()


def test_missing_lm_head_means_tied_embeddings(ckpt):
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["lm_head.weight"]
    save_file(tensors, ckpt / "model.safetensors")
    loaded = load_checkpoint(ckpt)
    assert loaded.config.tie_word_embeddings
    assert loaded.model.lm_head.weight is loaded.model.embed_tokens.weight


def test_bf16_weights_and_fp16_model(ckpt):
    tensors = {k: v.to(torch.bfloat16) for k, v in load_file(ckpt / "model.safetensors").items()}
    save_file(tensors, ckpt / "model.safetensors")
    loaded = load_checkpoint(ckpt, max_seq_len=16)
    assert torch.equal(loaded.model.embed_tokens.weight, tensors["model.embed_tokens.weight"].float())
    half = load_checkpoint(ckpt, max_seq_len=16, dtype=torch.float16).model
    assert half.embed_tokens.weight.dtype == torch.float16
    assert half.layers[0].self_attn.cache.k.dtype == torch.float16
    assert (_logits(half) - _logits(loaded.model)).abs().max() < 0.05


# ---- refusals ----

def test_missing_path(tmp_path):
    _refused(tmp_path / "nope", "nope", "no such checkpoint directory")


def test_not_a_checkpoint_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _refused(tmp_path, str(tmp_path), "not a checkpoint directory")
    _refused(tmp_path / "notes.txt", "notes.txt", "not a checkpoint directory")


def test_missing_config(ckpt):
    (ckpt / "config.json").unlink()
    _refused(ckpt, "config.json", "missing config.json")


def test_unparsable_config(ckpt):
    (ckpt / "config.json").write_text("{not json")
    _refused(ckpt, "config.json", "cannot parse")


def test_unsupported_architecture(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
    (ckpt / "config.json").write_text(json.dumps(cfg))
    _refused(ckpt, "config.json", "GPT2LMHeadModel", *SUPPORTED_ARCHITECTURES)


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    _refused(ckpt, "model.safetensors", "missing weights")


def test_missing_shard(ckpt):
    index = {"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors",
                            "lm_head.weight": "model-00002-of-00002.safetensors"}}
    (ckpt / "model.safetensors").rename(ckpt / "model-00001-of-00002.safetensors")
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    _refused(ckpt, "model-00002-of-00002.safetensors", "missing weight shard")


def test_missing_tokenizer(ckpt):
    (ckpt / "tokenizer.json").unlink()
    _refused(ckpt, "tokenizer.json", "copy tokenizer.json from the original model")


@pytest.fixture
def no_unpickling(monkeypatch):
    """Record every file Python opens; make any unpickling fail loudly."""
    opened: list[str] = []
    real_open = builtins.open

    def spy_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    for target, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(target, name, forbidden)
    return opened


# bytes that make any unpickler fail (and would run os.system if a pickle protocol reached them)
_EVIL = b"\x80\x04cposix\nsystem\n(S'echo pwned > /tmp/edgeslm-pwned'\ntR.garbage"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt"])
def test_pickle_only_checkpoint_is_refused_unopened(ckpt, name, no_unpickling):
    (ckpt / "model.safetensors").unlink()
    (ckpt / name).write_bytes(_EVIL)
    no_unpickling.clear()
    msg = _refused(ckpt, name, "pickle", "safe_serialization=True", "save_pretrained")
    assert str(ckpt) in msg
    assert any(p.endswith("config.json") for p in no_unpickling)    # the spy does see opens
    assert not any(p.endswith(name) for p in no_unpickling)
    _refused(ckpt / name, name, "pickle")                           # pointing at the file itself
    assert not any(p.endswith(name) for p in no_unpickling)


def test_pickle_next_to_safetensors_is_ignored_unopened(ckpt, no_unpickling):
    (ckpt / "pytorch_model.bin").write_bytes(_EVIL)
    no_unpickling.clear()
    load_checkpoint(ckpt)
    assert not any(p.endswith(".bin") for p in no_unpickling)


def _rewrite_header(path: Path, header: bytes) -> None:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    path.write_bytes(struct.pack("<Q", len(header)) + header + data[8 + n:])


def test_corrupt_safetensors_header(ckpt):
    _rewrite_header(ckpt / "model.safetensors", b'{"model.norm.weight": {"dtype": "F32", oops')
    _refused(ckpt, "model.safetensors", "corrupt safetensors header")


def test_header_longer_than_file(ckpt):
    f = ckpt / "model.safetensors"
    f.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    _refused(ckpt, "model.safetensors", "header length 1000000")


def test_truncated_safetensors(ckpt):
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    _refused(ckpt, "model.safetensors", "truncated")


def test_tiny_file_is_truncated(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x01\x02")
    _refused(ckpt, "model.safetensors", "truncated")


def test_missing_tensor(ckpt):
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, ckpt / "model.safetensors")
    _refused(ckpt, "model.safetensors", "missing tensors", "model.layers.1.mlp.down_proj.weight")


def test_missing_fused_tensor_is_named_as_in_the_checkpoint(tiny_checkpoint, tmp_path):
    ckpt = Path(shutil.copytree(tiny_checkpoint("phi3"), tmp_path / "phi3"))
    tensors = load_file(ckpt / "model.safetensors")
    del tensors["model.layers.1.self_attn.qkv_proj.weight"]
    save_file(tensors, ckpt / "model.safetensors")
    msg = _refused(ckpt, "missing tensors", "model.layers.1.self_attn.qkv_proj.weight")
    assert "q_proj" not in msg


def test_unexpected_tensor(ckpt):
    tensors = load_file(ckpt / "model.safetensors")
    tensors["model.layers.0.self_attn.rel_bias.weight"] = torch.zeros(4)
    save_file(tensors, ckpt / "model.safetensors")
    _refused(ckpt, "model.safetensors", "unexpected tensors", "model.layers.0.self_attn.rel_bias.weight")


def test_shape_disagrees_with_config(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["intermediate_size"] = 96
    (ckpt / "config.json").write_text(json.dumps(cfg))
    _refused(ckpt, "model.safetensors", "model.layers.0.mlp.down_proj.weight", "[64, 128]", "[64, 96]")


def test_phi3_fused_shape_disagrees_with_config(tiny_checkpoint, tmp_path):
    ckpt = Path(shutil.copytree(tiny_checkpoint("phi3"), tmp_path / "phi3"))
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["num_key_value_heads"] = 4
    (ckpt / "config.json").write_text(json.dumps(cfg))
    _refused(ckpt, "model.layers.0.self_attn.qkv_proj.weight", "[128, 64]", "[192, 64]")
