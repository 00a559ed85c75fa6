"""XNNPACK preprocessing without the graph passes that cannot change a partition (lowering time).

XNNPACK's preprocess runs 17 passes on every partition it lowers. Each is an ExportPass: it re-traces the
whole partition with fake tensors (symbolic prompt length included) whether or not it finds anything to
rewrite, and the two pattern passes also run a subgraph matcher per pattern. On a decoder most of them have
nothing to act on. A pass is skipped here only when the partition lacks what the pass acts on:

  FuseBatchNormPass, DecomposeBatchNorm   no batch-norm op in the partition
  Conv1dUnsqueezePass                     no convolution and no batch norm (which DecomposeBatchNorm turns
                                          into a convolution before this pass runs)
  PReLUReshapePass                        no _prelu_kernel
  FuseActivationPass                      no relu / hardtanh to fuse
  RemoveGetItemPass                       no max_pool2d_with_indices / max.dim
  DimOrderOpsRevertPass                   no dim_order_ops op
  DecomposeConcatenate                    no cat
  ConvertToUpsampleBilinear2d,            every pattern it matches has an op the partition lacks (a subgraph
  ConvertToSDPAPass                       match needs every pattern op present)

No pass before a skipped one in XNNPACK's order inserts the ops that would make it act (checked for each
rule). The other passes always run. Skipping changes no byte of the .pte (tests/test_xnnpack_passes.py compares
programs lowered with and without this).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator


def _op_names(graph) -> set[str]:
    return {str(node.target) for node in graph.nodes if node.op == "call_function"}


def _patterns_absent(get_graphs: Callable) -> Callable[[set[str]], bool]:
    def absent(ops: set[str]) -> bool:
        return all(not _op_names(pattern.graph) <= ops for pattern in get_graphs())
    return absent


def _skip_rules() -> dict[str, Callable[[set[str]], bool]]:
    """pass class name -> predicate over the partition's op names: True = the pass cannot change it."""
    from executorch.backends.xnnpack.partition.graphs import bilinear_2d, sdpa

    def lacks(*fragments: str) -> Callable[[set[str]], bool]:
        return lambda ops: not any(f in op for op in ops for f in fragments)

    return {
        "FuseBatchNormPass": lacks("batch_norm"),
        "DecomposeBatchNorm": lacks("batch_norm"),
        "Conv1dUnsqueezePass": lacks("aten.convolution", "batch_norm"),   # DecomposeBatchNorm inserts convs
        "PReLUReshapePass": lacks("_prelu_kernel"),
        "FuseActivationPass": lacks("aten.relu.default", "aten.hardtanh.default"),
        "RemoveGetItemPass": lacks("aten.max_pool2d_with_indices.default", "aten.max.dim"),
        "DimOrderOpsRevertPass": lacks("dim_order_ops."),
        "DecomposeConcatenate": lacks("aten.cat.default"),
        "ConvertToUpsampleBilinear2d": _patterns_absent(bilinear_2d.get_graphs),
        "ConvertToSDPAPass": _patterns_absent(sdpa.get_graphs),
    }


def applicable_passes(passes: list, graph) -> list:
    """The passes of `passes` (classes) that can change `graph` (see the module docstring)."""
    rules = _skip_rules()
    ops = _op_names(graph)
    return [p for p in passes if not rules.get(p.__name__, lambda _: False)(ops)]


@contextlib.contextmanager
def skip_inapplicable_xnnpack_passes() -> Iterator[None]:
    """While active, XNNPACK's preprocess runs only `applicable_passes` on each partition."""
    from executorch.backends.xnnpack import xnnpack_preprocess

    stock = xnnpack_preprocess.XNNPACKPassManager

    class ApplicablePassManager(stock):
        def __init__(self, exported_program, passes=None):
            super().__init__(exported_program, passes)
            self.passes = applicable_passes(self.passes, exported_program.graph)

    xnnpack_preprocess.XNNPACKPassManager = ApplicablePassManager
    try:
        yield
    finally:
        xnnpack_preprocess.XNNPACKPassManager = stock
