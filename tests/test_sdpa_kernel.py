"""edgeslm::sdpa_cached: the C++ ExecuTorch kernel (runtime/kernels/sdpa_cached.cpp) against the eager
attention it replaces (KVCache.attend over the whole cache), run through a real .pte in ExecuTorch's
runtime; and the decoder export that uses it."""
from __future__ import annotations

import math

import pytest
import torch

from edgeslm.compilers.executorch.sdpa_op import SdpaKVCache, sdpa_reference, use_sdpa_op
from edgeslm.models.attention import KVCache

H_KV, REP, D, S = 3, 2, 16, 64
LAYOUTS = ["tiled", "transposed"]   # K cache [H_kv, S/16, D, 16] (exports) or [H_kv, D, S] (older bundles)


def _k_layout(k: torch.Tensor, layout: str) -> torch.Tensor:
    """K [H_kv, D, S] -> the kernel's layout; tiled written element by element from its definition
    (key j, component d at [j // 16, d, j % 16]), independently of sdpa_op's reshapes."""
    if layout == "transposed":
        return k
    h, d, s = k.shape
    tiled = torch.empty(h, s // 16, d, 16, dtype=k.dtype)
    j = torch.arange(s)
    for c in range(d):
        tiled[:, j // 16, c, j % 16] = k[:, c, j]
    return tiled


class _OpOnly(torch.nn.Module):
    def __init__(self, softcap: float):
        super().__init__()
        self.softcap = softcap

    def forward(self, q, k, v, mask, input_pos):
        return torch.ops.edgeslm.sdpa_cached(q, k, v, mask, input_pos, self.softcap)


class _TokensOpOnly(_OpOnly):
    def forward(self, q, k, v, mask, input_pos):
        return torch.ops.edgeslm.sdpa_cached_tokens(q, k, v, mask, input_pos, self.softcap)


def _pte_of_op(tmp_path, softcap: float, example, tokens: bool = False) -> "ExecuTorchSession":  # noqa: F821
    from executorch.exir import EdgeCompileConfig, to_edge
    from edgeslm.native.kernels import load_kernels

    load_kernels()
    t = torch.export.Dim("t", min=1, max=S // REP)
    module = _TokensOpOnly(softcap) if tokens else _OpOnly(softcap)
    ep = torch.export.export(module, example, strict=False,
                             dynamic_shapes=({0: t} if tokens else {1: REP * t}, None, None, {0: REP * t}, {0: t}))
    program = to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch()
    path = tmp_path / f"sdpa-{softcap}-{'tokens' if tokens else 'grouped'}.pte"
    path.write_bytes(program.buffer)
    from executorch.runtime import Runtime
    return Runtime.get().load_program(path).load_method("forward")


def _case(start: int, t: int, window: int | None, seed: int):
    """Random caches with tokens at [0, start + t); queries for positions [start, start + t)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(H_KV, REP * t, D, generator=g) / math.sqrt(D)
    k = torch.randn(H_KV, D, S, generator=g)
    v = torch.randn(H_KV, S, D, generator=g)
    pos = torch.arange(start, start + t)
    q_pos, k_pos = pos.unsqueeze(1), torch.arange(S).unsqueeze(0)
    visible = k_pos <= q_pos
    if window is not None:
        visible &= k_pos > q_pos - window
    mask = torch.where(visible, 0.0, float("-inf")).repeat(REP, 1)   # [REP*t, S], row r*t + i
    return q, k, v, mask, pos


def _whole_cache(q, k, v, mask, pos, softcap):
    cache = KVCache(H_KV, D, S, torch.float32)
    return cache.attend(q, k, v, mask, pos, softcap or None)


def _poisoned_past(k, v, end, layout):
    """Copies of the caches with every slot from `end` on set to NaN (a whole-cache kernel returns NaN)."""
    k2, v2 = k.clone(), v.clone()
    k2[:, :, end:] = float("nan")
    v2[:, end:] = float("nan")
    return _k_layout(k2, layout), v2


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("softcap", [0.0, 5.0])
def test_kernel_matches_whole_cache_attention(tmp_path, softcap, layout):
    example = _case(3, 4, None, 0)
    method = _pte_of_op(tmp_path, softcap, example[:1] + (_k_layout(example[1], layout),) + example[2:])
    cases = [(0, 1, None), (0, 7, None), (17, 1, None), (40, 9, None), (S - 1, 1, None),
             (10, 5, 4), (30, 1, 8)]                     # prefill, decode, last slot, sliding windows
    for i, (start, t, window) in enumerate(cases):
        q, k, v, mask, pos = _case(start, t, window, seed=i + 1)
        want = _whole_cache(q, k, v, mask, pos, softcap)                    # [H_kv, REP*t, D]
        got = method.execute([q, _k_layout(k, layout), v, mask, pos])[0]
        assert got.shape == want.shape == (H_KV, REP * t, D)
        assert torch.allclose(got, want, atol=2e-6, rtol=1e-5), (start, t, window, (got - want).abs().max())
        # slots past the newest position never matter (tiled: nor the rest of the last tile, which is
        # read): poison them and get the same result
        k2, v2 = _poisoned_past(k, v, start + t, layout)
        assert torch.allclose(method.execute([q, k2, v2, mask, pos])[0], got, atol=0, rtol=0)


def _to_tokens(q, t):
    """[H_kv, REP*t, D] (row r*t + i = head g*REP + r at token i) -> [t, H_kv*REP, D]."""
    return q.view(H_KV, REP, t, D).permute(2, 0, 1, 3).reshape(t, H_KV * REP, D).contiguous()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("softcap", [0.0, 5.0])
def test_tokens_kernel_matches_whole_cache_attention(tmp_path, softcap, layout):
    """edgeslm::sdpa_cached_tokens (q [T, H, D] -> [1, T, H*D]) against KVCache.attend_tokens over the
    whole cache; calls with a few rows run on the calling thread, large ones on the pool: both covered."""
    example = _case(3, 4, None, 0)
    method = _pte_of_op(tmp_path, softcap, (_to_tokens(example[0], 4), _k_layout(example[1], layout)) + example[2:],
                        tokens=True)
    cases = [(0, 1, None), (0, 7, None), (17, 1, None), (40, 9, None), (S - 1, 1, None), (S - S // REP, S // REP, None),
             (10, 5, 4), (30, 1, 8)]
    for i, (start, t, window) in enumerate(cases):
        q, k, v, mask, pos = _case(start, t, window, seed=i + 1)
        qt = _to_tokens(q, t)
        want = KVCache(H_KV, D, S, torch.float32).attend_tokens(qt, k, v, mask, pos, softcap or None)
        got = method.execute([qt, _k_layout(k, layout), v, mask, pos])[0]
        assert got.shape == want.shape == (1, t, H_KV * REP * D)
        assert torch.allclose(got, want, atol=2e-6, rtol=1e-5), (start, t, window, (got - want).abs().max())
        k2, v2 = _poisoned_past(k, v, start + t, layout)
        assert torch.allclose(method.execute([qt, k2, v2, mask, pos])[0], got, atol=0, rtol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kv_dtype", [torch.float32, torch.float16])
def test_tokens_kernel_long_context_split_and_float16(tmp_path, kv_dtype, layout):
    """A decode step over a long context has fewer (token, KV head) units than the pool has threads x 4:
    the kernel splits each unit's keys into spans and merges their softmax partials; float16 caches are
    read as float32. Both against the reference math on the same (float16-rounded) caches, the reference
    reading K transposed and the kernel K in `layout`."""
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.runtime import Runtime
    from edgeslm.compilers.executorch.sdpa_op import sdpa_tokens_reference
    from edgeslm.native.kernels import load_kernels

    load_kernels()
    hkv, rep, d, s = 2, 3, 64, 1024
    g = torch.Generator().manual_seed(5)
    k = torch.randn(hkv, d, s, generator=g).to(kv_dtype)
    v = torch.randn(hkv, s, d, generator=g).to(kv_dtype)
    k_kernel = _k_layout(k, layout)

    def inputs(start, t):
        q = torch.randn(t, hkv * rep, d, generator=g) / math.sqrt(d)
        pos = torch.arange(start, start + t)
        mask = torch.where(torch.arange(s)[None, :] <= pos[:, None], 0.0, float("-inf"))   # [t, S]
        return q, k_kernel, v, mask, pos

    t_dim = torch.export.Dim("t", min=1, max=64)
    ep = torch.export.export(_TokensOpOnly(0.0), inputs(100, 4), strict=False,
                             dynamic_shapes=({0: t_dim}, None, None, {0: t_dim}, {0: t_dim}))
    path = tmp_path / "sdpa-long.pte"
    path.write_bytes(to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch().buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    for start, t in [(900, 1), (1023, 1), (300, 1), (500, 16)]:            # decode (split), prefill chunk
        q, kk, vv, mask, pos = inputs(start, t)
        want = sdpa_tokens_reference(q.double(), k.double(), vv.double(), mask.double(), pos, 0.0).float()
        got = method.execute([q, kk, vv, mask, pos])[0]
        assert got.shape == (1, t, hkv * rep * d)
        assert torch.allclose(got, want, atol=2e-6, rtol=1e-5), (start, t, (got - want).abs().max())


class _CacheWrite(torch.nn.Module):
    """edgeslm::cache_write into two buffer caches (S = 32, D = 12: the kernels' 8-wide conversions and their
    tail); returns copies of both after the write."""

    def __init__(self, dtype, layout):
        super().__init__()
        k_shape = (2, 2, 12, 16) if layout == "tiled" else (2, 12, 32)    # [H_kv, S/16, D, 16] or [H_kv, D, S]
        self.register_buffer("k", torch.zeros(k_shape, dtype=dtype))
        self.register_buffer("v", torch.zeros(2, 32, 12, dtype=dtype))  # [H_kv, S, D]

    def forward(self, k, v, input_pos):
        torch.ops.edgeslm.cache_write(k, v, self.k, self.v, input_pos)
        return self.k.float() * 1.0, self.v.float() * 1.0


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kv_dtype", [torch.float32, torch.float16])
def test_cache_write_kernel_equals_reference_bit_for_bit(tmp_path, kv_dtype, layout):
    """The kernel writes k/v [T, H_kv, D] at input_pos into K (tiled or transposed) and the V cache in place
    (state kept across calls), with float16 rounding identical to torch's .to(float16): subnormals,
    ties, overflow to inf, -0.0. Key p lands where K's layout puts it (checked from the definition)."""
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.runtime import Runtime
    from edgeslm.native.kernels import load_kernels

    load_kernels()
    g = torch.Generator().manual_seed(11)
    special = torch.tensor([1e-6, 3e-8, 6e-8, 65519.0, 65520.0, 7e4, -0.0, 2.0 ** -24 * 1.5, 1e-9, -65504.0,
                            1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, float("inf"), -float("inf"), 5e-5, -3e-7])

    def inputs(start, t):
        k = torch.randn(t, 2, 12, generator=g) * 10
        v = torch.randn(t, 2, 12, generator=g) * 10
        k.view(-1)[:16] = special
        v.view(-1)[-16:] = special.flip(0)                  # V's conversions too, in the rows' tails
        return k, v, torch.arange(start, start + t)

    t_dim = torch.export.Dim("t", min=1, max=16)
    ep = torch.export.export(_CacheWrite(kv_dtype, layout), inputs(0, 3), strict=False,
                             dynamic_shapes=({0: t_dim}, {0: t_dim}, {0: t_dim}))
    path = tmp_path / "cache-write.pte"
    path.write_bytes(to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch().buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    eager = _CacheWrite(kv_dtype, layout)
    for start, t in [(0, 5), (5, 1), (31, 1), (14, 9), (6, 16)]:   # prefill, decode, last slot, across tiles
        args = inputs(start, t)
        want_k, want_v = eager(*args)
        got_k, got_v = method.execute(list(args))
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v), (start, t)
        assert torch.equal(torch.signbit(got_k), torch.signbit(want_k))           # -0.0 kept
        if layout == "tiled":
            for i, p in enumerate(args[2].tolist()):
                assert torch.equal(got_k[:, p // 16, :, p % 16], args[0][i].to(kv_dtype).float())   # key i at p
        else:
            assert torch.equal(got_k[:, :, args[2]], args[0].to(kv_dtype).float().permute(1, 2, 0))
    assert eager.k.abs().sum() > 0


def test_float16_cache_swap_matches_float32_closely(tiny_checkpoint):
    """use_sdpa_op(model, torch.float16): caches stored as float16 (half the bytes), new k/v cast on write;
    logits stay within float16 rounding of the float32 cache's."""
    from edgeslm.ingest.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=32).model
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    with torch.no_grad():
        before = model(ids, torch.arange(6))
        model.reset_cache()
        f32_bytes = sum(b.numel() * b.element_size() for n, b in model.named_buffers() if n.endswith("cache.k"))
        assert use_sdpa_op(model, torch.float16) == len(model.layers)
        cache = model.layers[0].self_attn.cache
        assert cache.k.dtype == cache.v.dtype == torch.float16
        assert sum(b.numel() * b.element_size() for n, b in model.named_buffers() if n.endswith("cache.k")) * 2 \
            == f32_bytes
        after = model(ids, torch.arange(6))
    assert cache.k.abs().sum() > 0                                  # written through the float16 buffers
    diff = (before - after).abs().max()
    assert 0 < diff < 1e-2, diff
    with pytest.raises(ValueError, match="kv_dtype"):
        use_sdpa_op(model, torch.bfloat16)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reference_equals_whole_cache(layout):
    q, k, v, mask, pos = _case(20, 3, 6, seed=9)
    assert torch.allclose(sdpa_reference(q, _k_layout(k, layout), v, mask, pos, 0.0),
                          _whole_cache(q, k, v, mask, pos, 0.0), atol=1e-6)


def test_use_sdpa_op_swaps_float_caches_only(tiny_checkpoint):
    from edgeslm.ingest.checkpoint import load_checkpoint

    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=32).model
    ids = torch.tensor([[1, 5, 9, 3]])
    before = model(ids, torch.arange(4))
    model.reset_cache()
    stock_shape = tuple(model.layers[0].self_attn.cache.k.shape)           # [H_kv, D, S]
    assert use_sdpa_op(model) == len(model.layers)
    assert all(type(layer.self_attn.cache) is SdpaKVCache for layer in model.layers)
    h_kv, d, s = stock_shape
    assert tuple(model.layers[0].self_attn.cache.k.shape) == (h_kv, s // 16, d, 16)   # key-tiled (32 slots)
    after = model(ids, torch.arange(4))
    assert torch.allclose(before, after, atol=1e-6)
    assert use_sdpa_op(model) == 0                       # already swapped: left alone
    odd = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=40).model
    assert use_sdpa_op(odd) == len(odd.layers)
    assert odd.layers[0].self_attn.cache.k.shape == (h_kv, d, 40)     # S not a multiple of 16: K transposed
    assert torch.allclose(odd(ids, torch.arange(4)), before, atol=1e-5)


def test_chunked_prefill_matches_eager(tmp_path, tiny_checkpoint, monkeypatch):
    """A .pte exported for at most 8 tokens per forward (get_max_seq_len) with a 48-slot cache
    (get_max_context_len): a 30-token prompt runs in 4 chunks in the Python runtime and in the native
    runner, and gives the eager decoder's last-position logits."""
    import numpy as np

    from edgeslm import api
    from edgeslm.compilers.executorch import lower
    from edgeslm.compilers.executorch.session import ExecuTorchSession
    from edgeslm.ingest.checkpoint import load_checkpoint
    from edgeslm.native.build import build_runner
    from edgeslm.native.capi import NativeModel

    monkeypatch.setattr(lower, "PREFILL_CHUNK", 8)
    bundle = tmp_path / "chunked"
    api.export(tiny_checkpoint("llama"), out=bundle, backend="executorch", quant="fp32", max_seq_len=48,
               progress=False)
    ids = [(7 * i + 3) % 384 for i in range(30)]
    eager = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=48).model
    with torch.no_grad():
        want = eager(torch.tensor([ids]), torch.arange(30))[0, -1].numpy()          # [V]

    session = ExecuTorchSession(bundle / "model.pte")
    assert session.metadata("get_max_seq_len") == 8 and session.metadata("get_max_context_len") == 48
    np.testing.assert_allclose(session.forward(ids, 0), want, atol=1e-4)

    deploy = build_runner("host", progress=False)
    with NativeModel(bundle, deploy / "libedgeslm.so") as native:
        assert native.max_seq_len == 48
        np.testing.assert_allclose(native.forward(ids, 0), want, atol=1e-4)


@pytest.mark.parametrize("device", ["host", "qemu-aarch64"])
def test_attend_rows_against_double_reference(device):
    """runtime/tests/test_attend_rows.cpp: the kernel's vector loops (x86-64 clones; NEON under qemu) for
    head sizes 16..128, 1-4 rows per call, bands with holes and soft-capping, against a double reference."""
    import json
    import subprocess
    from pathlib import Path

    from edgeslm.native.build import build_runner
    from edgeslm.native.run import run_qemu
    from tests.native_helpers import require_qemu

    if device != "host":
        require_qemu()
    deploy = build_runner("host" if device == "host" else "linux-arm64", progress=False)
    exe = Path(json.loads((deploy / "build-info.json").read_text())["build_dir"]) / "test_attend_rows"
    if device == "host":
        proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    else:
        proc = run_qemu([str(exe)], timeout_s=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout


def test_kv_cache_dtype_defaults_and_refusals():
    """float16 caches for quantized recipes, float32 for fp32; backend_options kv_cache overrides; anything
    else is refused with the fix."""
    from edgeslm.compilers.base import Unsupported
    from edgeslm.compilers.executorch import kv_cache_dtype
    from edgeslm.quant import load_recipe

    assert kv_cache_dtype(load_recipe("int4")) == kv_cache_dtype(load_recipe("int8")) == "float16"
    assert kv_cache_dtype(load_recipe("fp32")) == "float32"
    assert kv_cache_dtype(load_recipe("int4"), "float32") == "float32"
    assert kv_cache_dtype(load_recipe("fp32"), "float16") == "float16"
    with pytest.raises(Unsupported, match="kv_cache='bfloat16'"):
        kv_cache_dtype(load_recipe("int4"), "bfloat16")
