"""DecoderConfig: everything the export-friendly decoder needs, as plain JSON-able data.

One config shape serves every supported family; family quirks are flags (qk_norm, norm_offset,
sandwich_norm, embed_scale, softcaps) rather than subclasses. `DecoderConfig.from_hf(config_json)`
lives in `hf_config.py`; this file only defines the data and its JSON round trip.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FULL = "full_attention"
SLIDING = "sliding_attention"
ROPE_KINDS = ("default", "linear", "llama3", "longrope")
ACTIVATIONS = ("silu", "gelu_tanh", "gelu")


@dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding of one attention kind. `kind` is HF's `rope_type` (a supported subset)."""

    theta: float = 10000.0
    kind: str = "default"                    # default | linear | llama3 | longrope
    partial_rotary_factor: float = 1.0       # rotate only the first int(head_dim * f) dims (Phi-3/4)
    factor: float = 1.0                      # linear / llama3 scaling factor
    low_freq_factor: float = 1.0             # llama3
    high_freq_factor: float = 4.0            # llama3
    original_max_position_embeddings: int = 0  # llama3, longrope
    short_factor: tuple[float, ...] = ()     # longrope: per-frequency divisors used up to original_max
    attention_factor: float = 1.0            # multiplies cos/sin (longrope), 1.0 otherwise

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["short_factor"] = list(self.short_factor)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RopeConfig":
        d = dict(d)
        d["short_factor"] = tuple(d.get("short_factor", ()))
        return cls(**d)


@dataclass(frozen=True)
class DecoderConfig:
    """A Llama-family decoder. Shapes: embeddings [vocab_size, hidden_size], q [num_heads*head_dim],
    k/v [num_kv_heads*head_dim], MLP [intermediate_size]."""

    architecture: str                        # HF class name, e.g. "LlamaForCausalLM"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    hidden_act: str = "silu"                 # silu | gelu_tanh | gelu (exact)
    rope: RopeConfig = field(default_factory=RopeConfig)   # full-attention layers
    rope_local: RopeConfig | None = None     # sliding layers when their RoPE differs (Gemma 3)
    layer_types: tuple[str, ...] = ()        # per layer: "full_attention" | "sliding_attention"
    sliding_window: int | None = None        # sliding layers see keys with pos > q_pos - window
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False                    # RMSNorm over head_dim on q and k before RoPE (Qwen3, Gemma 3)
    norm_offset: float = 0.0                 # RMSNorm scales by (norm_offset + w): 1.0 for Gemma
    sandwich_norm: bool = False              # Gemma 3: norms after attention and after the MLP too
    embed_scale: float = 1.0                 # embeddings times sqrt(hidden_size) for Gemma
    attn_scale: float = 0.0                  # softmax scale; 0 means head_dim ** -0.5
    attn_softcap: float | None = None        # tanh soft-capping of attention scores
    final_softcap: float | None = None       # tanh soft-capping of the logits
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        if not self.layer_types:
            object.__setattr__(self, "layer_types", (FULL,) * self.num_layers)
        if self.attn_scale == 0.0:
            object.__setattr__(self, "attn_scale", self.head_dim ** -0.5)
        if len(self.layer_types) != self.num_layers:
            raise ValueError(f"layer_types has {len(self.layer_types)} entries for {self.num_layers} layers")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if SLIDING in self.layer_types and not self.sliding_window:
            raise ValueError("sliding_attention layers need sliding_window")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rope"] = self.rope.to_dict()
        d["rope_local"] = self.rope_local.to_dict() if self.rope_local else None
        d["layer_types"] = list(self.layer_types)
        d["eos_token_ids"] = list(self.eos_token_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecoderConfig":
        d = dict(d)
        d["rope"] = RopeConfig.from_dict(d["rope"])
        if d.get("rope_local") is not None:
            d["rope_local"] = RopeConfig.from_dict(d["rope_local"])
        d["layer_types"] = tuple(d.get("layer_types", ()))
        d["eos_token_ids"] = tuple(d.get("eos_token_ids", ()))
        return cls(**d)

    @classmethod
    def from_hf(cls, config: dict[str, Any], source: str | Path | None = None) -> "DecoderConfig":
        """Read a Hugging Face config.json dict (transformers 4.x or 5.x layout). `source` (the file)
        is named in errors. Unsupported architectures raise EdgeSLMError."""
        from .hf_config import decoder_config_from_hf

        return decoder_config_from_hf(config, source)
