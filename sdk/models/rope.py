"""Rotary position embeddings as precomputed cos/sin tables, matching transformers 5.24.

Steps: inverse frequencies for the RoPE kind (default / linear / llama3 / longrope-short) ->
angles pos * inv_freq for every cache position in float32 (the same products transformers computes
per call, so values are bit-identical) -> cos/sin tables [max_seq_len, rot_dim] -> per call, rows
at `input_pos` are gathered and applied in the rotate-half layout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import RopeConfig


def rotary_dim(rope: RopeConfig, head_dim: int) -> int:
    return int(head_dim * rope.partial_rotary_factor)


def inverse_frequencies(rope: RopeConfig, head_dim: int) -> torch.Tensor:
    """[rot_dim / 2] float32, as transformers' ROPE_INIT_FUNCTIONS compute them."""
    dim = rotary_dim(rope, head_dim)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    if rope.kind == "longrope":   # only the short factors: valid up to original_max_position_embeddings
        return 1.0 / (torch.tensor(rope.short_factor, dtype=torch.float32) * rope.theta ** exponents)
    inv_freq = 1.0 / (rope.theta ** exponents)
    if rope.kind == "linear":
        inv_freq = inv_freq / rope.factor
    elif rope.kind == "llama3":
        old_len = rope.original_max_position_embeddings
        low_wavelen, high_wavelen = old_len / rope.low_freq_factor, old_len / rope.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq)
        smooth = (old_len / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
        smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
        is_medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv_freq = torch.where(is_medium, smoothed, scaled)
    return inv_freq


def rope_tables(rope: RopeConfig, head_dim: int, max_seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [max_seq_len, head_dim] float32 on the CPU. Dims past rot_dim (partial rotary) get
    cos 1 and sin 0, so they pass through without slicing."""
    with torch.device("cpu"):
        inv_freq = inverse_frequencies(rope, head_dim)
        angles = torch.arange(max_seq_len, dtype=torch.int64).float()[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)                    # [S, rot_dim]
        cos, sin = angles.cos() * rope.attention_factor, angles.sin() * rope.attention_factor
        pad = head_dim - angles.shape[1]
        return (torch.cat((cos, torch.ones(max_seq_len, pad)), -1), torch.cat((sin, torch.zeros(max_seq_len, pad)), -1))


def rotate_half_matrix(rot_dim: int, head_dim: int) -> torch.Tensor:
    """R [head_dim, head_dim] with x @ R.T == cat(-x2, x1) on the first rot_dim dims, 0 elsewhere.
    A matmul by a constant is delegated by XNNPACK; slicing a dynamic-shape tensor is not."""
    r, half = torch.zeros(head_dim, head_dim, device="cpu"), rot_dim // 2
    for j in range(half):
        r[j, j + half] = -1.0
        r[j + half, j] = 1.0
    return r


class Rotary(nn.Module):
    """cos/sin tables for one RoPE kind; `forward(input_pos)` returns the rows for those positions."""

    def __init__(self, rope: RopeConfig, head_dim: int, max_seq_len: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.rope, self.head_dim = rope, head_dim
        self.register_buffer("cos", torch.empty(max_seq_len, head_dim, dtype=dtype), persistent=False)  # [S, D]
        self.register_buffer("sin", torch.empty(max_seq_len, head_dim, dtype=dtype), persistent=False)  # [S, D]
        self.register_buffer("rot", torch.empty(head_dim, head_dim, dtype=dtype), persistent=False)     # [D, D]
        self.init_buffers()

    def init_buffers(self) -> None:
        """(Re)compute the tables, e.g. after `to_empty()` of a model built on the meta device."""
        if self.cos.is_meta:
            return
        cos, sin = rope_tables(self.rope, self.head_dim, self.cos.shape[0])
        self.cos.copy_(cos)
        self.sin.copy_(sin)
        self.rot.copy_(rotate_half_matrix(rotary_dim(self.rope, self.head_dim), self.head_dim))

    def forward(self, input_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # cos/sin [T, 1, D]: broadcast over the heads of a [T, H, D] tensor; rot [D, D]
        return self.cos[input_pos].unsqueeze(1), self.sin[input_pos].unsqueeze(1), self.rot


def apply_rotary(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x [T, H, D] -> x * cos + rotate_half(x) * sin, rotate_half as a matmul by the constant R."""
    cos, sin, rot = rope
    return x * cos + F.linear(x, rot) * sin
