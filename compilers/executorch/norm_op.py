"""edgeslm::rms_norm: the decoder's RMSNorm as one op (kernel: runtime/kernels/rms_norm.cpp).

With the quantized linears, fused q/k/v + RoPE and MLP ops (qlinear_op.py) and the attention op
(sdpa_op.py), RMSNorm was what still needed XNNPACK between them: two delegate calls per layer and most
of the lowering time. out = x * rsqrt(mean(x^2) + eps) * (offset + w) over the last dim, float32
(sdk/models/layers.RMSNorm: Llama offset 0, Gemma offset 1).
"""
from __future__ import annotations

import torch
from torch import nn

_lib = torch.library.Library("edgeslm", "FRAGMENT")
_lib.define("rms_norm(Tensor x, Tensor w, float eps, float offset) -> Tensor")
_lib.define("rms_norm.out(Tensor x, Tensor w, float eps, float offset, *, Tensor(a!) out) -> Tensor(a!)")


def rms_norm_reference(x: torch.Tensor, w: torch.Tensor, eps: float, offset: float) -> torch.Tensor:
    """x [..., dim] float32, w [dim] -> like x; the math of sdk/models/layers.RMSNorm in float32."""
    h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return h * (offset + w) if offset else w * h


def _out(x, w, eps, offset, *, out):
    result = rms_norm_reference(x, w, eps, offset)
    out.resize_(result.shape).copy_(result)
    return out


_lib.impl("rms_norm", rms_norm_reference, "CompositeExplicitAutograd")
_lib.impl("rms_norm.out", _out, "CompositeExplicitAutograd")
torch.library.register_fake("edgeslm::rms_norm", lambda x, w, eps, offset: x.new_empty(x.shape), lib=_lib)


class OpRMSNorm(nn.Module):
    """sdk/models/layers.RMSNorm (float32) computed by edgeslm::rms_norm."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.weight = nn.Parameter(norm.weight.detach().clone(), requires_grad=False)
        self.eps, self.offset = float(norm.eps), float(norm.offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.edgeslm.rms_norm(x, self.weight, self.eps, self.offset)


def use_norm_op(model: nn.Module) -> int:
    """Replace every float32 sdk/models/layers.RMSNorm with an OpRMSNorm; returns how many."""
    from edgeslm.compilers.executorch.qlinear_op import replace_module
    from edgeslm.models.layers import RMSNorm
    swaps = [(name, mod) for name, mod in model.named_modules()
             if type(mod) is RMSNorm and mod.weight.dtype == torch.float32]
    for name, mod in swaps:
        replace_module(model, name, OpRMSNorm(mod))
    return len(swaps)
