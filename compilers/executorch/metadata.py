"""Constant methods stored in the .pte, named as ExecuTorch's own LLM runner reads them.

TextLLMRunner requires get_max_seq_len and reads the rest when present; edgeslm's runners read the same.
As in ExecuTorch's runner, get_max_seq_len is the most tokens one forward takes (prompts longer than that
are prefilled in chunks) and get_max_context_len the KV cache capacity.
"""
from __future__ import annotations


def llm_metadata(model, prefill_chunk: int | None = None) -> dict:
    """`model` follows the decoder contract: max_seq_len, vocab_size, bos_id, eos_ids, config.num_layers.
    prefill_chunk: tokens per forward the program was exported for (default: the whole context)."""
    return {
        "get_max_seq_len": int(prefill_chunk or model.max_seq_len),
        "get_max_context_len": int(model.max_seq_len),
        "get_vocab_size": int(model.vocab_size),
        "get_bos_id": int(model.bos_id if model.bos_id is not None else -1),
        "get_eos_ids": [int(e) for e in model.eos_ids],
        "get_n_layers": int(model.config.num_layers),
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": False,   # standard ops only: the native runner has no llama:: custom ops
        "enable_dynamic_shape": True,      # one forward serves prefill (T tokens) and decode (1 token)
    }
