"""ExecuTorch's Core ML delegate (--backend executorch --target ios-arm64): the whole decoder lands in one
Core ML partition with the KV caches as state; this host cannot execute it, and export says so.

Executing the .pte needs ExecuTorch's Core ML runtime backend, which exists only on Apple OSes."""
import json
import platform

import pytest

from edgeslm import api
from edgeslm.bundle import load_bundle
from edgeslm.cli.main import main
from edgeslm.compilers.executorch.coreml_delegate import delegates
from edgeslm.errors import EdgeSLMError


@pytest.mark.skipif(platform.system() == "Darwin", reason="checks the off-Apple refusal; on macOS the bundle runs")
def test_executorch_coreml_delegate_bundle(tiny_checkpoint, tmp_path, capsys):
    ckpt = tiny_checkpoint("llama")
    out = tmp_path / "et-coreml"
    assert main(["export", str(ckpt), "--backend", "executorch", "--target", "ios-arm64", "--quant", "fp16",
                 "--max-seq-len", "24", "-o", str(out), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    bundle = load_bundle(out)
    assert delegates(bundle.artifact) == ["CoreMLBackend"]              # one partition: the whole decoder
    assert m["lowering"]["delegated"] == {"CoreMLBackend": 1} and m["lowering"]["fallbacks"] == []
    assert m["lowering"]["metadata"]["deployment_target"] == "iOS18"
    assert "get_max_seq_len" in m["lowering"]["metadata"]["methods"]
    cfg = m["model"]["config"]
    assert m["memory"]["kv_cache_bytes"] == 2 * cfg["num_layers"] * cfg["num_kv_heads"] * cfg["head_dim"] * 24 * 2
    acc = m["accuracy"]
    assert acc["status"] == "not run here: ExecuTorch's Core ML backend runs only on Apple OSes (this host: Linux)"
    assert len(acc["reference_greedy"]) == 16 and "top1_agreement" not in acc
    # the session refuses in the same words on this host
    from edgeslm.compilers.base import CannotRunHere
    with pytest.raises(CannotRunHere, match="this host cannot run the bundle: ExecuTorch.s Core ML backend runs only on Apple OSes"):
        api.open_session(bundle)
    # the delegate route is float16 only: compression goes through --backend coreml
    with pytest.raises(EdgeSLMError, match="Core ML delegate route does not take recipe 'int8'.*--backend coreml"):
        api.export(ckpt, out=tmp_path / "x", backend="executorch", target="ios-arm64", quant="int8",
                   max_seq_len=24, progress=False)
    assert not (tmp_path / "x").exists()
