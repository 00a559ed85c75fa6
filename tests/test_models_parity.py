"""edgeslm.models against transformers 5.x eager, family by family, on tiny random checkpoints.

- parity: fp32 logits within 1e-4 over a 7-token prefill and 16 greedy decode steps (our greedy
  token fed to both; transformers recomputes the whole sequence each step, no cache), same tokens;
- torch.export with a dynamic sequence length: the exported program matches eager;
- DecoderConfig.from_hf reads both config layouts (4.x top-level rope_theta/rope_scaling, 5.x
  rope_parameters) and refuses unsupported architectures;
- one ExecuTorch XNNPACK lowering of the llama tiny model, run with executorch.runtime.
"""
from __future__ import annotations

import json

import pytest
import torch

from edgeslm.errors import EdgeSLMError
from edgeslm.ingest import load_checkpoint
from edgeslm.models import FULL, SLIDING, SUPPORTED_ARCHITECTURES, DecoderConfig, SliceKVCache
from tiny_checkpoints import FAMILIES

PREFILL, DECODE, MAX_SEQ_LEN, TOL = 7, 16, 64, 1e-4


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _prompt(n: int = PREFILL, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, 384, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_and_greedy_tokens_match_transformers(family, tiny_checkpoint):
    import transformers

    path = tiny_checkpoint(family)
    ours = load_checkpoint(path, max_seq_len=MAX_SEQ_LEN).model
    ref = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager",
                                                            dtype=torch.float32).eval()
    seq = _prompt()
    out = ours(seq, torch.arange(PREFILL))                         # [1, 7, V]
    expected = ref(seq).logits
    assert out.shape == expected.shape and out.dtype == torch.float32
    worst = (out - expected).abs().max().item()
    ours_tokens, ref_tokens = [], []
    for _ in range(DECODE):
        nxt = int(out[0, -1].argmax())
        ours_tokens.append(nxt)
        ref_tokens.append(int(expected[0, -1].argmax()))
        pos = seq.shape[1]
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
        out = ours(torch.tensor([[nxt]]), torch.tensor([pos]))     # [1, 1, V] from the KV cache
        expected = ref(seq).logits[:, -1:]
        worst = max(worst, (out - expected).abs().max().item())
    assert worst <= TOL, f"{family}: max |logit diff| {worst:.3g} over prefill + {DECODE} decode steps"
    assert ours_tokens == ref_tokens


@pytest.mark.parametrize("family", ["mistral", "gemma3"])
def test_sliding_window_is_shorter_than_the_test_and_matters(family, tiny_checkpoint):
    ck = load_checkpoint(tiny_checkpoint(family), max_seq_len=MAX_SEQ_LEN)
    assert SLIDING in ck.config.layer_types and ck.config.sliding_window < PREFILL + DECODE
    if family == "gemma3":
        assert FULL in ck.config.layer_types and ck.config.rope_local.theta != ck.config.rope.theta
    seq = _prompt(20)
    windowed = ck.model(seq, torch.arange(20))
    ck.model.reset_cache()
    ck.model.window = None                                         # pretend every layer is global
    assert (ck.model(seq, torch.arange(20)) - windowed).abs().max() > 1e-2


def _export(model, max_seq_len: int):
    seq = torch.export.Dim("seq", min=1, max=max_seq_len)   # the whole cache in one prefill
    return torch.export.export(model, (_prompt(), torch.arange(PREFILL)), dynamic_shapes=({1: seq}, {0: seq}),
                               strict=False)


def _generate(forward, steps: int = 4) -> tuple[list[int], list[torch.Tensor]]:
    out = forward(_prompt(), torch.arange(PREFILL))
    tokens, logits = [int(out.argmax())], [out]
    for i in range(steps):
        out = forward(torch.tensor([[tokens[-1]]]), torch.tensor([PREFILL + i]))
        tokens.append(int(out.argmax()))
        logits.append(out)
    return tokens, logits


@pytest.mark.parametrize("family", FAMILIES)
def test_torch_export_dynamic_seq_matches_eager(family, tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint(family), max_seq_len=MAX_SEQ_LEN).model
    model.full_logits = False                                      # export keeps only the last position
    ep = _export(model, MAX_SEQ_LEN)
    model.reset_cache()
    eager_tokens, eager_logits = _generate(model)
    exported_tokens, exported_logits = _generate(ep.module())
    assert eager_logits[0].shape == (1, model.vocab_size)
    assert exported_tokens == eager_tokens
    for a, b in zip(eager_logits, exported_logits):
        assert (a - b).abs().max() <= 1e-5


def test_export_accepts_a_prefill_of_max_seq_len(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=32).model
    ep = _export(model, 32)
    model.reset_cache()
    tokens = _prompt(32)
    assert torch.allclose(ep.module()(tokens, torch.arange(32)), model(tokens, torch.arange(32)), atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_slice_kv_cache_exports_with_seq_up_to_max_seq_len_minus_1(family, tiny_checkpoint):
    """The CoreML-style cache (slice write at input_pos[0]) is a drop-in for the index_put one."""
    path = tiny_checkpoint(family)
    reference = load_checkpoint(path, max_seq_len=MAX_SEQ_LEN).model
    model = load_checkpoint(path, max_seq_len=MAX_SEQ_LEN, kv_cache=SliceKVCache).model
    model.full_logits = reference.full_logits = False
    ep = _export(model, MAX_SEQ_LEN - 1)
    eager_tokens, eager_logits = _generate(reference)
    exported_tokens, exported_logits = _generate(ep.module())
    assert exported_tokens == eager_tokens
    for a, b in zip(eager_logits, exported_logits):
        assert (a - b).abs().max() <= 1e-5


def test_llama_lowers_to_executorch_xnnpack_and_pte_gives_eager_greedy_tokens(tiny_checkpoint, tmp_path):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.runtime import Runtime

    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=MAX_SEQ_LEN).model
    model.full_logits = False
    ep = _export(model, MAX_SEQ_LEN)
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False),
                                       constant_methods={"get_max_seq_len": MAX_SEQ_LEN})
    program = edge.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True, run_reinplace_pass=True,
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False)))
    code = program.exported_program().graph_module.code
    assert "index_put__default" in code and "aten.copy_" not in code   # cache updated in place
    pte = tmp_path / "tiny-llama.pte"
    pte.write_bytes(program.buffer)
    method = Runtime.get().load_program(str(pte)).load_method("forward")
    model.reset_cache()
    eager_tokens, _ = _generate(model, steps=10)
    pte_tokens, _ = _generate(lambda t, p: method.execute([t, p])[0], steps=10)
    assert pte_tokens == eager_tokens


# ---- DecoderConfig.from_hf: both config layouts, refusals ----

_LLAMA = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=100, hidden_size=64,
              intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
_LLAMA3_SCALING = dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)


def test_from_hf_reads_transformers_4_and_5_rope_layouts_alike():
    old = DecoderConfig.from_hf(dict(_LLAMA, rope_theta=500000.0, rope_scaling=dict(_LLAMA3_SCALING, rope_type="llama3")))
    new = DecoderConfig.from_hf(dict(_LLAMA, rope_parameters=dict(_LLAMA3_SCALING, rope_type="llama3",
                                                                  rope_theta=500000.0)))
    legacy_type = DecoderConfig.from_hf(dict(_LLAMA, rope_theta=500000.0, rope_scaling=dict(_LLAMA3_SCALING, type="llama3")))
    assert old == new == legacy_type
    assert new.rope.kind == "llama3" and new.rope.theta == 500000.0 and new.rope.original_max_position_embeddings == 8192
    plain = DecoderConfig.from_hf(dict(_LLAMA))
    assert plain.rope.theta == 10000.0 and plain.rope.kind == "default" and plain.bos_token_id == 1


def test_from_hf_gemma3_old_layout_builds_local_global_pattern():
    cfg = DecoderConfig.from_hf(dict(
        architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", vocab_size=100, hidden_size=64,
        intermediate_size=128, num_hidden_layers=12, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
        rope_theta=1000000.0, rope_local_base_freq=10000.0, sliding_window_pattern=6, sliding_window=512,
        rope_scaling={"rope_type": "linear", "factor": 8.0}, query_pre_attn_scalar=256))
    assert cfg.layer_types == ((SLIDING,) * 5 + (FULL,)) * 2
    assert (cfg.rope.kind, cfg.rope.theta, cfg.rope.factor) == ("linear", 1e6, 8.0)
    assert (cfg.rope_local.kind, cfg.rope_local.theta) == ("default", 1e4)
    assert cfg.attn_scale == 256 ** -0.5 and cfg.embed_scale == 8.0 and cfg.norm_offset == 1.0
    assert cfg.qk_norm and cfg.sandwich_norm and cfg.tie_word_embeddings and cfg.hidden_act == "gelu_tanh"
    nested = DecoderConfig.from_hf(dict(
        architectures=["Gemma3ForCausalLM"], vocab_size=100, hidden_size=64, intermediate_size=128,
        num_hidden_layers=12, num_attention_heads=4, num_key_value_heads=1, head_dim=32, sliding_window=512,
        query_pre_attn_scalar=256,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}))
    assert nested == cfg


def test_from_hf_family_quirks():
    qwen2 = DecoderConfig.from_hf(dict(_LLAMA, architectures=["Qwen2ForCausalLM"], use_sliding_window=False,
                                       sliding_window=4096, eos_token_id=[5, 6]))
    assert qwen2.qkv_bias and not qwen2.o_bias and set(qwen2.layer_types) == {FULL} and qwen2.eos_token_ids == (5, 6)
    phi3 = DecoderConfig.from_hf(dict(_LLAMA, architectures=["Phi3ForCausalLM"], partial_rotary_factor=0.75,
                                      sliding_window=2047))
    assert phi3.rope.partial_rotary_factor == 0.75 and phi3.layer_types == (SLIDING, SLIDING)
    assert phi3.rms_norm_eps == 1e-5
    gemma = DecoderConfig.from_hf(dict(_LLAMA, architectures=["GemmaForCausalLM"], head_dim=16, hidden_act="gelu"))
    assert gemma.hidden_act == "gelu_tanh" and gemma.tie_word_embeddings and gemma.embed_scale == 8.0


@pytest.mark.parametrize("family", FAMILIES)
def test_config_json_round_trip(family, tiny_checkpoint):
    cfg = DecoderConfig.from_hf(json.loads((tiny_checkpoint(family) / "config.json").read_text()))
    assert DecoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_unsupported_architecture_lists_the_supported_ones():
    with pytest.raises(EdgeSLMError) as err:
        DecoderConfig.from_hf(dict(_LLAMA, architectures=["GPT2LMHeadModel"], model_type="gpt2"))
    assert "GPT2LMHeadModel" in str(err.value)
    assert all(arch in str(err.value) for arch in SUPPORTED_ARCHITECTURES)


def test_unsupported_rope_scaling_is_refused():
    with pytest.raises(EdgeSLMError, match="yarn"):
        DecoderConfig.from_hf(dict(_LLAMA, rope_scaling={"rope_type": "yarn", "factor": 4.0}))
