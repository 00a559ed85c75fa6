"""Attention over a static KV cache, shaped for torch.export and XNNPACK (batch size 1).

Per call: q/k/v projections -> optional q/k RMSNorm -> RoPE -> cache update at `input_pos`
(KVCache.update, the seam other backends replace) -> grouped-query attention (KVCache.attend: two
`bmm`s over KV-head groups without expanding the cache, reached through KVCache.attend_tokens; or a
backend's fused kernel) -> output projection.

Layout choices (see NOTES.md "Exporting decoders"): the K cache is stored transposed [H_kv, D, S]
so scores are a plain bmm; queries are regrouped to [H_kv, rep*T, D] so each KV head serves its
`rep` query heads in one bmm; the additive mask is built once per call by the Decoder, already
tiled to [rep*T, S].
"""
from __future__ import annotations

import torch
from torch import nn

from .config import DecoderConfig
from .layers import RMSNorm
from .rope import apply_rotary


def split_qkv(qkv: torch.Tensor, heads: int, kv_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused projection rows [T, H + 2*H_kv, D] -> views q [T, H, D], k [T, H_kv, D], v [T, H_kv, D]."""
    return qkv[:, :heads], qkv[:, heads:heads + kv_heads], qkv[:, heads + kv_heads:]


class KVCache(nn.Module):
    """In-place static cache written with `index_put_` at `input_pos` (ExecuTorch's reinplace pass
    keeps it in place). Subclass and override `update` for another strategy."""

    def __init__(self, num_kv_heads: int, head_dim: int, max_seq_len: int, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("k", torch.zeros(num_kv_heads, head_dim, max_seq_len, dtype=dtype),
                             persistent=False)   # [H_kv, D, S]  (transposed: scores = q @ k)
        self.register_buffer("v", torch.zeros(num_kv_heads, max_seq_len, head_dim, dtype=dtype),
                             persistent=False)   # [H_kv, S, D]

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v: [H_kv, T, D] for positions input_pos [T]. Returns the whole cache (k [H_kv, D, S],
        v [H_kv, S, D]); entries past the newest position are masked by the caller."""
        # index_put_ called directly, not `cache[:, :, pos] = x`: Python's setitem strips leading unit dims
        # of the values (H_kv == 1 -> [D, T]), and ExecuTorch's in-place index_put kernel cannot broadcast.
        torch.ops.aten.index_put_(self.k, [None, None, input_pos], k.transpose(1, 2))   # values [H_kv, D, T]
        torch.ops.aten.index_put_(self.v, [None, input_pos], v)                         # values [H_kv, T, D]
        return self.k, self.v

    def update_tokens(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-major entry: k, v [T, H_kv, D] (the projections' layout) -> update(). (A backend can take
        this layout as it is: ExecuTorch's edgeslm::cache_write.)"""
        return self.update(input_pos, k.transpose(0, 1), v.transpose(0, 1))

    def attend(self, q: torch.Tensor, k_all: torch.Tensor, v_all: torch.Tensor, mask: torch.Tensor,
               input_pos: torch.Tensor, softcap: float | None) -> torch.Tensor:
        """Grouped-query attention over the whole cache: q [H_kv, rep*T, D] (already scaled), k_all
        [H_kv, D, S], v_all [H_kv, S, D], mask [rep*T, S] additive -> [H_kv, rep*T, D].
        (The seam a backend replaces with a fused kernel, e.g. ExecuTorch's edgeslm::sdpa_cached.)"""
        scores = torch.bmm(q, k_all)                        # [H_kv, rep*T, S]
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        probs = torch.softmax((scores + mask).float(), dim=-1).to(q.dtype)
        return torch.bmm(probs, v_all)                      # [H_kv, rep*T, D]

    def attend_tokens(self, q: torch.Tensor, k_all: torch.Tensor, v_all: torch.Tensor, mask: torch.Tensor,
                      input_pos: torch.Tensor, softcap: float | None) -> torch.Tensor:
        """Token-major entry: q [T, H, D] (already scaled), mask [rep*T, S] -> [1, T, H*D], what the
        output projection takes. Regroups the query heads of each KV head for `attend` (head h = g*rep + r
        uses KV head g; positions inner) and back. (A fused kernel can take this layout as it is:
        ExecuTorch's edgeslm::sdpa_cached_tokens.)"""
        h, d = q.shape[1], q.shape[2]
        hkv = k_all.shape[0]
        rep = h // hkv
        qg = q.view(-1, hkv, rep, d).permute(1, 2, 0, 3).reshape(hkv, -1, d)      # [H_kv, rep*T, D]
        out = self.attend(qg, k_all, v_all, mask, input_pos, softcap)            # [H_kv, rep*T, D]
        return out.view(hkv, rep, -1, d).permute(2, 0, 1, 3).reshape(1, -1, h * d)  # [1, T, H*D]

    def attend_packed(self, qkv: torch.Tensor, heads: int, mask: torch.Tensor, input_pos: torch.Tensor,
                      softcap: float | None) -> torch.Tensor:
        """Fused-projection entry: qkv [T, H + 2*H_kv, D] (H query heads, roped and scaled, then the keys,
        then the values of each token) -> update_tokens + attend_tokens -> [1, T, H*D]. (A backend can take
        the rows as they are: ExecuTorch's edgeslm::attend_qkv.)"""
        q, k, v = split_qkv(qkv, heads, self.v.shape[0])
        k_all, v_all = self.update_tokens(input_pos, k, v)
        return self.attend_tokens(q, k_all, v_all, mask, input_pos, softcap)

    def reset(self) -> None:
        self.k.zero_()
        self.v.zero_()

    def init_buffers(self) -> None:
        self.reset()


class SliceKVCache(KVCache):
    """Writes the T new positions as one slice at start = input_pos[0] (positions must be contiguous).
    What CoreML's stateful conversion and ExecuTorch's CoreML partitioner need (NOTES.md). Export
    with seq max = max_seq_len - 1: the slice bounds add a `seq != max_seq_len` guard."""

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = input_pos[0].item()
        torch._check(start >= 0)
        torch._check(start + k.shape[1] <= self.k.shape[2])
        self.k[:, :, start:start + k.shape[1]] = k.transpose(1, 2)
        self.v[:, start:start + k.shape[1]] = v
        return self.k, self.v


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig, max_seq_len: int, dtype: torch.dtype, kv_cache: type[KVCache] = KVCache):
        super().__init__()
        h, hkv, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim, self.rep = h, hkv, d, h // hkv
        self.scale, self.softcap = cfg.attn_scale, cfg.attn_softcap
        self.q_proj = nn.Linear(cfg.hidden_size, h * d, bias=cfg.qkv_bias)     # weight [H*D, hidden]
        self.k_proj = nn.Linear(cfg.hidden_size, hkv * d, bias=cfg.qkv_bias)   # weight [H_kv*D, hidden]
        self.v_proj = nn.Linear(cfg.hidden_size, hkv * d, bias=cfg.qkv_bias)   # weight [H_kv*D, hidden]
        self.o_proj = nn.Linear(h * d, cfg.hidden_size, bias=cfg.o_bias)       # weight [hidden, H*D]
        if cfg.qk_norm:
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps, cfg.norm_offset)        # over head_dim
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps, cfg.norm_offset)
        else:
            self.q_norm = self.k_norm = None
        self.cache = kv_cache(hkv, d, max_seq_len, dtype)
        # Set by compilers/executorch/qlinear_op.use_qlinear: q/k/v projections + RoPE + scale in one op,
        # whose rows [T, H + 2*H_kv, D] go to the cache's attend_packed as they are.
        self.qkv: nn.Module | None = None

    def forward(self, x: torch.Tensor, input_pos: torch.Tensor, rope: tuple[torch.Tensor, ...],
                mask: torch.Tensor) -> torch.Tensor:
        """x [1, T, hidden]; input_pos [T]; rope (cos, sin [T, 1, D], R [D, D]); mask [rep*T, S] additive.
        -> [1, T, hidden]. Views name the dynamic T as -1 (XNNPACK delegates those, not symbolic ones)."""
        hkv, d = self.num_kv_heads, self.head_dim
        if self.qkv is not None:
            qkv = self.qkv(x, rope)                         # [T, H + 2*H_kv, D]: q (roped, scaled), k, v
            return self.o_proj(self.cache.attend_packed(qkv, self.num_heads, mask, input_pos, self.softcap))
        q = self.q_proj(x).view(-1, self.num_heads, d)      # [T, H, D]
        k = self.k_proj(x).view(-1, hkv, d)                 # [T, H_kv, D]
        v = self.v_proj(x).view(-1, hkv, d)                 # [T, H_kv, D]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary(q, rope) * self.scale, apply_rotary(k, rope)
        k_all, v_all = self.cache.update_tokens(input_pos, k, v)
        out = self.cache.attend_tokens(q, k_all, v_all, mask, input_pos, self.softcap)  # [1, T, H*D]
        return self.o_proj(out)
