"""Issue #10: any nn.Module meeting the decoder contract exports through ExecuTorch and matches eager.

The nanoGPT example (examples/nanogpt/model.py, random seeded weights, tiny size) is exported; the bundle
must reproduce the eager module's greedy tokens and logits. Modules that break the contract get one line
naming the missing part (no export work done), and data-dependent control flow names the source line.
"""
from __future__ import annotations

import importlib.util
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeslm.anymodel import DecoderAdapter, check_decoder, export_decoder_module
from edgeslm.errors import EdgeSLMError

ROOT = Path(__file__).resolve().parents[1]


def load_example():
    spec = importlib.util.spec_from_file_location("nanogpt_example", ROOT / "examples/nanogpt/model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_file(name: str):
    spec = importlib.util.spec_from_file_location(f"nanogpt_{name}", ROOT / f"examples/nanogpt/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TEXT = "Beautiful is better than ugly.\nExplicit is better than implicit.\n"


@pytest.fixture(scope="module")
def nanogpt_bundle(tmp_path_factory):
    chars = load_file("chars")
    vocab = chars.vocab_of(TEXT)
    tok_dir = chars.write_char_tokenizer(vocab, tmp_path_factory.mktemp("tok"))
    model = load_example().make_model(vocab_size=len(vocab), n_layer=1, n_head=2, n_embd=32, max_seq_len=48)
    out = tmp_path_factory.mktemp("ngpt") / "bundle"
    import edgeslm
    return model, edgeslm.export(model, out=out, tokenizer_dir=tok_dir, progress=False)


def test_nanogpt_bundle_matches_eager(nanogpt_bundle):
    from edgeslm.compilers.executorch.session import ExecuTorchSession
    model, bundle = nanogpt_bundle
    m = bundle.manifest
    assert m["model"]["architecture"] == "custom:NanoGPT"
    assert (m["model"]["vocab_size"], m["model"]["max_seq_len"], m["model"]["eos_ids"]) == (model.vocab_size, 48, [0])
    acc = m["accuracy"]
    assert acc["status"] == "measured" and acc["greedy_match"] is True
    assert acc["top1_agreement"] == 1.0 and acc["max_abs_logit_diff"] < 1e-3
    assert m["lowering"]["delegated"].get("XnnpackBackend", 0) > 0

    # independently of the manifest: prefill 5 tokens then 8 greedy steps, eager vs .pte
    session = ExecuTorchSession(bundle.artifact)
    prompt = [3, 17, 12, 8, 1]
    adapter = DecoderAdapter(model).eval()
    with torch.no_grad():
        eager_logits = adapter(torch.tensor([prompt]), torch.arange(5))[0].numpy()      # [V]
    pte_logits = session.forward(prompt, 0)                                              # [V]
    np.testing.assert_allclose(pte_logits, eager_logits, atol=1e-4, rtol=1e-4)
    eager_tokens, pte_tokens = [], []
    e, p = eager_logits, pte_logits
    for pos in range(5, 13):
        eager_tokens.append(int(e.argmax()))
        pte_tokens.append(int(p.argmax()))
        with torch.no_grad():
            e = adapter(torch.tensor([[eager_tokens[-1]]]), torch.tensor([pos]))[0].numpy()
        p = session.forward([pte_tokens[-1]], pos)
    assert pte_tokens == eager_tokens


class Good(nn.Module):
    def __init__(self, out_shape=None):
        super().__init__()
        self.vocab_size, self.max_seq_len, self.bos_id, self.eos_ids = 16, 32, None, [1]
        self.emb, self.head = nn.Embedding(16, 8), nn.Linear(8, 16)
        self.register_buffer("cache", torch.zeros(32, 8))
        self.out_shape = out_shape

    def forward(self, tokens, input_pos):
        y = self.head(self.emb(tokens))             # [1, T, V]
        return y.reshape(self.out_shape) if self.out_shape else y


def test_contract_accepts_a_good_module():
    check_decoder(Good())


@pytest.mark.parametrize("breakage, message", [
    (lambda m: delattr(m, "eos_ids"), "lacks attribute(s) eos_ids"),
    (lambda m: setattr(m, "vocab_size", "16"), "vocab_size must be a positive int"),
    (lambda m: setattr(m, "eos_ids", [99]), "outside the vocabulary"),
    (lambda m: setattr(m, "out_shape", (2, -1)), "contract needs logits [1, 16] or [1, 2, 16]"),
])
def test_contract_names_the_missing_part(breakage, message):
    model = Good()
    breakage(model)
    with pytest.raises(EdgeSLMError, match=re.escape(message)) as err:
        check_decoder(model)
    assert "test_anymodel_decoder.py" in str(err.value) and "fix:" in str(err.value)


def test_contract_needs_two_arguments_and_a_cache():
    class OneArg(Good):
        def forward(self, tokens):
            return self.head(self.emb(tokens))

    with pytest.raises(EdgeSLMError, match="forward takes 1 positional argument"):
        check_decoder(OneArg())
    model = Good()
    del model._buffers["cache"]
    with pytest.raises(EdgeSLMError, match="no buffers: the contract needs a static KV cache"):
        check_decoder(model)


def test_data_dependent_control_flow_names_the_line(tmp_path):
    src = tmp_path / "ddmodel.py"
    src.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        class DD(nn.Module):
            def __init__(self):
                super().__init__()
                self.vocab_size, self.max_seq_len, self.bos_id, self.eos_ids = 16, 32, None, [1]
                self.emb, self.head = nn.Embedding(16, 8), nn.Linear(8, 16)
                self.register_buffer("cache", torch.zeros(32, 8))
            def forward(self, tokens, input_pos):
                x = self.emb(tokens)
                if tokens.sum() > 3:
                    x = x * 2
                return self.head(x)
    '''))
    spec = importlib.util.spec_from_file_location("ddmodel", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    with pytest.raises(EdgeSLMError) as err:
        export_decoder_module(mod.DD(), out=out, progress=False)
    msg = str(err.value)
    assert f"{src}:12: if tokens.sum() > 3:" in msg and "torch.cond" in msg
    assert not out.exists()


def test_edgeslm_run_on_the_custom_bundle(nanogpt_bundle):
    """`edgeslm run` (tokenizer + session + generation loop) on the bundle gives eager's greedy text."""
    from edgeslm import api
    from edgeslm.text import Tokenizer
    model, bundle = nanogpt_bundle
    tok = Tokenizer.from_dir(bundle.path)
    prompt = "Beautiful is "
    ids = tok.encode(prompt)
    assert tok.decode(ids) == prompt and len(ids) == len(prompt)              # one id per character
    adapter = DecoderAdapter(model).eval()
    want, pos = [], len(ids)
    with torch.no_grad():
        logits = adapter(torch.tensor([ids]), torch.arange(pos))
        for _ in range(10):
            want.append(int(logits[0].argmax()))
            if want[-1] == 0:                                                   # <eos> stops generation
                break
            logits = adapter(torch.tensor([[want[-1]]]), torch.tensor([pos]))
            pos += 1
    result = api.run(bundle.path, prompt, max_new_tokens=10)
    assert result.tokens == want
    assert result.text == tok.decode([t for t in want if t != 0])
