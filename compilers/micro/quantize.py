"""Decoder (float PyTorch) -> the integer model of the micro runtime, as one weights blob + a layout.

Steps: check the architecture is one the C emitter implements (supported(), model_meta(); blob_bytes() sizes
the blob beforehand for the early budget check) -> per linear / embedding:
int8 weights per output row with a fixed-point scale (mult in [2^30, 2^31), shift) -> norm weights Q16 ->
RoPE cos/sin Q30 [max_seq_len, head_dim/2] -> pack every tensor into weights.bin (8-byte aligned) and
record name -> (offset, dtype, shape) in the layout. Tied embeddings share one tensor (flash counts once).

The firmware (runtime/micro/model_weights.c, generated) and the Python reference (reference.py) both
read this blob, so they cannot disagree on a weight.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgeslm.compilers.base import Unsupported

ALIGN = 8
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def supported(cfg) -> str | None:
    """None if the C emitter implements this DecoderConfig, else the reason it does not."""
    checks = [
        (cfg.hidden_act == "silu", f"activation '{cfg.hidden_act}' (the micro kernels implement SiLU)"),
        (cfg.rope.kind == "default" and cfg.rope.partial_rotary_factor == 1.0 and cfg.rope.attention_factor == 1.0,
         f"RoPE kind '{cfg.rope.kind}' / partial rotary (the micro kernels implement default full RoPE)"),
        (not (cfg.qkv_bias or cfg.o_bias or cfg.mlp_bias), "linear biases"),
        (not cfg.qk_norm, "q/k norms (Qwen3/Gemma 3)"),
        (cfg.norm_offset == 0.0 and not cfg.sandwich_norm, "Gemma-style norms"),
        (cfg.embed_scale == 1.0, "scaled embeddings (Gemma)"),
        (cfg.attn_softcap is None and cfg.final_softcap is None, "soft-capping"),
        (cfg.sliding_window is None or cfg.sliding_window >= cfg.max_position_embeddings,
         "sliding-window attention"),
        (cfg.head_dim % 2 == 0, "odd head_dim"),
    ]
    bad = [why for ok, why in checks if not ok]
    return None if not bad else f"{cfg.architecture}: {'; '.join(bad)} not supported by the micro C emitter"


def row_scales(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w [rows, cols] float -> int8 q [rows, cols], mult int32 [rows], shift int32 [rows] with
    w ~ q * mult * 2^-shift (symmetric per-row, scale = max|row| / 127)."""
    w = np.asarray(w, dtype=np.float64)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    mult = np.zeros(len(w), np.int32)
    shift = np.full(len(w), 31, np.int32)
    for r, s in enumerate(scale):
        if amax[r] == 0:
            continue
        frac, exp = math.frexp(s)                 # s = frac * 2^exp, frac in [0.5, 1)
        m = round(frac * 2 ** 31)
        if m == 2 ** 31:
            m, exp = m // 2, exp + 1
        mult[r], shift[r] = m, 31 - exp
    return q, mult, shift


def rope_q30(theta: float, head_dim: int, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [S, head_dim/2] Q30 from the decoder's float32 angles (pos * inv_freq)."""
    exps = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    inv = (np.float32(1.0) / (np.float32(theta) ** exps)).astype(np.float32)
    angles = np.arange(max_seq_len, dtype=np.float32)[:, None] * inv[None, :]
    to_q = lambda a: np.rint(a.astype(np.float64) * 2 ** 30).astype(np.int32)  # noqa: E731
    return to_q(np.cos(angles.astype(np.float64))), to_q(np.sin(angles.astype(np.float64)))


@dataclass
class Packed:
    """weights.bin bytes and their layout: name -> {"offset", "dtype", "shape"}."""
    blob: bytearray = field(default_factory=bytearray)
    layout: dict = field(default_factory=dict)

    def add(self, name: str, array: np.ndarray) -> None:
        pad = -len(self.blob) % ALIGN
        self.blob += b"\0" * pad
        a = np.ascontiguousarray(array)
        self.layout[name] = {"offset": len(self.blob), "dtype": a.dtype.name, "shape": list(a.shape)}
        self.blob += a.tobytes()

    def alias(self, name: str, other: str) -> None:
        self.layout[name] = dict(self.layout[other])

    def add_linear(self, name: str, weight) -> None:
        q, mult, shift = row_scales(weight.detach().float().numpy())
        self.add(f"{name}.w", q)
        self.add(f"{name}.mult", mult)
        self.add(f"{name}.shift", shift)


def norm_q16(weight) -> np.ndarray:
    return np.rint(weight.detach().float().numpy().astype(np.float64) * 65536).astype(np.int32)


def model_meta(model) -> dict:
    """The integer model's shapes and fixed-point constants (model_config.h), from the decoder's config.
    Raises Unsupported for what the C emitter does not implement."""
    cfg = model.config
    why = supported(cfg)
    if why:
        raise Unsupported(why, fix="use a Llama-architecture checkpoint (LlamaForCausalLM, SmolLM, TinyLlama, "
                                   "MobileLLM), or --backend executorch for a CPU target")
    tied = cfg.tie_word_embeddings or model.lm_head.weight.data_ptr() == model.embed_tokens.weight.data_ptr()
    return {
        "vocab": cfg.vocab_size, "dim": cfg.hidden_size, "ff": cfg.intermediate_size, "layers": cfg.num_layers,
        "heads": cfg.num_heads, "kv_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
        "seq": model.max_seq_len, "tied": bool(tied),
        "eps_q32": max(1, round(cfg.rms_norm_eps * 2 ** 32)),
        "attn_scale_q16": round(cfg.attn_scale * 65536),
    }


def blob_bytes(meta: dict) -> int:
    """Exact size of weights.bin for `meta`, without quantizing anything (the early budget check)."""
    pad = lambda n: -(-n // ALIGN) * ALIGN  # noqa: E731
    linear = lambda rows, cols: pad(rows * cols) + 2 * pad(4 * rows)  # noqa: E731
    dim, ff, h, hkv, d = meta["dim"], meta["ff"], meta["heads"], meta["kv_heads"], meta["head_dim"]
    per_layer = (linear(h * d, dim) + 2 * linear(hkv * d, dim) + linear(dim, h * d) + 2 * linear(ff, dim)
                 + linear(dim, ff) + 2 * pad(4 * dim))
    head = linear(meta["vocab"], dim) * (1 if meta["tied"] else 2)
    return head + pad(4 * dim) + 2 * pad(4 * meta["seq"] * (d // 2)) + meta["layers"] * per_layer


def quantize_model(model) -> tuple[Packed, dict]:
    """Decoder -> (Packed weights, model config for the C header and the reference)."""
    cfg = model.config
    meta = model_meta(model)
    tied = meta["tied"]
    packed = Packed()
    packed.add_linear("emb", model.embed_tokens.weight)
    if tied:
        for part in ("w", "mult", "shift"):
            packed.alias(f"lm_head.{part}", f"emb.{part}")
    else:
        packed.add_linear("lm_head", model.lm_head.weight)
    packed.add("final_norm", norm_q16(model.norm.weight))
    cos, sin = rope_q30(cfg.rope.theta, cfg.head_dim, model.max_seq_len)
    packed.add("rope_cos", cos)
    packed.add("rope_sin", sin)
    for i, layer in enumerate(model.layers):
        attn, mlp = layer.self_attn, layer.mlp
        for name in LINEARS[:4]:
            packed.add_linear(f"l{i}.{name}", getattr(attn, name).weight)
        for name in LINEARS[4:]:
            packed.add_linear(f"l{i}.{name}", getattr(mlp, name).weight)
        packed.add(f"l{i}.attn_norm", norm_q16(layer.input_layernorm.weight))
        packed.add(f"l{i}.ffn_norm", norm_q16(layer.post_attention_layernorm.weight))
    assert len(packed.blob) == blob_bytes(meta), (len(packed.blob), blob_bytes(meta))
    return packed, meta
