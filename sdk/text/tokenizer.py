"""Tokenizer for a checkpoint dir: HF `tokenizers` + tokenizer_config.json, without transformers.

Pipeline of `Tokenizer.from_dir(dir)`:
  1. tokenizer.json -> `tokenizers.Tokenizer` (its normalizer, pre-tokenizer, post-processor, decoder)
  2. tokenizer_config.json -> special token strings, add_bos_token/add_eos_token, chat_template
     (or chat_template.jinja beside it, as transformers 5 saves it)
  3. generation_config.json (then config.json) -> extra EOS ids (Llama 3 stops on several)

Encoding follows transformers: when tokenizer_config says add_bos_token/add_eos_token, those flags decide
the special tokens around the text (transformers rebuilds the post-processor from them); otherwise the
post-processor in tokenizer.json does.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from edgeslm.errors import EdgeSLMError
from edgeslm.text.chat import render_chat_template

_FIX_TOKENIZER = "export the tokenizer with the model (tokenizer.save_pretrained(dir)) or run edgeslm.quickstart"


class Tokenizer:
    """Text <-> ids for one checkpoint; `bos_id` may be None, `eos_ids` may hold several ids."""

    def __init__(self, backend, config: dict | None = None, generation: dict | None = None,
                 chat_template: str | None = None, source: Path | None = None):
        self.backend = backend  # tokenizers.Tokenizer
        self.config = dict(config or {})
        self.source = source
        self.chat_template = chat_template if chat_template is not None else self.config.get("chat_template")
        self.bos_token = _token_str(self.config.get("bos_token"))
        self.eos_token = _token_str(self.config.get("eos_token"))
        generation = generation or {}
        self.bos_id = self._id(self.bos_token)
        if self.bos_id is None and isinstance(generation.get("bos_token_id"), int):
            self.bos_id = generation["bos_token_id"]
            self.bos_token = backend.id_to_token(self.bos_id)
        eos = [self._id(self.eos_token)] + _as_list(generation.get("eos_token_id"))
        self.eos_ids: list[int] = list(dict.fromkeys(i for i in eos if i is not None))  # ordered, unique
        if self.eos_token is None and self.eos_ids:
            self.eos_token = backend.id_to_token(self.eos_ids[0])

    @classmethod
    def from_dir(cls, path: str | Path) -> "Tokenizer":
        from tokenizers import Tokenizer as Backend

        path = Path(path)
        file = path / "tokenizer.json"
        if not file.is_file():
            raise EdgeSLMError("no tokenizer.json in the checkpoint", path=path, fix=_FIX_TOKENIZER)
        try:
            backend = Backend.from_file(str(file))
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON or an unknown model type
            raise EdgeSLMError(f"tokenizer.json is unreadable ({' '.join(str(err).split())[:200]})", path=file,
                               fix=_FIX_TOKENIZER) from None
        config = _read_json(path / "tokenizer_config.json")
        generation = _read_json(path / "generation_config.json") or _read_json(path / "config.json")
        template = None
        if not config.get("chat_template") and (path / "chat_template.jinja").is_file():
            template = (path / "chat_template.jinja").read_text(encoding="utf-8")
        return cls(backend, config, generation, template, source=path)

    # ---- ids
    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of `text`; add_bos=None follows the tokenizer (config flags, else its post-processor)."""
        flags = "add_bos_token" in self.config or "add_eos_token" in self.config
        if not flags:
            ids = self.backend.encode(text, add_special_tokens=True).ids
            if add_bos is None or self.bos_id is None:
                return ids
            raw = self.backend.encode(text, add_special_tokens=False).ids
            if ids[:1] == [self.bos_id] and len(ids) > len(raw) and ids[1:1 + len(raw)] == raw:
                ids = ids[1:]  # the post-processor's BOS; re-added below if asked for
            return [self.bos_id] + ids if add_bos else ids
        ids = self.backend.encode(text, add_special_tokens=False).ids
        bos = self.config.get("add_bos_token", False) if add_bos is None else add_bos
        if bos and self.bos_id is not None:
            ids = [self.bos_id] + ids
        if self.config.get("add_eos_token", False) and self.eos_ids:
            ids = ids + [self.eos_ids[0]]
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def stream(self, skip_special_tokens: bool = False) -> "StreamDecoder":
        return StreamDecoder(self, skip_special_tokens=skip_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    # ---- chat
    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **kwargs) -> str:
        """The prompt string for `messages`, rendered like transformers' apply_chat_template(tokenize=False)."""
        if not self.chat_template:
            raise EdgeSLMError("the tokenizer has no chat_template", path=self.source or "tokenizer_config.json",
                               fix="add \"chat_template\" to tokenizer_config.json, or prompt with plain text")
        specials = {k: _token_str(v) for k, v in self.config.items()
                    if k.endswith("_token") and _token_str(v) is not None}
        specials.update(bos_token=self.bos_token, eos_token=self.eos_token)
        return render_chat_template(self.chat_template, messages, add_generation_prompt=add_generation_prompt,
                                    **{k: v for k, v in specials.items() if v is not None}, **kwargs)


class StreamDecoder:
    """Token ids in, text pieces out; the pieces concatenate to `decode(all ids)`.

    Each push re-decodes the whole id list and emits the new suffix, so byte-level BPE and metaspace
    (leading-space) decoders both come out right. A trailing U+FFFD means an unfinished UTF-8 sequence
    split across tokens: it is held back until the bytes complete (or `flush()` at the end).
    Cost: O(n) decode per token; fine for chat lengths (a few thousand tokens).
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = []
        self.emitted = ""  # text already handed out; always a prefix of the current decode

    def push(self, token_id: int) -> str:
        """Add one id; returns the newly complete text (often "", e.g. mid-character)."""
        self.ids.append(int(token_id))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        stable = text.rstrip("\ufffd")
        if len(stable) <= len(self.emitted) or not stable.startswith(self.emitted):
            return ""  # nothing new, or an earlier decode changed (held until it settles)
        piece, self.emitted = stable[len(self.emitted):], stable
        return piece

    def extend(self, token_ids: Iterable[int]) -> str:
        return "".join(self.push(t) for t in token_ids)

    def flush(self) -> str:
        """The held-back rest (e.g. a final broken byte shown as U+FFFD); call once at the end."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip_special_tokens)
        if not text.startswith(self.emitted):
            return ""
        piece, self.emitted = text[len(self.emitted):], text
        return piece


def _token_str(value) -> str | None:
    """Special tokens are strings, or {"content": ...} dicts in older tokenizer_config files."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _as_list(value) -> list[int]:
    if isinstance(value, int):
        return [value]
    return [v for v in value if isinstance(v, int)] if isinstance(value, list) else []


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise EdgeSLMError(f"unreadable JSON ({err})", path=path, fix="restore the file from the checkpoint") from None
    return data if isinstance(data, dict) else {}
