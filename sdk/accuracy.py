"""Accuracy of a bundle against its float model, recorded in every manifest.

Teacher-forced: both models read the same token sequence; at every position we compare the next-token
distributions (top-1 agreement, KL(float || bundle), max |logit diff|). Free-running greedy text drifts
legitimately after quantization; teacher forcing does not hide real errors.
"""
from __future__ import annotations

import numpy as np
import torch

# Fixed prompts: prose, code, a list and a chat-like question, so errors in any regime show up.
FIXED_PROMPTS = (
    "The capital of France is Paris. It is known for the Eiffel Tower, museums and cafes along the Seine.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "Shopping list: apples, bread, milk, eggs, cheese, tomatoes, rice and a bottle of olive oil.",
    "Question: Why is the sky blue? Answer: Sunlight is scattered by the molecules in the air,",
)


def eager_logits(model, ids: list[int]) -> np.ndarray:
    """Float reference: one full-logits forward from position 0 -> [L, V] float64."""
    previous = model.full_logits
    model.full_logits = True
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids], dtype=torch.long), torch.arange(len(ids), dtype=torch.long))
    finally:
        model.full_logits = previous
    return out[0].double().numpy()


def session_logits(session, ids: list[int]) -> np.ndarray:
    """The bundle, decoding one token at a time (exercises the KV cache path) -> [L, V] float64."""
    return np.stack([session.forward([tok], pos).astype(np.float64) for pos, tok in enumerate(ids)])


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def compare(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict:
    ref = np.concatenate(reference)      # [N, V] over all positions of all prompts
    got = np.concatenate(candidate)
    log_p, log_q = log_softmax(ref), log_softmax(got)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)
    return {
        "positions": int(ref.shape[0]),
        "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "max_abs_logit_diff": float(np.abs(ref - got).max()),
    }


def greedy_eager(model, ids: list[int], steps: int) -> list[int]:
    """Golden tokens: greedy continuation of the float model through its own KV cache (prefill + decode)."""
    previous = model.full_logits
    model.full_logits = False
    out: list[int] = []
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids], dtype=torch.long), torch.arange(len(ids), dtype=torch.long))
            for pos in range(len(ids), len(ids) + steps):
                out.append(int(logits.reshape(-1, logits.shape[-1])[-1].argmax()))
                logits = model(torch.tensor([[out[-1]]], dtype=torch.long), torch.tensor([pos], dtype=torch.long))
    finally:
        model.full_logits = previous
    return out


def encode_fixed_prompts(tokenizer, max_len: int) -> list[list[int]]:
    return [tokenizer.encode(p)[:max_len] for p in FIXED_PROMPTS]
