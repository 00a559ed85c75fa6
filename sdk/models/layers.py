"""Small building blocks: RMSNorm (Llama and Gemma flavours) and the gated MLP."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def infer_dynamic(shape) -> list[int]:
    """A view shape with the (one) symbolic dim as -1: XNNPACK delegates such views, not symbolic ones."""
    return [d if isinstance(d, int) else -1 for d in shape]


class RMSNorm(nn.Module):
    """x / rms(x) * (offset + w), computed in float32 as transformers does.

    offset 0 (Llama: the normalised x is cast back before scaling) or 1 (Gemma: scaled in float32,
    weights stored zero-centred)."""

    def __init__(self, dim: int, eps: float, offset: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim) if offset == 0.0 else torch.zeros(dim))  # [dim]
        self.eps, self.offset = eps, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., A, dim] (rank 3). The mean runs on a rank-4 view over dims (2, 3), the only form
        XNNPACK delegates (global average pooling); the -1 views keep the dynamic dim inferred."""
        shape = infer_dynamic(x.shape)
        h = x.float().unsqueeze(-1)                                         # [B, A, dim, 1]
        h = (h * torch.rsqrt(h.pow(2).mean((2, 3), keepdim=True) + self.eps)).view(shape)
        if self.offset:
            return (h * (self.offset + self.weight.float())).type_as(x)
        return self.weight * h.type_as(x)


def activation(name: str):
    if name == "silu":
        return F.silu
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu":
        return F.gelu
    raise ValueError(f"unknown activation {name}")


class MLP(nn.Module):
    """down(act(gate(x)) * up(x)); Phi-3's fused gate_up weights are split at load time."""

    def __init__(self, hidden: int, intermediate: int, act: str, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=bias)   # weight [I, hidden]
        self.up_proj = nn.Linear(hidden, intermediate, bias=bias)     # weight [I, hidden]
        self.down_proj = nn.Linear(intermediate, hidden, bias=bias)   # weight [hidden, I]
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
