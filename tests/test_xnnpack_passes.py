"""Lowering-time shortcuts must not change the program: XNNPACK passes skipped where they cannot act
(xnnpack_passes.py) and the partitioner without a support filter (fast_partitioner.py)."""
from __future__ import annotations

import contextlib
import hashlib

import pytest
import torch
from torch import nn

from edgeslm.compilers.executorch.xnnpack_passes import applicable_passes, skip_inapplicable_xnnpack_passes


@contextlib.contextmanager
def _stock_lowering():
    """ExecuTorch's own behaviour: every XNNPACK pass on every partition, XnnpackPartitioner as shipped."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    import edgeslm.compilers.executorch.fast_partitioner as partitioner_module
    import edgeslm.compilers.executorch.xnnpack_passes as passes_module
    applicable, unfiltered = passes_module.applicable_passes, partitioner_module._unfiltered_partitioner
    passes_module.applicable_passes = lambda passes, graph: list(passes)
    partitioner_module._unfiltered_partitioner = XnnpackPartitioner      # its `kept` stays empty
    XnnpackPartitioner.kept = []
    try:
        yield
    finally:
        passes_module.applicable_passes, partitioner_module._unfiltered_partitioner = applicable, unfiltered
        del XnnpackPartitioner.kept


def _digest(lower) -> str:
    return hashlib.sha256(lower()).hexdigest()


def _lower_recording_passes(lower) -> tuple[str, list[list[str]]]:
    """(digest of the program, names of the passes XNNPACK ran per partition), skipping on."""
    from executorch.backends.xnnpack import xnnpack_preprocess
    ran = []
    with skip_inapplicable_xnnpack_passes():
        manager = xnnpack_preprocess.XNNPACKPassManager

        class Recording(manager):
            def __init__(self, exported_program, passes=None):
                super().__init__(exported_program, passes)
                ran.append([p.__name__ for p in self.passes])

        xnnpack_preprocess.XNNPACKPassManager = Recording
        digest = _digest(lower)
    return digest, ran


def test_decoder_program_is_byte_identical_and_fewer_passes_run(tiny_checkpoint, tmp_path):
    from edgeslm.compilers.executorch.lower import lower_to_pte
    from edgeslm.compilers.executorch.sdpa_op import use_sdpa_op
    from edgeslm.ingest import load_checkpoint
    from edgeslm.quant import apply_recipe, load_recipe

    model = load_checkpoint(tiny_checkpoint("llama"), max_seq_len=64).model
    apply_recipe(model, load_recipe("int8"))
    use_sdpa_op(model)

    def lower() -> bytes:
        lower_to_pte(model, tmp_path)
        return (tmp_path / "model.pte").read_bytes()

    with _stock_lowering():
        stock = _digest(lower)
    digest, ran = _lower_recording_passes(lower)      # lower_to_pte takes both shortcuts itself
    assert digest == stock
    assert ran and all("ConvertToSDPAPass" not in r and "FuseBatchNormPass" not in r for r in ran)
    assert all("ConvertToLinearPass" in r for r in ran)


class ConvNet(nn.Module):
    """Ops that skippable passes act on: conv1d, batch norm, ReLU, PReLU, max-pool."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(8)
        self.prelu = nn.PReLU(8)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)

    def forward(self, seq, img):                               # seq [1, 4, 16], img [1, 4, 8, 8]
        a = torch.relu(self.bn1(self.conv1(seq)))              # [1, 8, 16]
        b = self.prelu(self.bn2(self.conv2(img)))              # [1, 8, 8, 8]
        return a, self.pool(b)                                 # [1, 8, 16], [1, 8, 4, 4]


def test_passes_run_where_their_ops_are_and_program_is_identical(tmp_path):
    from edgeslm.anymodel.plain import lower_executorch

    torch.manual_seed(0)
    model = ConvNet().eval()
    for bn in (model.bn1, model.bn2):                          # non-trivial statistics: fusion changes weights
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    example = (torch.randn(1, 4, 16), torch.randn(1, 4, 8, 8))
    ep = torch.export.export(model, example, strict=False)

    def lower() -> bytes:
        lower_executorch(ep, tmp_path)
        return (tmp_path / "model.pte").read_bytes()

    with _stock_lowering():
        stock = _digest(lower)
    digest, ran = _lower_recording_passes(lower)
    assert digest == stock
    assert {"FuseBatchNormPass", "Conv1dUnsqueezePass", "FuseActivationPass"} <= set().union(*map(set, ran))


@pytest.mark.parametrize("op_name, kept", [("aten.convolution.default", "Conv1dUnsqueezePass"),
                                           ("aten._native_batch_norm_legit_no_training.default",
                                            "DecomposeBatchNorm"),
                                           ("aten._native_batch_norm_legit_no_training.default",
                                            "Conv1dUnsqueezePass")])
def test_applicable_passes_keeps_a_pass_when_its_op_is_present(op_name, kept):
    from executorch.backends.xnnpack._passes import XNNPACKPassManager

    class Node:
        op, target = "call_function", f"<EdgeOpOverload: {op_name}>"

    class Graph:
        nodes = [Node()]

    class NoOps:
        nodes = []

    all_passes = XNNPACKPassManager(exported_program=None).passes
    assert kept in [p.__name__ for p in applicable_passes(all_passes, Graph())]
    assert kept not in [p.__name__ for p in applicable_passes(all_passes, NoOps())]
    assert len(applicable_passes(all_passes, NoOps())) < len(all_passes)


class ComputedWeight(nn.Module):
    """A linear XNNPACK refuses (its weight is computed at run time) next to one it takes."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x, w):                                   # x [2, 8], w [8, 8]
        return self.proj(x) + nn.functional.linear(x, w * 2.0)


def test_unfiltered_partitioner_falls_back_when_a_kept_linear_is_refused():
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from edgeslm.compilers.executorch.fast_partitioner import _unfiltered_partitioner, lower_with_xnnpack

    torch.manual_seed(0)
    model = ComputedWeight().eval()
    example = (torch.randn(2, 8), torch.randn(8, 8))
    config = EdgeCompileConfig(_check_ir_validity=False)
    with pytest.raises(RuntimeError, match="was not decomposed or delegated"):   # the shortcut alone fails
        to_edge_transform_and_lower(torch.export.export(model, example, strict=False),
                                    partitioner=[_unfiltered_partitioner()], compile_config=config)
    edge = lower_with_xnnpack(lambda: torch.export.export(model, example, strict=False), compile_config=config)
    method = Runtime.get().load_program(edge.to_executorch().buffer).load_method("forward")
    got = method.execute(list(example))[0]
    assert torch.allclose(got, model(*example), atol=1e-5)
