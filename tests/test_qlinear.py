"""edgeslm::linear_q4 / linear_q8 (compilers/executorch/qlinear_op.py, runtime/kernels/qlinear.*):
packing, the ExecuTorch kernel against the reference math, the loops on x86-64 and arm64."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeslm.compilers.executorch import qlinear_op as Q


@pytest.mark.parametrize("n,k", [(64, 96), (13, 32), (200, 576)])
def test_int4_packing_is_torchaos_8da4w_weights(n, k):
    """The packed integers and scales dequantize to torchao's 8da4w weights (float16 scales: ~1e-3)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    torch.manual_seed(n)
    lin = nn.Linear(k, n, bias=False)
    ours = Q.unpack_q4(*Q.pack_q4(lin.weight), n)
    ref = nn.Sequential(nn.Linear(k, n, bias=False))
    ref[0].weight.data.copy_(lin.weight.data)
    quantize_(ref, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32)))
    theirs = ref[0].weight.dequantize().double()
    assert ours.shape == (n, k)
    step = lin.weight.detach().double().abs().reshape(n, -1, 32).amax(-1).repeat_interleave(32, 1) / 7.5
    # same integers (one level off would be a whole step); float16 scales: |w| <= 8 levels x 2^-11 relative
    assert ((ours - theirs).abs() <= 4.5e-3 * step + 1e-12).all()
    assert ((ours - lin.weight.detach().double()).abs() <= step * (0.5 + 4.5e-3) + 1e-9).all()


def test_int8_packing_round_trip():
    torch.manual_seed(1)
    w = torch.randn(21, 64)
    w[3] = 0.0                                                       # an all-zero channel
    w8, s8 = Q.pack_q8(w)
    assert w8.shape == (3, 16, 32) and w8.dtype == torch.int8 and s8.shape == (24,)
    assert int(w8.min()) >= -127 and int(w8.max()) <= 127
    back = Q.unpack_q8(w8, s8, 21)
    step = (w.abs().amax(-1, keepdim=True) / 127).double()
    assert ((back - w.double()).abs() <= step * 0.5 + 1e-7).all()
    assert (back[3] == 0).all()


def test_module_rejects_nothing_it_cannot_pack():
    model = nn.Sequential(nn.Linear(64, 10), nn.Linear(10, 7), nn.Linear(64, 8).double())
    assert Q.use_qlinear(model, 8) == 1                              # in_features 10: no groups of 32; double: no
    assert isinstance(model[0], Q.QuantLinear) and type(model[1]) is nn.Linear
    assert Q.qlinear_bits({"activations": "int8_dynamic", "weight_bits": 4, "group_size": 32}) == 4
    assert Q.qlinear_bits({"activations": "int8_dynamic", "weight_bits": 4, "group_size": 64}) is None
    assert Q.qlinear_bits({"activations": "int8_dynamic", "weight_bits": 8, "group_size": None}) == 8
    assert Q.qlinear_bits({"activations": "none", "weight_bits": 8, "group_size": None}) is None


def _export_linear(module: nn.Module, k: int, out: Path) -> Path:
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    rows = torch.export.Dim("rows", min=1, max=64)
    ep = torch.export.export(module.eval(), (torch.randn(1, 5, k),), dynamic_shapes=({1: rows},), strict=False)
    program = to_edge_transform_and_lower(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    out.write_bytes(program.to_executorch().buffer)
    return out


@pytest.mark.parametrize("bits,n,k", [(4, 13, 576), (4, 200, 1536), (8, 13, 32), (8, 200, 576)])
def test_kernel_matches_reference_math(tmp_path, bits, n, k):
    """The .pte's kernel (Python runtime, libedgeslm_kernels.so) against the op's eager reference: 1-64 rows
    (the 4-row passes and their tails, decode and prefill), a zero row, bias, N not a multiple of 8;
    activations with a few large outliers (the per-group scales keep the rest of the row fine)."""
    from executorch.runtime import Runtime

    from edgeslm.native.kernels import load_kernels

    torch.manual_seed(bits * 1000 + n)
    linear = nn.Linear(k, n, bias=True)
    module = nn.Sequential(Q.QuantLinear(linear, bits))
    pte = _export_linear(module, k, tmp_path / "q.pte")
    load_kernels()
    method = Runtime.get().load_program(pte).load_method("forward")
    for rows in (1, 3, 4, 5, 9, 64):
        x = torch.randn(1, rows, k) * 3
        if rows == 3:
            x[0, 1] = 0.0
        if rows == 5:
            x[0, :, 7] = 200.0
        got = method.execute([x])[0]
        want = module(x)
        assert got.shape == (1, rows, n)
        scale = float(want.abs().max())
        assert float((got - want).abs().max()) <= 1e-5 * scale, rows
        # and the quantized result is close to the float linear (a sanity bound, not the test's point)
        assert float((want - linear(x)).abs().max()) <= 0.2 * float(linear(x).abs().max())


@pytest.mark.parametrize("bits", [4, 8])
def test_fused_mlp_kernel_matches_reference_math(tmp_path, bits):
    """edgeslm::mlp_q4/q8 (one op for gate/up, SiLU x up, down) against its eager reference, which is the
    two linear ops' reference math around F.silu; the swap covers exactly the SiLU MLPs without bias."""
    from executorch.runtime import Runtime

    from edgeslm.models.layers import MLP
    from edgeslm.native.kernels import load_kernels

    torch.manual_seed(bits)
    mlp = MLP(64, 96, "silu")
    model = nn.Sequential(mlp)
    assert Q.use_qlinear(model, bits) == 3 and isinstance(model[0], Q.QuantMLP)
    assert Q.use_qlinear(nn.Sequential(MLP(64, 96, "gelu_tanh")), bits) == 3     # 3 QuantLinears instead
    pte = _export_linear(model, 64, tmp_path / "mlp.pte")
    load_kernels()
    method = Runtime.get().load_program(pte).load_method("forward")
    for rows in (1, 4, 9, 64):
        x = torch.randn(1, rows, 64) * 2
        got, want = method.execute([x])[0], model(x)
        assert got.shape == (1, rows, 64)
        assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max()), rows
        assert float((want - mlp(x)).abs().max()) <= 0.2 * float(mlp(x).abs().max())


class _QKVOnly(nn.Module):
    def __init__(self, qkv):
        super().__init__()
        self.qkv = qkv

    def forward(self, x, cos, sin):
        from edgeslm.models.attention import split_qkv
        return split_qkv(self.qkv(x, (cos, sin, None)), self.qkv.heads, self.qkv.kv_heads)   # [T, H + 2*H_kv, D]


@pytest.mark.parametrize("bits,rot_dim", [(4, 16), (8, 12)])
def test_fused_qkv_rope_kernel_matches_the_attention_math(tmp_path, bits, rot_dim):
    """edgeslm::qkv_rope_q4/q8: q/k/v projections in one pass, RoPE (full and partial rotary widths) on q
    and k, q scaled; against the decoder's own apply_rotary over the quantized projections."""
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from edgeslm.models.rope import apply_rotary, rotate_half_matrix
    from edgeslm.native.kernels import load_kernels

    torch.manual_seed(rot_dim)
    heads, kv_heads, d, hidden = 4, 2, 16, 64

    class Attn(nn.Module):                                            # the attributes QuantQKV reads
        def __init__(self):
            super().__init__()
            self.num_heads, self.num_kv_heads, self.scale = heads, kv_heads, 0.25
            self.q_proj = nn.Linear(hidden, heads * d, bias=False)
            self.k_proj = nn.Linear(hidden, kv_heads * d, bias=False)
            self.v_proj = nn.Linear(hidden, kv_heads * d, bias=False)

    attn = Attn()
    module = _QKVOnly(Q.QuantQKV(attn, rot_dim, bits))
    rows = torch.export.Dim("rows", min=1, max=64)
    example = (torch.randn(1, 3, hidden), torch.randn(3, 1, d), torch.randn(3, 1, d))
    ep = torch.export.export(module, example, dynamic_shapes=({1: rows}, {0: rows}, {0: rows}), strict=False)
    program = to_edge_transform_and_lower(ep, compile_config=EdgeCompileConfig(_check_ir_validity=False))
    (tmp_path / "qkv.pte").write_bytes(program.to_executorch().buffer)
    load_kernels()
    method = Runtime.get().load_program(tmp_path / "qkv.pte").load_method("forward")
    lin = Q.QuantLinear(nn.Linear(hidden, (heads + 2 * kv_heads) * d, bias=False), bits)
    lin.w, lin.s = module.qkv.w, module.qkv.s
    for t in (1, 5, 64):
        x, ang = torch.randn(1, t, hidden), torch.rand(t, 1, d) * 6
        cos, sin = ang.cos(), ang.sin()
        got = method.execute([x, cos, sin])
        proj = lin(x).reshape(t, heads + 2 * kv_heads, d)
        rope = (cos, sin, rotate_half_matrix(rot_dim, d))
        want = (apply_rotary(proj[:, :heads], rope) * 0.25, apply_rotary(proj[:, heads:heads + kv_heads], rope),
                proj[:, heads + kv_heads:])
        for g, w in zip(got, want):
            assert g.shape == w.shape
            assert float((g - w).abs().max()) <= 1e-5 * float(w.abs().max()), t


@pytest.mark.parametrize("device", ["host", "qemu-aarch64"])
def test_qlinear_loops_against_double_reference(device):
    """runtime/tests/test_qlinear.cpp: AVX2 (x86-64) / SDOT (arm64, qemu cortex-a76) and portable loops
    (also on a cortex-a53, which has no SDOT) against a double reference."""
    from edgeslm.native.build import build_runner
    from edgeslm.native.run import run_qemu
    from tests.native_helpers import require_qemu

    if device != "host":
        require_qemu()
    deploy = build_runner("host" if device == "host" else "linux-arm64", progress=False)
    exe = Path(json.loads((deploy / "build-info.json").read_text())["build_dir"]) / "test_qlinear"
    if device == "host":
        runs = [subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)]
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        paths = ["taken" if all(f" {f}" in flags for f in ("avx2", "fma", "f16c")) else "not available"]
    else:
        runs = [run_qemu([str(exe)], timeout_s=600), run_qemu([str(exe)], timeout_s=600, cpu="cortex-a53")]
        paths = ["taken", "not available"]
    for proc, path in zip(runs, paths):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "all checks passed" in proc.stdout and f"simd path {path}" in proc.stdout, proc.stdout


def test_export_uses_own_ops_unless_told_not_to(tmp_path):
    """Default int4 export of a tiny Llama: fused qkv/mlp ops, the lm_head as linear_q4, RMSNorm as
    rms_norm, no XNNPACK; qlinear=False: torchao + XNNPACK."""
    from edgeslm import api
    from tests.tiny_checkpoints import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint("llama", tmp_path / "ckpt")
    ops, delegated = {}, {}
    for name, options in (("own", {}), ("xnnpack", {"qlinear": False})):
        bundle = api.export(ckpt, out=tmp_path / name, backend="executorch", target="host", quant="int4",
                            max_seq_len=64, force=True, progress=False, backend_options=options)
        ops[name] = {f["op"]: f["count"] for f in bundle.manifest["lowering"]["fallbacks"]}
        delegated[name] = bundle.manifest["lowering"]["delegated"].get("XnnpackBackend", 0)
    assert ops["own"]["edgeslm.qkv_rope_q4"] == 2 and ops["own"]["edgeslm.mlp_q4"] == 2
    assert ops["own"]["edgeslm.linear_q4"] == 3                     # o_proj x 2 layers + lm_head
    assert ops["own"]["edgeslm.rms_norm"] == 5                      # 2 per layer + the final norm
    assert delegated["own"] == 0 and delegated["xnnpack"] > 0      # own ops only: XNNPACK not used
    assert not any(op.startswith("edgeslm.linear") or op.startswith("edgeslm.mlp") for op in ops["xnnpack"])
