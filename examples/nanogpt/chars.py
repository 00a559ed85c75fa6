"""Character tokenizer for the nanoGPT example, written as a Hugging Face tokenizer.json so that
`edgeslm run` can encode prompts and decode tokens of the bundle (id 0 = "<eos>", then one id per char)."""
from __future__ import annotations

import json
from pathlib import Path

EOS = "<eos>"


def vocab_of(text: str) -> list[str]:
    return [EOS, *sorted(set(text))]


def write_char_tokenizer(vocab: list[str], folder: str | Path) -> Path:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(vocab)}, unk_token=EOS))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")   # one piece per char
    tok.decoder = decoders.Fuse()                                                    # join without spaces
    tok.add_special_tokens([EOS])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS, "add_bos_token": False,
                                                               "add_eos_token": False}))
    return folder
