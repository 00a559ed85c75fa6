"""A deterministic test corpus (bytes lines) and test tokenizer.json files for the C++ tokenizer.

`corpus(seed=0)` -> list[bytes], >= 10,000 lines: Python stdlib code and docstrings, CJK, emoji (ZWJ
sequences, skin tones, flags, keycaps), long whitespace runs (spaces, tabs, newlines, \\r\\n, NBSP,
ideographic space, mixed), numbers (ASCII, fullwidth, Arabic-Indic, Devanagari), contractions in every
case (incl. the long s U+017F that folds to 's' under (?i)), special tokens inside text, accented text
in NFC and NFD with shuffled combining marks, Hangul syllables and jamo, and invalid UTF-8 (stray
continuation bytes, truncated sequences, overlongs, surrogates, 0xF5..0xFF).

Invalid UTF-8: `tokenizers` only takes str, so the reference side decodes each line with
errors="replace" (one U+FFFD per maximal invalid subpart) and the C++ side gets the raw bytes and does
the same replacement itself; `reference_text(line)` is that decoding.

`make_tokenizers(out_dir)` -> {name: tokenizer.json path}: byte-level BPE (GPT-2 style; Llama 3 Split +
ByteLevel with ignore_merges; Qwen2 Split + NFC; Digits + ByteLevel as SmolLM v1 / StarCoder), and
SentencePiece-style BPE with byte fallback (Llama 2 legacy normalizers + decoders; Metaspace
pre-tokenizer and decoder as newer conversions), each trained here on part of the corpus, plus the
tiny checkpoints' tokenizer (tests/tiny_checkpoints.py).
"""
from __future__ import annotations

import inspect
import json
import random
import sysconfig
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
            "<|eot_id|>", "<|bos|>", "<|eos|>", "<|pad|>", "wörld tok", "wordy", "awordy", "wordy1", " wordy ",
            "  lstripped", "\t lstripped", "rstripped  \n", "rstripped"]
STDLIB_FILES = ["textwrap.py", "json/decoder.py", "json/encoder.py", "argparse.py", "difflib.py", "shlex.py",
                "string.py", "fractions.py", "heapq.py", "bisect.py", "colorsys.py", "calendar.py"]
DOC_MODULES = ["os", "re", "json", "textwrap", "argparse", "collections", "itertools", "functools", "pathlib",
               "string", "difflib", "datetime", "decimal", "statistics", "shutil"]
EMOJI = ["😀", "👍", "👍🏽", "👩🏿‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "1️⃣", "❤️", "🤷‍♀️", "🧑🏻‍🤝‍🧑🏾", "🐍", "✨",
         "🫠", "🏴‍☠️", "👁️‍🗨️", "🙇🏼‍♂️", "©️", "🔥🔥🔥"]
WORDS = ["the", "model", "runs", "on", "phones", "and", "microcontrollers", "tokenizer", "Paris", "naïve",
         "café", "Straße", "über", "résumé", "jalapeño", "Ελληνικά", "русский", "עברית", "العربية", "हिन्दी",
         "ไทย", "Tiếng Việt", "ǅemal", "ﬁne"]
# assigned after Unicode 14 (Python 3.11's unicodedata) up to 17: the C++ tables follow tokenizers' 16.0
NEW_UNICODE = ["\U0002EBF0", "\U00010D50", "\U0001E4F0\U0001E4F1", "\U000105C9", "\u0CF3", "\U000323B0", "\U00010EC5",
               "\U00031350", "\U00016D43"]
CJK_RANGES = [(0x4E00, 0x9FFF), (0x3040, 0x309F), (0x30A0, 0x30FF), (0xAC00, 0xD7A3), (0x3400, 0x4DBF),
              (0x20000, 0x2A6DF), (0xFF01, 0xFF5E)]
COMBINING = [0x300, 0x301, 0x302, 0x303, 0x308, 0x323, 0x327, 0x328, 0x331, 0x35C, 0x360, 0x1AB0, 0x20D7]
INVALID = [b"\xff", b"\xfe\xfe", b"\x80", b"\xbf\x80", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xe2\x82",
           b"\xe2", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
           b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xc3", b"\xc3\x28", b"\xe1\x80\xe1\x80\x80"]


def _code_lines() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    lines: list[str] = []
    for name in STDLIB_FILES:
        path = root / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if ln.strip()]


def _doc_lines() -> list[str]:
    import importlib
    out: list[str] = []
    for mod_name in DOC_MODULES:
        mod = importlib.import_module(mod_name)
        for name in sorted(dir(mod)):
            doc = inspect.getdoc(getattr(mod, name, None)) if not name.startswith("_") else None
            if doc:
                out += [p for p in doc.split("\n\n") if p.strip()]
    return out


def _cjk(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 6)):
        lo, hi = rng.choice(CJK_RANGES)
        parts.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 12))))
        parts.append(rng.choice(["", "、", "。", " ", "，", "！", "？", "「", "」", " abc ", "123", "ー"]))
    return "".join(parts)


def _whitespace(rng: random.Random) -> str:
    ws = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n ", "\u00a0", "\u3000", "\u2009", "\x0b",
          "\x0c", "\u2028", "\u0085", " " * rng.randint(4, 40), "\n" * rng.randint(2, 9), "\t \t \n"]
    return "".join(rng.choice(ws) + rng.choice(["", rng.choice(WORDS), "x", "{", "}", "1"]) for _ in range(rng.randint(1, 8)))


def _numbers(rng: random.Random) -> str:
    forms = [str(rng.randint(0, 10**rng.randint(1, 12))), f"{rng.random() * 1000:.3f}", f"{rng.randint(0, 10**9):,}",
             "".join(chr(0xFF10 + int(d)) for d in str(rng.randint(0, 99999))),
             "".join(chr(0x660 + int(d)) for d in str(rng.randint(0, 99999))),
             "".join(chr(0x966 + int(d)) for d in str(rng.randint(0, 9999))), "Ⅻ", "½", "²³", "①②"]
    return " ".join(rng.choice(forms) + rng.choice(["", "%", "px", " kg", "x", "-", "."]) for _ in range(rng.randint(1, 6)))


def _contractions(rng: random.Random) -> str:
    subj = ["I", "you", "we", "they", "it", "she", "YOU", "We", "IT"]
    tails = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'ſ",
             "'x", "'", "''", "'s'", "’s"]
    return " ".join(rng.choice(subj) + rng.choice(tails) + rng.choice(["", " go", "n", "!", "s"]) for _ in range(rng.randint(1, 6)))


def _accents(rng: random.Random) -> str:
    import unicodedata
    words = [unicodedata.normalize(rng.choice(["NFC", "NFD", "NFKC"]), w) for w in rng.sample(WORDS, 4)]
    base = rng.choice("aeiouncAEOUZsg한ㄱ")
    marks = "".join(chr(rng.choice(COMBINING)) for _ in range(rng.randint(1, 4)))
    jamo = "".join(chr(c) for c in (0x1100 + rng.randint(0, 18), 0x1161 + rng.randint(0, 20), 0x11A8 + rng.randint(0, 26)))
    new = rng.choice(["", "a" + rng.choice(NEW_UNICODE) + "b", " " + rng.choice(NEW_UNICODE), "1" + rng.choice(NEW_UNICODE)])
    return " ".join(words) + " " + base + marks + " " + jamo + rng.choice(["", "\u0301", "\u0345\u0313"]) + new


def _specials(rng: random.Random) -> str:
    parts = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
    for _ in range(rng.randint(1, 3)):
        parts.insert(rng.randint(0, len(parts)), rng.choice(SPECIALS) + rng.choice(["", " ", "\n"]))
    return rng.choice([" ", ""]).join(parts)


def _mixed(rng: random.Random, code: list[str], docs: list[str]) -> str:
    gens = [lambda: rng.choice(code), lambda: rng.choice(docs), lambda: _cjk(rng), lambda: rng.choice(EMOJI),
            lambda: _whitespace(rng), lambda: _numbers(rng), lambda: _contractions(rng), lambda: _accents(rng)]
    return "".join(rng.choice(gens)() for _ in range(rng.randint(2, 4)))


def _invalid(rng: random.Random, code: list[str]) -> bytes:
    parts = [rng.choice(code).encode(), rng.choice(INVALID), rng.choice(EMOJI).encode()[: rng.randint(1, 4)],
             _cjk(rng).encode(), bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 6)))]
    rng.shuffle(parts)
    return b"".join(parts)


def corpus(seed: int = 0, n: int = 10_000) -> list[bytes]:
    """n lines (>= 10,000 by default) of bytes; a fixed seed gives the same lines on the same Python."""
    rng = random.Random(seed)
    code, docs = _code_lines(), _doc_lines()
    kinds = [(lambda: rng.choice(code), 20), (lambda: rng.choice(docs), 20), (lambda: _cjk(rng), 8),
             (lambda: " ".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 5))), 6), (lambda: _whitespace(rng), 8),
             (lambda: _numbers(rng), 6), (lambda: _contractions(rng), 6), (lambda: _specials(rng), 6),
             (lambda: _accents(rng), 8), (lambda: _mixed(rng, code, docs), 8)]
    gens = [g for g, w in kinds for _ in range(w)]
    lines: list[bytes] = [b"", b" ", b"\n", b"a", b"'s", b"\r\n\r\n", b"  hello", b"hello  ", b"\xef\xbf\xbd"]
    while len(lines) < n:
        if rng.random() < 0.04:
            lines.append(_invalid(rng, code))
        else:
            lines.append(rng.choice(gens)().encode("utf-8"))
    return lines


def reference_text(line: bytes) -> str:
    """What the `tokenizers` side encodes for a line (invalid UTF-8 -> U+FFFD per maximal subpart)."""
    return line.decode("utf-8", errors="replace")


# ---- test tokenizers ----
def _train_bpe(pre_tokenizer, texts: list[str], vocab_size: int, alphabet: list[str] | None, limit: int | None = None):
    from tokenizers import Tokenizer, models, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    extra = {"limit_alphabet": limit} if limit is not None else {}
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, initial_alphabet=alphabet or [], **extra)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _byte_level(name: str, pre, texts, out: Path, *, normalizer=None, ignore_merges=False, bos: str | None = None,
                specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>")) -> Path:
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    tok = _train_bpe(pre, texts, 3000, pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.add_special_tokens(list(specials))
    tok.add_tokens([AddedToken(" lstripped", lstrip=True), AddedToken("wordy", single_word=True),
                    AddedToken("rstripped", rstrip=True)])
    if bos:
        tok.add_special_tokens([bos])
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    data = json.loads(tok.to_str())
    data["model"]["ignore_merges"] = ignore_merges
    path = out / name / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False))
    Tokenizer.from_file(str(path))   # still loads
    return path


def _sentencepiece_style(name: str, texts, out: Path, *, legacy: bool, normalized_added: bool = False) -> Path:
    """Llama 2 / TinyLlama style: ▁ for spaces, byte fallback <0xXX> in the vocab, unk fused.
    normalized_added: the specials (and an extra added token "wörld tok") are matched in normalized text, as
    in older Llama 2 tokenizer.json files."""
    from tokenizers import Tokenizer, pre_tokenizers
    meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trained = json.loads(_train_bpe(meta, texts, 2000, None, limit=300).to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for token in sorted(trained["vocab"], key=trained["vocab"].get):
        vocab.setdefault(token, len(vocab))
    specials = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": normalized_added, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])]
    if normalized_added:
        specials.append({"id": len(vocab), "content": "wörld tok", "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": True, "special": False})
    data = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": trained["merges"]}}
    strip = [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
             {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]
    if legacy:   # Llama 2 / TinyLlama as published: normalizer does the ▁ work
        data["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        data["pre_tokenizer"] = None
        data["decoder"] = {"type": "Sequence", "decoders": strip}
    else:        # newer conversions: Metaspace pre-tokenizer (first) and decoder
        data["normalizer"] = None
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
        data["decoder"] = {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
            {"type": "ByteFallback"}, {"type": "Fuse"}]}
    path = out / name / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False))
    Tokenizer.from_file(str(path))
    return path


LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


def make_tokenizers(out: Path, lines: list[bytes] | None = None) -> dict[str, Path]:
    """Train each test tokenizer on every 4th corpus line; returns {name: tokenizer.json}."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    out = Path(out)
    texts = [reference_text(ln) for ln in (lines or corpus())[::4]]
    split = lambda rx: pre_tokenizers.Split(Regex(rx), behavior="isolated", invert=False)  # noqa: E731
    no_regex = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    made = {
        "gpt2": _byte_level("gpt2", pre_tokenizers.ByteLevel(add_prefix_space=False), texts, out),
        "gpt2-prefix": _byte_level("gpt2-prefix", pre_tokenizers.ByteLevel(add_prefix_space=True), texts, out),
        "llama3": _byte_level("llama3", pre_tokenizers.Sequence([split(LLAMA3_REGEX), no_regex]), texts, out,
                              ignore_merges=True, bos="<|begin_of_text|>", specials=("<|eot_id|>",)),
        "qwen2": _byte_level("qwen2", pre_tokenizers.Sequence([split(QWEN2_REGEX), no_regex]), texts, out,
                             normalizer=normalizers.NFC()),
        "digits": _byte_level("digits", pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]), texts, out),
        "llama2": _sentencepiece_style("llama2", texts, out, legacy=True),
        "llama2-normalized-added": _sentencepiece_style("llama2-normalized-added", texts, out, legacy=True,
                                                        normalized_added=True),
        "tinyllama-metaspace": _sentencepiece_style("tinyllama-metaspace", texts, out, legacy=False),
    }
    from tiny_checkpoints import write_tokenizer
    (out / "tiny").mkdir(parents=True, exist_ok=True)
    write_tokenizer(out / "tiny", 384)
    made["tiny"] = out / "tiny" / "tokenizer.json"
    return made
