"""Map Hugging Face tensor names onto Decoder parameters, check them, and copy them in.

Steps: strip the `model.` prefix (HF names otherwise equal ours) -> split Phi-3's fused
`qkv_proj` / `gate_up_proj` into row ranges -> drop `rotary_emb.inv_freq` (derived) and a
checkpoint's lm_head when embeddings are tied -> check missing / unexpected names and every shape
against the model built from config.json -> copy tensor by tensor (peak memory: model + one tensor).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgeslm.errors import EdgeSLMError
from edgeslm.models import DecoderConfig

from .safetensors_files import TensorInfo, open_file, read_tensor

_MISMATCH_FIX = "use the config.json that came with these weights (same model and revision)"


@dataclass(frozen=True)
class Source:
    info: TensorInfo
    rows: tuple[int, int] | None = None   # row range of a fused tensor
    fused_rows: int = 0                   # total rows of the fused tensor


def map_names(cfg: DecoderConfig, infos: dict[str, TensorInfo]) -> dict[str, Source]:
    """Decoder parameter name -> where its values come from."""
    q, kv, inter = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim, cfg.intermediate_size
    fused = {
        "self_attn.qkv_proj.weight": [("self_attn.q_proj.weight", 0, q), ("self_attn.k_proj.weight", q, q + kv),
                                      ("self_attn.v_proj.weight", q + kv, q + 2 * kv)],
        "mlp.gate_up_proj.weight": [("mlp.gate_proj.weight", 0, inter), ("mlp.up_proj.weight", inter, 2 * inter)],
    }
    out: dict[str, Source] = {}
    for hf_name, info in infos.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = hf_name.removeprefix("model.")
        for suffix, parts in fused.items():
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                total = parts[-1][2]
                for part, begin, end in parts:
                    out[base + part] = Source(info, (begin, end), total)
                break
        else:
            out[name] = Source(info)
    return out


def check(model: nn.Module, sources: dict[str, Source], tied: bool, where: Path) -> dict[str, Source]:
    """Raise EdgeSLMError for missing, unexpected or misshapen tensors; return the sources to load."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if tied:
        sources = {k: v for k, v in sources.items() if k != "lm_head.weight"}
    need = set(expected) - ({"lm_head.weight"} if tied else set())
    fused = model.config.architecture == "Phi3ForCausalLM"
    missing = sorted({_hf_name(k, fused) for k in need - set(sources)})
    if missing:
        raise EdgeSLMError(f"missing tensors in the weights: {_names(missing)}", path=where, fix=_MISMATCH_FIX)
    unexpected = sorted({s.info.name for k, s in sources.items() if k not in expected})
    if unexpected:
        raise EdgeSLMError(f"unexpected tensors in the weights: {_names(unexpected)}", path=where,
                           fix=_MISMATCH_FIX + "; other architectures need their own loader")
    for name, src in sources.items():
        want = expected[name]
        if src.rows is not None:
            want = (src.fused_rows, *want[1:])
        if src.info.shape != want:
            raise EdgeSLMError(f"tensor {src.info.name} has shape {list(src.info.shape)} but config.json implies "
                               f"{list(want)}", path=src.info.file, fix=_MISMATCH_FIX)
    return sources


def copy_in(model: nn.Module, sources: dict[str, Source]) -> None:
    """Copy every tensor into the (already allocated) model parameters, converting dtype."""
    params = dict(model.named_parameters(remove_duplicate=False))
    by_file: dict[Path, list[tuple[str, Source]]] = {}
    for name, src in sources.items():
        by_file.setdefault(src.info.file, []).append((name, src))
    with torch.no_grad():
        for file, items in sorted(by_file.items()):
            with open_file(file) as handle:
                cache: dict[str, torch.Tensor] = {}   # a fused tensor feeds several parameters
                for name, src in sorted(items, key=lambda x: x[1].info.name):
                    t = cache.get(src.info.name)
                    if t is None:
                        t = read_tensor(src.info, handle)
                        if src.rows is not None:
                            cache = {src.info.name: t}
                    params[name].copy_(t if src.rows is None else t[src.rows[0]:src.rows[1]])


def _hf_name(name: str, fused: bool) -> str:
    """The checkpoint's name for a Decoder parameter (for messages)."""
    if fused:
        name = re.sub(r"self_attn\.[qkv]_proj\.weight$", "self_attn.qkv_proj.weight", name)
        name = re.sub(r"mlp\.(gate|up)_proj\.weight$", "mlp.gate_up_proj.weight", name)
    return name if name.startswith("lm_head.") else "model." + name


def _names(names: list[str], limit: int = 4) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
