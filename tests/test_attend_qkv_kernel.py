"""edgeslm::attend_qkv: the fused q/k/v rows [T, H + 2*H_kv, D] written into the KV cache and attended in
one C++ kernel (runtime/kernels/sdpa_cached.cpp), run through a real .pte in ExecuTorch's runtime, against
the stock float32 KVCache (index_put_ + two bmms, sdk/models/attention.py) fed the same rows."""
from __future__ import annotations

import math

import pytest
import torch

from edgeslm.compilers.executorch.sdpa_op import (DEQUANTIZE_TOKENS, SCALE_BYTES, attend_qkv_reference,
                                                  k_transposed, quantize_query_int8, quantize_rows_int8,
                                                  tiled_k_shape)
from edgeslm.models.attention import KVCache


class _AttendQkv(torch.nn.Module):
    """The op over two buffer caches (state kept across calls); returns the attention and float32 copies of
    both caches (K as [H_kv, D, S] whatever its layout; int8 caches: their bytes as they are)."""

    def __init__(self, hkv, d, s, heads, dtype, layout):
        super().__init__()
        self.heads = heads
        pad = SCALE_BYTES if dtype == torch.int8 else 0                 # int8: + the rows' scales
        k_shape = tiled_k_shape(hkv, d + pad, s) if layout == "tiled" else (hkv, d, s)
        self.register_buffer("k", torch.zeros(k_shape, dtype=dtype))
        self.register_buffer("v", torch.zeros(hkv, s, d + pad, dtype=dtype))

    def forward(self, qkv, mask, input_pos):
        out = torch.ops.edgeslm.attend_qkv(qkv, self.k, self.v, mask, input_pos, 0.0, self.heads)
        if self.k.dtype == torch.int8:
            return out, self.k.clone(), self.v.clone()
        return out, k_transposed(self.k).float() * 1.0, self.v.float() * 1.0


# (H_kv, rep, D, S, calls [(start, T)]): a small case on the calling thread (prefill, decodes, the last
# slot) and a long one whose decode steps go to the pool and are split over keys (fewer units than threads x 4)
CASES = {
    "small": (2, 2, 16, 32, [(0, 5), (5, 1), (6, 3), (31, 1)]),
    "long": (2, 3, 64, 512, [(0, 64), (64, 200), (264, 1), (265, 1), (266, 16), (282, 1)]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("layout,kv_dtype", [("tiled", torch.float16), ("tiled", torch.float32),
                                             ("transposed", torch.float32), ("tiled", torch.int8)])
def test_attend_qkv_kernel_matches_the_stock_cache(tmp_path, case, layout, kv_dtype):
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.runtime import Runtime
    from edgeslm.native.kernels import load_kernels

    load_kernels()
    hkv, rep, d, s, calls = CASES[case]
    heads = hkv * rep
    g = torch.Generator().manual_seed(len(calls))

    def inputs(start, t):
        qkv = torch.randn(t, heads + 2 * hkv, d, generator=g)
        qkv[:, :heads] /= math.sqrt(d)                                              # scaled queries
        pos = torch.arange(start, start + t)
        mask = torch.where(torch.arange(s)[None, :] <= pos[:, None], 0.0, float("-inf"))   # [T, S] causal
        return qkv, mask, pos

    t_dim = torch.export.Dim("t", min=1, max=s // 2)
    ep = torch.export.export(_AttendQkv(hkv, d, s, heads, kv_dtype, layout), inputs(0, 3), strict=False,
                             dynamic_shapes=({0: t_dim}, {0: t_dim}, {0: t_dim}))
    program = to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch()
    assert any("attend_qkv" in str(op.name) for plan in program.executorch_program.execution_plan
               for op in plan.operators)
    path = tmp_path / "attend-qkv.pte"
    path.write_bytes(program.buffer)
    method = Runtime.get().load_program(path).load_method("forward")

    stock = KVCache(hkv, d, s, torch.float32)            # [H_kv, D, S] / [H_kv, S, D] float32, index_put_ + bmm
    ref = _AttendQkv(hkv, d, s, heads, kv_dtype, layout)  # int8: the Python reference's caches (eager)
    for start, t in calls:
        qkv, mask, pos = inputs(start, t)
        fed = qkv.clone()                               # the stock cache holds what the cache dtype can
        if kv_dtype == torch.float16:
            fed[:, heads:] = qkv[:, heads:].half().float()
        elif kv_dtype == torch.int8:                    # int8: the quantized rows, dequantized
            q8, scale = quantize_rows_int8(qkv[:, heads:])
            fed[:, heads:] = q8.float() * scale.unsqueeze(-1)
            if t < DEQUANTIZE_TOKENS:                   # decode calls: integer scores of quantized queries
                fed[:, :heads] = quantize_query_int8(qkv[:, :heads])
        want = stock.attend_packed(fed, heads, mask.repeat(rep, 1), pos, None)     # stock mask [rep*T, S]
        got, got_k, got_v = method.execute([qkv, mask, pos])
        assert got.shape == want.shape == (1, t, heads * d)
        assert torch.allclose(got, want, atol=3e-6, rtol=1e-5), (start, t, (got - want).abs().max())
        if kv_dtype == torch.int8:                      # the same bytes as the Python reference writes
            attend_qkv_reference(qkv, ref.k, ref.v, mask, pos, 0.0, heads)
            assert torch.equal(got_k, ref.k) and torch.equal(got_v, ref.v), (start, t)
        else:
            assert torch.equal(got_k, stock.k) and torch.equal(got_v, stock.v), (start, t)   # every slot written so far
