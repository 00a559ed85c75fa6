"""Train the micro quickstart model: a Llama of ~0.45 M parameters that fits a Cortex-M4 (1 MB flash,
256 KB RAM) once int8, on Python's standard-library docstrings.

Steps of make_micro_model(out_dir):
  1. cache hit? ($EDGESLM_CACHE/micro-model/<key>, key = config + steps + seed + Python version) -> copy
  2. corpus (corpus.py) -> byte-level BPE tokenizer, vocab 512, <|pad|> <|bos|> <|eos|> = 0, 1, 2
  3. token stream (each docstring: BOS ... EOS) -> random 64-token windows (seeded)
  4. LlamaForCausalLM from MICRO_CONFIG, AdamW + cosine schedule, TRAIN_STEPS steps on 1 thread (~0.12 s each)
  5. save_pretrained (safetensors) + tokenizer.json / tokenizer_config.json / generation_config.json
     into a staging dir, then rename into the cache and copy to out_dir
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
from pathlib import Path

from edgeslm.errors import EdgeSLMError

MICRO_CONFIG = dict(vocab_size=512, hidden_size=96, intermediate_size=256, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                    rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                    bos_token_id=1, eos_token_id=2, pad_token_id=0)
TRAIN_STEPS = 600
BATCH, WINDOW, LR, SEED = 12, 64, 4e-3, 1234
PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


def cache_key(steps: int) -> str:
    raw = json.dumps([MICRO_CONFIG, steps, BATCH, WINDOW, LR, SEED, platform.python_version()], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def train_tokenizer(docs: list[str], folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=MICRO_CONFIG["vocab_size"], special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 1)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "add_bos_token": True, "model_max_length": MICRO_CONFIG["max_position_embeddings"]}, indent=2))
    return tok


def _train(folder: Path, steps: int, progress: bool) -> dict:
    import torch
    import transformers as tf

    from edgeslm.micro_model.corpus import stdlib_docstrings
    from edgeslm.progress import steps as progress_steps

    names = ["corpus", "tokenizer", f"train {steps} steps", "save"]
    with progress_steps("quickstart micro model", names, enabled=progress) as step:
        step("corpus")
        docs = stdlib_docstrings()
        step("tokenizer")
        tok = train_tokenizer(docs, folder)
        ids = []
        for enc in tok.encode_batch(docs, add_special_tokens=False):
            ids += [1, *enc.ids, 2]
        data = torch.tensor(ids, dtype=torch.long)                    # [N] token stream
        step(f"train {steps} steps")
        threads = torch.get_num_threads()
        # enable_grad: an export earlier in this process may have left autograd off (set_grad_enabled(False))
        with torch.enable_grad():
            torch.manual_seed(SEED)
            torch.set_num_threads(1)   # 2 OpenMP threads on 2 busy cores spin and run ~5x slower; 1 is steady
            model = tf.LlamaForCausalLM(tf.LlamaConfig(**MICRO_CONFIG))
            opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.95))
            gen = torch.Generator().manual_seed(SEED)
            losses = []
            model.train()
            for i in range(steps):
                lr = LR * min(1.0, (i + 1) / 30) * 0.5 * (1 + math.cos(math.pi * i / steps))
                for group in opt.param_groups:
                    group["lr"] = lr
                starts = torch.randint(0, len(data) - WINDOW - 1, (BATCH,), generator=gen)
                batch = torch.stack([data[s:s + WINDOW + 1] for s in starts])   # [B, W+1]
                loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone()).loss
                # HF shifts labels inside: the target of position t is batch[:, t+1]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                losses.append(loss.item())
        torch.set_num_threads(threads)   # the process keeps its thread count
        step("save")
        model.eval()
        model.save_pretrained(folder, safe_serialization=True)
        params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "tokens_in_corpus": len(ids), "steps": steps,
            "final_loss": sum(losses[-20:]) / min(20, len(losses)), "first_loss": losses[0],
            "corpus": f"docstrings of the Python {platform.python_version()} standard library", "seed": SEED}


def make_micro_model(out_dir: str | Path, *, steps: int = TRAIN_STEPS, progress: bool = True,
                     cache: Path | None = None) -> Path:
    """Write the micro quickstart checkpoint to out_dir (trained once, then copied from the cache)."""
    from edgeslm.api import cache_dir
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "micro_model.json").is_file():
        raise EdgeSLMError("exists and is not an edgeslm micro model; refusing to overwrite it", path=out_dir,
                           fix="pass a new or empty directory")
    cached = (cache or cache_dir()) / "micro-model" / cache_key(steps)
    if not all((cached / f).is_file() for f in (*FILES, "micro_model.json")):
        cached.parent.mkdir(parents=True, exist_ok=True)
        stage = cached.parent / f".{cached.name}.tmp-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        try:
            info = _train(stage, steps, progress)
            (stage / "micro_model.json").write_text(json.dumps(info, indent=2) + "\n")
            shutil.rmtree(cached, ignore_errors=True)
            os.replace(stage, cached)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in (*FILES, "micro_model.json"):
        shutil.copyfile(cached / name, out_dir / name)
    return out_dir
