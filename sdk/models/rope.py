"""Rotary position embeddings as precomputed cos/sin tables, matching transformers 5.24.

Steps: inverse frequencies for the RoPE kind (default / linear / llama3 / longrope-short) ->
angles pos * inv_freq for every cache position in float32 (the same products transformers computes
per call, so values are bit-identical) -> cos/sin tables [max_seq_len, rot_dim] -> per call, rows
at `input_pos` are gathered and applied in the rotate-half layout.
"""
from __future__ import annotations

import math

import torch
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
    """cos, sin [max_seq_len, rot_dim] float32 on the CPU."""
    with torch.device("cpu"):
        inv_freq = inverse_frequencies(rope, head_dim)
        angles = torch.arange(max_seq_len, dtype=torch.int64).float()[:, None] * inv_freq[None, :]
    angles = torch.cat((angles, angles), dim=-1)                        # [S, rot_dim]
    return angles.cos() * rope.attention_factor, angles.sin() * rope.attention_factor


class Rotary(nn.Module):
    """cos/sin tables for one RoPE kind; `forward(input_pos)` returns the rows for those positions."""

    def __init__(self, rope: RopeConfig, head_dim: int, max_seq_len: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.rope, self.head_dim = rope, head_dim
        rot = rotary_dim(rope, head_dim)
        self.register_buffer("cos", torch.empty(max_seq_len, rot, dtype=dtype), persistent=False)  # [S, rot]
        self.register_buffer("sin", torch.empty(max_seq_len, rot, dtype=dtype), persistent=False)  # [S, rot]
        self.init_buffers()

    def init_buffers(self) -> None:
        """(Re)compute the tables, e.g. after `to_empty()` of a model built on the meta device."""
        if self.cos.is_meta:
            return
        cos, sin = rope_tables(self.rope, self.head_dim, self.cos.shape[0])
        self.cos.copy_(cos)
        self.sin.copy_(sin)

    def forward(self, input_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # [T, 1, rot_dim] each: broadcast over heads of a [T, H, D] tensor
        return self.cos[input_pos].unsqueeze(1), self.sin[input_pos].unsqueeze(1)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [T, H, D]; cos/sin [T, 1, rot_dim]; rotates the first rot_dim dims, passes the rest."""
    rot = cos.shape[-1]
    if rot == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + _rotate_half(x_rot) * sin, x_pass), dim=-1)
