"""Bundle manifest: round trip, hashing, tamper/truncation refusal, atomic staging."""
import json

import pytest

from edgeslm.bundle import SCHEMA_VERSION, load_bundle, write_manifest
from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import staged_directory

BASE = {
    "model": {"architecture": "LlamaForCausalLM", "config": {"hidden_size": 8}, "vocab_size": 32,
              "max_seq_len": 16, "bos_id": 1, "eos_ids": [2], "weights_sha256": "ab" * 32},
    "quant": {"name": "fp32"}, "backend": "executorch", "target": {"name": "host"},
    "artifact": "model.pte", "toolchain": {"torch": "2.13.0"},
}


def make_bundle(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "model.pte").write_bytes(b"\x00pte" * 100)
    (folder / "tokenizer.json").write_text("{}")
    write_manifest(folder, BASE)
    return folder


def test_round_trip_records_every_file(tmp_path):
    folder = make_bundle(tmp_path)
    bundle = load_bundle(folder)
    assert bundle.manifest["schema_version"] == SCHEMA_VERSION
    assert set(bundle.manifest["files"]) == {"model.pte", "tokenizer.json"}
    assert bundle.manifest["files"]["model.pte"]["bytes"] == 400
    assert bundle.manifest["model"] == BASE["model"]
    assert bundle.artifact == folder / "model.pte" and bundle.max_seq_len == 16


def test_tampered_file_is_refused(tmp_path):
    folder = make_bundle(tmp_path)
    data = bytearray((folder / "model.pte").read_bytes())
    data[5] ^= 0xFF
    (folder / "model.pte").write_bytes(bytes(data))
    with pytest.raises(EdgeSLMError, match=r"model\.pte.*sha256.*re-export"):
        load_bundle(folder)


def test_truncated_file_is_refused(tmp_path):
    folder = make_bundle(tmp_path)
    (folder / "model.pte").write_bytes(b"\x00pte")
    with pytest.raises(EdgeSLMError, match="tampered or truncated"):
        load_bundle(folder)


def test_missing_manifest_and_keys(tmp_path):
    with pytest.raises(EdgeSLMError, match="no such bundle"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeSLMError, match="manifest.json missing"):
        load_bundle(tmp_path / "empty")
    folder = make_bundle(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["model"]["vocab_size"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgeSLMError, match="model.vocab_size"):
        load_bundle(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(EdgeSLMError, match="corrupt manifest"):
        load_bundle(folder)


def test_staged_directory_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_directory(final) as stage:
            (stage / "half.bin").write_bytes(b"x")
            raise RuntimeError("lowering died")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_replaces_only_with_force(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("keep")
    with pytest.raises(FileExistsError):
        with staged_directory(final) as stage:
            (stage / "new").write_text("x")
    assert (final / "old").read_text() == "keep"
    with staged_directory(final, force=True) as stage:
        (stage / "new").write_text("x")
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
