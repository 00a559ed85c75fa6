"""Decoder -> stateful Core ML ML Program (.mlpackage), on any OS.

Steps (each reported through `progress`):
  1. export    the Core ML decoder variant (variant.py): float16, slice-updated KV cache, finite masks;
               torch.export with T dynamic in [1, max_seq_len - 1] -> run_decompositions({})
  2. lower     coremltools.convert: mlprogram, float16 compute except the RMSNorm statistic (fp16_op),
               minimum deployment target from the target profile
               (iOS 18 / macOS 15: the first with model state), KV caches as ct.StateType (float16),
               inputs tokens int32 [1, T] and input_pos int32 [T] (flexible T: prefill and decode share
               one function), output logits float32 [1, V]; compute-unit hint as user metadata
  3. emit      recipe -> coremltools.optimize weight compression (compress.py)
  4. write     model.mlpackage saved into the bundle
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeslm.compilers.base import LowerResult, Unsupported

ARTIFACT = "model.mlpackage"
INPUTS = ("tokens", "input_pos")
OUTPUT = "logits"
MIN_STATEFUL = {"iOS": 18, "macOS": 15}      # model state (ct.StateType) needs these or later


def deployment_target(target):
    """targets/*.toml `coreml_deployment_target = "iOS18"` -> ct.target.iOS18, refusing pre-state OSes."""
    import coremltools as ct
    name = str(target.extra.get("coreml_deployment_target", ""))
    os_name = name.rstrip("0123456789")
    version = name[len(os_name):]
    if os_name not in MIN_STATEFUL or not version:
        raise Unsupported(f"target '{target.name}' names no Core ML deployment target (coreml_deployment_target "
                          f"'{name}')", fix="set coreml_deployment_target = \"iOS18\" or \"macOS15\" in its TOML")
    if int(version) < MIN_STATEFUL[os_name]:
        raise Unsupported(f"target '{target.name}' deploys to {name}, but a stateful KV cache needs "
                          f"{os_name} {MIN_STATEFUL[os_name]} or later",
                          fix=f"set coreml_deployment_target = \"{os_name}{MIN_STATEFUL[os_name]}\" or newer")
    if not hasattr(ct.target, name):
        raise Unsupported(f"coremltools has no deployment target '{name}'", fix="upgrade coremltools")
    return getattr(ct.target, name)


FP32_OPS = ("pow", "reduce_mean", "rsqrt")   # the RMSNorm statistic: x**2 overflows float16 above |x| = 256


def fp16_op(op) -> bool:
    """Which ops compute in float16: all but the RMSNorm statistic (x**2 -> mean -> + eps -> rsqrt).
    Real checkpoints carry residual outliers (SmolLM2-135M: |x| up to 22552 at the first token), whose
    square is +inf in float16: the norm would zero the hidden state. The `add` of eps after the mean stays
    float32 too; the normalised product and everything else is float16."""
    if op.op_type in FP32_OPS:
        return False
    if op.op_type == "add":
        return not any(getattr(v, "op", None) is not None and v.op.op_type == "reduce_mean"
                       for v in op.inputs.values() if not isinstance(v, (list, tuple)))
    return True


def to_mlprogram(model, target, timings: dict | None = None, step=None):
    """Steps 1-2: the float16 stateful ML Program (in memory). Returns (mlmodel, variant, caches)."""
    import coremltools as ct

    from .variant import cache_buffers, coreml_variant, export_variant

    step = step or (lambda name: None)
    timings = {} if timings is None else timings
    deploy = deployment_target(target)
    t0 = time.perf_counter()
    step("export")
    variant = coreml_variant(model)
    ep = export_variant(variant)
    caches = cache_buffers(variant)
    timings["export"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("lower")
    states = [ct.StateType(wrapped_type=ct.TensorType(shape=tuple(b.shape), dtype=np.float16), name=name)
              for name, b in caches.items()]
    try:
        mlmodel = ct.convert(ep, convert_to="mlprogram", minimum_deployment_target=deploy, states=states,
                             compute_precision=ct.transform.FP16ComputePrecision(op_selector=fp16_op),
                             skip_model_load=True,
                             outputs=[ct.TensorType(name=OUTPUT, dtype=np.float32)])
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Unsupported(f"coremltools could not convert the decoder: {first}",
                          fix="report the model family; fp16/int8 ExecuTorch bundles are the fallback") from err
    timings["lower"] = time.perf_counter() - t0
    return mlmodel, variant, caches


def convert(model, target, recipe, out: Path, progress=None) -> LowerResult:
    from .compress import compress

    step = progress or (lambda name: None)
    timings: dict[str, float] = {}
    mlmodel, variant, caches = to_mlprogram(model, target, timings, step)

    t0 = time.perf_counter()
    step("emit")
    mlmodel, compressed = compress(mlmodel, variant, recipe)
    compute_units = str(target.extra.get("coreml_compute_units", "ALL"))
    mlmodel.user_defined_metadata.update({
        "edgeslm.compute_units": compute_units, "edgeslm.max_seq_len": str(model.max_seq_len),
        "edgeslm.vocab_size": str(model.vocab_size), "edgeslm.quant": recipe.name,
    })
    mlmodel.short_description = f"edgeslm {model.config.architecture} decoder, {recipe.name}, stateful KV cache"
    timings["emit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step("write")
    mlmodel.save(str(out / ARTIFACT))
    timings["write"] = time.perf_counter() - t0

    kv_bytes = sum(int(b.numel()) * 2 for b in caches.values())          # float16 states
    counts: dict[str, int] = {}
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type != "const":
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
    notes = []
    if recipe.linear and recipe.linear.get("activations") == "int8_dynamic":
        notes.append("activations stay float16: Core ML compresses weights only (int8_dynamic not applied)")
    return LowerResult(
        artifacts=[ARTIFACT], delegated={"coreml": sum(counts.values())}, planned_arena_bytes=kv_bytes,
        timings_s=timings,
        metadata={
            "format": "mlprogram", "deployment_target": str(target.extra["coreml_deployment_target"]),
            "compute_units": compute_units, "compute_precision": "float16",
            "inputs": {"tokens": ["1", "T"], "input_pos": ["T"]}, "sequence_range": [1, model.max_seq_len - 1],
            "outputs": {OUTPUT: [1, int(model.vocab_size)]},
            "states": {name: list(b.shape) for name, b in caches.items()},
            "kv_cache_bytes": kv_bytes, "mil_ops": dict(sorted(counts.items())),
            "compressed_weights": len(compressed),
            "compression": sorted({f"{c['part']}: {c['scheme']} {c['bits']}-bit"
                                   + (f" group {c['group_size']}" if c["group_size"] else "")
                                   for c in compressed.values()}),
            "notes": notes,
        })
