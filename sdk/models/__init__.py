"""Export-friendly decoder for the Llama family (Llama, Qwen2/3, SmolLM, MobileLLM, Mistral, Phi-3, Gemma, Gemma 3)
with a static KV cache. `DecoderConfig.from_hf(config_json)` reads Hugging Face configs; `Decoder(config,
max_seq_len)` is the nn.Module that torch.export captures. Weights are loaded by `edgeslm.ingest`."""
from .attention import Attention, KVCache, SliceKVCache
from .config import FULL, SLIDING, DecoderConfig, RopeConfig
from .decoder import Decoder
from .hf_config import SUPPORTED_ARCHITECTURES

__all__ = ["Attention", "Decoder", "DecoderConfig", "FULL", "KVCache", "RopeConfig", "SLIDING", "SliceKVCache",
           "SUPPORTED_ARCHITECTURES"]
