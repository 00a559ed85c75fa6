"""A real tiny language model for microcontrollers, made offline: `edgeslm quickstart --size micro DIR`.

- corpus.py: the docstrings of Python's own standard library (ast, no imports) as training text
- train.py: byte-level BPE tokenizer (tokenizers) + a ~0.45 M parameter Llama (transformers), seeded,
  trained for a fixed number of steps on the CPU, saved as an ordinary HF checkpoint (cached)
"""
from edgeslm.micro_model.train import MICRO_CONFIG, make_micro_model  # noqa: F401
