"""Lowering report: which ops XNNPACK took, and every op that stayed on the CPU kernels, with the reason.

Reasons come from the partitioner's own `WhyNoPartition` debug records (captured while lowering);
ops with no XNNPACK config at all get a generic reason.
"""
from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager

from edgeslm.compilers.base import Fallback

_IGNORED = {"getitem", "executorch_call_delegate", "output", "placeholder", "get_attr"}
NO_CONFIG = "XNNPACK has no kernel for this op; it runs on ExecuTorch's CPU kernels"
OWN_KERNEL = "edgeslm's own ExecuTorch kernel (runtime/kernels), by design"
NOT_DELEGATED = "runs on ExecuTorch's CPU kernels: the decoder is edgeslm's own ops, XNNPACK is not used"


@contextmanager
def capture_rejections():
    """Collect {op name: reason} from WhyNoPartition records logged by the XNNPACK partitioner."""
    reasons: dict[str, str] = {}

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            why = record.msg
            node = getattr(why, "node", None)
            if node is not None and getattr(why, "reason", ""):
                reasons.setdefault(_op_name(node), why.reason)

    handler = _Handler(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in logging.root.manager.loggerDict
               if n.startswith("executorch.backends.xnnpack.partition")]  # not serialization: it dumps JSON at DEBUG
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
        lg.propagate = False   # keep the debug flood off the user's terminal
    try:
        yield reasons
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


def _op_name(node) -> str:
    target = node.target
    if "auto_functionalized" in str(target) and node.args:     # a mutating op (edgeslm::cache_write) before
        return str(node.args[0]).replace(".default", "")       # to_executorch turns it back in place
    name = getattr(target, "__name__", None) or str(target)
    return name.replace("aten.", "").replace(".default", "")


def summarize(graph_module, reasons: dict[str, str],
              default: str = NO_CONFIG) -> tuple[dict[str, int], list[Fallback]]:
    """Count delegated ops (inside lowered XNNPACK modules) and the ops left outside them (reason: the
    partitioner's, else `default`)."""
    delegated = Counter()
    outside = Counter()
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node)
        if name == "executorch_call_delegate":
            lowered = getattr(graph_module, node.args[0].target)
            inner = sum(1 for n in lowered.original_module.graph.nodes if n.op == "call_function")
            delegated[lowered.backend_id] += inner
        elif name not in _IGNORED and not name.startswith("sym_") and name not in ("_assert_scalar",):
            outside[name] += 1
    fallbacks = [Fallback(op=op, count=n, reason=OWN_KERNEL if op.startswith("edgeslm.") else reasons.get(op, default))
                 for op, n in sorted(outside.items())]
    return dict(delegated), fallbacks
