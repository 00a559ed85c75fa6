"""Issue #10: plain graphs (any module + example inputs, optional dynamic shapes) and the
`edgeslm export file.py:factory` CLI form: XNNPACK .pte whose outputs match eager, and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeslm.anymodel import export_module
from edgeslm.anymodel.factory import load_factory
from edgeslm.anymodel.plain import run_executorch
from edgeslm.anymodel.spec import parse_spec
from edgeslm.errors import EdgeSLMError

ROOT = Path(__file__).resolve().parents[1]
POOLER = textwrap.dedent('''
    import torch
    from torch import nn

    class Pooler(nn.Module):
        """tokens [1, T] int64, mask [1, T] float32 -> mean-pooled features [1, 8] and logits [1, T, 4]"""
        def __init__(self):
            super().__init__()
            self.emb, self.proj, self.head = nn.Embedding(50, 16), nn.Linear(16, 8), nn.Linear(8, 4)

        def forward(self, tokens, mask):
            h = torch.tanh(self.proj(self.emb(tokens)))                      # [1, T, 8]
            pooled = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            return pooled, self.head(h)

    def make():
        torch.manual_seed(0)
        return Pooler()

    def broken():
        raise ValueError("weights missing")

    def not_a_module():
        return 3
''')


@pytest.fixture(scope="module")
def pooler_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pooler") / "pooler.py"
    path.write_text(POOLER)
    return path


def test_plain_graph_dynamic_length_matches_eager(pooler_file, tmp_path):
    model = load_factory(f"{pooler_file}:make")
    seq = torch.export.Dim("seq", min=2, max=64)
    tokens, mask = torch.randint(0, 50, (1, 12)), torch.ones(1, 12)
    bundle = export_module(model, out=tmp_path / "b", example_inputs=(tokens, mask),
                           dynamic_shapes=({1: seq}, {1: seq}), progress=False)
    m = bundle.manifest
    assert m["model"]["inputs"] == [{"name": "tokens", "dtype": "int64", "shape": [1, 12]},
                                    {"name": "mask", "dtype": "float32", "shape": [1, 12]}]
    assert [o["shape"] for o in m["model"]["outputs"]] == [[1, 8], [1, 12, 4]]
    assert m["accuracy"]["allclose"] is True and m["lowering"]["delegated"].get("XnnpackBackend", 0) > 0
    assert m["memory"]["artifact_bytes"] == bundle.artifact.stat().st_size
    from edgeslm import api
    with pytest.raises(EdgeSLMError, match="plain graph, not a decoder"):
        api.run(bundle.path, "hello")
    # another length than the example (dynamic), a padded mask: still eager's numbers
    tokens, mask = torch.randint(0, 50, (1, 30)), torch.cat([torch.ones(1, 20), torch.zeros(1, 10)], 1)
    got = run_executorch(bundle.artifact, (tokens, mask))
    with torch.no_grad():
        want = [t.numpy() for t in model(tokens, mask)]
    assert [g.shape for g in got] == [(1, 8), (1, 30, 4)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_spec_parsing():
    specs = parse_spec("tokens:int64[1,128], mask:float32[1,128]")
    assert [(s.name, s.dtype, s.shape) for s in specs] == [("tokens", "int64", (1, 128)), ("mask", "float32", (1, 128))]
    for bad, why in [("tokens:int64[1,", "cannot read"), ("x:complex64[2]", "unknown dtype"),
                     ("x:int64[0]", ">= 1"), ("x:int64[1],x:int64[1]", "repeat")]:
        with pytest.raises(EdgeSLMError, match=why):
            parse_spec(bad)


def test_factory_errors(pooler_file, tmp_path):
    cases = [(f"{tmp_path}/nope.py:make", "no such Python file"),
             (f"{pooler_file}:missing", "no callable 'missing' in the file — fix: name one of: Pooler, broken, make, not_a_module"),
             (f"{pooler_file}:broken", "broken() raised ValueError: weights missing (line 21: raise ValueError"),
             (f"{pooler_file}:not_a_module", "not_a_module() returned int, not a torch.nn.Module")]
    bad_import = tmp_path / "bad.py"
    bad_import.write_text("import torch\nx = 1 / 0\n")
    cases.append((f"{bad_import}:make", "importing the file raised ZeroDivisionError: division by zero (line 2: x = 1 / 0)"))
    for spec, message in cases:
        with pytest.raises(EdgeSLMError) as err:
            load_factory(spec)
        assert message in str(err.value), str(err.value)


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "edgeslm.cli.main", *argv], capture_output=True, text=True,
                          timeout=600)


def test_cli_exports_a_factory_with_an_input_spec(pooler_file, tmp_path):
    out = tmp_path / "b"
    res = cli("export", f"{pooler_file}:make", "--example-inputs", "tokens:int64[1,16],mask:float32[1,16]",
              "--backend", "tvm", "-o", str(out), "--json")       # tvm: the cheaper build of the two
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["model"]["kind"] == "graph" and m["accuracy"]["allclose"] is True and m["backend"] == "tvm"
    assert m["model"]["inputs"][0] == {"name": "tokens", "dtype": "int64", "shape": [1, 16]}
    # inputs that do not fit forward: one line, exit 2, nothing written
    res = cli("export", f"{pooler_file}:make", "--example-inputs", "tokens:int64[1,16]", "-o", str(tmp_path / "c"))
    assert res.returncode == 2 and "do not fit Pooler.forward" in res.stderr and not (tmp_path / "c").exists()


def test_plain_graph_through_tvm(pooler_file, tmp_path):
    """The same graph through TVM (Relax, default schedules, host llvm): model.so in the Relax VM == eager."""
    from edgeslm.anymodel.tvm_plain import run_plain
    model = load_factory(f"{pooler_file}:make")
    seq = torch.export.Dim("seq", min=2, max=64)
    bundle = export_module(model, out=tmp_path / "b", backend="tvm", progress=False,
                           example_inputs=(torch.randint(0, 50, (1, 12)), torch.ones(1, 12)),
                           dynamic_shapes=({1: seq}, {1: seq}))
    assert bundle.manifest["artifact"] == "model.so" and bundle.manifest["accuracy"]["allclose"] is True
    tokens, mask = torch.randint(0, 50, (1, 20)), torch.cat([torch.ones(1, 15), torch.zeros(1, 5)], 1)
    got = run_plain(bundle.artifact, (tokens, mask))
    with torch.no_grad():
        want = [t.numpy() for t in model(tokens, mask)]
    assert [g.shape for g in got] == [(1, 8), (1, 20, 4)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
