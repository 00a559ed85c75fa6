"""Decoder -> TVM Relax model library (model.so) for a CPU target.

Steps (each reported through `progress`):
  1. export     wrap.prepare (explicit KV cache, GEMV linears, int8 weights) + torch.export, T dynamic
  2. import     run_decompositions -> every op checked against the Relax importer (unsupported ones
                named with their source line) -> from_exported_program, weights detached as params
  3. pipeline   pipeline.PHASES (legalize .. finalize), IR dumped per phase on request
  4. build      tvm.compile (TIR -> LLVM for the target) -> export_library (cross-linked for arm64)

The library holds three VM functions: prefill(tokens [1,T] int64, input_pos [T] int64, k_0, v_0, ...) ->
(logits [1,V], k_0, v_0, ...) with the caches updated in place, decode (the same with T = 1, static
shapes), and metadata() -> int64 [8 + n_eos]
= [abi 1, vocab, max_seq_len, bos (-1 none), layers, kv_heads, head_dim, n_eos, eos...], the facts the
native runtime needs (ExecuTorch keeps them as constant methods of the .pte).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edgeslm.compilers.base import Fallback, LowerResult, Unsupported

ARTIFACT = "model.so"
_HOST = type("HostTarget", (), {"kind": "cpu", "triple": "native", "name": "host"})()
METADATA_ABI = 1


def metadata_vector(decoder) -> np.ndarray:
    cache = decoder.layers[0].self_attn.cache
    h_kv, head_dim = int(cache.k.shape[0]), int(cache.k.shape[1])
    eos = [int(e) for e in decoder.eos_ids]
    bos = -1 if decoder.bos_id is None else int(decoder.bos_id)
    return np.array([METADATA_ABI, decoder.vocab_size, decoder.max_seq_len, bos, len(decoder.layers),
                     h_kv, head_dim, len(eos), *eos], dtype=np.int64)


def check_ops(ep) -> None:
    """Raise Unsupported naming every op the Relax importer lacks, with the node and its source line."""
    from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

    from edgeslm.compilers.tvm.kv_write import CONVERT_MAP
    known = set(ExportedProgramImporter().convert_map) | set(CONVERT_MAP)
    missing: dict[str, str] = {}
    for node in ep.graph.nodes:
        if node.op == "call_function" and node.target.__name__ not in known:
            trace = (node.meta.get("stack_trace") or "").strip().splitlines()
            where = trace[-2].strip() if len(trace) >= 2 else "source line unknown"
            missing.setdefault(node.target.__name__, f"node {node.name} ({where})")
    if missing:
        listed = "; ".join(f"{op} at {where}" for op, where in sorted(missing.items()))
        raise Unsupported(f"TVM's Relax importer has no conversion for: {listed}",
                          fix="rewrite those ops in the model with supported ones, or use --backend executorch")


def split_prefill_decode(mod):
    """main (T symbolic) -> prefill (T symbolic) + decode (T = 1, so every kernel gets static shapes and
    the GEMV schedules apply). Both take the same weights; BindParams later binds the same tensors."""
    import tvm
    from tvm.relax.utils import copy_with_new_vars

    main_gv = mod.get_global_var("main")
    main = mod[main_gv]
    seq = main.params[0].ty.shape[1]                       # tokens [1, T]: the symbolic T
    funcs = {gv: f for gv, f in mod.functions.items() if gv != main_gv}
    funcs[tvm.ir.GlobalVar("prefill")] = main.with_attr("global_symbol", "prefill")
    decode = copy_with_new_vars(main).bind_symbolic_vars({seq.name: 1})   # fresh Vars: no shared bindings
    funcs[tvm.ir.GlobalVar("decode")] = decode.with_attr("global_symbol", "decode")
    return tvm.IRModule(funcs)


def add_metadata_function(mod, values: np.ndarray):
    from tvm import relax

    builder = relax.BlockBuilder()
    with builder.function("metadata", []):
        builder.emit_func_output(relax.const(values, "int64"))
    mod["metadata"] = builder.get()["metadata"]
    return mod


def lower_to_library(model, recipe, target, out: Path, progress=None, *, tuned: bool = True,
                     threads: int = 0, dump_dir: Path | None = None, host_twin: Path | None = None) -> LowerResult:
    """Steps 1-4 of the module docstring into out/model.so. For a cross target, `host_twin` (a path outside
    the bundle) receives the same lowered program built for this machine (export's accuracy check)."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program

    from edgeslm.compilers.tvm import pipeline, wrap
    from edgeslm.compilers.tvm.kv_write import CONVERT_MAP
    from edgeslm.compilers.tvm.target import tvm_target

    step = progress or (lambda name: None)
    timings: dict[str, float] = {}
    ttarget = tvm_target(target)
    dump_dir = dump_dir or (Path(os.environ["EDGESLM_TVM_DUMP"]) if os.environ.get("EDGESLM_TVM_DUMP") else None)

    t0 = time.perf_counter()
    step("export")
    meta = metadata_vector(model)
    wrapped = wrap.prepare(model, recipe)
    cache_shapes = wrapped.cache_shapes()
    try:
        ep = wrap.export(wrapped)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unsupported(f"torch.export failed: {first}",
                          fix="the model must follow the decoder contract (README 'Custom decoders')") from err
    timings["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("import")
    ep = ep.run_decompositions()
    check_ops(ep)
    mod = from_exported_program(ep, keep_params_as_input=True, custom_convert_map=CONVERT_MAP,
                                run_ep_decomposition=False)
    mod, detached = relax.frontend.detach_params(mod)
    num_inputs = 2 + len(cache_shapes)
    names = [p.name_hint if hasattr(p, "name_hint") else str(p) for p in mod["main"].params[num_inputs:]]
    params = dict(zip(names, detached["main"]))
    weight_bytes = int(sum(p.numpy().nbytes for p in detached["main"]))
    mod = add_metadata_function(split_prefill_decode(mod), meta)
    timings["import"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("pipeline")
    mod, phase_timings = pipeline.run(mod, params, ttarget.tvm(), tuned=tuned, threads=threads, dump_dir=dump_dir)
    timings["pipeline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("build")
    executable = tvm.compile(mod, target=ttarget.tvm(), relax_pipeline=None)
    partial = out / (ARTIFACT + ".partial")
    executable.export_library(str(partial), fcompile=ttarget.fcompile())
    partial.replace(out / ARTIFACT)
    if ttarget.cross and host_twin is not None:
        # the same lowered program built for this machine, so export can check its accuracy here
        host = tvm_target(_HOST)
        tvm.compile(mod, target=host.tvm(), relax_pipeline=None).export_library(str(host_twin))
    timings["build"] = time.perf_counter() - t0

    kv_bytes = int(sum(np.prod(s) for s in cache_shapes) * 4)
    return LowerResult(
        artifacts=[ARTIFACT],
        delegated={"tvm": sum(1 for gv in mod.functions if not isinstance(mod[gv], relax.Function))},
        fallbacks=[] if tuned else [Fallback("*", 0, "untuned: TVM's default schedules (serial loops)")],
        planned_arena_bytes=kv_bytes,
        metadata={
            "tvm_version": tvm.__version__,
            "tvm_target": ttarget.spec,
            "tuned": tuned,
            # Known limit: the int8 linear weights are module buffers, which the Relax importer turns into
            # constants, and FoldConstant dequantizes them at build time; keeping them int8 as parameters
            # was tried and left a separate dequantize kernel (float temp per weight) before each matmul.
            "quantization": ("int8 per-row rounding of the linears, stored dequantized as float32 (TVM folds "
                             "the dequantize at build time: fp32 size and speed); embedding stored int8 per row; "
                             "float32 activations") if not recipe.is_float else "float32",
            "weight_bytes": weight_bytes,
            "kv_cache_bytes": kv_bytes,
            "cache_shapes": [list(map(int, s)) for s in cache_shapes],
            "phase_seconds": {k: round(v, 3) for k, v in phase_timings.items()},
            "memory_note": "planned_arena_bytes counts the KV caches the runtime allocates; activations "
                           "are allocated by the Relax VM's static plan at run time",
        },
        timings_s=timings,
    )
