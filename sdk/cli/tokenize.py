"""edgeslm tokenize BUNDLE_OR_TOKENIZER_JSON [--native] [--add-special] [--tokens] TEXT

Prints the token ids of TEXT as a JSON list: encode(TEXT, add_special_tokens=--add-special) of the
tokenizer.json in the bundle (or the file given). Default: the Python `tokenizers` library (through
edgeslm.text.Tokenizer); --native: the runtime's C++ tokenizer through libedgeslm.so (ctypes; the host
runner is built once and cached like `edgeslm build-runner`). Both must print the same ids: this verb
is for debugging and comparing the two. --tokens also prints each id's token string.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgeslm.errors import EdgeSLMError


def add_arguments(parser) -> None:
    parser.add_argument("source", help="a bundle folder or a tokenizer.json file")
    parser.add_argument("text", help="the text to encode")
    parser.add_argument("--native", action="store_true", help="use the runtime's C++ tokenizer (libedgeslm.so)")
    parser.add_argument("--add-special", action="store_true",
                        help="run the post-processor (bos/eos) like encode(add_special_tokens=True)")
    parser.add_argument("--tokens", action="store_true", help="also print the token string of each id")


def tokenizer_json(source: str | Path) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise EdgeSLMError("no tokenizer.json here", path=path,
                           fix="pass a bundle folder (edgeslm export -o DIR) or a tokenizer.json file")
    return path


def encode(source: str | Path, text: str, *, native: bool = False, add_special: bool = False) -> list[int]:
    path = tokenizer_json(source)
    if native:
        from edgeslm.native.build import build_runner
        from edgeslm.native.capi import NativeTokenizer
        with NativeTokenizer(path, build_runner("host", progress=False)) as tok:
            return tok.encode(text, add_special=add_special)
    from edgeslm.text import Tokenizer
    return Tokenizer.from_dir(path.parent).backend.encode(text, add_special_tokens=add_special).ids


def run(args) -> int:
    ids = encode(args.source, args.text, native=args.native, add_special=args.add_special)
    print(json.dumps(ids))
    if args.tokens:
        from edgeslm.text import Tokenizer
        backend = Tokenizer.from_dir(tokenizer_json(args.source).parent).backend
        print(json.dumps([backend.id_to_token(i) for i in ids], ensure_ascii=False))
    return 0
