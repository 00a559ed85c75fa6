"""QuantRecipe -> coremltools.optimize.coreml weight compression of a converted ML Program.

Steps: name every weight constant of the MIL program after the torch parameter it came from
(p_<fqn with _>) -> pick the recipe part that covers it (linear weights: `linear`; the embedding table:
`embedding`; a tied embedding/lm_head table, stored once as the embedding: `embedding`) -> one
OpCompressorConfig per
constant (op_name_configs; RoPE tables and every other buffer stay float16) -> linear_quantize_weights
or palettize_weights -> iOS 18 constexpr ops in the saved program.

Schemes (Core ML compresses weights; activations stay float16, so `activations: int8_dynamic` is
recorded as not applied):
  affine, 8 bits, group null   int8 symmetric per output channel   constexpr_blockwise_shift_scale
  affine, b bits, group g      int<b> symmetric per block of g      constexpr_blockwise_shift_scale
  palettize, b bits            k-means LUT of 2**b float16 values per tensor   constexpr_lut_to_dense
"""
from __future__ import annotations

from torch import nn

SUFFIXES = ("_promoted_to_fp16", "_to_fp16", "_promoted")


def _config(spec: dict):
    import coremltools.optimize.coreml as cto
    bits = int(spec["weight_bits"])
    if spec.get("scheme", "affine") == "palettize":
        return cto.OpPalettizerConfig(mode="kmeans", nbits=bits, granularity="per_tensor", weight_threshold=0)
    group = spec.get("group_size")
    if group is None:
        return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype=f"int{bits}", granularity="per_channel",
                                           weight_threshold=0)
    return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype=f"int{bits}", granularity="per_block",
                                       block_size=group, weight_threshold=0)


def weight_parts(model) -> dict[str, str]:
    """{MIL const base name (p_<fqn>): "linear" | "embedding"} for the decoder's weights."""
    parts: dict[str, str] = {}
    for fqn, module in model.named_modules():
        if isinstance(module, nn.Linear):
            parts["p_" + f"{fqn}.weight".replace(".", "_")] = "linear"
    for fqn, module in model.named_modules():
        if isinstance(module, nn.Embedding):      # a tied embedding/lm_head table follows `embedding`
            parts["p_" + f"{fqn}.weight".replace(".", "_")] = "embedding"
    return parts


def base_name(const_name: str) -> str:
    for suffix in SUFFIXES:
        if const_name.endswith(suffix):
            return const_name[: -len(suffix)]
    return const_name


def compress(mlmodel, model, recipe):
    """Compress `mlmodel` (converted from `model`, the torch variant) per `recipe`.
    Returns (mlmodel, {const name: {"part", "scheme", "bits", "group_size"}})."""
    import coremltools.optimize.coreml as cto

    parts = weight_parts(model)
    applied: dict[str, dict] = {}
    by_scheme: dict[str, dict] = {"affine": {}, "palettize": {}}
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type != "const":
            continue
        name = op.outputs[0].name
        part = parts.get(base_name(name))
        spec = getattr(recipe, part) if part else None
        if not spec:
            continue
        scheme = spec.get("scheme", "affine")
        by_scheme[scheme][name] = _config(spec)
        applied[name] = {"part": part, "scheme": scheme, "bits": int(spec["weight_bits"]),
                         "group_size": spec.get("group_size")}
    for scheme, configs in by_scheme.items():
        if configs:
            config = cto.OptimizationConfig(global_config=None, op_name_configs=configs)
            fn = cto.palettize_weights if scheme == "palettize" else cto.linear_quantize_weights
            mlmodel = fn(mlmodel, config)
    return mlmodel, applied
