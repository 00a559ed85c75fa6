"""Core ML prediction with MLState: only on macOS (coremltools predicts through the Core ML framework).

On a Mac: `pytest tests/test_coreml_macos.py` exports a tiny fp16 bundle and checks that Core ML's own
prefill + decode logits match eager PyTorch and the numpy MIL interpreter used as the stand-in on Linux.
"""
import platform

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(platform.system() != "Darwin",
                                reason="Core ML prediction with MLState needs macOS (this host: "
                                       f"{platform.system()}); Linux checks: test_coreml_convert.py")


def test_coreml_state_prefill_and_decode_match_eager(tiny_checkpoint, tmp_path):
    from edgeslm import api
    from edgeslm.compilers.coreml.interpret import MILSession
    from edgeslm.compilers.coreml.session import CoreMLSession
    from edgeslm.ingest import load_checkpoint

    ckpt = tiny_checkpoint("llama")
    bundle = api.export(ckpt, out=tmp_path / "b", backend="coreml", target="macos-arm64", quant="fp16",
                        max_seq_len=32, progress=False)
    assert bundle.manifest["accuracy"]["runtime"] == "native"
    torch.set_grad_enabled(False)
    eager = load_checkpoint(ckpt, max_seq_len=32).model
    ids = [1, 17, 42, 99, 5, 230, 7]
    ref = eager(torch.tensor([ids]), torch.arange(len(ids)))[0].numpy()
    for units in ("CPU_ONLY", "ALL"):
        session, stand_in = CoreMLSession(bundle.artifact, units), MILSession(bundle.artifact)
        got = [session.forward(ids[:4], 0)] + [session.forward([t], p) for p, t in enumerate(ids[4:], start=4)]
        ref_rows = ref[3:]
        assert np.abs(np.stack(got) - ref_rows).max() < 0.1
        assert [int(g.argmax()) for g in got] == [int(r.argmax()) for r in ref_rows]
        sim = [stand_in.forward(ids[:4], 0)] + [stand_in.forward([t], p) for p, t in enumerate(ids[4:], start=4)]
        assert np.abs(np.stack(got) - np.stack(sim)).max() < 0.1
