"""Core ML backend on a tiny random Llama: conversion, interface, compressed weights read back from the
.mlpackage, and numerics of the converted program (numpy MIL interpreter) against eager PyTorch.

Core ML itself cannot run here (Linux): prediction with MLState is in test_coreml_macos.py (macOS only).
"""

import numpy as np
import pytest
import torch

from edgeslm import api
from edgeslm.bundle import load_bundle
from edgeslm.compilers.coreml import mil
from edgeslm.compilers.coreml.interpret import MILSession
from edgeslm.errors import EdgeSLMError

MAX_SEQ = 32


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint("llama")


@pytest.fixture(scope="module")
def eager(ckpt):
    from edgeslm.ingest import load_checkpoint
    torch.set_grad_enabled(False)
    return load_checkpoint(ckpt, max_seq_len=MAX_SEQ).model


@pytest.fixture(scope="module")
def fp16_bundle(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml") / "fp16"
    return api.export(ckpt, out=out, backend="coreml", target="ios-arm64", quant="fp16", max_seq_len=MAX_SEQ,
                      progress=False)


def eager_logits(model, ids):
    model.reset_cache()
    return model(torch.tensor([ids]), torch.arange(len(ids)))[0].numpy()   # [T, V]


def test_fp16_bundle_interface_states_and_manifest(fp16_bundle, eager):
    cfg = eager.config
    art = fp16_bundle.artifact
    assert art.name == "model.mlpackage" and art.is_dir()
    io = mil.interface(art)
    assert io["spec_version"] >= 9                                        # iOS 18: model state
    assert io["inputs"] == {
        "tokens": {"shape": [1, 1], "dtype": "int32", "range": [[1, 1], [1, MAX_SEQ - 1]]},
        "input_pos": {"shape": [1], "dtype": "int32", "range": [[1, MAX_SEQ - 1]]}}
    assert io["outputs"] == {"logits": {"shape": [1, cfg.vocab_size], "dtype": "float32", "range": None}}
    want_states = {}
    for i in range(cfg.num_layers):
        want_states[f"layers_{i}_self_attn_cache_k"] = [cfg.num_kv_heads, cfg.head_dim, MAX_SEQ]
        want_states[f"layers_{i}_self_attn_cache_v"] = [cfg.num_kv_heads, MAX_SEQ, cfg.head_dim]
    assert {k: v["shape"] for k, v in io["states"].items()} == want_states
    assert {v["dtype"] for v in io["states"].values()} == {"float16"}
    assert io["metadata"]["edgeslm.compute_units"] == "CPU_AND_NE"

    m = fp16_bundle.manifest
    files = sum(f["bytes"] for rel, f in m["files"].items() if rel.startswith("model.mlpackage/"))
    assert m["memory"]["artifact_bytes"] == files
    weights = sum(p.numel() for p in eager.parameters())                   # tied or not: unique tensors
    assert 2 * weights <= files <= 2 * weights * 1.3 + 200_000             # float16 weights dominate
    kv = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * MAX_SEQ * 2
    assert m["memory"]["kv_cache_bytes"] == kv and m["lowering"]["metadata"]["deployment_target"] == "iOS18"
    load_bundle(fp16_bundle.path)                                          # every file of the package hashed
    acc = m["accuracy"]
    assert acc["status"] == "measured" and acc["runtime"].startswith("stand-in: edgeslm numpy MIL interpreter")
    assert acc["top1_agreement"] == 1.0 and acc["max_abs_logit_diff"] < 0.1 and acc["greedy_match"]


def test_converted_program_prefill_and_decode_match_eager(fp16_bundle, eager):
    ids = [1, 17, 42, 99, 5, 230, 7, 64, 3, 11]
    ref = eager_logits(eager, ids)
    session = MILSession(fp16_bundle.artifact)
    prefill = session.forward(ids[:6], 0)                                  # T = 6 in one call
    assert np.abs(prefill - ref[5]).max() < 0.06
    decode = [session.forward([t], p) for p, t in enumerate(ids[6:], start=6)]   # then T = 1 steps
    assert np.abs(np.stack(decode) - ref[6:]).max() < 0.06
    assert [int(d.argmax()) for d in decode] == [int(r.argmax()) for r in ref[6:]]
    # a program whose state update were wrong would diverge here: fresh state, other prefix -> other logits
    other = session.forward([1, 300, 301], 0)
    assert np.abs(other - eager_logits(eager, [1, 300, 301])[-1]).max() < 0.06


def test_decoder_variant_fed_to_the_converter_matches_eager(eager):
    from edgeslm.compilers.coreml.variant import MASK_FLOOR, coreml_variant, export_variant
    variant = coreml_variant(eager)
    assert eager.layers[0].self_attn.cache.k.dtype == torch.float32        # the caller's model is untouched
    ep = export_variant(variant)
    states = [s.target for s in ep.graph_signature.input_specs if s.kind.name == "BUFFER" and ".cache." in s.target]
    assert len(states) == 2 * eager.config.num_layers
    ids = [1, 8, 9, 120, 4]
    ref = eager_logits(eager, ids)
    run = ep.module()
    got = run(torch.tensor([ids[:3]]), torch.arange(3)).float().numpy()[0]
    for p in (3, 4):
        got = run(torch.tensor([[ids[p]]]), torch.tensor([p])).float().numpy()[0]
    assert np.abs(got - ref[-1]).max() < 0.06 and MASK_FLOOR < 65504


def test_compressed_weights_read_back_within_the_scheme_bound(eager, tmp_path):
    """int8 per channel, int4 per block 32 (embeddings int8 per block 32), pal4 k-means LUT: saved, read back
    from weight.bin through the MIL program, dequantized with numpy, compared with the torch weights."""
    from edgeslm.compilers.coreml.compress import base_name, compress, weight_parts
    from edgeslm.compilers.coreml.convert import to_mlprogram
    from edgeslm.quant import load_recipe
    from edgeslm.targets import get_target
    fp16, variant, _ = to_mlprogram(eager, get_target("ios-arm64"))     # convert once, compress three ways
    parts = weight_parts(variant)
    params = {"p_" + name.replace(".", "_"): p.detach().float().numpy() for name, p in eager.named_parameters()
              if p.ndim == 2}                                                  # matrices; norms stay float16
    fp16_bytes = 2 * sum(p.numel() for p in eager.parameters())
    for quant in ("int8", "int4", "pal4"):
        recipe = load_recipe(quant)
        art = tmp_path / f"{quant}.mlpackage"
        compress(fp16, variant, recipe)[0].save(str(art))
        weights = mil.compressed_weights(mil.load_program(art))
        assert len(weights) == len(params)                                 # every weight matrix compressed
        for const, w in weights.items():
            name = base_name(const.rsplit("_", 1)[0])                       # p_<fqn>[_promoted_to_fp16]_quantized
            spec = getattr(recipe, parts[name])
            torch_w = params[name]
            pal = spec.get("scheme") == "palettize"
            assert w["storage"] == f"{'uint' if pal else 'int'}{spec['weight_bits']}", (quant, const)
            assert w["value"].shape == torch_w.shape
            err = np.abs(w["value"] - torch_w)
            if pal:
                lut = np.unique(w["value"])
                assert len(lut) <= 16
                nearest = np.abs(torch_w[..., None] - lut).min(-1)         # k-means: each weight -> nearest entry
                assert np.all(err <= nearest + 2e-3)
            else:
                qmax = 2 ** (spec["weight_bits"] - 1) - 1
                scale = mil._blockwise(w["stored"]["scale"].astype(np.float32), torch_w.shape)
                block = torch_w.shape[1] // w["stored"]["scale"].shape[1]
                assert block == (spec["group_size"] or torch_w.shape[1])
                assert np.all(err <= scale / 2 + np.abs(torch_w) * 2e-3 + 1e-4)   # rounding + float16
                assert np.all(np.abs(w["stored"]["data"]) <= qmax + 1)
            assert err.max() > 0                                           # really quantized
        blob = (art / mil.WEIGHTS_DIR / "weight.bin").stat().st_size
        assert blob < {"int8": 0.6, "int4": 0.45, "pal4": 0.4}[quant] * fp16_bytes, (quant, blob, fp16_bytes)


def test_bad_recipes_and_targets_are_refused(ckpt, tmp_path):
    cases = [
        (dict(backend="coreml", target="ios-arm64", quant="fp32"), "does not take recipe 'fp32'.*float16.*--quant fp16"),
        (dict(backend="executorch", target="host", quant="pal4"), "does not take recipe 'pal4' \\(needs palettize\\)"),
        (dict(backend="executorch", target="host", quant="fp16"), "does not take recipe 'fp16'"),
        (dict(backend="coreml", target="host", quant="fp16"), "cannot build for target 'host'"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(EdgeSLMError, match=pattern):
            api.export(ckpt, out=tmp_path / "out", max_seq_len=MAX_SEQ, progress=False, **kwargs)
        assert not (tmp_path / "out").exists()


def test_pre_state_deployment_target_is_refused():
    import dataclasses

    from edgeslm.compilers.base import Unsupported
    from edgeslm.compilers.coreml.convert import deployment_target
    from edgeslm.targets import get_target
    old = dataclasses.replace(get_target("ios-arm64"), name="ios17", extra={"coreml_deployment_target": "iOS17"})
    with pytest.raises(Unsupported, match="ios17' deploys to iOS17, but a stateful KV cache needs iOS 18"):
        deployment_target(old)


def test_sliding_window_family_converts_and_matches_eager(tiny_checkpoint, tmp_path):
    """Mistral (window 6 < context): the sliding mask goes through logical_and (coremltools has no `&`)."""
    from edgeslm.compilers.coreml.convert import to_mlprogram
    from edgeslm.ingest import load_checkpoint
    from edgeslm.targets import get_target
    torch.set_grad_enabled(False)
    model = load_checkpoint(tiny_checkpoint("mistral"), max_seq_len=16).model
    assert model.window == 6
    mlmodel, _, _ = to_mlprogram(model, get_target("macos-arm64"))
    mlmodel.save(str(tmp_path / "m.mlpackage"))
    ids = [1, 30, 31, 32, 200, 201, 7, 8, 9, 10, 11]                     # longer than the window
    ref = eager_logits(model, ids)
    session = MILSession(tmp_path / "m.mlpackage")
    got = [session.forward(ids[:8], 0)] + [session.forward([t], p) for p, t in enumerate(ids[8:], start=8)]
    assert np.abs(np.stack(got) - ref[7:]).max() < 0.06


def test_rmsnorm_statistic_survives_outliers_beyond_float16(tiny_checkpoint, tmp_path):
    """Real checkpoints have residual outliers (SmolLM2-135M: |x| ~ 22552) whose square overflows float16:
    the converted program keeps x**2 -> mean -> rsqrt in float32. Scaled-up embeddings reproduce it here."""
    from edgeslm.compilers.coreml.convert import to_mlprogram
    from edgeslm.ingest import load_checkpoint
    from edgeslm.targets import get_target
    torch.set_grad_enabled(False)
    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=16).model
    model.embed_tokens.weight.mul_(3000.0)                              # |x| ~ 1000: x**2 >> 65504
    ids = [1, 30, 31, 32, 200]
    ref = eager_logits(model, ids)
    assert float(model.embed_tokens.weight.abs().max()) ** 2 > 65504 and np.isfinite(ref).all()
    mlmodel, _, _ = to_mlprogram(model, get_target("ios-arm64"))
    mlmodel.save(str(tmp_path / "m.mlpackage"))
    got = MILSession(tmp_path / "m.mlpackage").forward(ids, 0)
    assert np.isfinite(got).all() and int(got.argmax()) == int(ref[-1].argmax())
    assert np.abs(got - ref[-1]).max() < 0.05 * np.abs(ref[-1]).max()


def test_scaled_rmsnorm_survives_all_float16_execution(tiny_checkpoint, tmp_path):
    """ExecuTorch's Core ML delegate runs every op in float16 (no per-op precision): its variant uses
    ScaledRMSNorm. Converted all-float16 here and executed by the MIL interpreter on outlier activations."""
    import coremltools as ct

    from edgeslm.compilers.coreml.variant import cache_buffers, coreml_variant, export_variant
    from edgeslm.ingest import load_checkpoint
    torch.set_grad_enabled(False)
    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=16).model
    model.embed_tokens.weight.mul_(3000.0)                              # |x| ~ 1000: x**2 >> 65504
    ids = [1, 30, 31, 32, 200]
    ref = eager_logits(model, ids)
    variant = coreml_variant(model, scaled_norms=True)
    states = [ct.StateType(wrapped_type=ct.TensorType(shape=tuple(b.shape), dtype=np.float16), name=n)
              for n, b in cache_buffers(variant).items()]
    mlmodel = ct.convert(export_variant(variant), minimum_deployment_target=ct.target.iOS18, states=states,
                         compute_precision=ct.precision.FLOAT16, skip_model_load=True,
                         outputs=[ct.TensorType(name="logits", dtype=np.float32)])
    mlmodel.save(str(tmp_path / "m.mlpackage"))
    got = MILSession(tmp_path / "m.mlpackage").forward(ids, 0)
    assert np.isfinite(got).all() and int(got.argmax()) == int(ref[-1].argmax())
    assert np.abs(got - ref[-1]).max() < 0.05 * np.abs(ref[-1]).max()
