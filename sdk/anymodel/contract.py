"""The decoder contract for any PyTorch module, checked before torch.export.

A decoder must have:
  forward(tokens [1, T] int64, input_pos [T] int64) -> logits [1, V] (last position) or [1, T, V]
  a static KV cache held in buffers, written at `input_pos` (so decode steps see the prompt)
  attributes vocab_size (int), max_seq_len (int), bos_id (int or None), eos_ids (list of int)

Steps of check_decoder: attributes -> forward signature -> cache buffers -> one trial prefill (shape).
Each failure is one EdgeSLMError naming the missing part and the fix. DecoderAdapter then gives the
module the interface lower_to_pte and the accuracy check expect (full_logits flag, config.num_layers).
"""
from __future__ import annotations

import inspect
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from edgeslm.errors import EdgeSLMError

CONTRACT_FIX = "see README 'Custom decoders' for the contract"
ATTRIBUTES = ("vocab_size", "max_seq_len", "bos_id", "eos_ids")


def _source(model: nn.Module) -> Path | None:
    # from forward's code object: works for classes whose module is not in sys.modules (loaded by path)
    try:
        return Path(inspect.getsourcefile(type(model).forward))
    except (TypeError, OSError):
        return None


def check_decoder(model: nn.Module) -> None:
    """Raise one EdgeSLMError naming the first part of the contract `model` misses."""
    where = _source(model)
    name = type(model).__name__
    if not isinstance(model, nn.Module):
        raise EdgeSLMError(f"{name} is not a torch.nn.Module", fix="pass an nn.Module instance")
    missing = [a for a in ATTRIBUTES if not hasattr(model, a)]
    if missing:
        raise EdgeSLMError(f"decoder {name} lacks attribute(s) {', '.join(missing)}", path=where,
                           fix=f"set self.{missing[0]} in __init__ ({CONTRACT_FIX})")
    if not isinstance(model.vocab_size, int) or model.vocab_size < 1:
        raise EdgeSLMError(f"{name}.vocab_size must be a positive int, got {model.vocab_size!r}", path=where,
                           fix=CONTRACT_FIX)
    if not isinstance(model.max_seq_len, int) or model.max_seq_len < 2:
        raise EdgeSLMError(f"{name}.max_seq_len must be an int >= 2, got {model.max_seq_len!r}", path=where,
                           fix=CONTRACT_FIX)
    if model.bos_id is not None and not isinstance(model.bos_id, int):
        raise EdgeSLMError(f"{name}.bos_id must be an int or None, got {model.bos_id!r}", path=where,
                           fix=CONTRACT_FIX)
    try:
        eos = [int(e) for e in model.eos_ids]
    except (TypeError, ValueError):
        raise EdgeSLMError(f"{name}.eos_ids must be a list of ints, got {model.eos_ids!r}", path=where,
                           fix=CONTRACT_FIX) from None
    if any(not 0 <= e < model.vocab_size for e in eos):
        raise EdgeSLMError(f"{name}.eos_ids {eos} lie outside the vocabulary [0, {model.vocab_size})",
                           path=where, fix=CONTRACT_FIX)
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) < 2:
        raise EdgeSLMError(f"{name}.forward takes {len(params)} positional argument(s), the contract needs 2",
                           path=where, fix="define forward(self, tokens, input_pos) "
                                           "(tokens [1, T] int64, input_pos [T] int64)")
    if not any(True for _ in model.buffers()):
        raise EdgeSLMError(f"decoder {name} has no buffers: the contract needs a static KV cache held in buffers",
                           path=where, fix="register_buffer('k_cache', torch.zeros(...)) and write it at input_pos")
    # one trial prefill of 2 tokens: the output must be [1, V] or [1, 2, V]
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 2, dtype=torch.long), torch.arange(2, dtype=torch.long))
    except Exception as err:  # user code: any error type
        line = user_line(err, where)
        raise EdgeSLMError(f"{name}.forward(tokens [1,2] int64, input_pos [2] int64) raised "
                           f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                           + (f" at {line}" if line else ""), path=where, fix=CONTRACT_FIX) from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if shape not in ((1, model.vocab_size), (1, 2, model.vocab_size)):
        raise EdgeSLMError(f"{name}.forward returned {shape if shape else type(out).__name__} for 2 tokens; the "
                           f"contract needs logits [1, {model.vocab_size}] or [1, 2, {model.vocab_size}]",
                           path=where, fix="return a single logits tensor (vocab_size must match lm_head)")
    if not out.dtype.is_floating_point:
        raise EdgeSLMError(f"{name}.forward returned {out.dtype} logits", path=where, fix="return float logits")


def user_line(err: BaseException, source: Path | None) -> str | None:
    """'file:line: code' of the deepest traceback frame in the model's own source file (else None)."""
    if source is None:
        return None
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == source]
    # torch.export keeps the user frame in the message ("File ..., line N") even when the traceback is torch's
    if not frames:
        import re
        for m in re.finditer(r'File "([^"]+)", line (\d+)', str(err)):
            if Path(m.group(1)) == source:
                lineno = int(m.group(2))
                code = source.read_text().splitlines()[lineno - 1].strip()
                frames.append(traceback.FrameSummary(str(source), lineno, "", line=code))
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename}:{f.lineno}: {(f.line or '').strip()}"


class DecoderAdapter(nn.Module):
    """Wraps a contract module for lower_to_pte / accuracy: full_logits switches [1, T, V] <-> [1, V]."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.full_logits = False
        self.vocab_size, self.max_seq_len = int(inner.vocab_size), int(inner.max_seq_len)
        self.bos_id = None if inner.bos_id is None else int(inner.bos_id)
        self.eos_ids = [int(e) for e in inner.eos_ids]
        layers = getattr(inner, "num_layers", None) or getattr(inner, "n_layer", None) or 0
        self.config = SimpleNamespace(num_layers=int(layers))   # llm_metadata's get_n_layers (0: unknown)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        out = self.inner(tokens, input_pos)
        if out.dim() == 3 and not self.full_logits:
            out = out[:, -1, :]                                   # [1, V]
        return out
