"""Hugging Face config.json -> DecoderConfig.

Steps: pick the architecture (``architectures[0]``, else ``model_type``) -> fill keys config.json may
omit with the defaults of the transformers 5.24 config class -> read RoPE from either layout
(4.x: top-level ``rope_theta`` + ``rope_scaling``; 5.x: ``rope_parameters``, nested per layer type
for Gemma 3) -> per-family attention layout (biases, q/k norm, sliding layers, scales).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeSLMError

from .config import FULL, ROPE_KINDS, SLIDING, DecoderConfig, RopeConfig

SUPPORTED_ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",      # Llama 2/3/3.2, SmolLM/SmolLM2, TinyLlama, MobileLLM
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "MistralForCausalLM",
    "Phi3ForCausalLM",
    "GemmaForCausalLM",
    "Gemma3ForCausalLM",     # text-only Gemma 3 (1B, 270M)
)
_BY_MODEL_TYPE = {
    "llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
    "mistral": "MistralForCausalLM", "phi3": "Phi3ForCausalLM", "gemma": "GemmaForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
}
_QWEN = dict(rms_norm_eps=1e-6, max_position_embeddings=32768, bos_token_id=None, eos_token_id=None,
             tie_word_embeddings=False, use_sliding_window=False, sliding_window=4096, max_window_layers=28,
             rope_theta=10000.0)
# Defaults of the transformers 5.24 config classes, for keys that a saved config.json may omit.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "LlamaForCausalLM": dict(rms_norm_eps=1e-6, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2,
                             tie_word_embeddings=False, attention_bias=False, mlp_bias=False, rope_theta=10000.0),
    "Qwen2ForCausalLM": dict(_QWEN),
    "Qwen3ForCausalLM": dict(_QWEN, head_dim=128, attention_bias=False),
    "MistralForCausalLM": dict(rms_norm_eps=1e-6, max_position_embeddings=131072, bos_token_id=1, eos_token_id=2,
                               tie_word_embeddings=False, sliding_window=4096, num_key_value_heads=8,
                               rope_theta=10000.0),
    "Phi3ForCausalLM": dict(rms_norm_eps=1e-5, max_position_embeddings=4096, bos_token_id=1, eos_token_id=32000,
                            pad_token_id=32000, tie_word_embeddings=False, sliding_window=None, rope_theta=10000.0),
    "GemmaForCausalLM": dict(head_dim=256, hidden_act="gelu_pytorch_tanh", rms_norm_eps=1e-6,
                             max_position_embeddings=8192, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                             tie_word_embeddings=True, attention_bias=False, rope_theta=10000.0),
    "Gemma3ForCausalLM": dict(head_dim=256, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6,
                              max_position_embeddings=131072, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                              tie_word_embeddings=True, attention_bias=False, query_pre_attn_scalar=256,
                              sliding_window=4096, final_logit_softcapping=None, attn_logit_softcapping=None,
                              rope_theta=1_000_000.0, rope_local_base_freq=10_000.0),
}
_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
                "gelu": "gelu"}


class _Cfg:
    """config.json with per-architecture defaults; a key present with null stays None."""

    def __init__(self, raw: dict[str, Any], arch: str, source: str | Path | None):
        self.raw, self.arch, self.defaults, self.source = raw, arch, _DEFAULTS[arch], source

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.raw:
            return self.raw[key]
        return self.defaults.get(key, default)

    def need(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise EdgeSLMError(f"config.json lacks '{key}'", path=self.source,
                               fix="use the config.json that came with the weights")
        return value


def architecture_of(config: dict[str, Any]) -> str | None:
    archs = config.get("architectures") or []
    if archs:
        return archs[0]
    return _BY_MODEL_TYPE.get(config.get("model_type", ""))


def decoder_config_from_hf(config: dict[str, Any], source: str | Path | None = None) -> DecoderConfig:
    arch = architecture_of(config)
    if arch not in SUPPORTED_ARCHITECTURES:
        found = arch or config.get("model_type") or "no 'architectures' or 'model_type'"
        raise EdgeSLMError(f"unsupported architecture {found}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}",
                           path=source, fix="pick a checkpoint of a supported architecture")
    c = _Cfg(config, arch, source)
    hidden, heads, layers = c.need("hidden_size"), c.need("num_attention_heads"), c.need("num_hidden_layers")
    head_dim = c.get("head_dim") or hidden // heads
    gemma = arch in ("GemmaForCausalLM", "Gemma3ForCausalLM")
    max_pos = int(c.get("max_position_embeddings"))
    eos = c.get("eos_token_id")
    kw: dict[str, Any] = dict(
        architecture=arch, vocab_size=int(c.need("vocab_size")), hidden_size=int(hidden),
        intermediate_size=int(c.need("intermediate_size")), num_layers=int(layers), num_heads=int(heads),
        num_kv_heads=int(c.get("num_key_value_heads") or heads), head_dim=int(head_dim),
        max_position_embeddings=max_pos, rms_norm_eps=float(c.get("rms_norm_eps")),
        hidden_act=_activation(c, arch), tie_word_embeddings=bool(c.get("tie_word_embeddings")),
        bos_token_id=c.get("bos_token_id"), pad_token_id=c.get("pad_token_id"),
        eos_token_ids=tuple(eos if isinstance(eos, list) else [] if eos is None else [eos]),
        norm_offset=1.0 if gemma else 0.0, embed_scale=math.sqrt(hidden) if gemma else 1.0,
    )
    bias = bool(c.get("attention_bias", False))
    if arch == "Qwen2ForCausalLM":
        kw.update(qkv_bias=True, o_bias=False)
    elif arch in ("LlamaForCausalLM", "Qwen3ForCausalLM", "GemmaForCausalLM", "Gemma3ForCausalLM"):
        kw.update(qkv_bias=bias, o_bias=bias)
    kw["mlp_bias"] = bool(c.get("mlp_bias", False)) if arch == "LlamaForCausalLM" else False
    if arch in ("Qwen3ForCausalLM", "Gemma3ForCausalLM"):
        kw["qk_norm"] = True
    kw["layer_types"], kw["sliding_window"] = _layer_types(c, arch, int(layers))
    if arch == "Gemma3ForCausalLM":
        if c.get("use_bidirectional_attention"):
            raise EdgeSLMError("Gemma 3 with use_bidirectional_attention is not supported", path=source,
                               fix="use a causal Gemma 3 checkpoint")
        # transformers 5.24's Gemma 3 stores attn_logit_softcapping but never applies it (Gemma 2 did):
        # the reference ignores it, so do we. Final logit soft-capping is applied.
        kw.update(sandwich_norm=True, attn_scale=float(c.get("query_pre_attn_scalar")) ** -0.5,
                  final_softcap=c.get("final_logit_softcapping"))
        kw["rope"], kw["rope_local"] = _gemma3_ropes(c, int(head_dim), max_pos)
    else:
        kw["rope"] = _rope(c, _flat_rope_params(c), int(head_dim), max_pos)
    try:
        return DecoderConfig(**kw)
    except ValueError as e:
        raise EdgeSLMError(f"inconsistent config.json: {e}", path=source,
                           fix="use the config.json that came with the weights") from None


def _activation(c: _Cfg, arch: str) -> str:
    name = c.get("hidden_activation") if arch == "Gemma3ForCausalLM" else c.get("hidden_act", "silu")
    if arch == "GemmaForCausalLM" and name == "gelu":   # transformers maps Gemma's legacy "gelu" to tanh
        name = "gelu_pytorch_tanh"
    if name not in _ACTIVATIONS:
        raise EdgeSLMError(f"activation '{name}' is not supported ({', '.join(_ACTIVATIONS)})",
                           path=c.source, fix="use a checkpoint with a supported activation")
    return _ACTIVATIONS[name]


def _layer_types(c: _Cfg, arch: str, n: int) -> tuple[tuple[str, ...], int | None]:
    if arch in ("LlamaForCausalLM", "GemmaForCausalLM"):
        return (FULL,) * n, None
    if arch in ("MistralForCausalLM", "Phi3ForCausalLM"):
        window = c.get("sliding_window")
        return ((SLIDING if window else FULL),) * n, window or None
    if arch == "Gemma3ForCausalLM":
        window = c.get("sliding_window")
        types = c.get("layer_types")
        if not types:
            pattern = c.get("sliding_window_pattern") or c.get("_sliding_window_pattern") or 6
            types = [SLIDING if (i + 1) % pattern else FULL for i in range(n)]
        return tuple(types), window
    window = c.get("sliding_window") if c.get("use_sliding_window") else None   # Qwen2 / Qwen3
    types = c.get("layer_types") or [SLIDING if window is not None and i >= c.get("max_window_layers") else FULL
                                     for i in range(n)]
    return tuple(t if window else FULL for t in types), window


def _flat_rope_params(c: _Cfg) -> dict[str, Any]:
    params = c.get("rope_scaling") or c.get("rope_parameters") or {}
    if FULL in params:                     # nested per layer type: the global one
        params = params[FULL] or {}
    return dict(params)


def _gemma3_ropes(c: _Cfg, head_dim: int, max_pos: int) -> tuple[RopeConfig, RopeConfig]:
    params = c.get("rope_parameters") or {}
    nested = FULL in params or SLIDING in params
    full = dict(params.get(FULL) or {}) if nested else dict(params)
    local = dict(params.get(SLIDING) or {}) if nested else {}
    if c.get("rope_scaling"):              # 4.x layout: scaling applies to global layers only
        full.update(c.get("rope_scaling"))
    full.setdefault("rope_theta", c.get("rope_theta"))
    local.setdefault("rope_theta", c.get("rope_local_base_freq"))
    return _rope(c, full, head_dim, max_pos), _rope(c, local, head_dim, max_pos)


def _rope(c: _Cfg, p: dict[str, Any], head_dim: int, max_pos: int) -> RopeConfig:
    try:
        return _rope_unchecked(c, p, head_dim, max_pos)
    except KeyError as e:
        raise EdgeSLMError(f"RoPE parameters lack {e}", path=c.source,
                           fix="use the config.json that came with the weights") from None


def _rope_unchecked(c: _Cfg, p: dict[str, Any], head_dim: int, max_pos: int) -> RopeConfig:
    kind = p.get("rope_type", p.get("type", "default")) or "default"
    if kind in ("su", "yarn") and c.arch == "Phi3ForCausalLM":   # transformers' Phi-3 BC rename
        kind = "longrope"
    if kind not in ROPE_KINDS:
        raise EdgeSLMError(f"rope_type '{kind}' is not supported ({', '.join(ROPE_KINDS)})", path=c.source,
                           fix="use a checkpoint with a supported RoPE scaling")
    theta = p.get("rope_theta") or c.get("rope_theta")
    prf = p.get("partial_rotary_factor") or c.get("partial_rotary_factor") or 1.0
    kw: dict[str, Any] = dict(theta=float(theta), kind=kind, partial_rotary_factor=float(prf))
    # transformers prefers a top-level original_max_position_embeddings (Phi-3 stores it there)
    orig = int(c.get("original_max_position_embeddings") or p.get("original_max_position_embeddings") or max_pos)
    if kind == "linear":
        kw["factor"] = float(p["factor"])
    elif kind == "llama3":
        kw.update(factor=float(p["factor"]), low_freq_factor=float(p["low_freq_factor"]),
                  high_freq_factor=float(p["high_freq_factor"]), original_max_position_embeddings=orig)
    elif kind == "longrope":
        factor = p.get("factor") or max_pos / orig
        attention = p.get("attention_factor")
        if attention is None:
            attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
        rot = int(head_dim * kw["partial_rotary_factor"])
        short = tuple(float(x) for x in p["short_factor"])
        if len(short) != rot // 2:
            raise EdgeSLMError(f"longrope short_factor has {len(short)} entries, expected {rot // 2}",
                               path=c.source, fix="use the config.json that came with the weights")
        kw.update(factor=float(factor), original_max_position_embeddings=orig, short_factor=short,
                  attention_factor=float(attention))
    return RopeConfig(**kw)
