"""The Relax pipeline as a flat list of named phases (as MLC-LLM writes it), each able to dump its IR.

Phases, in order:
  legalize        Relax ops -> TIR PrimFuncs (LegalizeOps), op patterns annotated for fusion
  fold-constants  constant subgraphs computed once at build time (parameters are still inputs here; module
                  buffers are constants since import, so the int8 linears' dequantize IS folded to float32)
  fuse            FuseOps + FuseTIR: elementwise prologues/epilogues join their matmul/reduction
  schedule        CPU schedules: edgeslm's own GEMV/matmul/elementwise rules (schedule.py), parallel
                  across threads and vectorised; DLight's CPU rules for the reductions left
  bind-params     the weights become constants of the executable (one self-contained .so)
  lower-dataflow  RewriteDataflowReshape, ToNonDataflow, RemovePurityChecking, CallTIRRewrite
  finalize        static memory planning, VM shape lowering, global symbols

`run(mod, params, target, dump_dir=...)` writes `<dump_dir>/<nn>-<phase>.py` (TVMScript) after each phase
when asked (EDGESLM_TVM_DUMP=dir or --dump-ir), for debugging a lowering step by step.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable


def _legalize(mod, ctx):
    from tvm import relax
    return _seq(mod, [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern()])


def _fold(mod, ctx):
    from tvm import relax
    return relax.transform.FoldConstant()(mod)


def _fuse(mod, ctx):
    from tvm import relax
    return _seq(mod, [relax.transform.FuseOps(), relax.transform.FuseTIR(), relax.transform.DeadCodeElimination()])


def _schedule(mod, ctx):
    if not ctx["tuned"]:
        return mod
    from tvm.s_tir import dlight as dl

    from edgeslm.compilers.tvm.schedule import rules
    with ctx["target"]:
        return dl.ApplyDefaultSchedule(*rules(ctx["threads"]))(mod)


def _bind(mod, ctx):
    from tvm import relax
    params = ctx["params"]
    if not params:
        return mod
    for name in ("prefill", "decode"):
        mod = relax.transform.BindParams(name, params)(mod)
    return mod


def _lower_dataflow(mod, ctx):
    from tvm import relax
    return _seq(mod, [relax.transform.RewriteDataflowReshape(), relax.transform.ToNonDataflow(),
                      relax.transform.RemovePurityChecking(), relax.transform.CallTIRRewrite()])


def _finalize(mod, ctx):
    from tvm import relax
    return _seq(mod, [relax.transform.StaticPlanBlockMemory(), relax.transform.LowerAllocTensor(),
                      relax.transform.KillAfterLastUse(), relax.transform.LowerRuntimeBuiltin(),
                      relax.transform.ComputePrimValue(), relax.transform.VMShapeLower(),
                      relax.transform.AttachGlobalSymbol()])


def _seq(mod, passes):
    import tvm
    return tvm.transform.Sequential(passes)(mod)


PHASES: list[tuple[str, Callable]] = [
    ("legalize", _legalize),
    ("fold-constants", _fold),
    ("fuse", _fuse),
    ("schedule", _schedule),
    ("bind-params", _bind),
    ("lower-dataflow", _lower_dataflow),
    ("finalize", _finalize),
]


def run(mod, params: dict, target, *, tuned: bool = True, threads: int = 0, dump_dir: Path | None = None,
        on_phase: Callable[[str], None] | None = None) -> tuple[object, dict[str, float]]:
    """Apply PHASES to `mod` (a Relax IRModule with weights as trailing inputs of main, values in
    `params` by name); returns the lowered module and seconds per phase."""
    import tvm

    ctx = {"params": params, "target": target, "tuned": tuned, "threads": threads}
    timings: dict[str, float] = {}
    if dump_dir:
        Path(dump_dir).mkdir(parents=True, exist_ok=True)
        _dump(mod, Path(dump_dir) / "00-import.py")
    with target, tvm.transform.PassContext(opt_level=3):
        for index, (name, phase) in enumerate(PHASES, start=1):
            if on_phase:
                on_phase(name)
            t0 = time.perf_counter()
            mod = phase(mod, ctx)
            timings[name] = time.perf_counter() - t0
            if dump_dir:
                _dump(mod, Path(dump_dir) / f"{index:02d}-{name}.py")
    return mod, timings


def _dump(mod, path: Path) -> None:
    # constants are elided: the dump is for reading the program, not for reloading it
    path.write_text(mod.script(show_meta=False))
