"""The host-side generation loop, shared by every backend's Python session.

Steps: check the prompt fits -> prefill (one forward over the prompt) -> sample -> decode one token at a
time until max_new_tokens, EOS or the context is full. Stats follow the metric schema of DESIGN.md.
"""
from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import numpy as np

from edgeslm.errors import EdgeSLMError


class Session(Protocol):
    load_ms: float

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray: ...   # -> logits [V] of the last id


@dataclass
class GenerationStats:
    model_load_ms: float
    prompt_tokens: int
    generated_tokens: int
    ttft_ms: float                 # prefill + first sample, from the call to the first token
    prefill_tokens_per_s: float
    decode_tokens_per_s: float     # tokens after the first, over the time spent decoding them
    decode_ms_per_token: list[float] = field(default_factory=list)   # raw samples
    peak_rss_bytes: int = 0


@dataclass
class GenerationResult:
    prompt_tokens: list[int]
    tokens: list[int]
    text: str
    stop_reason: str               # "eos" | "max_new_tokens" | "context_full"
    stats: GenerationStats

    def to_dict(self) -> dict:
        return asdict(self)


def peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024   # Linux reports KiB


def generate(session: Session, prompt_ids: list[int], *, max_new_tokens: int, max_seq_len: int,
             sample: Callable[[np.ndarray], int], eos_ids: set[int],
             on_token: Callable[[int], None] | None = None, source: str = "prompt") -> GenerationResult:
    if not prompt_ids:
        raise EdgeSLMError("the prompt is empty", path=source, fix="pass a non-empty --prompt")
    if len(prompt_ids) >= max_seq_len:
        raise EdgeSLMError(f"the prompt has {len(prompt_ids)} tokens but the bundle's context is {max_seq_len}",
                           path=source, fix="shorten the prompt or re-export with a larger --max-seq-len")
    budget = min(max_new_tokens, max_seq_len - len(prompt_ids))
    tokens: list[int] = []
    decode_ms: list[float] = []
    stop = "max_new_tokens" if budget == max_new_tokens else "context_full"

    t0 = time.perf_counter()
    logits = session.forward(list(prompt_ids), 0)
    token = sample(logits)
    ttft = time.perf_counter() - t0
    pos = len(prompt_ids)
    while True:
        tokens.append(token)
        if on_token:
            on_token(token)
        if token in eos_ids:
            stop = "eos"
            break
        if len(tokens) >= budget:
            break
        t1 = time.perf_counter()
        logits = session.forward([token], pos)
        token = sample(logits)
        decode_ms.append((time.perf_counter() - t1) * 1e3)
        pos += 1

    stats = GenerationStats(
        model_load_ms=getattr(session, "load_ms", 0.0),
        prompt_tokens=len(prompt_ids),
        generated_tokens=len(tokens),
        ttft_ms=ttft * 1e3,
        prefill_tokens_per_s=len(prompt_ids) / ttft if ttft > 0 else 0.0,
        decode_tokens_per_s=(1e3 * len(decode_ms) / sum(decode_ms)) if decode_ms else 0.0,
        decode_ms_per_token=decode_ms,
        peak_rss_bytes=peak_rss_bytes(),
    )
    return GenerationResult(prompt_tokens=list(prompt_ids), tokens=tokens, text="", stop_reason=stop, stats=stats)
