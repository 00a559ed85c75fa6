"""Next-token choice from logits: greedy, or temperature + top-p (nucleus) with a seeded numpy Generator.

Pipeline of `Sampler.sample(logits[V])`:
  1. greedy when temperature is None or 0: argmax, ties -> lowest id
  2. p = softmax(logits / temperature) in float64
  3. top-p: sort by p (descending, ties -> lower id first), keep the smallest prefix whose mass >= top_p
     (always at least one token)
  4. draw one index from the kept, renormalised mass with the Generator (same seed -> same tokens)
"""
from __future__ import annotations

import math

import numpy as np

from edgeslm.errors import EdgeSLMError


class Sampler:
    def __init__(self, temperature: float | None = None, top_p: float | None = None, seed: int | None = None):
        if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
            raise EdgeSLMError(f"temperature must be a finite number >= 0, got {temperature}",
                               fix="use 0 (or None) for greedy, ~0.7-1.0 for sampling")
        if top_p is not None and not (0 < top_p <= 1):
            raise EdgeSLMError(f"top_p must be in (0, 1], got {top_p}", fix="use e.g. 0.9, or 1 to disable")
        self.temperature = temperature
        self.top_p = 1.0 if top_p is None else float(top_p)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @property
    def greedy(self) -> bool:
        return not self.temperature

    def sample(self, logits) -> int:
        """One token id from `logits` [V] (torch tensor, numpy array or list)."""
        x = _as_numpy(logits)  # [V] float64
        if x.ndim != 1 or x.size == 0:
            raise EdgeSLMError(f"logits must be 1-D [vocab], got shape {tuple(x.shape)}")
        if self.greedy:
            return int(np.argmax(x))  # first maximum: ties go to the lowest id
        z = x / self.temperature
        top = np.max(z)
        if not np.isfinite(top):
            raise EdgeSLMError("logits have no finite maximum (all -inf or NaN)")
        p = np.exp(z - top)  # [V]; -inf -> 0
        p /= p.sum()
        order = np.argsort(-p, kind="stable")  # [V] descending, ties keep the lower id first
        mass = np.cumsum(p[order])  # [V]
        keep = min(int(np.searchsorted(mass, self.top_p, side="left")) + 1, p.size)
        kept = mass[:keep]  # [keep] cumulative, unnormalised
        u = self.rng.random() * kept[-1]
        pick = min(int(np.searchsorted(kept, u, side="right")), keep - 1)
        return int(order[pick])


def _as_numpy(logits) -> np.ndarray:
    if hasattr(logits, "detach"):  # torch.Tensor without importing torch
        logits = logits.detach().to("cpu").float().numpy()
    return np.asarray(logits, dtype=np.float64)
