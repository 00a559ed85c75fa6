"""edgeslm.text against transformers on the SmolLM2 quickstart dir, plus sampler statistics.

The SmolLM2 dir is built once under .cache/quickstart-smollm2 and reused (see test_quickstart.py).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeslm.errors import EdgeSLMError
from edgeslm.text import Sampler, StreamDecoder, Tokenizer, render_chat_template


TEXTS = [
    "", "Hello world", "The capital of France is Paris.", "  leading and trailing  ", "tabs\tand\nnewlines\n\n\n",
    "many      spaces    here", "émigré naïve façade", "emoji 😀👍🏽 and flags 🇫🇷🇯🇵", "family 👨‍👩‍👧‍👦 zwj",
    "中文分词测试，标点。", "日本語のテキスト", "한국어 문장", "mixed 中文 and English 123,456.78",
    "<|im_start|>user\nhi<|im_end|>", "def f(x):\n    return x ** 2  # code", "\u00a0nbsp\u2003em space",
]

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi 😀"}],
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "and 中文?\n\n  spaced  "}],
]


@pytest.fixture(scope="session")
def hf_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir) -> Tokenizer:
    return Tokenizer.from_dir(smollm2_dir)


# ---- tokenizer vs transformers
def test_special_ids(tokenizer):
    assert (tokenizer.bos_id, tokenizer.eos_ids) == (1, [2])
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert tokenizer.vocab_size == 49152


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_template_matches_transformers(tokenizer, hf_tokenizer, conversation, add_generation_prompt):
    ours = tokenizer.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt)
    theirs = hf_tokenizer.apply_chat_template(conversation, tokenize=False,
                                              add_generation_prompt=add_generation_prompt)
    assert ours == theirs


def test_encode_decode_match_transformers(tokenizer, hf_tokenizer):
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert ids == hf_tokenizer(text)["input_ids"], text
        assert tokenizer.decode(ids) == hf_tokenizer.decode(ids) == text
        assert tokenizer.decode(ids, skip_special_tokens=True) == hf_tokenizer.decode(ids, skip_special_tokens=True)
    prompt = tokenizer.apply_chat_template(CONVERSATIONS[0])
    assert tokenizer.encode(prompt) == hf_tokenizer.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True,
                                                                        return_dict=True)["input_ids"]


def test_add_bos_override(tokenizer):
    assert tokenizer.encode("Hello")[0] != 1  # SmolLM2: add_bos_token false, its template writes <|im_start|>
    assert tokenizer.encode("Hello", add_bos=True) == [1] + tokenizer.encode("Hello")
    assert tokenizer.encode("Hello", add_bos=False) == tokenizer.encode("Hello")


def _copy_tokenizer(src: Path, dst: Path, config_update: dict, generation: dict | None = None) -> Path:
    dst.mkdir()
    shutil.copy(src / "tokenizer.json", dst / "tokenizer.json")
    config = json.loads((src / "tokenizer_config.json").read_text())
    config.update(config_update)
    (dst / "tokenizer_config.json").write_text(json.dumps(config))
    if generation is not None:
        (dst / "generation_config.json").write_text(json.dumps(generation))
    return dst


def test_llama_style_bos_matches_transformers(smollm2_dir, tmp_path):
    """BOS added by tokenizer.json's post-processor and add_bos_token true in the config, as HF saves Llama."""
    from transformers import AutoTokenizer
    d = _copy_tokenizer(smollm2_dir, tmp_path / "tok", {"add_bos_token": True, "bos_token": "<|endoftext|>"},
                        generation={"bos_token_id": 0, "eos_token_id": [2, 0]})
    spec = json.loads((d / "tokenizer.json").read_text())
    spec["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0],
                                                                   "tokens": ["<|endoftext|>"]}}}
    (d / "tokenizer.json").write_text(json.dumps(spec))
    ours, theirs = Tokenizer.from_dir(d), AutoTokenizer.from_pretrained(d)
    for text in TEXTS:
        assert ours.encode(text) == theirs(text)["input_ids"], text
    assert ours.encode("x")[0] == 0 and ours.encode("x", add_bos=False) == theirs("x", add_special_tokens=False)["input_ids"]
    assert ours.eos_ids == [2, 0]


def test_add_bos_token_flag_is_honoured(smollm2_dir, tmp_path):
    """The config flag decides even when tokenizer.json's post-processor disagrees.

    (transformers 5 ignores add_bos_token once a tokenizer.json exists; transformers 4's Llama tokenizer
    rebuilt the post-processor from it. We follow the flag: it says what the model was trained with.)
    """
    d = _copy_tokenizer(smollm2_dir, tmp_path / "tok", {"add_bos_token": True, "add_eos_token": True})
    tok = Tokenizer.from_dir(d)
    raw = tok.backend.encode("Hello", add_special_tokens=False).ids
    assert tok.encode("Hello") == [1] + raw + [2]
    assert tok.encode("Hello", add_bos=False) == raw + [2]
    no_flags = _copy_tokenizer(smollm2_dir, tmp_path / "plain", {})
    config = json.loads((no_flags / "tokenizer_config.json").read_text())
    config.pop("add_bos_token"), config.pop("add_eos_token")
    (no_flags / "tokenizer_config.json").write_text(json.dumps(config))
    assert Tokenizer.from_dir(no_flags).encode("Hello") == raw  # the post-processor adds nothing


def test_chat_template_jinja_file_and_errors(smollm2_dir, tmp_path):
    d = _copy_tokenizer(smollm2_dir, tmp_path / "tok", {"chat_template": None})
    (d / "chat_template.jinja").write_text(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}"
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] | tojson }}{% endfor %}{{ eos_token }}")
    tok = Tokenizer.from_dir(d)
    assert tok.apply_chat_template([{"role": "user", "content": "é<b>"}]) == '[user] "é<b>"<|im_end|>'
    with pytest.raises(EdgeSLMError, match="user first"):
        tok.apply_chat_template([{"role": "assistant", "content": "x"}])
    (d / "chat_template.jinja").unlink()
    with pytest.raises(EdgeSLMError, match="no chat_template"):
        Tokenizer.from_dir(d).apply_chat_template([{"role": "user", "content": "x"}])


def test_chat_template_sandbox():
    with pytest.raises(EdgeSLMError):
        render_chat_template("{{ messages.__class__.__mro__[1].__subclasses__() }}", [])
    with pytest.raises(EdgeSLMError):
        render_chat_template("{% set ns = namespace(_x=1) %}", [])


def test_missing_or_corrupt_tokenizer_json(tmp_path):
    with pytest.raises(EdgeSLMError, match="no tokenizer.json") as err:
        Tokenizer.from_dir(tmp_path)
    assert str(tmp_path) in str(err.value)
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "Nope"')
    with pytest.raises(EdgeSLMError, match="tokenizer.json is unreadable") as err:
        Tokenizer.from_dir(tmp_path)
    assert str(tmp_path / "tokenizer.json") in str(err.value)


# ---- streaming
def _stream(tok: Tokenizer, ids: list[int]) -> list[str]:
    stream = tok.stream()
    assert isinstance(stream, StreamDecoder)
    return [stream.push(i) for i in ids] + [stream.flush()]


def test_stream_decoder_holds_split_characters(tokenizer):
    split_somewhere = False
    for text in TEXTS:
        ids = tokenizer.encode(text)
        pieces = _stream(tokenizer, ids)
        assert "".join(pieces) == tokenizer.decode(ids) == text
        assert not any("\ufffd" in p for p in pieces), (text, pieces)
        split_somewhere |= any(p == "" for p in pieces[:-1])
    assert split_somewhere  # some multi-byte character did span tokens


def test_stream_decoder_byte_tokens(tokenizer):
    """One token per UTF-8 byte: the worst case for a byte-level vocabulary."""
    text = "a😀中é b"
    byte_to_char = _gpt2_byte_chars()
    ids = [tokenizer.backend.token_to_id(byte_to_char[b]) for b in text.encode()]
    assert None not in ids
    pieces = _stream(tokenizer, ids)
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    assert pieces.count("") >= 6  # 😀 waits 3 bytes, 中 2, é 1


def test_stream_decoder_metaspace_and_byte_fallback():
    """A Llama/SentencePiece-style decoder: ▁ for spaces, <0xNN> byte fallback, leading space stripped."""
    from tokenizers import Tokenizer as Backend, decoders, models
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)},
             "▁hello": 259, "▁world": 260, "▁ok": 261, "!": 262}
    backend = Backend(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    tok = Tokenizer(backend, {"bos_token": "<s>", "eos_token": "</s>"})
    ids = [259, 260] + [3 + b for b in "😀".encode()] + [261, 262] + [3 + b for b in "é".encode()]
    pieces = _stream(tok, ids)
    assert "".join(pieces) == tok.decode(ids) == "hello world😀 ok!é"
    assert pieces[0] == "hello" and not any("\ufffd" in p for p in pieces)
    # an unfinished character at the very end comes out on flush, as decode() shows it
    cut = ids[:3]
    pieces = _stream(tok, cut)
    assert "".join(pieces) == tok.decode(cut) and pieces[-1] == "\ufffd"


def _gpt2_byte_chars() -> dict[int, str]:
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b], extra = chr(256 + extra), extra + 1
    return table


# ---- sampler
def test_greedy_is_argmax_lowest_on_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert Sampler().sample(logits) == int(np.argmax(logits))
        assert Sampler(temperature=0, top_p=0.5, seed=3).sample(logits) == int(np.argmax(logits))
    assert Sampler().sample([1.0, 5.0, 5.0, 2.0]) == 1


def test_torch_logits():
    torch = pytest.importorskip("torch")
    logits = torch.tensor([0.1, 3.0, -1.0], dtype=torch.bfloat16)
    assert Sampler().sample(logits) == 1
    assert Sampler(1.0, 1.0, seed=0).sample(logits) in (0, 1, 2)


def test_seeded_determinism():
    logits = np.random.default_rng(1).standard_normal(500)

    def draws(seed: int) -> list[int]:
        sampler = Sampler(0.9, 0.95, seed)
        return [sampler.sample(logits) for _ in range(100)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)


def test_small_top_p_keeps_only_the_top_token():
    logits = np.array([0.0, 2.0, 1.9, -3.0])
    sampler = Sampler(temperature=1.0, top_p=1e-6, seed=0)
    assert {sampler.sample(logits) for _ in range(200)} == {1}


def test_top_p_nucleus_and_distribution():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs) + 7.0  # softmax is shift-invariant
    n = 20000
    # top_p 0.8: the nucleus is {0, 1} (0.5 + 0.3 >= 0.8), renormalised to 0.625 / 0.375
    sampler = Sampler(temperature=1.0, top_p=0.8, seed=5)
    counts = np.bincount([sampler.sample(logits) for _ in range(n)], minlength=4)
    assert counts[2] == counts[3] == 0
    _assert_chi_square(counts[:2], np.array([0.625, 0.375]) * n)
    # temperature 1, no nucleus: the softmax itself
    sampler = Sampler(temperature=1.0, top_p=None, seed=6)
    counts = np.bincount([sampler.sample(logits) for _ in range(n)], minlength=4)
    _assert_chi_square(counts, probs * n)
    # temperature 0.5 squares the odds
    sharp = probs ** 2 / (probs ** 2).sum()
    sampler = Sampler(temperature=0.5, seed=7)
    counts = np.bincount([sampler.sample(logits) for _ in range(n)], minlength=4)
    _assert_chi_square(counts, sharp * n)


def _assert_chi_square(observed: np.ndarray, expected: np.ndarray) -> None:
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = len(observed) - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, observed, expected)  # far tail: ~1e-6 false alarm


@pytest.mark.parametrize("kwargs", [{"temperature": -0.1}, {"temperature": float("nan")},
                                    {"temperature": float("inf")}, {"top_p": 0.0}, {"top_p": 1.5},
                                    {"top_p": -1}])
def test_sampler_validation(kwargs):
    with pytest.raises(EdgeSLMError):
        Sampler(**kwargs)


def test_sampler_bad_logits():
    with pytest.raises(EdgeSLMError):
        Sampler(1.0, seed=0).sample(np.full(4, -np.inf))
    with pytest.raises(EdgeSLMError):
        Sampler().sample(np.zeros((2, 3)))
