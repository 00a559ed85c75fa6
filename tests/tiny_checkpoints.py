"""Tiny random Hugging Face checkpoints for tests (no network).

`make_tiny_checkpoint(family, out_dir)` writes what a hub download holds: config.json,
model.safetensors, generation_config.json, tokenizer.json (a byte-level BPE trained here on fixed
text, padded with special tokens to exactly `vocab_size`) and tokenizer_config.json (bos/eos and a
small chat_template). Weights are random but spread out (norm weights and biases too) so a mistake
in any of them shows up in logits. Needs transformers (a dev dependency).
"""
from __future__ import annotations

import json
from pathlib import Path

FAMILIES: tuple[str, ...] = ("llama", "llama3", "qwen2", "qwen3", "mistral", "phi3", "gemma", "gemma3")

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_TEXT = (
    "The capital of France is Paris. The quick brown fox jumps over the lazy dog. "
    "Small language models run on phones and microcontrollers when they are exported well. "
    "def add(a, b):\n    return a + b\n# numbers 0 1 2 3 4 5 6 7 8 9 10 42 1024\n"
    "Il pleut des cordes; es regnet in Strömen; 雨が降っています. "
)


def _hf_config(family: str, vocab_size: int, hidden: int, layers: int, heads: int, kv_heads: int,
               max_pos: int):
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                  max_position_embeddings=max_pos, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  initializer_range=0.1)
    if family == "llama":
        return tf.LlamaConfig(**common, rope_theta=10000.0, tie_word_embeddings=False)
    if family == "llama3":   # Llama 3.2 style: llama3 RoPE scaling (all three frequency bands hit), tied
        rope = dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                    high_freq_factor=4.0, original_max_position_embeddings=64)
        return tf.LlamaConfig(**common, rope_parameters=rope, tie_word_embeddings=True)
    if family == "qwen2":    # q/k/v bias, tied
        return tf.Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=True)
    if family == "qwen3":    # q/k norm, head_dim != hidden / heads
        return tf.Qwen3Config(**common, head_dim=2 * hidden // heads, rope_theta=1000000.0,
                              tie_word_embeddings=True)
    if family == "mistral":  # sliding window on every layer, smaller than the test sequence
        return tf.MistralConfig(**common, sliding_window=6, tie_word_embeddings=False)
    if family == "phi3":     # fused qkv / gate_up, partial rotary, longrope (short factors), untied
        rot = hidden // heads // 2
        rope = dict(rope_type="longrope", rope_theta=10000.0, partial_rotary_factor=0.5,
                    short_factor=[1.0 + 0.25 * i for i in range(rot // 2)],
                    long_factor=[2.0 + i for i in range(rot // 2)])
        return tf.Phi3Config(**common, rope_parameters=rope, original_max_position_embeddings=max_pos // 4,
                             tie_word_embeddings=False)
    if family == "gemma":
        return tf.GemmaConfig(**common, head_dim=hidden // heads, hidden_act="gelu_pytorch_tanh")
    if family == "gemma3":   # local/global layers, window 4, two RoPE bases, linear scaling, soft-capping
        # (transformers 5.24 applies final_logit_softcapping only; attn_logit_softcapping is ignored)
        types = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"][:layers]
        rope = {"full_attention": dict(rope_type="linear", factor=8.0, rope_theta=1000000.0),
                "sliding_attention": dict(rope_type="default", rope_theta=10000.0)}
        return tf.Gemma3TextConfig(**common, head_dim=hidden // heads, sliding_window=4, layer_types=types,
                                   rope_parameters=rope, query_pre_attn_scalar=24,
                                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def _randomize(model, seed: int, gemma: bool) -> None:
    """Spread weights beyond transformers' init: norms around their identity, biases non-zero."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.ndim == 1 and "norm" in name:
                p.copy_((0.0 if gemma else 1.0) + 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)


def write_tokenizer(out_dir: Path, vocab_size: int) -> None:
    """Byte-level BPE with <|pad|>=0, <|bos|>=1, <|eos|>=2, padded to exactly vocab_size entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([_TEXT] * 4, trainer=trainer)
    extra = vocab_size - tok.get_vocab_size(with_added_tokens=True)
    if extra < 0:
        raise ValueError(f"vocab_size {vocab_size} is below the byte alphabet plus specials")
    tok.add_special_tokens([f"<|extra_{i}|>" for i in range(extra)])
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 1)])
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "add_bos_token": True, "chat_template": CHAT_TEMPLATE, "model_max_length": 256,
    }, indent=2))


def make_tiny_checkpoint(family: str, out_dir: Path, *, seed: int = 0, vocab_size: int = 384,
                         hidden_size: int = 64, num_layers: int | None = None, num_heads: int = 4,
                         num_kv_heads: int = 2, max_position_embeddings: int = 256) -> Path:
    """Write a random-init tiny `family` checkpoint to out_dir (created) and return out_dir.

    Defaults: hidden 64, 4 heads of 16, 2 KV heads, 2 layers (4 for gemma3), vocab 384."""
    import torch
    import transformers as tf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = num_layers or (4 if family == "gemma3" else 2)
    cfg = _hf_config(family, vocab_size, hidden_size, layers, num_heads, num_kv_heads, max_position_embeddings)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    _randomize(model, seed, gemma=family.startswith("gemma"))
    model.save_pretrained(out_dir, safe_serialization=True)
    write_tokenizer(out_dir, vocab_size)
    return out_dir
