"""The int8 KV cache (`--kv-cache int8`, backend_options kv_cache="int8"): K [H_kv, S/16, D + 4, 16] and V
[H_kv, S, D + 4] int8 with each key's and value row's float32 scale in the extra bytes
(compilers/executorch/sdpa_op.py, runtime/kernels/attend_row.h CacheRows).

- edgeslm::cache_write through a real .pte writes the same bytes as the Python reference (rounding ties to
  even, all-zero rows, the scales where the layout puts them);
- a tiny Llama exported with it: manifest and cache sizes exact, the bundle (ExecuTorch's runtime and the
  native C API) against the eager model with the same cache, and close to the float16-cache bundle;
- refusals: another backend, a context that is not a multiple of 16, a head size not a multiple of 4.
(The attention loops over int8 caches: test_attend_qkv_kernel.py and runtime/tests/test_attend_rows.cpp.)"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edgeslm.compilers.executorch.sdpa_op import SCALE_BYTES, KEY_TILE, k_transposed, quantize_rows_int8, v_values


class _CacheWrite(torch.nn.Module):
    """edgeslm::cache_write into int8 caches (H_kv 2, D 12, S 32); returns copies of their bytes."""

    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.zeros(2, 32 // KEY_TILE, 12 + SCALE_BYTES, KEY_TILE, dtype=torch.int8))
        self.register_buffer("v", torch.zeros(2, 32, 12 + SCALE_BYTES, dtype=torch.int8))

    def forward(self, k, v, input_pos):
        torch.ops.edgeslm.cache_write(k, v, self.k, self.v, input_pos)
        return self.k.clone(), self.v.clone()


def _key_bytes(k_cache: torch.Tensor, p: int) -> torch.Tensor:
    """Key p's D component bytes [H_kv, D] from an int8 K cache, by the documented layout: component d of
    key k of a tile at byte (d // 4) * 64 + 4k + d % 4 (attend_int8.h int8_k_offset)."""
    d = k_cache.shape[2] - SCALE_BYTES
    tile = k_cache[:, p // KEY_TILE].reshape(k_cache.shape[0], -1)                  # [H_kv, (D + 4) * 16] bytes
    offsets = torch.tensor([(c // 4) * 64 + 4 * (p % KEY_TILE) + c % 4 for c in range(d)])
    return tile[:, offsets]


def test_quantize_rows_rounds_half_to_even_and_keeps_zero_rows():
    x = torch.tensor([[127.0, 2.5, 3.5, -0.5, -1.5, 0.49, -127.0, 64.0],     # scale 1: ties to even
                      [0.0] * 8,                                            # all zero: scale 0, q 0
                      [1e-3, -2e-3, 0.0, 5e-4, 0.0, 0.0, 0.0, 0.0]])
    q, scale = quantize_rows_int8(x)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert q[0].tolist() == [127, 2, 4, 0, -2, 0, -127, 64] and scale[0] == 1.0
    assert q[1].abs().sum() == 0 and scale[1] == 0
    assert q[2].tolist()[:2] == [64, -127] and torch.allclose(q[2].float() * scale[2], x[2], atol=scale[2] / 2)


def test_cache_write_kernel_int8_equals_reference_bytes(tmp_path):
    from executorch.exir import EdgeCompileConfig, to_edge
    from executorch.runtime import Runtime
    from edgeslm.native.kernels import load_kernels

    load_kernels()
    g = torch.Generator().manual_seed(3)

    def inputs(start, t):
        k = torch.randn(t, 2, 12, generator=g) * 10
        v = torch.randn(t, 2, 12, generator=g)
        k[0, 0] = torch.tensor([127.0, 2.5, 3.5, -0.5, -1.5, 0.5, -127.0, 64.0, 1.5, -2.5, 0.0, 126.5])  # ties
        v[-1, 1] = 0.0                                                                                  # zero row
        return k, v, torch.arange(start, start + t)

    t_dim = torch.export.Dim("t", min=1, max=16)
    ep = torch.export.export(_CacheWrite(), inputs(0, 3), strict=False,
                             dynamic_shapes=({0: t_dim}, {0: t_dim}, {0: t_dim}))
    path = tmp_path / "cache-write-int8.pte"
    path.write_bytes(to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False)).to_executorch().buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    eager = _CacheWrite()
    for start, t in [(0, 5), (5, 1), (31, 1), (14, 9), (6, 16)]:   # prefill, decode, last slot, across tiles
        args = inputs(start, t)
        want_k, want_v = eager(*args)
        got_k, got_v = method.execute(list(args))
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v), (start, t)
        kq, ks = quantize_rows_int8(args[0])
        vq, vs = quantize_rows_int8(args[1])
        for i, p in enumerate(args[2].tolist()):          # key i = key p % 16 of tile p // 16, its scale after
            assert torch.equal(_key_bytes(got_k, p), kq[i])
            if i == 0:                                    # the tie row (scale 1): halves round to even
                assert _key_bytes(got_k, p)[0, :8].tolist() == [127, 2, 4, 0, -2, 0, -127, 64]
            tile_scales = got_k[:, p // 16, 12:].reshape(2, 4 * KEY_TILE).view(torch.float32)   # [H_kv, 16]
            assert torch.equal(tile_scales[:, p % 16], ks[i])
            assert torch.equal(got_v[:, p, :12], vq[i]) and torch.equal(got_v[:, p, 12:].view(torch.float32)[:, 0], vs[i])
    deq_k, deq_v = k_transposed(eager.k), v_values(eager.v)              # [H_kv, D, S], [H_kv, S, D] float32
    assert deq_k.shape == (2, 12, 32) and deq_v.shape == (2, 32, 12) and deq_k.abs().sum() > 0
    for p in (0, 5, 17, 31):                              # dequantized = bytes x scale, key by key
        scales = eager.k[:, p // 16, 12:].reshape(2, 4 * KEY_TILE).view(torch.float32)[:, p % 16]
        assert torch.equal(deq_k[:, :, p], _key_bytes(eager.k, p).float() * scales[:, None])


@pytest.fixture(scope="module")
def kv_bundles(tiny_checkpoint, tmp_path_factory):
    from edgeslm import api
    ckpt = tiny_checkpoint("llama")
    root = tmp_path_factory.mktemp("kv-int8")
    made = {kv: api.export(ckpt, out=root / kv, quant="int8", max_seq_len=128, progress=False,
                           backend_options={"kv_cache": kv}) for kv in ("int8", "float16")}
    return ckpt, made


def test_int8_cache_bundle_matches_eager_with_the_same_cache(kv_bundles):
    from edgeslm import accuracy
    from edgeslm.compilers.executorch import prepare
    from edgeslm.compilers.executorch.session import ExecuTorchSession
    from edgeslm.ingest import load_checkpoint
    from edgeslm.quant import load_recipe

    ckpt, made = kv_bundles
    bundle, f16 = made["int8"], made["float16"]
    meta = bundle.manifest["lowering"]["metadata"]
    cfg = bundle.manifest["model"]["config"]
    head_dim = cfg["head_dim"]
    # K and V of every layer: S slots x (D + 4) bytes per KV head; float16: S x D x 2
    assert meta["kv_cache_dtype"] == "int8"
    assert meta["kv_cache_bytes"] == cfg["num_layers"] * 2 * cfg["num_kv_heads"] * 128 * (head_dim + SCALE_BYTES)
    assert f16.manifest["lowering"]["metadata"]["kv_cache_bytes"] == \
        cfg["num_layers"] * 2 * cfg["num_kv_heads"] * 128 * head_dim * 2
    assert bundle.manifest["memory"]["planned_arena_bytes"] < f16.manifest["memory"]["planned_arena_bytes"]

    eager = prepare(load_checkpoint(ckpt, max_seq_len=128).model, load_recipe("int8"), kv_cache="int8")
    assert eager.layers[0].self_attn.cache.k.dtype == torch.int8
    session = ExecuTorchSession(bundle.artifact)
    prompts = bundle.manifest["accuracy"]["prompts"]
    ref = [accuracy.eager_logits(eager, ids) for ids in prompts]
    got = [accuracy.session_logits(session, ids) for ids in prompts]
    lowered = accuracy.compare(ref, got)
    assert lowered["top1_agreement"] >= 0.9 and lowered["kl_mean"] < 0.005, lowered
    # the int8 cache costs little against the float16 one (the same weights): teacher-forced over the prompts
    got_f16 = [accuracy.session_logits(ExecuTorchSession(f16.artifact), ids) for ids in prompts]
    vs_f16 = accuracy.compare(got_f16, got)
    assert vs_f16["top1_agreement"] >= 0.85 and 0 < vs_f16["kl_mean"] < 0.02, vs_f16


def test_int8_cache_bundle_in_the_native_runtime(kv_bundles):
    from edgeslm.compilers.executorch.session import ExecuTorchSession
    from edgeslm.native.build import build_runner
    from edgeslm.native.capi import NativeModel

    bundle = kv_bundles[1]["int8"]
    ids = [(7 * i + 3) % 384 for i in range(40)]
    session = ExecuTorchSession(bundle.artifact)
    want = session.forward(ids, 0)
    deploy = build_runner("host", progress=False)
    with NativeModel(bundle.path, deploy / "libedgeslm.so") as native:
        np.testing.assert_allclose(native.forward(ids, 0), want, atol=1e-4)
        nxt = int(want.argmax())
        np.testing.assert_allclose(native.forward([nxt], len(ids)), session.forward([nxt], len(ids)), atol=1e-4)


def test_int8_cache_refusals(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("llama")
    cli = [sys.executable, "-m", "edgeslm.cli.main", "export", str(ckpt), "--quant", "int8", "--kv-cache", "int8"]
    for extra, message in [(["--max-seq-len", "40"], "multiple of 16"),
                           (["--backend", "tvm"], "--kv-cache is an option of the executorch backend"),
                           (["--target", "ios-arm64"], "keeps the caches as float16 state")]:
        out = tmp_path / extra[-1]
        proc = subprocess.run(cli + extra + ["-o", str(out), "-q"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "fix:" in lines[0], proc.stderr
        assert not out.exists()
    # a head size the int8 layout cannot hold (groups of 4 components): hidden 24 / 4 heads = 6
    from tiny_checkpoints import make_tiny_checkpoint
    odd = make_tiny_checkpoint("llama", tmp_path / "head6", hidden_size=24)
    out = tmp_path / "head6-out"
    proc = subprocess.run([sys.executable, "-m", "edgeslm.cli.main", "export", str(odd), "--quant", "int8",
                           "--kv-cache", "int8", "--max-seq-len", "64", "-o", str(out), "-q"],
                          capture_output=True, text=True, timeout=600)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "head size that is a multiple of 4" in lines[0] and "not 6" in lines[0] and "fix:" in lines[0]
    assert not out.exists()
