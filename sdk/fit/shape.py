"""What the memory estimate needs to know about a checkpoint, read without loading a single weight.

Steps of read_shape(checkpoint, context): resolve the directory (a .gguf is converted once, cached, as
export does) -> config.json -> DecoderConfig -> safetensors headers (names and shapes only) -> tied or
not (config says so, or the checkpoint has no lm_head, as ingest decides) -> the Decoder built on the
meta device (no memory) -> one row per weight tensor: its role (linear / embedding / lm_head / other),
element count and output rows (per-channel scales count rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeslm.models import DecoderConfig


@dataclass(frozen=True)
class Tensor:
    name: str
    role: str          # "linear" (transformer-block projections), "lm_head", "embedding", "other" (norms, biases)
    numel: int
    rows: int          # output channels: per-channel recipes store one scale per row


@dataclass
class ModelShape:
    config: DecoderConfig
    max_seq_len: int
    tied: bool                          # embedding and lm_head share one [V, hidden] table in the checkpoint
    tensors: list[Tensor] = field(default_factory=list)
    root: Path | None = None            # the resolved checkpoint directory
    weight_files: list[Path] = field(default_factory=list)
    tokenizer_bytes: int = 0            # tokenizer.json: the native runner parses it when it opens a bundle

    def numel(self, role: str) -> int:
        return sum(t.numel for t in self.tensors if t.role == role)

    def rows(self, role: str) -> int:
        return sum(t.rows for t in self.tensors if t.role == role)

    @property
    def parameters(self) -> int:
        """Parameters as the checkpoint holds them (a tied table counted once)."""
        return sum(t.numel for t in self.tensors if not (self.tied and t.role == "lm_head"))

    def kv_cache_bytes(self, dtype_bytes: int, row_extra_bytes: int = 0) -> int:
        """layers x 2 (K and V) x kv_heads x context x (head_dim x bytes + row_extra_bytes): the static cache
        every backend holds (sliding-window layers keep a full-length cache too: sdk/models/attention.py
        KVCache); row_extra_bytes: ExecuTorch's int8 cache keeps a float32 scale per key and value row."""
        c = self.config
        return c.num_layers * 2 * c.num_kv_heads * self.max_seq_len * (c.head_dim * dtype_bytes + row_extra_bytes)


def read_shape(checkpoint: str | Path, context: int | None = None, progress: bool = False) -> ModelShape:
    import torch

    from edgeslm.api import resolve_checkpoint
    from edgeslm.errors import EdgeSLMError
    from edgeslm.ingest import default_max_seq_len, locate
    from edgeslm.ingest.safetensors_files import read_header
    from edgeslm.ingest.weights import map_names
    from edgeslm.models import Decoder

    root = locate.resolve_checkpoint_dir(resolve_checkpoint(checkpoint, progress=progress))
    locate.check_is_checkpoint(root)
    hf = locate.read_json(root / "config.json", required=True,
                          fix="copy config.json from the original model next to the weights")
    config = DecoderConfig.from_hf(hf, source=root / "config.json")
    files = locate.weight_files(root)
    infos = {}
    for f in files:
        infos.update(read_header(f))
    tied = config.tie_word_embeddings or "lm_head.weight" not in map_names(config, infos)
    max_seq_len = context or default_max_seq_len(config)
    if max_seq_len < 2 or max_seq_len > config.max_position_embeddings:
        raise EdgeSLMError(f"--context {max_seq_len} is outside the model's range [2, "
                           f"{config.max_position_embeddings}] (max_position_embeddings)",
                           path=root / "config.json", fix=f"pass --context <= {config.max_position_embeddings}")
    with torch.device("meta"):
        model = Decoder(config, max_seq_len)
    tok = root / "tokenizer.json"
    shape = ModelShape(config=config, max_seq_len=max_seq_len, tied=bool(tied), root=root, weight_files=files,
                       tokenizer_bytes=tok.stat().st_size if tok.is_file() else 0)
    for name, p in model.named_parameters(remove_duplicate=False):
        if name == "lm_head.weight":
            role = "lm_head"
        elif name == "embed_tokens.weight":
            role = "embedding"
        elif p.ndim == 2:
            role = "linear"
        else:
            role = "other"
        shape.tensors.append(Tensor(name, role, int(p.numel()), int(p.shape[0])))
    return shape
