"""The device accuracy gate: exact greedy tokens, except a flip between the host's top-2 at a near-tie."""
from edgeslm.farm.metrics import NEAR_TIE_LOGITS, accuracy_gate


def manifest(quant="int8", margin=0.34):
    return {"quant": {"name": quant}, "accuracy": {
        "prompts": [[1, 2, 3]], "bundle_greedy": [10, 11, 12, 13], "reference_greedy": [10, 11, 12, 13],
        "bundle_greedy_runner_up": [20, 21, 22, 23], "bundle_greedy_margins": [3.0, 2.0, margin, 1.0]}}


def test_exact_tokens_are_ok_and_missing_run_is_not_run():
    assert accuracy_gate(manifest(), [10, 11, 12, 13])["status"] == "ok"
    assert accuracy_gate(manifest(), None)["status"] == "not run"


def test_flip_to_runner_up_at_a_near_tie_is_ok_and_reported():
    gate = accuracy_gate(manifest(margin=0.34), [10, 11, 22, 99])
    assert gate["status"] == "ok" and gate["first_mismatch"] == 2
    assert gate["near_tie"]["step"] == 2 and gate["near_tie"]["host_margin_logits"] == 0.34


def test_flip_with_a_clear_margin_or_to_another_token_is_wrong():
    assert accuracy_gate(manifest(margin=NEAR_TIE_LOGITS["quantized"] + 0.1), [10, 11, 22, 13])["status"] == "wrong"
    assert accuracy_gate(manifest(margin=0.01), [10, 11, 55, 13])["status"] == "wrong"   # not the runner-up
    assert accuracy_gate(manifest(), [10, 21, 12, 13])["status"] == "wrong"              # step 1: margin 2.0


def test_fp32_uses_a_tighter_tie_and_old_manifests_stay_exact():
    assert accuracy_gate(manifest("fp32", margin=0.3), [10, 11, 22, 13])["status"] == "wrong"
    assert accuracy_gate(manifest("fp32", margin=0.01), [10, 11, 22, 13])["status"] == "ok"
    old = manifest()
    del old["accuracy"]["bundle_greedy_runner_up"], old["accuracy"]["bundle_greedy_margins"]
    assert accuracy_gate(old, [10, 11, 22, 13])["status"] == "wrong"
