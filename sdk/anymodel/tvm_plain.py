"""Plain graphs through Apache TVM (host only): ExportedProgram -> Relax -> default pipeline -> model.so.

Steps: run_decompositions -> from_exported_program (weights bound into the module) -> tvm.compile with
TVM's default Relax pipeline for an llvm host target -> export_library(model.so). run_plain loads it in
the Relax VM and calls main(*inputs). Untuned default schedules: correct, not fast (see NOTES.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ARTIFACT = "model.so"


def lower_plain(ep, out: Path) -> dict:
    import tvm
    from tvm.relax.frontend.torch import from_exported_program

    from edgeslm.errors import EdgeSLMError
    try:
        mod = from_exported_program(ep.run_decompositions())
    except Exception as err:  # the importer raises assorted types for ops it lacks
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EdgeSLMError(f"TVM's Relax importer cannot take this graph: {first[:300]}",
                           fix="use --backend executorch for this model") from None
    executable = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    partial = out / (ARTIFACT + ".partial")
    executable.export_library(str(partial))
    partial.replace(out / ARTIFACT)                         # atomic: model.so appears whole or not at all
    return {"artifact": ARTIFACT, "delegated": {}, "fallbacks": [], "planned_arena_bytes": 0,
            "tvm_target": "llvm (host, untuned default schedules)"}


def run_plain(lib_path: Path, inputs: tuple) -> list[np.ndarray]:
    import tvm
    from tvm import relax
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(Path(lib_path).resolve())), tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(t.numpy()) for t in inputs])
    leaves = list(out) if not hasattr(out, "numpy") else [out]
    return [np.asarray(x.numpy()) for x in leaves]
