"""load_checkpoint: a Hugging Face checkpoint directory -> Decoder with its weights, offline.

Steps: resolve the directory (plain / HF cache) -> config.json -> DecoderConfig (refuses
unsupported architectures) -> tokenizer.json present -> weight files (refuses pickle unopened) ->
validate every safetensors header -> map names and check them against a model built on the meta
device (no weight init) -> allocate, copy tensors in, compute buffers -> sha256 of the weight files.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgeslm.errors import EdgeSLMError
from edgeslm.models import Decoder, DecoderConfig, KVCache

from . import locate
from .safetensors_files import read_header, sha256_files
from .weights import check, copy_in, map_names

DEFAULT_MAX_SEQ_LEN = 2048


@dataclass
class LoadedCheckpoint:
    model: Decoder
    config: DecoderConfig
    hf_config: dict[str, Any]           # config.json as read
    root: Path                          # the resolved checkpoint directory (snapshot dir for HF caches)
    tokenizer_path: Path                # root / tokenizer.json
    tokenizer_config: dict[str, Any]    # tokenizer_config.json, {} if absent
    generation_config: dict[str, Any]   # generation_config.json, {} if absent
    weights_sha256: str                 # sha256 over the weight files' bytes, sorted by file name
    weight_files: list[Path] = dataclasses.field(default_factory=list)


def default_max_seq_len(config: DecoderConfig) -> int:
    limit = min(config.max_position_embeddings, DEFAULT_MAX_SEQ_LEN)
    for rope in (config.rope, config.rope_local or config.rope):
        if rope.kind == "longrope":            # only the short factors are supported
            limit = min(limit, rope.original_max_position_embeddings)
    return limit


def load_checkpoint(path: str | Path, max_seq_len: int | None = None, dtype: torch.dtype = torch.float32,
                    *, kv_cache: type[KVCache] = KVCache) -> LoadedCheckpoint:
    """Load an HF checkpoint directory offline. max_seq_len defaults to default_max_seq_len(config);
    kv_cache picks the cache update strategy (e.g. SliceKVCache for CoreML)."""
    root = locate.resolve_checkpoint_dir(path)
    locate.check_is_checkpoint(root)
    hf_config = locate.read_json(root / "config.json", required=True,
                                 fix="copy config.json from the original model next to the weights")
    config = DecoderConfig.from_hf(hf_config, source=root / "config.json")
    tokenizer_path = root / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise EdgeSLMError("missing tokenizer.json", path=tokenizer_path,
                           fix="copy tokenizer.json from the original model into this directory")
    tokenizer_config = locate.read_json(root / "tokenizer_config.json", required=False,
                                        fix="copy tokenizer_config.json from the original model")
    generation_config = locate.read_json(root / "generation_config.json", required=False,
                                         fix="copy generation_config.json from the original model")
    files = locate.weight_files(root)
    infos = {}
    for f in files:
        infos.update(read_header(f))
    sources = map_names(config, infos)
    config = _with_generation_ids(config, generation_config, tied=config.tie_word_embeddings
                                  or "lm_head.weight" not in sources)
    where = files[0] if len(files) == 1 else root / locate.INDEX_NAME
    max_seq_len = max_seq_len or default_max_seq_len(config)
    with torch.device("meta"):
        model = Decoder(config, max_seq_len, dtype=dtype, kv_cache=kv_cache)
    sources = check(model, sources, config.tie_word_embeddings, where)
    model = model.to(dtype).to_empty(device="cpu")
    model.tie_weights()
    model.init_buffers()
    copy_in(model, sources)
    model.eval()
    return LoadedCheckpoint(model=model, config=config, hf_config=hf_config, root=root,
                            tokenizer_path=tokenizer_path, tokenizer_config=tokenizer_config,
                            generation_config=generation_config, weights_sha256=sha256_files(files),
                            weight_files=files)


def _with_generation_ids(config: DecoderConfig, generation: dict[str, Any], tied: bool) -> DecoderConfig:
    """EOS ids from config.json and generation_config.json (instruct models add end-of-turn ids there);
    embeddings tied when config.json says so or the checkpoint has no lm_head."""
    eos = list(config.eos_token_ids)
    gen_eos = generation.get("eos_token_id")
    for i in gen_eos if isinstance(gen_eos, list) else [] if gen_eos is None else [gen_eos]:
        if i not in eos:
            eos.append(int(i))
    bos = config.bos_token_id if config.bos_token_id is not None else generation.get("bos_token_id")
    return dataclasses.replace(config, eos_token_ids=tuple(eos), bos_token_id=bos, tie_word_embeddings=tied)
