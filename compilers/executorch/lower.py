"""Decoder -> .pte with XNNPACK delegation.

Steps (each reported through `progress`):
  1. export     torch.export with a dynamic prompt length (1..prefill chunk), last-position logits only
  2. lower      to_edge_transform_and_lower with the XNNPACK partitioner + LLM metadata methods (one
                decomposition fewer: fast_partitioner.py; XNNPACK's passes that cannot change a partition
                skipped: xnnpack_passes.py); without a partitioner for decoders made of edgeslm's own ops
  3. emit       to_executorch: in-place KV cache update (reinplace), quant fusion, memory planning
  4. write      model.pte written atomically; planned arena read from the execution plan
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from edgeslm.compilers.base import LowerResult, Unsupported
from edgeslm.compilers.executorch.fast_partitioner import lower_with_xnnpack
from edgeslm.compilers.executorch.metadata import llm_metadata
from edgeslm.compilers.executorch.report import NOT_DELEGATED, capture_rejections, summarize
from edgeslm.compilers.executorch.xnnpack_passes import skip_inapplicable_xnnpack_passes
from edgeslm.fsutil import write_bytes_atomic

ARTIFACT = "model.pte"
# Most tokens one forward takes. Memory planning sizes every activation for the largest T, so a prefill of
# the whole context would plan e.g. a [rep*2048, 2048] mask; runners prefill longer prompts in chunks.
PREFILL_CHUNK = 128


def prefill_chunk(model) -> int:
    return min(int(model.max_seq_len), PREFILL_CHUNK)


def export_decoder(model, max_tokens: int | None = None) -> torch.export.ExportedProgram:
    """torch.export of forward(tokens[1,T], input_pos[T]) with T dynamic in [1, max_tokens or max_seq_len]."""
    torch.set_grad_enabled(False)
    model.eval()
    seq = torch.export.Dim("seq", min=1, max=max_tokens or model.max_seq_len)
    example = (torch.zeros(1, 2, dtype=torch.long), torch.arange(2, dtype=torch.long))
    previous = model.full_logits
    model.full_logits = False            # prefill returns [1, V]: lm_head over the whole prompt is wasted work
    try:
        return torch.export.export(model, example, dynamic_shapes=({1: seq}, {0: seq}), strict=False)
    except Exception as err:  # torch.export errors are long; keep the first line, the rest is in the log
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unsupported(f"torch.export failed: {first}",
                          fix="the model must follow the decoder contract (docs: README 'Custom decoders')") from err
    finally:
        model.full_logits = previous


def lower_to_pte(model, out: Path, progress=None, xnnpack: bool = True) -> LowerResult:
    """xnnpack=False: no delegation (a decoder made of edgeslm's own ops; the rest on ExecuTorch's CPU kernels)."""
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass

    step = progress or (lambda name: None)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    step("export")
    chunk = prefill_chunk(model)
    ep = export_decoder(model, chunk)
    timings["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("lower")
    programs = [ep]                       # the first lowering takes this one; a fallback re-exports (lowering
                                          # may change the program it was given)
    config = dict(compile_config=EdgeCompileConfig(_check_ir_validity=False),
                  constant_methods=llm_metadata(model, chunk))
    if xnnpack:
        with capture_rejections() as reasons, skip_inapplicable_xnnpack_passes():
            edge = lower_with_xnnpack(lambda: programs.pop() if programs else export_decoder(model, chunk), **config)
        delegated, fallbacks = summarize(edge.exported_program().graph_module, reasons)
    else:
        from executorch.exir import to_edge_transform_and_lower
        edge = to_edge_transform_and_lower(programs.pop(), partitioner=[], **config)
        delegated, fallbacks = summarize(edge.exported_program().graph_module, {}, default=NOT_DELEGATED)
    timings["lower"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("emit")
    program = edge.to_executorch(ExecutorchBackendConfig(
        extract_delegate_segments=True,
        do_quant_fusion_and_const_prop=True,     # else quantized embeddings fail: "Missing out variants"
        run_reinplace_pass=True,                 # keep the KV cache update in place (no whole-cache copy)
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False),
    ))
    planned = sum(int(b) for b in program.executorch_program.execution_plan[0].non_const_buffer_sizes)
    timings["emit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("write")
    write_bytes_atomic(out / ARTIFACT, program.buffer)
    timings["write"] = time.perf_counter() - t0

    return LowerResult(artifacts=[ARTIFACT], delegated=delegated, fallbacks=fallbacks,
                       planned_arena_bytes=planned, timings_s=timings,
                       metadata={"methods": sorted(["forward", *llm_metadata(model)]), "prefill_chunk": chunk})
