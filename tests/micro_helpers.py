"""Helpers for the micro (Cortex-M) tests: tiny decoders built in memory and firmware lowering."""
from __future__ import annotations

from pathlib import Path

import torch

from edgeslm.models.config import DecoderConfig
from edgeslm.models.decoder import Decoder


def tiny_decoder(seed: int = 0, *, vocab: int = 256, hidden: int = 64, layers: int = 2, heads: int = 4,
                 kv_heads: int = 2, ff: int = 128, seq: int = 48, tied: bool = True, **extra) -> Decoder:
    """A random Llama decoder (weights spread like tests/tiny_checkpoints.py) without an HF checkpoint."""
    cfg = DecoderConfig(architecture="LlamaForCausalLM", vocab_size=vocab, hidden_size=hidden,
                        intermediate_size=ff, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads,
                        head_dim=hidden // heads, max_position_embeddings=256, rms_norm_eps=1e-5,
                        tie_word_embeddings=tied, bos_token_id=1, eos_token_ids=(2,), **extra)
    torch.manual_seed(seed)
    model = Decoder(cfg, seq)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn(p.shape) if p.ndim == 1 else 0.15 * torch.randn(p.shape))
    model.tie_weights()
    return model.eval()


def lower(model, target: str, out: Path, kernel: str | None = None):
    from edgeslm.compilers import get_compiler
    from edgeslm.quant import load_recipe
    from edgeslm.targets import get_target
    out.mkdir(parents=True, exist_ok=True)
    return get_compiler("micro").lower(model, get_target(target), load_recipe("int8"), out, kernel=kernel)
