"""Hugging Face checkpoint directory (config.json + *.safetensors + tokenizer.json) -> Decoder, offline.

`load_checkpoint(path, max_seq_len=None, dtype=torch.float32) -> LoadedCheckpoint`. Bad input raises
`edgeslm.errors.EdgeSLMError` naming the file and the fix; pickle checkpoints are refused unopened."""
from .checkpoint import DEFAULT_MAX_SEQ_LEN, LoadedCheckpoint, default_max_seq_len, load_checkpoint

__all__ = ["DEFAULT_MAX_SEQ_LEN", "LoadedCheckpoint", "default_max_seq_len", "load_checkpoint"]
