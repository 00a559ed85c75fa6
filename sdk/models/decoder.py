"""Decoder: the export-friendly Llama-family model with a static KV cache (batch size 1).

forward(tokens [1, T], input_pos [T]) -> logits: embed (x sqrt(hidden) for Gemma) -> build one
additive mask per attention kind from `input_pos` and the cache positions -> N blocks (pre-norm,
or Gemma 3's sandwich norms) -> final norm -> lm_head over all positions (`full_logits`) or only
the last one -> optional soft-capping -> float32 logits.

Export: torch.export.export(m, (tokens, pos), dynamic_shapes=({1: seq}, {0: seq}), strict=False)
with seq = Dim("seq", min=1, max=max_seq_len) (see tests/test_models_parity.py).
"""
from __future__ import annotations

import torch
from torch import nn

from edgeslm.errors import EdgeSLMError

from .attention import Attention, KVCache
from .config import FULL, SLIDING, DecoderConfig
from .layers import MLP, RMSNorm
from .rope import Rotary


class Block(nn.Module):
    def __init__(self, cfg: DecoderConfig, layer_type: str, max_seq_len: int, dtype: torch.dtype,
                 kv_cache: type[KVCache]):
        super().__init__()
        eps, off = cfg.rms_norm_eps, cfg.norm_offset
        self.layer_type = layer_type
        self.self_attn = Attention(cfg, max_seq_len, dtype, kv_cache)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act, cfg.mlp_bias)
        self.input_layernorm = RMSNorm(cfg.hidden_size, eps, off)
        # Llama: the pre-MLP norm. Gemma 3 (sandwich): the norm of the attention output.
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, eps, off)
        self.sandwich = cfg.sandwich_norm
        if self.sandwich:
            self.pre_feedforward_layernorm = RMSNorm(cfg.hidden_size, eps, off)
            self.post_feedforward_layernorm = RMSNorm(cfg.hidden_size, eps, off)

    def forward(self, x, input_pos, rope, mask):
        h = self.self_attn(self.input_layernorm(x), input_pos, rope, mask)
        if self.sandwich:
            x = x + self.post_attention_layernorm(h)
            return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """See the module docstring. Attributes for generation: config, max_seq_len, vocab_size, bos_id,
    eos_ids, full_logits (True: logits [1, T, V]; False: last position only, [1, V])."""

    def __init__(self, config: DecoderConfig, max_seq_len: int, *, dtype: torch.dtype = torch.float32,
                 kv_cache: type[KVCache] = KVCache):
        super().__init__()
        if max_seq_len < 2:
            raise EdgeSLMError(f"max_seq_len {max_seq_len} is too small", fix="use max_seq_len >= 2")
        for rope in {config.rope, config.rope_local or config.rope}:
            if rope.kind == "longrope" and max_seq_len > rope.original_max_position_embeddings:
                raise EdgeSLMError(
                    f"longrope is supported up to original_max_position_embeddings "
                    f"({rope.original_max_position_embeddings}), not max_seq_len {max_seq_len}",
                    fix=f"use max_seq_len <= {rope.original_max_position_embeddings}")
        self.config, self.max_seq_len = config, max_seq_len
        self.vocab_size, self.bos_id = config.vocab_size, config.bos_token_id
        self.eos_ids = list(config.eos_token_ids)
        self.full_logits = True
        self.rep = config.num_heads // config.num_kv_heads
        # a window covering the whole cache is plain causal attention: no second mask needed
        window = config.sliding_window
        sliding = window is not None and window < max_seq_len and SLIDING in config.layer_types
        self.window = window if sliding else None
        # the scale rounded to the model dtype, as transformers multiplies by a dtype tensor
        self.embed_scale = float(torch.tensor(config.embed_scale, dtype=dtype, device="cpu"))
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)   # weight [V, hidden]
        self.layers = nn.ModuleList(Block(config, t, max_seq_len, dtype, kv_cache) for t in config.layer_types)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.norm_offset)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)  # weight [V, hidden]
        self.rotary = nn.ModuleDict({FULL: Rotary(config.rope, config.head_dim, max_seq_len, dtype)})
        if config.rope_local is not None and SLIDING in config.layer_types:
            self.rotary[SLIDING] = Rotary(config.rope_local, config.head_dim, max_seq_len, dtype)
        self.register_buffer("cache_pos", torch.arange(max_seq_len), persistent=False)  # [S] int64
        self.tie_weights()

    def init_buffers(self) -> None:
        """Recompute every non-persistent buffer (RoPE tables, cache positions, zeroed caches); needed
        after `to_empty()` when the model was built on the meta device to skip weight init."""
        self.cache_pos.copy_(torch.arange(self.max_seq_len, device="cpu"))
        for module in self.modules():
            if module is not self and hasattr(module, "init_buffers"):
                module.init_buffers()

    def tie_weights(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def reset_cache(self) -> None:
        for layer in self.layers:
            layer.self_attn.cache.reset()

    def _masks(self, input_pos: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Additive masks [rep*T, S] per layer type: 0 where a query may see a cache slot, -inf elsewhere."""
        q_pos, k_pos = input_pos.unsqueeze(1), self.cache_pos.unsqueeze(0)   # [T, 1], [1, S]
        visible = k_pos <= q_pos                                            # [T, S] causal
        full = self._additive(visible, dtype)
        if self.window is None:
            return {FULL: full, SLIDING: full}
        return {FULL: full, SLIDING: self._additive(visible & (k_pos > q_pos - self.window), dtype)}

    def _additive(self, visible: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        add = torch.where(visible, 0.0, float("-inf")).to(dtype)           # [T, S]
        return add.repeat(self.rep, 1) if self.rep > 1 else add             # [rep*T, S], row r*T + t

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        x = self.hidden_states(tokens, input_pos)                           # [1, T, hidden]
        if not self.full_logits:
            x = x[:, -1, :]                                                 # [1, hidden]
        return self.head(x)                                                 # [1, T, V] or [1, V]

    def hidden_states(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        """tokens [1, T], input_pos [T] -> final-normed hidden states [1, T, hidden]; updates the KV cache.
        (Split from forward so a backend can pick the last position its own way: TVM's importer
        mis-handles `x[:, -1, :]` with a dynamic T, `x[:, -1:, :]` imports fine.)"""
        x = self.embed_tokens(tokens)                                       # [1, T, hidden]
        if self.embed_scale != 1.0:
            x = x * self.embed_scale
        masks = self._masks(input_pos, x.dtype)
        ropes = {kind: rot(input_pos) for kind, rot in self.rotary.items()}  # cos/sin [T, 1, D], R [D, D]
        for layer in self.layers:
            x = layer(x, input_pos, ropes.get(layer.layer_type, ropes[FULL]), masks[layer.layer_type])
        return self.norm(x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """[..., hidden] -> float32 logits [..., V] (lm_head, then Gemma 2/3 soft-capping)."""
        logits = self.lm_head(x)
        if self.config.final_softcap is not None:
            cap = self.config.final_softcap
            logits = torch.tanh(logits / cap) * cap
        return logits.float()
