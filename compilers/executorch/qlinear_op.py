"""Quantized linears with edgeslm's own kernels instead of XNNPACK's (kernels: runtime/kernels/qlinear.*).

Ops (each with an .out variant and an eager reference): edgeslm::linear_q4/q8 (one linear, QuantLinear),
edgeslm::qkv_rope_q4/q8 (an Attention's q/k/v projections + RoPE + query scale, QuantQKV) and
edgeslm::mlp_q4/q8 (a gated SiLU MLP, QuantMLP); use_qlinear swaps them in.

Why: XNNPACK's QD8 x QB4W GEMM on AVX2 moves ~5 GB/s of int4 weights per core (it sign-extends every
weight to 16 bits and scales every 32-weight group per 4 columns), so a decode step of a 135M model is
compute-bound. The kernel in runtime/kernels/qlinear.h sums a whole group of 8 columns in 16-bit lanes
(AVX2 maddubs; SDOT on arm64) and streams ~2x the bytes per core (benchmarks in the README).

Math (the eager implementations below are the reference the kernel is tested against):
  activations, per group of 32 inputs of a row (llama.cpp's Q8_0 blocks):
               q = clamp(round(x * (127 / max|x_g|)), -127, 127), x_scale_g = max|x_g| / 127
  int4 weights: symmetric per group of 32 inputs, w = clamp(round(W / s), -8, 7), s = max|W| / 7.5 (float16)
  int8 weights: symmetric per output channel, w = round(W / s) in [-127, 127], s = max|W| / 127
  y = sum_k x_scale_g(k) * q[k] * s * w[k]   (+ bias, a separate add)
int4 weights are torchao's 8da4w integers and scales (float16 here); int8 weights give up torchao's -128
(the AVX2 loop negates weights by the activation's sign, and -(-128) does not fit). Activations are
quantized symmetrically per group of 32 (torchao's: asymmetric per token); in_features % 32 == 0.

Packed layouts (8 output columns per block, N padded to Np): see runtime/kernels/qlinear.h.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Q4_GROUP = 32
COLS = 8

_lib = torch.library.Library("edgeslm", "FRAGMENT")
for _name in ("linear_q4", "linear_q8"):
    _lib.define(f"{_name}(Tensor x, Tensor w, Tensor s, int n) -> Tensor")
    _lib.define(f"{_name}.out(Tensor x, Tensor w, Tensor s, int n, *, Tensor(a!) out) -> Tensor(a!)")
# A layer's q/k/v projections + RoPE + query scale in one op: out [T, H + 2 H_kv, D].
for _name in ("qkv_rope_q4", "qkv_rope_q8"):
    _lib.define(f"{_name}(Tensor x, Tensor w, Tensor s, Tensor cos, Tensor sin, int heads, int kv_heads, "
                "int rot_dim, float scale) -> Tensor")
    _lib.define(f"{_name}.out(Tensor x, Tensor w, Tensor s, Tensor cos, Tensor sin, int heads, int kv_heads, "
                "int rot_dim, float scale, *, Tensor(a!) out) -> Tensor(a!)")
# The gated SiLU MLP in one op: down(silu(gate(x)) * up(x)), w_gu = gate's features then up's.
for _name in ("mlp_q4", "mlp_q8"):
    _lib.define(f"{_name}(Tensor x, Tensor w_gu, Tensor s_gu, Tensor w_d, Tensor s_d, int inter) -> Tensor")
    _lib.define(f"{_name}.out(Tensor x, Tensor w_gu, Tensor s_gu, Tensor w_d, Tensor s_d, int inter, *, "
                "Tensor(a!) out) -> Tensor(a!)")


# ---- packing: float weight [N, K] -> kernel layout ----

def _padded(n: int) -> int:
    return (n + COLS - 1) // COLS * COLS


def pack_q4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, K] float (K % 32 == 0) -> w4 uint8 [Np/8, K/32, 128], s4 float16 [Np/8, K/32, 8]."""
    n, k = weight.shape
    g = k // Q4_GROUP
    wg = weight.detach().float().reshape(n, g, Q4_GROUP)
    scale = wg.abs().amax(-1) / 7.5                                                # [N, G], torchao's
    divisor = torch.where(scale == 0, torch.ones_like(scale), scale)
    u = (torch.clamp(torch.round(wg * (1.0 / divisor[..., None])), -8, 7) + 8).to(torch.uint8)   # [N, G, 32]
    scale = scale.clamp(max=65504.0).half()                                        # stored as float16
    np_ = _padded(n)
    u = torch.cat([u, torch.full((np_ - n, g, Q4_GROUP), 8, dtype=torch.uint8)])
    scale = torch.cat([scale, torch.zeros(np_ - n, g, dtype=torch.float16)])
    # u[8b + c, g, 8p + 4h + i] -> [b, g, p, c, i, h]; h = 0 low nibble, 1 high nibble
    u = u.reshape(np_ // COLS, COLS, g, 4, 2, 4).permute(0, 2, 3, 1, 5, 4)
    w4 = (u[..., 0] | (u[..., 1] << 4)).reshape(np_ // COLS, g, 128).contiguous()
    s4 = scale.reshape(np_ // COLS, COLS, g).permute(0, 2, 1).contiguous()
    return w4, s4


def pack_q8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, K] float (K % 32 == 0) -> w8 int8 [Np/8, K/4, 32] in [-127, 127], s8 float32 [Np]."""
    n, k = weight.shape
    w = weight.detach().float()
    scale = w.abs().amax(-1) / 127.0                                              # [N]
    divisor = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(w * (1.0 / divisor[:, None])), -127, 127).to(torch.int8)
    np_ = _padded(n)
    q = torch.cat([q, torch.zeros(np_ - n, k, dtype=torch.int8)])
    scale = torch.cat([scale, torch.zeros(np_ - n)])
    w8 = q.reshape(np_ // COLS, COLS, k // 4, 4).permute(0, 2, 1, 3).reshape(np_ // COLS, k // 4, 32)
    return w8.contiguous(), scale.contiguous()


def unpack_q4(w4: torch.Tensor, s4: torch.Tensor, n: int) -> torch.Tensor:
    """Packed int4 -> dequantized float64 weight [n, K]."""
    blocks, g, _ = w4.shape
    lo, hi = (w4 & 0x0F).to(torch.int64), (w4 >> 4).to(torch.int64)
    u = torch.stack([lo, hi], -1).reshape(blocks, g, 4, COLS, 4, 2)              # [b, g, p, c, i, h]
    w = u.permute(0, 3, 1, 2, 5, 4).reshape(blocks * COLS, g * Q4_GROUP) - 8      # [Np, K]
    s = s4.double().permute(0, 2, 1).reshape(blocks * COLS, g)                    # [Np, G]
    return (w.double() * s.repeat_interleave(Q4_GROUP, 1))[:n]


def unpack_q8(w8: torch.Tensor, s8: torch.Tensor, n: int) -> torch.Tensor:
    """Packed int8 -> dequantized float64 weight [n, K]."""
    blocks, steps, _ = w8.shape
    w = w8.reshape(blocks, steps, COLS, 4).permute(0, 2, 1, 3).reshape(blocks * COLS, steps * 4)
    return (w.double() * s8.double()[:, None])[:n]


# ---- reference math (eager) ----

def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[R, K] float32 (K % 32 == 0) -> q [R, K/32, 32] (integers in float32), x_scale [R, K/32, 1]; the
    kernel's float32 steps."""
    xg = x.reshape(x.shape[0], -1, Q4_GROUP)
    amax = xg.abs().amax(-1, keepdim=True)
    nonzero = amax > 0
    inv = torch.where(nonzero, torch.tensor(127.0) / amax, torch.zeros_like(amax))
    q = torch.clamp(torch.round(xg * inv), -127, 127)
    return q, torch.where(nonzero, amax / 127.0, torch.ones_like(amax))


def _reference(x: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    k = x.shape[-1]
    q, xs = quantize_activations(x.reshape(-1, k).float())
    y = (q.double() * xs.double()).reshape(-1, k) @ weight.T                       # [R, n] (float64: exact inputs)
    return y.float().reshape(*x.shape[:-1], n)


def linear_q4_reference(x, w, s, n: int) -> torch.Tensor:
    return _reference(x, unpack_q4(w, s, n), n)


def linear_q8_reference(x, w, s, n: int) -> torch.Tensor:
    return _reference(x, unpack_q8(w, s, n), n)


def _mlp_reference(linear):
    def mlp(x, w_gu, s_gu, w_d, s_d, inter: int):
        gu = linear(x, w_gu, s_gu, 2 * inter)
        return linear(F.silu(gu[..., :inter]) * gu[..., inter:], w_d, s_d, x.shape[-1])
    return mlp


def _qkv_reference(linear):
    def qkv(x, w, s, cos, sin, heads: int, kv_heads: int, rot_dim: int, scale: float):
        from edgeslm.models.rope import apply_rotary, rotate_half_matrix
        d = cos.shape[-1]
        out = linear(x, w, s, (heads + 2 * kv_heads) * d).reshape(-1, heads + 2 * kv_heads, d)   # [T, H', D]
        rope = (cos, sin, rotate_half_matrix(rot_dim, d).to(cos.dtype))
        q = apply_rotary(out[:, :heads], rope) * scale
        k = apply_rotary(out[:, heads:heads + kv_heads], rope)
        return torch.cat([q, k, out[:, heads + kv_heads:]], 1)
    return qkv


def _out_variant(fn):
    def out_fn(*args, out):
        result = fn(*args)
        out.resize_(result.shape).copy_(result)
        return out
    return out_fn


def _fake_linear(x, w, s, n):
    return x.new_empty(*x.shape[:-1], n)


def _fake_mlp(x, w_gu, s_gu, w_d, s_d, inter):
    return x.new_empty(x.shape)


def _fake_qkv(x, w, s, cos, sin, heads, kv_heads, rot_dim, scale):
    return x.new_empty(cos.shape[0], heads + 2 * kv_heads, cos.shape[-1])


for _name, _fn, _fake in (("linear_q4", linear_q4_reference, _fake_linear),
                          ("linear_q8", linear_q8_reference, _fake_linear),
                          ("mlp_q4", _mlp_reference(linear_q4_reference), _fake_mlp),
                          ("mlp_q8", _mlp_reference(linear_q8_reference), _fake_mlp),
                          ("qkv_rope_q4", _qkv_reference(linear_q4_reference), _fake_qkv),
                          ("qkv_rope_q8", _qkv_reference(linear_q8_reference), _fake_qkv)):
    _lib.impl(_name, _fn, "CompositeExplicitAutograd")
    _lib.impl(f"{_name}.out", _out_variant(_fn), "CompositeExplicitAutograd")
    torch.library.register_fake(f"edgeslm::{_name}", _fake, lib=_lib)


# ---- modules ----

class QuantLinear(nn.Module):
    """nn.Linear with packed int4/int8 weights, run by edgeslm::linear_q4/q8. x [..., K] -> [..., N]."""

    def __init__(self, linear: nn.Linear, bits: int):
        super().__init__()
        self.bits, self.in_features, self.out_features = bits, linear.in_features, linear.out_features
        w, s = (pack_q4 if bits == 4 else pack_q8)(linear.weight)
        self.register_buffer("w", w)
        self.register_buffer("s", s)
        bias = linear.bias.detach().float().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = torch.ops.edgeslm.linear_q4 if self.bits == 4 else torch.ops.edgeslm.linear_q8
        y = op(x, self.w, self.s, self.out_features)
        return y if self.bias is None else y + self.bias


class QuantMLP(nn.Module):
    """The gated SiLU MLP (sdk/models/layers.MLP) with packed weights, one edgeslm::mlp_q4/q8 op.
    x [..., H] -> [..., H]."""

    def __init__(self, mlp: nn.Module, bits: int):
        super().__init__()
        self.bits, self.inter = bits, mlp.gate_proj.out_features
        pack = pack_q4 if bits == 4 else pack_q8
        w_gu, s_gu = pack(torch.cat([mlp.gate_proj.weight.detach(), mlp.up_proj.weight.detach()]))
        w_d, s_d = pack(mlp.down_proj.weight)
        for name, t in (("w_gu", w_gu), ("s_gu", s_gu), ("w_d", w_d), ("s_d", s_d)):
            self.register_buffer(name, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = torch.ops.edgeslm.mlp_q4 if self.bits == 4 else torch.ops.edgeslm.mlp_q8
        return op(x, self.w_gu, self.s_gu, self.w_d, self.s_d, self.inter)


class QuantQKV(nn.Module):
    """An Attention's q/k/v projections + RoPE + query scale as one edgeslm::qkv_rope_q4/q8 op.
    forward(x [1, T, hidden], rope (cos, sin [T, 1, D], R)) -> [T, H + 2*H_kv, D]: per token the H query
    heads (roped, scaled), the H_kv keys (roped), the H_kv values (KVCache.attend_packed takes them so)."""

    def __init__(self, attn: nn.Module, rot_dim: int, bits: int):
        super().__init__()
        self.bits, self.rot_dim, self.scale = bits, rot_dim, float(attn.scale)
        self.heads, self.kv_heads = attn.num_heads, attn.num_kv_heads
        w, s = (pack_q4 if bits == 4 else pack_q8)(
            torch.cat([attn.q_proj.weight.detach(), attn.k_proj.weight.detach(), attn.v_proj.weight.detach()]))
        self.register_buffer("w", w)
        self.register_buffer("s", s)

    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        cos, sin, _rot = rope
        op = torch.ops.edgeslm.qkv_rope_q4 if self.bits == 4 else torch.ops.edgeslm.qkv_rope_q8
        return op(x, self.w, self.s, cos, sin, self.heads, self.kv_heads, self.rot_dim, self.scale)


def _rot_dim(model: nn.Module, head_dim: int) -> int | None:
    """The rotate-half width every Rotary table of the model uses (its R matrix), or None if they differ
    or R is not a rotate-half matrix."""
    from edgeslm.models.rope import Rotary, rotate_half_matrix
    dims = set()
    for mod in model.modules():
        if isinstance(mod, Rotary):
            rot = mod.rot.detach().float().cpu()
            width = int((rot != 0).any(1).sum())
            if rot.shape != (head_dim, head_dim) or not torch.equal(rot, rotate_half_matrix(width, head_dim)):
                return None
            dims.add(width)
    return dims.pop() if len(dims) == 1 else None


def _fusable_attention(mod: nn.Module, bits: int) -> bool:
    """sdk/models/attention.Attention without q/k norms or q/k/v biases, on 8-column blocks per head."""
    from edgeslm.models.attention import Attention
    if type(mod) is not Attention or mod.q_norm is not None:
        return False
    lins = (mod.q_proj, mod.k_proj, mod.v_proj)
    return all(type(m) is nn.Linear and m.bias is None and _fits(m, bits) for m in lins) and mod.head_dim % COLS == 0


def _fusable_mlp(mod: nn.Module, bits: int) -> bool:
    """sdk/models/layers.MLP with SiLU, no biases, widths the fused op takes (gate/up on 8-column blocks)."""
    from edgeslm.models.layers import MLP
    if type(mod) is not MLP or mod.act is not F.silu:
        return False
    lins = (mod.gate_proj, mod.up_proj, mod.down_proj)
    return (all(type(m) is nn.Linear and m.bias is None and _fits(m, bits) for m in lins)
            and mod.gate_proj.out_features % COLS == 0)


def qlinear_bits(linear_spec: dict | None) -> int | None:
    """The recipe's linear scheme when these kernels implement it exactly (8da4w group 32, 8da8w
    per-channel), else None (torchao + XNNPACK then)."""
    if not linear_spec or linear_spec.get("activations") != "int8_dynamic":
        return None
    if linear_spec.get("scheme", "affine") != "affine":
        return None
    bits, group = linear_spec.get("weight_bits"), linear_spec.get("group_size")
    if bits == 4 and group == Q4_GROUP:
        return 4
    if bits == 8 and group is None:
        return 8
    return None


def _fits(linear: nn.Linear, bits: int) -> bool:
    return linear.in_features % Q4_GROUP == 0 and linear.weight.dtype == torch.float32


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """model.<name> = new (name dotted, as named_modules gives it)."""
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)


def use_qlinear(model: nn.Module, bits: int, fuse: bool = True) -> int:
    """fuse: an Attention's q/k/v projections (+ RoPE, query scale) become one QuantQKV and a gated SiLU MLP
    one QuantMLP; then every other float32 nn.Linear whose shape the kernel takes becomes a QuantLinear.
    Returns how many linears were quantized; others stay float (the compiler reports them)."""
    count = 0
    if fuse:
        for mod in [m for m in model.modules() if _fusable_attention(m, bits)]:
            rot_dim = _rot_dim(model, mod.head_dim)
            if rot_dim is not None:
                mod.qkv = QuantQKV(mod, rot_dim, bits)
                del mod.q_proj, mod.k_proj, mod.v_proj
                count += 3
        mlps = [(name, mod) for name, mod in model.named_modules() if _fusable_mlp(mod, bits)]
        for name, mod in mlps:
            replace_module(model, name, QuantMLP(mod, bits))
        count += 3 * len(mlps)
    swaps = [(name, mod) for name, mod in model.named_modules() if type(mod) is nn.Linear and _fits(mod, bits)]
    for name, mod in swaps:
        replace_module(model, name, QuantLinear(mod, bits))
    return count + len(swaps)
