"""Text around a model: tokenizer (encode/decode/streaming), chat templates, token sampling.

Depends on `tokenizers`, `jinja2` and numpy only (no transformers, no torch): usable by the host runner.
"""
from edgeslm.text.chat import render_chat_template
from edgeslm.text.sampler import Sampler
from edgeslm.text.tokenizer import StreamDecoder, Tokenizer

__all__ = ["Sampler", "StreamDecoder", "Tokenizer", "render_chat_template"]
