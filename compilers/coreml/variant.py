"""The decoder variant Core ML converts: the shared Decoder's weights and math, with three changes that
coremltools needs (NOTES.md "CoreML"), made on a copy so the caller's model (and the ExecuTorch / TVM
numerics) stay untouched:

  1. float16 weights and buffers (Core ML states are float16; the program computes in float16)
  2. SliceKVCache: the new K/V positions are written as one slice at input_pos[0] (slice_update +
     coreml_update_state in MIL) instead of index_put_
  3. finite additive masks: 0 where visible, -MASK_FLOOR elsewhere, built arithmetically. The shared
     decoder's torch.where(visible, 0.0, -inf) converts to a MIL `select` whose inferred shape drops the
     [T, S] dims (coremltools 9), which then bakes T = 1 into later reshapes: prefill would break. The
     sliding-window mask uses logical_and (coremltools has no converter for the bool `&` operator).

export_variant(): torch.export of forward(tokens [1, T], input_pos [T]) -> logits [1, V], T in
[1, max_seq_len - 1] (the slice bounds add a `T != max_seq_len` guard), then run_decompositions({}).
"""
from __future__ import annotations

import copy

import torch

from edgeslm.compilers.base import Unsupported
from edgeslm.models import Decoder, SliceKVCache
from edgeslm.models.config import FULL, SLIDING
from edgeslm.models.layers import RMSNorm, infer_dynamic

MASK_FLOOR = 30000.0   # fp16-safe stand-in for -inf: exp(-30000) == 0 in float16 and float32


class CoreMLDecoder(Decoder):
    """Decoder with finite, arithmetic additive masks (see the module docstring, change 3)."""

    def _masks(self, input_pos: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        q_pos, k_pos = input_pos.unsqueeze(1), self.cache_pos.unsqueeze(0)   # [T, 1], [1, S]
        visible = k_pos <= q_pos                                            # [T, S] causal
        full = self._additive(visible, dtype)
        if self.window is None:
            return {FULL: full, SLIDING: full}
        in_window = torch.logical_and(visible, k_pos > q_pos - self.window)
        return {FULL: full, SLIDING: self._additive(in_window, dtype)}

    def _additive(self, visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        add = (visible.to(dtype) - 1.0) * MASK_FLOOR                      # [T, S]: 0 or -MASK_FLOOR
        return add.repeat(self.rep, 1) if self.rep > 1 else add            # [rep*T, S]


class ScaledRMSNorm(RMSNorm):
    """RMSNorm that stays finite when every op runs in float16: x is divided by its max |x| first, so
    x**2 <= 1 (SmolLM2's residual outliers, |x| ~ 22552, square to +inf in float16). Same value as
    RMSNorm up to rounding: x / rms(x) == y / rms(y) for y = x / s; eps is scaled by 1 / s**2.
    Used where no op can be pinned to float32 (ExecuTorch's Core ML delegate takes one precision)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = infer_dynamic(x.shape)
        h = x.unsqueeze(-1)                                                  # [B, A, dim, 1]
        s = h.abs().amax(dim=(2, 3), keepdim=True).clamp(min=1e-3)          # [B, A, 1, 1]
        y = h / s
        rms = torch.sqrt(y.pow(2).mean((2, 3), keepdim=True) + self.eps / (s * s))
        h = (y / rms).view(shape)
        if self.offset:
            return h * (self.offset + self.weight)
        return self.weight * h


def coreml_variant(model: Decoder, *, scaled_norms: bool = False) -> CoreMLDecoder:
    """A float16 copy of `model` with SliceKVCache caches and finite masks (zeroed caches);
    scaled_norms: RMSNorms that survive all-float16 execution (ScaledRMSNorm)."""
    if not isinstance(model, Decoder):
        raise Unsupported("the coreml backend converts edgeslm's Decoder only",
                          fix="load the model with edgeslm.ingest.load_checkpoint")
    variant = copy.deepcopy(model).to(torch.float16)
    variant.__class__ = CoreMLDecoder
    for layer in variant.layers:
        old = layer.self_attn.cache
        hkv, d, s = old.k.shape                                            # k: [H_kv, D, S]
        layer.self_attn.cache = SliceKVCache(hkv, d, s, torch.float16)
    if scaled_norms:
        for module in variant.modules():
            if type(module) is RMSNorm:
                module.__class__ = ScaledRMSNorm
    variant.eval()
    return variant


def cache_buffers(variant: CoreMLDecoder) -> dict[str, torch.Tensor]:
    """{buffer name: tensor} of the KV caches: the model states (names as named_buffers() spells them)."""
    return {name: buf for name, buf in variant.named_buffers() if ".cache." in name}


def export_variant(variant: CoreMLDecoder) -> torch.export.ExportedProgram:
    torch.set_grad_enabled(False)
    seq = torch.export.Dim("seq", min=1, max=variant.max_seq_len - 1)
    example = (torch.zeros(1, 3, dtype=torch.long), torch.arange(3, dtype=torch.long))
    variant.full_logits = False                      # prefill returns the last position only: [1, V]
    try:
        ep = torch.export.export(variant, example, dynamic_shapes=({1: seq}, {0: seq}), strict=False)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unsupported(f"torch.export of the Core ML decoder variant failed: {first}",
                          fix="the model must follow the decoder contract (README 'Custom decoders')") from err
    return ep.run_decompositions({})
