"""ExecuTorch bundles of a tiny Llama: parity with eager PyTorch, quantized agreement, ExecuTorch's own LLM runner.

Quantized bundles are checked twice, teacher-forced:
- against the same torchao-quantized model run eagerly in PyTorch: this isolates lowering, so the bar is
  high: mean KL < 0.005 nats and below the float-vs-bundle KL, top-1 >= 0.9 (the remaining flips are
  near-ties of the random model, moved by XNNPACK's dynamic-quantization rounding vs torchao's reference);
- against the float model, as recorded in the manifest. A random-init tiny model (hidden 64, flat logits,
  many near-ties) is the worst case for this, so the bounds are looser than on a trained model: int8 keeps
  >= 0.85 of the argmaxes with mean KL < 0.02 nats; int4 (group 32 over rows of only 64) >= 0.35 with
  KL < 0.3. A broken kernel or a scale error lands near chance (1/384, KL of several nats).
"""
import numpy as np
import pytest
import torch

from edgeslm import api
from edgeslm.compilers.executorch.session import ExecuTorchSession
from edgeslm.ingest import load_checkpoint

RECIPE_BOUNDS = {"int8": (0.85, 0.02), "int4": (0.35, 0.3)}


@pytest.fixture(scope="module")
def bundles(tiny_checkpoint, tmp_path_factory):
    ckpt = tiny_checkpoint("llama")
    root = tmp_path_factory.mktemp("et-bundles")
    made = {}

    def get(recipe: str):
        if recipe not in made:
            made[recipe] = api.export(ckpt, out=root / recipe, quant=recipe, max_seq_len=128, progress=False)
        return made[recipe]

    return ckpt, get


def test_fp32_logits_and_greedy_tokens_match_eager(bundles):
    ckpt, get = bundles
    bundle = get("fp32")
    eager = load_checkpoint(ckpt, max_seq_len=128).model
    session = ExecuTorchSession(bundle.artifact)
    prompt = [1, 17, 42, 99, 250, 7, 3]
    with torch.no_grad():
        want = eager(torch.tensor([prompt]), torch.arange(len(prompt)))[0, -1].numpy()
    got = session.forward(prompt, 0)
    assert got.shape == (384,)
    assert np.abs(got - want).max() <= 1e-4
    pos, eager_tokens, et_tokens = len(prompt), [], []
    tok_e, tok_x = int(want.argmax()), int(got.argmax())
    for _ in range(16):  # 16 decode steps, each side feeding its own greedy token
        eager_tokens.append(tok_e)
        et_tokens.append(tok_x)
        with torch.no_grad():
            want = eager(torch.tensor([[tok_e]]), torch.tensor([pos]))[0, -1].numpy()
        got = session.forward([tok_x], pos)
        assert np.abs(got - want).max() <= 1e-4, pos
        tok_e, tok_x, pos = int(want.argmax()), int(got.argmax()), pos + 1
    assert et_tokens == eager_tokens


def test_fp32_manifest_records_exact_accuracy_and_report(bundles):
    m = bundles[1]("fp32").manifest
    acc = m["accuracy"]
    assert acc["top1_agreement"] == 1.0 and acc["max_abs_logit_diff"] < 1e-4
    assert acc["greedy_match"] and len(acc["reference_greedy"]) == 16
    assert len(acc["bundle_greedy_runner_up"]) == 16 and all(m >= 0 for m in acc["bundle_greedy_margins"])
    assert all(r != b for r, b in zip(acc["bundle_greedy_runner_up"], acc["bundle_greedy"]))
    assert m["lowering"]["delegated"]["XnnpackBackend"] > 0
    assert all(f["reason"] for f in m["lowering"]["fallbacks"])
    assert m["memory"]["planned_arena_bytes"] > 0
    assert m["model"]["max_seq_len"] == 128 and m["quant"]["name"] == "fp32"
    assert set(m["files"]) >= {"model.pte", "tokenizer.json", "tokenizer_config.json"}


@pytest.mark.parametrize("recipe", ["int8", "int4"])
def test_quantized_agreement_and_size(bundles, recipe):
    fp32 = bundles[1]("fp32")
    bundle = bundles[1](recipe)
    acc = bundle.manifest["accuracy"]
    min_agree, max_kl = RECIPE_BOUNDS[recipe]
    assert acc["top1_agreement"] >= min_agree, acc
    assert acc["kl_mean"] < max_kl, acc
    assert acc["kl_mean"] > 0   # really quantized, not the float model again
    # Lowering is faithful: the bundle agrees with the eager model quantized the way the backend does
    # (edgeslm's QuantLinear reference math for the linears, torchao for the embeddings, the float16 cache).
    from edgeslm import accuracy
    from edgeslm.compilers.executorch import prepare
    from edgeslm.quant import load_recipe
    session = ExecuTorchSession(bundle.artifact)
    eager_q = prepare(load_checkpoint(bundles[0], max_seq_len=128).model, load_recipe(recipe))
    ref = [accuracy.eager_logits(eager_q, ids) for ids in acc["prompts"]]
    got = [accuracy.session_logits(session, ids) for ids in acc["prompts"]]
    lowered = accuracy.compare(ref, got)
    assert lowered["top1_agreement"] >= 0.9, lowered
    assert lowered["kl_mean"] < min(0.005, acc["kl_mean"]), lowered
    assert bundle.manifest["memory"]["artifact_bytes"] < fp32.manifest["memory"]["artifact_bytes"]


def test_bundle_runs_in_executorchs_own_llm_runner(bundles):
    import executorch.kernels.quantized  # noqa: F401
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    bundle = bundles[1]("int8")
    runner = TextLLMRunner(str(bundle.artifact), str(bundle.path / "tokenizer.json"))
    stats = []
    # No token callback: a random tiny model emits byte tokens that are not valid UTF-8 on their own, and the
    # runner's callback raises UnicodeDecodeError on those (the SmolLM2 slow test compares text).
    runner.generate("Hello world", GenerationConfig(echo=False, max_new_tokens=8, temperature=0.0),
                    stats_callback=lambda s: stats.append((s.num_prompt_tokens, s.num_generated_tokens)))
    assert stats and stats[0][0] > 0 and stats[0][1] >= 7
    session = ExecuTorchSession(bundle.artifact)
    assert session.metadata("get_vocab_size") == 384 and session.metadata("get_max_seq_len") == 128
    assert session.metadata("use_kv_cache") is True and session.metadata("get_eos_ids") == 2


def test_generate_api_is_deterministic_and_matches_session(bundles):
    bundle = bundles[1]("fp32")
    a = api.run(bundle.path, "Hello world", max_new_tokens=10)
    b = api.run(bundle.path, "Hello world", max_new_tokens=10)
    assert a.tokens == b.tokens and len(a.tokens) == 10 and a.stop_reason == "max_new_tokens"
    session = ExecuTorchSession(bundle.artifact)
    logits = session.forward(a.prompt_tokens, 0)
    assert int(logits.argmax()) == a.tokens[0]
    s1 = api.run(bundle.path, "Hello", max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3)
    s2 = api.run(bundle.path, "Hello", max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3)
    assert s1.tokens == s2.tokens
    assert a.stats.ttft_ms > 0 and a.stats.decode_tokens_per_s > 0 and len(a.stats.decode_ms_per_token) == 9
