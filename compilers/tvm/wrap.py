"""The decoder in the form TVM takes: the KV cache as explicit inputs and outputs, TVM-friendly linears.

Steps of `prepare(decoder, recipe)` (in place, then wrapped):
  1. every attention's cache -> TVMKVCache: the layer's K/V caches come in as function inputs and are
     written with `edgeslm::kv_write` (in place in TVM, see kv_write.py); buffers are not imported as
     state by Relax, so nothing may live in module buffers between calls
  2. every nn.Linear -> GemvLinear: weight kept [out, in] and computed as W @ x^T, so decode is a
     GEMV reducing along the contiguous axis (no weight transpose at run time); with the int8 recipe
     the weight is int8 per output channel with a float32 scale [out] (weight-only, activations float;
     FoldConstant later dequantizes the linears at build time: see lower.py)
  3. with the int8 recipe, the embedding -> int8 rows with a float32 scale per row
  4. ExplicitCacheDecoder: forward(tokens [1,T], input_pos [T], k_0, v_0, ..., k_{L-1}, v_{L-1})
     -> (logits [1, V] of the last position, k_0', v_0', ...), k_i [H_kv, D, S], v_i [H_kv, S, D]
"""
from __future__ import annotations

import torch
from torch import nn

from edgeslm.compilers.tvm import kv_write  # noqa: F401  (registers torch.ops.edgeslm.kv_write)
from edgeslm.models.attention import KVCache


class TVMKVCache(KVCache):
    """The cache tensors of one call, bound by ExplicitCacheDecoder before the layers run."""

    def bind(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k_in, self.v_in = k, v

    def update(self, input_pos, k, v):
        # k, v [H_kv, T, D] -> K cache [H_kv, D, S] along dim 2, V cache [H_kv, S, D] along dim 1
        self.k_out = torch.ops.edgeslm.kv_write(self.k_in, k.transpose(1, 2), input_pos, 2)
        self.v_out = torch.ops.edgeslm.kv_write(self.v_in, v, input_pos, 1)
        return self.k_out, self.v_out


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: weight [R, C] float -> (q [R, C] int8, scale [R] float32), w ~= q * scale."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return q, scale


class GemvLinear(nn.Module):
    """y = x W^T + b computed as (W @ x^T)^T. weight [out, in] float32, or qweight [out, in] int8 + scale [out]."""

    def __init__(self, linear: nn.Linear, int8: bool):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.int8 = int8
        if int8:
            q, scale = quantize_rows(linear.weight)
            self.register_buffer("qweight", q)                     # [out, in] int8
            self.register_buffer("scale", scale.unsqueeze(1))      # [out, 1] float32
        else:
            self.weight = nn.Parameter(linear.weight.detach().float(), requires_grad=False)  # [out, in]
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        xt = x.reshape(-1, self.in_features).t()                   # [in, T]
        if self.int8:
            yt = torch.matmul(self.qweight.to(x.dtype), xt) * self.scale   # [out, T]
        else:
            yt = torch.matmul(self.weight, xt)                     # [out, T]
        y = yt.t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


class Int8Embedding(nn.Module):
    """Rows stored int8 with a float32 scale per row; lookup dequantizes only the T rows it reads."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        q, scale = quantize_rows(embedding.weight)
        self.register_buffer("qweight", q)                         # [V, hidden] int8
        self.register_buffer("scale", scale.unsqueeze(1))          # [V, 1] float32

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.qweight[tokens].float() * self.scale[tokens]   # [1, T, hidden]


def _swap_linears(module: nn.Module, int8: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, GemvLinear(child, int8))
        else:
            _swap_linears(child, int8)


class ExplicitCacheDecoder(nn.Module):
    """See the module docstring (step 4)."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def cache_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the cache inputs in order: k_0 [H_kv, D, S], v_0 [H_kv, S, D], k_1, ..."""
        shapes = []
        for layer in self.decoder.layers:
            cache = layer.self_attn.cache
            shapes += [tuple(cache.k.shape), tuple(cache.v.shape)]
        return shapes

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor, *caches: torch.Tensor):
        layers = self.decoder.layers
        for i, layer in enumerate(layers):
            layer.self_attn.cache.bind(caches[2 * i], caches[2 * i + 1])
        x = self.decoder.hidden_states(tokens, input_pos)[:, -1:, :]      # [1, 1, hidden]
        logits = self.decoder.head(x).reshape(1, -1)                      # [1, V]
        out = [logits]
        for layer in layers:
            out += [layer.self_attn.cache.k_out, layer.self_attn.cache.v_out]
        return tuple(out)


def prepare(decoder, recipe) -> ExplicitCacheDecoder:
    """Steps 1-4 of the module docstring; `recipe` is a QuantRecipe (fp32 or int8)."""
    int8 = not recipe.is_float
    for layer in decoder.layers:
        old = layer.self_attn.cache
        layer.self_attn.cache = TVMKVCache(old.k.shape[0], old.k.shape[1], old.k.shape[2], old.k.dtype)
    tied = decoder.config.tie_word_embeddings and decoder.lm_head.weight is decoder.embed_tokens.weight
    _swap_linears(decoder, int8)
    if tied and not int8:
        decoder.lm_head.weight = decoder.embed_tokens.weight      # one copy of the [V, hidden] table
    if int8:
        decoder.embed_tokens = Int8Embedding(decoder.embed_tokens)
    return ExplicitCacheDecoder(decoder).eval()


def export(wrapped: ExplicitCacheDecoder) -> torch.export.ExportedProgram:
    """torch.export with T dynamic in [1, max_seq_len]; caches static."""
    torch.set_grad_enabled(False)
    seq = torch.export.Dim("seq", min=1, max=wrapped.decoder.max_seq_len)
    caches = tuple(torch.zeros(s) for s in wrapped.cache_shapes())
    example = (torch.zeros(1, 2, dtype=torch.long), torch.arange(2, dtype=torch.long), *caches)
    dynamic = ({1: seq}, {0: seq}, tuple(None for _ in caches))   # *caches is one tuple argument
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The tensor attributes")   # bound cache inputs, by design
        return torch.export.export(wrapped, example, dynamic_shapes=dynamic, strict=False)
