"""A nanoGPT-style character decoder in plain PyTorch that meets edgeslm's decoder contract.

Contract (README "Custom decoders"): forward(tokens [1, T] int64, input_pos [T] int64) -> logits [1, T, V],
a static KV cache held in buffers (written in place at `input_pos`), and the attributes vocab_size,
max_seq_len, bos_id, eos_ids. Nothing here imports edgeslm.

Per block: LayerNorm -> causal self-attention over the cache -> residual -> LayerNorm -> GELU MLP -> residual.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, max_seq_len: int):
        super().__init__()
        self.n_head, self.head_dim = n_head, n_embd // n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        # static KV cache [H, S, D]; not persistent: a checkpoint holds weights only
        self.register_buffer("k_cache", torch.zeros(n_head, max_seq_len, self.head_dim), persistent=False)
        self.register_buffer("v_cache", torch.zeros(n_head, max_seq_len, self.head_dim), persistent=False)

    def forward(self, x: torch.Tensor, input_pos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        q, k, v = self.qkv(x[0]).split(self.n_head * self.head_dim, dim=-1)        # [T, C] each
        q, k, v = (z.view(t, self.n_head, self.head_dim).transpose(0, 1) for z in (q, k, v))  # [H, T, D]
        # in-place cache write at the T positions (index_put_: the form ExecuTorch keeps in place)
        torch.ops.aten.index_put_(self.k_cache, [None, input_pos], k)
        torch.ops.aten.index_put_(self.v_cache, [None, input_pos], v)
        att = (q @ self.k_cache.transpose(1, 2)) / math.sqrt(self.head_dim) + mask  # [H, T, S]
        y = F.softmax(att, dim=-1) @ self.v_cache                                   # [H, T, D]
        return self.proj(y.transpose(0, 1).reshape(1, t, -1))                       # [1, T, C]


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, max_seq_len: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, max_seq_len)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x, input_pos, mask):
        x = x + self.attn(self.ln_1(x), input_pos, mask)
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, vocab_size: int, n_layer: int = 2, n_head: int = 4, n_embd: int = 64,
                 max_seq_len: int = 128, bos_id: int | None = 0, eos_ids: tuple[int, ...] = (0,)):
        super().__init__()
        self.vocab_size, self.max_seq_len = vocab_size, max_seq_len
        self.bos_id, self.eos_ids, self.num_layers = bos_id, list(eos_ids), n_layer
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(max_seq_len, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, max_seq_len) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight          # tied, as in nanoGPT
        self.register_buffer("cache_pos", torch.arange(max_seq_len), persistent=False)  # [S]
        for module in self.modules():                   # nanoGPT's init: N(0, 0.02), zero biases
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        x = self.wte(tokens) + self.wpe(input_pos).unsqueeze(0)                      # [1, T, C]
        # additive causal mask over the cache: query at p sees slots <= p  -> [T, S]
        mask = torch.where(self.cache_pos.unsqueeze(0) <= input_pos.unsqueeze(1), 0.0, float("-inf"))
        for block in self.blocks:
            x = block(x, input_pos, mask)
        return self.lm_head(self.ln_f(x))                                             # [1, T, V]

    def train_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Training path without the cache: idx [B, T] -> logits [B, T, V] (plain causal attention)."""
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for blk in self.blocks:
            a = blk.attn
            h = blk.ln_1(x)
            q, k, v = a.qkv(h).split(a.n_head * a.head_dim, dim=-1)
            q, k, v = (z.view(b, t, a.n_head, a.head_dim).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + a.proj(y.transpose(1, 2).reshape(b, t, -1))
            x = x + blk.mlp(blk.ln_2(x))
        return self.lm_head(self.ln_f(x))


def make_model(vocab_size: int = 65, **kw) -> NanoGPT:
    """Factory for `edgeslm export examples/nanogpt/model.py:make_model`: random weights, seeded."""
    torch.manual_seed(0)
    return NanoGPT(vocab_size, **kw).eval()
