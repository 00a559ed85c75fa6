"""XNNPACK lowering with one whole-graph decomposition fewer (lowering time), falling back when it matters.

ExecuTorch's `to_edge_transform_and_lower` asks the partitioner which ATen ops to keep whole (linear, the
torchao quantize/dequantize ops, ...). XnnpackPartitioner answers with a support filter, and a filter sends
ExecuTorch down its EDGE_DO_NOT_DECOMP path: three re-traces of the whole graph (functionalize, decompose with
the ops kept, decompose again after swapping the kept ones out). Without a filter it keeps the same ops
unconditionally in one decomposition fewer: SmolLM2-shaped decoders lower ~15% faster to byte-identical
programs (tests/test_xnnpack_passes.py).

The filter only matters for a kept op that XNNPACK then refuses (e.g. a linear whose weight is computed):
without it that op would stay whole outside the delegate, where ExecuTorch has no kernel for it (ExecuTorch
raises "... was not decomposed or delegated"). `lower_with_xnnpack` then lowers again the stock way.
"""
from __future__ import annotations

from typing import Callable


def _unfiltered_partitioner():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    class UnfilteredXnnpackPartitioner(XnnpackPartitioner):
        kept: list = []

        def ops_to_not_decompose(self, ep):
            ops, _support_filter = super().ops_to_not_decompose(ep)
            self.kept = list(ops)
            return ops, None

    return UnfilteredXnnpackPartitioner()


def _op_name(target) -> str:
    return str(getattr(target, "_op", target))       # EdgeOpOverload -> its ATen overload: "aten.linear.default"


def undelegated_kept_ops(edge, kept: list) -> list[str]:
    """Names of ops the partitioner kept whole that ended up outside every delegate (sorted, unique)."""
    names = {_op_name(op) for op in kept}
    graph = edge.exported_program().graph_module.graph
    return sorted({_op_name(n.target) for n in graph.nodes
                   if n.op == "call_function" and _op_name(n.target) in names})


def lower_with_xnnpack(make_program: Callable, **to_edge_kwargs):
    """EdgeProgramManager of make_program() lowered to XNNPACK: the unfiltered partitioner first, the stock
    one (on a fresh program) if a kept op was left undelegated. make_program: () -> ExportedProgram."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    fast = _unfiltered_partitioner()
    try:
        edge = to_edge_transform_and_lower(make_program(), partitioner=[fast], **to_edge_kwargs)
        if not undelegated_kept_ops(edge, fast.kept):
            return edge
    except RuntimeError as err:      # ExecuTorch itself refuses a kept op left outside every delegate
        if "was not decomposed or delegated" not in str(err):
            raise
    return to_edge_transform_and_lower(make_program(), partitioner=[XnnpackPartitioner()], **to_edge_kwargs)
