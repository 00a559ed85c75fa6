"""`edgeslm eval`: perplexity of the bundle and of its float model on a text, and their top-1 agreement.

Steps: tokenize the file -> windows of at most max_seq_len tokens -> bundle logits (one token at a time,
through the KV cache) and float logits (eager) -> next-token NLL for both, agreement and KL.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeslm import accuracy
from edgeslm.bundle import load_bundle
from edgeslm.errors import EdgeSLMError


def _nll(logits: np.ndarray, targets: list[int]) -> np.ndarray:
    """Negative log-likelihood of targets[i] under logits[i]; logits [N, V] float64."""
    log_probs = accuracy.log_softmax(logits)
    return -log_probs[np.arange(len(targets)), targets]


def evaluate(bundle_path: str | Path, text_file: str | Path, *, reference: str | Path | None = None,
             max_tokens: int = 512, progress: bool = True) -> dict:
    from edgeslm.api import open_session
    from edgeslm.ingest import load_checkpoint
    from edgeslm.text import Tokenizer

    bundle = load_bundle(bundle_path)
    text_file = Path(text_file)
    if not text_file.is_file():
        raise EdgeSLMError("no such text file", path=text_file, fix="pass a UTF-8 text file with --text")
    try:
        text = text_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EdgeSLMError("not UTF-8 text", path=text_file, fix="convert the file to UTF-8") from None
    ids = Tokenizer.from_dir(bundle.path).encode(text)[:max_tokens]
    if len(ids) < 2:
        raise EdgeSLMError("the text has fewer than 2 tokens", path=text_file, fix="use a longer text")

    source = Path(reference or bundle.manifest["model"]["source"])
    from edgeslm.api import resolve_checkpoint
    float_model = load_checkpoint(resolve_checkpoint(source, progress=progress),
                                  max_seq_len=bundle.max_seq_len)
    if float_model.weights_sha256 != bundle.manifest["model"]["weights_sha256"]:
        raise EdgeSLMError("the reference checkpoint's weights differ from the ones this bundle was built from",
                           path=source, fix="pass the original checkpoint with --reference")

    session = open_session(bundle)
    window = bundle.max_seq_len
    chunks = [ids[i:i + window] for i in range(0, len(ids), window)]
    chunks = [c for c in chunks if len(c) >= 2]
    ref_logits, got_logits, ref_nll, got_nll = [], [], [], []
    for chunk in chunks:
        ref = accuracy.eager_logits(float_model.model, chunk)[:-1]   # predict chunk[1:]
        got = accuracy.session_logits(session, chunk[:-1])
        ref_logits.append(ref)
        got_logits.append(got)
        ref_nll.append(_nll(ref, chunk[1:]))
        got_nll.append(_nll(got, chunk[1:]))
    agreement = accuracy.compare(ref_logits, got_logits)
    return {
        "bundle": str(bundle.path),
        "text": str(text_file),
        "tokens": int(sum(len(c) - 1 for c in chunks)),
        "perplexity_bundle": float(np.exp(np.concatenate(got_nll).mean())),
        "perplexity_float": float(np.exp(np.concatenate(ref_nll).mean())),
        "top1_agreement": agreement["top1_agreement"],
        "kl_mean": agreement["kl_mean"],
        "quant": bundle.manifest["quant"]["name"],
    }
