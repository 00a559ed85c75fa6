"""Plain graphs: any nn.Module + example inputs (+ optional dynamic shapes) -> a verified bundle.

Steps (shown through edgeslm.progress):
  check      the inputs bind to forward's arguments; eager outputs computed (the reference)
  export     torch.export (strict=False) with the given dynamic_shapes; data-dependent control flow is
             reported with the offending line of the user's source
  lower/emit ExecuTorch: to_edge_transform_and_lower(XNNPACK) -> to_executorch -> model.pte
             (TVM: tvm_plain.lower_plain -> model.so, Relax VM)
  accuracy   the draft bundle's outputs on the example inputs vs eager (fp32: allclose, max |diff|)
  manifest   model.kind = "graph", model.inputs / model.outputs = [{name, dtype, shape}]
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeslm.anymodel.contract import _source, user_line
from edgeslm.anymodel.decoder import weights_sha256
from edgeslm.anymodel.spec import check_inputs, describe, input_names, make_inputs, parse_spec
from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import staged_directory, write_bytes_atomic

RTOL, ATOL = 1e-4, 1e-4      # fp32 tolerance of the accuracy check (kernels reorder sums)
EXPORT_FIX = ("replace Python control flow on tensor values (if/for on .item(), data-dependent shapes) "
              "with torch.where / torch.cond / static shapes")


def flat_outputs(out) -> list[torch.Tensor]:
    leaves = torch.utils._pytree.tree_leaves(out)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


def export_graph(model: nn.Module, inputs: tuple, dynamic_shapes=None) -> torch.export.ExportedProgram:
    source = _source(model)
    try:
        return torch.export.export(model, inputs, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as err:  # torch.export raises many types; the first line + the user's line say enough
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        line = user_line(err, source)
        raise EdgeSLMError(f"torch.export cannot trace {type(model).__name__}: {first}"
                           + (f" at {line}" if line else ""), path=source, fix=EXPORT_FIX) from None


def lower_executorch(ep, out: Path) -> dict:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from edgeslm.compilers.executorch.report import capture_rejections, summarize
    from edgeslm.compilers.executorch.xnnpack_passes import skip_inapplicable_xnnpack_passes
    with capture_rejections() as reasons, skip_inapplicable_xnnpack_passes():
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()],
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False))
    delegated, fallbacks = summarize(edge.exported_program().graph_module, reasons)
    program = edge.to_executorch()
    write_bytes_atomic(out / "model.pte", program.buffer)
    planned = sum(int(b) for b in program.executorch_program.execution_plan[0].non_const_buffer_sizes)
    return {"artifact": "model.pte", "delegated": delegated, "fallbacks": [f.__dict__ for f in fallbacks],
            "planned_arena_bytes": planned}


def run_executorch(pte: Path, inputs: tuple) -> list[np.ndarray]:
    from executorch.runtime import Runtime
    method = Runtime.get().load_program(Path(pte)).load_method("forward")
    return [np.asarray(t) for t in method.execute(list(inputs))]


def export_plain(model: nn.Module, example_inputs, *, out: str | Path, backend: str = "executorch",
                 target: str = "host", quant: str = "fp32", dynamic_shapes=None, force: bool = False,
                 progress: bool = True, name: str | None = None):
    from edgeslm import api
    from edgeslm.bundle import load_bundle, write_manifest
    from edgeslm.progress import steps

    out = Path(out)
    if quant != "fp32":
        raise EdgeSLMError(f"plain graphs export in fp32 only, not '{quant}'", fix="drop --quant (or use fp32)")
    if target != "host":
        raise EdgeSLMError(f"plain graphs build for the host target only, not '{target}'", fix="use --target host")
    if backend not in ("executorch", "tvm"):
        raise EdgeSLMError(f"plain graphs lower through executorch or tvm, not '{backend}'",
                           fix="choose --backend executorch or tvm")
    if out.exists() and not force:
        raise EdgeSLMError("output directory exists", path=out, fix="choose another -o or pass --force to replace it")
    if isinstance(example_inputs, str):
        example_inputs = make_inputs(parse_spec(example_inputs))
    inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    source = _source(model)
    started = time.perf_counter()
    with steps(f"export {type(model).__name__} (graph) {backend}/host/fp32",
               ["check", "export", "lower", "accuracy", "manifest"], enabled=progress) as step:
        step("check")
        check_inputs(model, inputs, source)
        model.eval()
        with torch.no_grad():
            reference = [t.detach().numpy() for t in flat_outputs(model(*inputs))]
        step("export")
        ep = export_graph(model, inputs, dynamic_shapes)
        with staged_directory(out, force=force) as stage:
            step("lower")
            if backend == "executorch":
                lowered = lower_executorch(ep, stage)
                got = run_executorch(stage / lowered["artifact"], inputs)
            else:
                from edgeslm.anymodel.tvm_plain import lower_plain, run_plain
                lowered = lower_plain(ep, stage)
                got = run_plain(stage / lowered["artifact"], inputs)
            step("accuracy")
            if len(got) != len(reference) or any(g.shape != r.shape for g, r in zip(got, reference)):
                raise EdgeSLMError(f"the {backend} program returned shapes {[g.shape for g in got]}, eager "
                                   f"{[r.shape for r in reference]}", path=source,
                                   fix="report this model: the lowering changed its outputs")
            diffs = [float(np.abs(g.astype(np.float64) - r.astype(np.float64)).max()) if r.size else 0.0
                     for g, r in zip(got, reference)]
            close = all(np.allclose(g, r, rtol=RTOL, atol=ATOL) for g, r in zip(got, reference))
            step("manifest")
            write_manifest(stage, {
                "edgeslm_version": api.__version__,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "model": {
                    "kind": "graph", "name": name or type(model).__name__,
                    "source": str(source) if source else None,
                    "architecture": f"graph:{type(model).__name__}",
                    "config": {"class": f"{type(model).__module__}.{type(model).__qualname__}"},
                    "parameters": int(sum(p.numel() for p in model.parameters())),
                    "vocab_size": None, "max_seq_len": None, "bos_id": None, "eos_ids": [],
                    "weights_sha256": weights_sha256(model),
                    "inputs": describe(inputs, input_names(model, len(inputs))),
                    "outputs": describe([torch.from_numpy(r) for r in reference]),
                    "dynamic_shapes": repr(dynamic_shapes) if dynamic_shapes is not None else None,
                },
                "quant": {"name": "fp32"},
                "backend": backend,
                "target": {"name": "host", "triple": "native", "arch": "host"},
                "artifact": lowered["artifact"],
                "lowering": {k: v for k, v in lowered.items() if k != "artifact"},
                "memory": {"artifact_bytes": (stage / lowered["artifact"]).stat().st_size,
                           "planned_arena_bytes": lowered["planned_arena_bytes"],
                           "expected_peak_bytes": (stage / lowered["artifact"]).stat().st_size
                           + lowered["planned_arena_bytes"]},
                "accuracy": {"status": "measured", "reference": "eager float32 PyTorch, example inputs",
                             "allclose": bool(close), "rtol": RTOL, "atol": ATOL, "max_abs_diff": diffs},
                "toolchain": api.toolchain_versions(),
                "export_seconds": round(time.perf_counter() - started, 2),
                "timings_s": {k: round(v, 3) for k, v in step.timings.items()},
            })
    return load_bundle(out)
