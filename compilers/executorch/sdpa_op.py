"""edgeslm::sdpa_cached: attention over the filled part of the static KV cache, as one op.

Why: XNNPACK runs the decoder's two attention `bmm`s over the whole cache (S = max_seq_len slots) and
re-packs K and V on every call; on SmolLM2 (S = 2048) that was over half of each decode step (ETDump).
The op reads only the L = max(input_pos) + 1 slots that hold tokens.

Pieces:
  1. torch.library ops (functional, for export) + `.out` variants (what ExecuTorch's emitter calls):
     `edgeslm::sdpa_cached_tokens` (q [T, H, D] -> [1, T, H*D], the layout of the projections: exports
     use it) and `edgeslm::sdpa_cached` (head-grouped [H_kv, rep*T, D], kept for older bundles); the
     eager implementations are the reference math (KVCache.attend on the first L slots: the masked
     slots past L contribute exactly 0).
  2. SdpaKVCache: the KVCache whose `attend` calls the op and whose update is `edgeslm::cache_write`
     (k/v [T, H_kv, D] written into the caches at input_pos in one op, cast to the cache's dtype; it
     mutates the cache buffers, ExecuTorch re-inplaces it as it does llama::update_cache). Behind the
     fused q/k/v projection (qlinear_op.QuantQKV) both are one `edgeslm::attend_qkv` op on its rows
     [T, H + 2*H_kv, D] (attend_packed): no slices or copies between the projection and the attention.
  3. use_sdpa_op(model, kv_dtype): swaps every layer's cache for an SdpaKVCache before export; with
     kv_dtype=torch.float16 the caches store float16 (half the bytes a decode step reads, as llama.cpp's
     default f16 cache; the op computes in float32 either way); torch.int8: int8 with a float32 scale per
     key and per value row (17/32 of float16's bytes; as llama.cpp's q8_0 cache, one scale per head row of
     D values; layout below).
Runtime kernel: runtime/kernels/sdpa_cached.cpp (native runner: libedgeslm.so; Python runtime:
edgeslm.native.kernels.load_kernels()).
"""
from __future__ import annotations

import torch

from edgeslm.models.attention import KVCache, split_qkv

OP_NAME = "edgeslm::sdpa_cached"                  # head-grouped layout (what earlier bundles use)
TOKENS_OP_NAME = "edgeslm::sdpa_cached_tokens"    # token-major layout: what exports use now

_lib = torch.library.Library("edgeslm", "FRAGMENT")
_lib.define("sdpa_cached(Tensor q, Tensor k_cache, Tensor v_cache, Tensor mask, Tensor input_pos, "
            "float softcap) -> Tensor")
_lib.define("sdpa_cached.out(Tensor q, Tensor k_cache, Tensor v_cache, Tensor mask, Tensor input_pos, "
            "float softcap, *, Tensor(a!) out) -> Tensor(a!)")
_lib.define("cache_write(Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor input_pos) -> Tensor")
_lib.define("cache_write.out(Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor input_pos, *, "
            "Tensor(c!) out) -> Tensor(c!)")
_lib.define("sdpa_cached_tokens(Tensor q, Tensor k_cache, Tensor v_cache, Tensor mask, Tensor input_pos, "
            "float softcap) -> Tensor")
_lib.define("sdpa_cached_tokens.out(Tensor q, Tensor k_cache, Tensor v_cache, Tensor mask, Tensor input_pos, "
            "float softcap, *, Tensor(a!) out) -> Tensor(a!)")
_lib.define("attend_qkv(Tensor qkv, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor mask, Tensor input_pos, "
            "float softcap, int heads) -> Tensor")
_lib.define("attend_qkv.out(Tensor qkv, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor mask, Tensor input_pos, "
            "float softcap, int heads, *, Tensor(c!) out) -> Tensor(c!)")


KEY_TILE = 16   # keys per tile of the tiled K cache (runtime/kernels/attend_row.h kKeyTile)
MAX_INT8_HEAD_DIM = 512   # runtime/kernels/attend_int8.h kMaxInt8HeadDim
SCALE_BYTES = 4  # int8 caches: bytes per row for its float32 scale (attend_row.h CacheRows)

# int8 caches (runtime/kernels/attend_row.h CacheRows, attend_int8.h): K [H_kv, S/16, D + 4, 16] - each
# tile's D*16 component bytes as [D/4, 16, 4] (component d of key k at byte (d//4)*64 + 4k + d%4: 4 components
# of a key side by side for the kernels' integer dot products; D a multiple of 4), then the 16 keys' float32
# scales (key k's at byte D*16 + 4k); V [H_kv, S, D + 4] - each row's D int8 values, then its float32 scale.
# Value = int8 * scale. Calls of fewer than DEQUANTIZE_TOKENS tokens (decode steps) quantize the query rows
# too (quantize_query_int8) and sum int8 products; longer ones (prefill chunks) attend dequantized float32.
DEQUANTIZE_TOKENS = 8   # runtime/kernels/sdpa_cached.cpp kDequantizeTokens


def quantize_rows_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [..., D] float32 -> (q [..., D] int8, scale [...] float32) with x ~ q * scale: symmetric per row,
    scale = max|x| / 127, q = round-half-even(x / scale) (the same bytes as the kernels' quantize_row_int8)."""
    x = x.float()
    scale = x.abs().amax(dim=-1) / 127.0
    div = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(x / div.unsqueeze(-1)).clamp(-127, 127).to(torch.int8)
    return q, scale


def quantize_query_int8(q: torch.Tensor) -> torch.Tensor:
    """q [..., D] float32 -> the values the kernels' integer score pass uses (attend_int8.h quantize_query):
    q8 * qs with qs = max|q| / 127, q8 = round-half-even(q * (127 / max|q|)) per row (all-zero rows: 0)."""
    amax = q.abs().amax(dim=-1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    return torch.round(q * inv).clamp(-127, 127) * (amax / 127.0)


def _scale_view(rows: torch.Tensor) -> torch.Tensor:
    """The float32 scales stored in int8 bytes rows [..., 4 * n] -> [..., n] (a copy, for reading)."""
    return rows.contiguous().view(torch.float32)


def tiled_k_shape(num_kv_heads: int, head_dim: int, max_seq_len: int) -> tuple[int, ...]:
    """Shape of the key-tiled K cache [H_kv, S/16, D, 16] (each tile's 16 keys x D components contiguous,
    so the kernel reads K sequentially); S must be a multiple of 16."""
    return (num_kv_heads, max_seq_len // KEY_TILE, head_dim, KEY_TILE)


def k_transposed(k_cache: torch.Tensor) -> torch.Tensor:
    """K as [H_kv, D, S] from any layout (key-tiled [H_kv, S/16, D, 16], already transposed, or int8 tiled
    [H_kv, S/16, D + 4, 16]: dequantized to float32)."""
    if k_cache.dim() == 3:
        return k_cache
    h, tiles, d, tile = k_cache.shape
    if k_cache.dtype == torch.int8:
        d -= SCALE_BYTES
        rows = k_cache.reshape(h, tiles, -1)
        scales = _scale_view(rows[:, :, d * tile:])                                     # [H_kv, S/16, 16]
        comps = rows[:, :, :d * tile].reshape(h, tiles, d // 4, tile, 4).permute(0, 1, 2, 4, 3)
        k_cache = comps.reshape(h, tiles, d, tile).float() * scales.unsqueeze(2)       # [H_kv, S/16, D, 16]
    return k_cache.permute(0, 2, 1, 3).reshape(h, d, tiles * tile)


def v_values(v_cache: torch.Tensor) -> torch.Tensor:
    """V as [H_kv, S, D]: as stored, or an int8 cache [H_kv, S, D + 4] dequantized to float32."""
    if v_cache.dtype != torch.int8:
        return v_cache
    d = v_cache.shape[-1] - SCALE_BYTES
    return v_cache[..., :d].float() * _scale_view(v_cache[..., d:])


def sdpa_reference(q, k_cache, v_cache, mask, input_pos, softcap: float) -> torch.Tensor:
    """q [H_kv, R, D] (scaled), k_cache [H_kv, S/16, D, 16] (tiled) or [H_kv, D, S], v_cache [H_kv, S, D]
    (float32 or float16: read as float32; int8 layouts dequantized), mask [R, S], input_pos [T] -> [H_kv, R, D];
    softcap 0 = none.
    Only slots < max(input_pos) + 1 are read."""
    n = int(input_pos.max()) + 1
    if k_cache.dtype == torch.int8 and input_pos.numel() < DEQUANTIZE_TOKENS:
        q = quantize_query_int8(q)                                          # the kernel's integer scores
    k_cache = k_transposed(k_cache)
    k_cache, v_cache = k_cache[:, :, :n].to(q.dtype), v_values(v_cache[:, :n]).to(q.dtype)
    scores = torch.bmm(q, k_cache)                                          # [H_kv, R, L]
    if softcap > 0:
        scores = torch.tanh(scores / softcap) * softcap
    probs = torch.softmax((scores + mask[:, :n]).float(), dim=-1).to(q.dtype)
    return torch.bmm(probs, v_cache)                                        # [H_kv, R, D]


def sdpa_tokens_reference(q, k_cache, v_cache, mask, input_pos, softcap: float) -> torch.Tensor:
    """Token-major layout: q [T, H, D] (scaled), mask [>= T, S] (row t for token t) -> [1, T, H*D]."""
    t, h, d = q.shape
    hkv = k_cache.shape[0]
    rep = h // hkv
    qg = q.reshape(t, hkv, rep, d).permute(1, 2, 0, 3).reshape(hkv, rep * t, d)       # [H_kv, rep*T, D]
    tiled = mask[:t].repeat(rep, 1)                                                    # [rep*T, S]
    out = sdpa_reference(qg, k_cache, v_cache, tiled, input_pos, softcap)             # [H_kv, rep*T, D]
    return out.reshape(hkv, rep, t, d).permute(2, 0, 1, 3).reshape(1, t, h * d)


def cache_write_reference(k, v, k_cache, v_cache, input_pos) -> torch.Tensor:
    """k, v [T, H_kv, D] -> key t at slot input_pos[t] of k_cache (tiled: [:, pos // 16, :, pos % 16];
    transposed: [:, :, pos]) and v_cache[:, input_pos], in place (cast to the caches' dtype; int8 caches:
    quantize_rows_int8 and the scales into their bytes); returns a dummy [1] zero (the kernel's out-variant
    convention)."""
    if k_cache.dtype == torch.int8:
        _cache_write_int8(k, v, k_cache, v_cache, input_pos)
        return k.new_zeros(1)
    if k_cache.dim() == 4:      # the two index tensors are split by a slice: indexed dims first, [T, H_kv, D]
        torch.ops.aten.index_put_(k_cache, [None, input_pos // KEY_TILE, None, input_pos % KEY_TILE],
                                  k.to(k_cache.dtype))
    else:
        torch.ops.aten.index_put_(k_cache, [None, None, input_pos], k.permute(1, 2, 0).to(k_cache.dtype))  # [H_kv, D, T]
    torch.ops.aten.index_put_(v_cache, [None, input_pos], v.transpose(0, 1).to(v_cache.dtype))         # [H_kv, T, D]
    return k.new_zeros(1)


def _cache_write_int8(k, v, k_cache, v_cache, input_pos) -> None:
    h, tiles, dp, tile = k_cache.shape
    d = dp - SCALE_BYTES
    kq, ks = quantize_rows_int8(k)                                     # [T, H_kv, D], [T, H_kv]
    vq, vs = quantize_rows_int8(v)
    tile_of, col = input_pos // KEY_TILE, input_pos % KEY_TILE
    comps = k_cache.view(h, tiles, dp * tile)[:, :, :d * tile].view(h, tiles, d // 4, tile, 4)
    torch.ops.aten.index_put_(comps, [None, tile_of, None, col], kq.view(-1, h, d // 4, 4))   # [T, H_kv, D/4, 4]
    k_scales = k_cache.view(h, tiles, dp * tile)[:, :, d * tile:].view(h, tiles, tile, SCALE_BYTES)
    torch.ops.aten.index_put_(k_scales, [None, tile_of, col], ks.view(torch.int8).view(-1, h, SCALE_BYTES)
                              .transpose(0, 1))                         # values [H_kv, T, 4]
    torch.ops.aten.index_put_(v_cache[:, :, :d], [None, input_pos], vq.transpose(0, 1))
    torch.ops.aten.index_put_(v_cache[:, :, d:], [None, input_pos], vs.view(torch.int8).view(-1, h, SCALE_BYTES)
                              .transpose(0, 1))


def _cache_write_out(k, v, k_cache, v_cache, input_pos, *, out):
    out.resize_(1).copy_(cache_write_reference(k, v, k_cache, v_cache, input_pos))
    return out


def attend_qkv_reference(qkv, k_cache, v_cache, mask, input_pos, softcap, heads: int) -> torch.Tensor:
    """qkv [T, H + 2*H_kv, D] (H query heads, roped and scaled, then keys, then values: QuantQKV's rows) ->
    keys/values written as cache_write, then attention as sdpa_cached_tokens -> [1, T, H*D]."""
    q, k, v = split_qkv(qkv, heads, k_cache.shape[0])
    cache_write_reference(k, v, k_cache, v_cache, input_pos)
    return sdpa_tokens_reference(q.contiguous(), k_cache, v_cache, mask, input_pos, softcap)


def _attend_qkv_out(qkv, k_cache, v_cache, mask, input_pos, softcap, heads, *, out):
    result = attend_qkv_reference(qkv, k_cache, v_cache, mask, input_pos, softcap, heads)
    out.resize_(result.shape).copy_(result)
    return out


def _functional(q, k_cache, v_cache, mask, input_pos, softcap):
    return sdpa_reference(q, k_cache, v_cache, mask, input_pos, softcap)


def _out(q, k_cache, v_cache, mask, input_pos, softcap, *, out):
    result = sdpa_reference(q, k_cache, v_cache, mask, input_pos, softcap)
    out.resize_(result.shape).copy_(result)
    return out


def _tokens_out(q, k_cache, v_cache, mask, input_pos, softcap, *, out):
    result = sdpa_tokens_reference(q, k_cache, v_cache, mask, input_pos, softcap)
    out.resize_(result.shape).copy_(result)
    return out


_lib.impl("sdpa_cached", _functional, "CompositeExplicitAutograd")
_lib.impl("sdpa_cached.out", _out, "CompositeExplicitAutograd")
_lib.impl("sdpa_cached_tokens", sdpa_tokens_reference, "CompositeExplicitAutograd")
_lib.impl("cache_write", cache_write_reference, "CompositeExplicitAutograd")
_lib.impl("cache_write.out", _cache_write_out, "CompositeExplicitAutograd")
_lib.impl("sdpa_cached_tokens.out", _tokens_out, "CompositeExplicitAutograd")
_lib.impl("attend_qkv", attend_qkv_reference, "CompositeExplicitAutograd")
_lib.impl("attend_qkv.out", _attend_qkv_out, "CompositeExplicitAutograd")


@torch.library.register_fake(OP_NAME)
def _fake(q, k_cache, v_cache, mask, input_pos, softcap):
    return q.new_empty(q.shape)


@torch.library.register_fake("edgeslm::cache_write")
def _cache_write_fake(k, v, k_cache, v_cache, input_pos):
    return k.new_empty(1)


@torch.library.register_fake(TOKENS_OP_NAME)
def _tokens_fake(q, k_cache, v_cache, mask, input_pos, softcap):
    return q.new_empty((1, q.shape[0], q.shape[1] * q.shape[2]))


@torch.library.register_fake("edgeslm::attend_qkv")
def _attend_qkv_fake(qkv, k_cache, v_cache, mask, input_pos, softcap, heads):
    return qkv.new_empty((1, qkv.shape[0], heads * qkv.shape[2]))


class SdpaKVCache(KVCache):
    """KVCache whose attention is the fused `edgeslm::sdpa_cached` op (float32 queries; float32, float16 or
    int8 caches)."""

    def update_tokens(self, input_pos, k, v):
        # k, v [T, H_kv, D] straight from the projections: one op writes both caches
        torch.ops.edgeslm.cache_write(k, v, self.k, self.v, input_pos)
        return self.k, self.v

    def attend(self, q, k_all, v_all, mask, input_pos, softcap):
        return torch.ops.edgeslm.sdpa_cached(q, k_all, v_all, mask, input_pos, float(softcap or 0.0))

    def attend_tokens(self, q, k_all, v_all, mask, input_pos, softcap):
        # q [T, H, D] -> [1, T, H*D] in one op: no regrouping around it to split XNNPACK's partitions
        return torch.ops.edgeslm.sdpa_cached_tokens(q.contiguous(), k_all, v_all, mask, input_pos,
                                                    float(softcap or 0.0))

    def attend_packed(self, qkv, heads, mask, input_pos, softcap):
        # qkv [T, H + 2*H_kv, D] -> cache write + attention in one op (no slices, no copy of q)
        return torch.ops.edgeslm.attend_qkv(qkv, self.k, self.v, mask, input_pos, float(softcap or 0.0), heads)


def use_sdpa_op(model, kv_dtype: torch.dtype = torch.float32) -> int:
    """Swap the caches of a Decoder built on the stock float32 KVCache for SdpaKVCache storing kv_dtype
    (float16: half the bytes; int8: about a quarter, with scales) in new zeroed buffers: K key-tiled
    [H_kv, S/16, D, 16] when S is a multiple of 16 (else transposed [H_kv, D, S] as before), V [H_kv, S, D];
    int8: K [H_kv, S/16, D + 4, 16], V [H_kv, S, D + 4] (the scales' bytes; S must be a multiple of 16).
    Returns how many layers were swapped (0: not a stock decoder, or not float32, left alone)."""
    if kv_dtype not in (torch.float32, torch.float16, torch.int8):
        raise ValueError(f"kv_dtype must be torch.float32, torch.float16 or torch.int8, not {kv_dtype}")
    layers = getattr(model, "layers", None)
    if layers is None:
        return 0
    swapped = 0
    for layer in layers:
        attn = getattr(layer, "self_attn", None)
        old = getattr(attn, "cache", None)
        if type(old) is not KVCache or old.k.dtype != torch.float32:
            continue
        old.__class__ = SdpaKVCache
        hkv, d, s = old.k.shape                       # stock k [H_kv, D, S], v [H_kv, S, D]
        if kv_dtype == torch.int8 and s % KEY_TILE:
            raise ValueError(f"an int8 KV cache needs max_seq_len a multiple of {KEY_TILE}, not {s}")
        if kv_dtype == torch.int8 and (d % 4 or d > MAX_INT8_HEAD_DIM):
            raise ValueError(f"an int8 KV cache needs a head size that is a multiple of 4 and at most "
                             f"{MAX_INT8_HEAD_DIM}, not {d}")
        pad = SCALE_BYTES if kv_dtype == torch.int8 else 0
        k_shape = tiled_k_shape(hkv, d + pad, s) if s % KEY_TILE == 0 else (hkv, d, s)
        old.k = torch.zeros(k_shape, dtype=kv_dtype)
        old.v = torch.zeros((hkv, s, d + pad), dtype=kv_dtype)
        swapped += 1
    return swapped
