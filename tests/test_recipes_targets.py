"""Quantization recipes and target profiles are data; bad ones are refused with the file named."""
import json

import pytest
import torch
from torch import nn

from edgeslm.errors import EdgeSLMError
from edgeslm.quant import RECIPES, apply_recipe, load_recipe
from edgeslm.targets import TARGETS, _parse, get_target


def test_builtin_recipes():
    assert set(RECIPES) >= {"fp32", "int8", "int4"}
    assert RECIPES["fp32"].is_float
    assert RECIPES["int4"].linear == {"activations": "int8_dynamic", "weight_bits": 4, "group_size": 32}
    assert RECIPES["int8"].linear["weight_bits"] == 8 and RECIPES["int8"].linear["group_size"] is None


def test_recipe_file_and_errors(tmp_path):
    good = tmp_path / "w8.json"
    good.write_text(json.dumps({"name": "w8", "linear": {"activations": "none", "weight_bits": 8, "group_size": 64}}))
    assert load_recipe(str(good)).linear["group_size"] == 64
    with pytest.raises(EdgeSLMError, match="unknown quantization recipe 'int3'.*fp32"):
        load_recipe("int3")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "linear": {"weight_bits": 3}}))
    with pytest.raises(EdgeSLMError, match=r"bad\.json.*weight_bits"):
        load_recipe(str(bad))
    bad.write_text("{oops")
    with pytest.raises(EdgeSLMError, match="not valid JSON"):
        load_recipe(str(bad))


def test_int8_recipe_quantizes_linear_weights_close_to_float():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(64, 32), nn.Linear(32, 48, bias=False))
    ids = torch.randint(0, 64, (1, 10))
    want = model(ids)
    apply_recipe(model, RECIPES["int8"])
    assert type(model[1].weight).__name__ == "IntxUnpackedToInt8Tensor"   # linear: int8 weights
    assert type(model[0].weight).__name__ == "IntxUnpackedToInt8Tensor"   # embedding: int8 per group
    got = model(ids)
    rel = (got - want).abs().max() / want.abs().max()
    assert 0 < rel < 0.05, rel   # quantized (not identical), and within 8-bit error


def test_targets_registry_and_errors():
    assert {"host", "linux-arm64", "android-arm64"} <= set(TARGETS)
    arm = get_target("linux-arm64")
    assert arm.triple == "aarch64-linux-gnu" and arm.qemu_cpu == "cortex-a76" and "+neon" in arm.cpu_flags
    with pytest.raises(EdgeSLMError, match="unknown target 'pixel'.*host"):
        get_target("pixel")
    with pytest.raises(EdgeSLMError, match="broken.toml.*lacks triple"):
        _parse('name = "x"\ndescription = ""\nkind = "cpu"\nos = "linux"\narch = "x"\nbackends = []', "broken.toml")
