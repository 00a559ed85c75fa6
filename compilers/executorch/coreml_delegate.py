"""Decoder -> .pte lowered by ExecuTorch's Core ML partitioner (the second Apple route, --target ios-arm64 /
macos-arm64 with `executorch_delegate = "coreml"` in the target profile).

Steps (each reported through `progress`):
  1. export   the Core ML decoder variant (compilers/coreml/variant.py: float16, slice-updated KV cache,
              finite masks, ScaledRMSNorm: the delegate computes every op in float16, and a plain RMSNorm
              overflows on real checkpoints' residual outliers), T dynamic in [1, max_seq_len - 1]
  2. lower    to_edge_transform_and_lower with CoreMLPartitioner: iOS 18 / macOS 15 deployment target,
              float16 compute, the KV caches taken over as Core ML state (take_over_mutable_buffer)
  3. emit     to_executorch; LLM metadata methods as on the XNNPACK route
  4. write    model.pte
The Core ML backend of the ExecuTorch runtime exists only on Apple OSes: off macOS the bundle cannot be
executed here (open_session raises CannotRunHere and export records accuracy as not run).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

from edgeslm.compilers.base import CannotRunHere, LowerResult, Unsupported
from edgeslm.compilers.executorch.metadata import llm_metadata
from edgeslm.fsutil import write_bytes_atomic

ARTIFACT = "model.pte"
BACKEND_ID = "CoreMLBackend"
RECIPES = ("fp16",)
NEEDS_APPLE = "ExecuTorch's Core ML backend runs only on Apple OSes (this host: {})"


def check_recipe(recipe) -> None:
    if recipe.name not in RECIPES or recipe.features != {"float16"}:
        raise Unsupported(f"the ExecuTorch Core ML delegate route does not take recipe '{recipe.name}' "
                          "(float16 only: Core ML state is float16, compression goes through --backend coreml)",
                          fix="use --quant fp16, or --backend coreml for int8/int4/pal4")


def lower_coreml_pte(model, target, recipe, out: Path, progress=None) -> LowerResult:
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from edgeslm.compilers.coreml.convert import deployment_target
    from edgeslm.compilers.coreml.variant import cache_buffers, coreml_variant, export_variant

    check_recipe(recipe)
    step = progress or (lambda name: None)
    timings: dict[str, float] = {}
    deploy = deployment_target(target)
    units = str(target.extra.get("coreml_compute_units", "ALL"))

    t0 = time.perf_counter()
    step("export")
    variant = coreml_variant(model, scaled_norms=True)
    ep = export_variant(variant)
    kv_bytes = sum(int(b.numel()) * 2 for b in cache_buffers(variant).values())
    timings["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("lower")
    specs = CoreMLBackend.generate_compile_specs(compute_unit=getattr(ct.ComputeUnit, units),
                                                 minimum_deployment_target=deploy,
                                                 compute_precision=ct.precision.FLOAT16)
    try:
        edge = to_edge_transform_and_lower(
            ep, partitioner=[CoreMLPartitioner(compile_specs=specs, take_over_mutable_buffer=True)],
            compile_config=EdgeCompileConfig(_check_ir_validity=False), constant_methods=llm_metadata(model))
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unsupported(f"ExecuTorch's Core ML partitioner failed: {first}",
                          fix="use --backend coreml for this model") from err
    gm = edge.exported_program().graph_module
    delegated = sum(1 for n in gm.graph.nodes if n.op == "call_function"
                    and "executorch_call_delegate" in str(n.target))
    outside = sorted({str(n.target) for n in gm.graph.nodes if n.op == "call_function"
                      and "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)})
    timings["lower"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("emit")
    program = edge.to_executorch()
    timings["emit"] = time.perf_counter() - t0
    step("write")
    write_bytes_atomic(out / ARTIFACT, program.buffer)

    from edgeslm.compilers.base import Fallback
    return LowerResult(
        artifacts=[ARTIFACT], delegated={BACKEND_ID: delegated},
        fallbacks=[Fallback(op=op, count=1, reason="outside the Core ML partition (ExecuTorch CPU kernels)")
                   for op in outside],
        planned_arena_bytes=kv_bytes, timings_s=timings,
        metadata={"delegate": "coreml", "deployment_target": str(target.extra["coreml_deployment_target"]),
                  "compute_units": units, "kv_cache_bytes": kv_bytes,
                  "methods": sorted(["forward", *llm_metadata(model)])})


def delegates(pte: Path) -> list[str]:
    """Backend ids of the delegates in a .pte (read offline)."""
    from executorch.exir._serialize._program import deserialize_pte_binary
    program = deserialize_pte_binary(Path(pte).read_bytes())
    program = getattr(program, "program", program)
    return [d.id for plan in program.execution_plan for d in plan.delegates]


def refuse_off_apple(pte: Path) -> None:
    """Raise CannotRunHere if `pte` needs the Core ML backend and this host is not an Apple OS."""
    if platform.system() == "Darwin":
        return
    with open(pte, "rb") as fh:                       # cheap scan first: most .pte files are XNNPACK-only
        if BACKEND_ID.encode() not in fh.read():
            return
    if BACKEND_ID in delegates(pte):
        raise CannotRunHere(NEEDS_APPLE.format(platform.system()))
