"""Apply a QuantRecipe to a decoder in place with torchao (XNNPACK-friendly schemes).

linear:    int8 dynamic activations x int{4,8} weights  -> Int8DynamicActivationIntxWeightConfig ("8da4w"/"8da8w")
           weight-only                                    -> IntxWeightOnlyConfig
embedding: int8 weight-only, per group                   -> IntxWeightOnlyConfig on nn.Embedding
Tied embeddings are untied by quantization (each module gets its own quantized copy).
"""
from __future__ import annotations

import torch
from torch import nn

from edgeslm.quant.recipe import QuantRecipe


def _granularity(group_size: int | None):
    from torchao.quantization.granularity import PerAxis, PerGroup
    return PerAxis(0) if group_size is None else PerGroup(group_size)


def _dtype(bits: int) -> torch.dtype:
    return {4: torch.int4, 8: torch.int8}[bits]


def apply_recipe(model: nn.Module, recipe: QuantRecipe) -> nn.Module:
    if recipe.is_float:
        return model
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, quantize_

    if recipe.embedding:
        spec = recipe.embedding
        quantize_(model, IntxWeightOnlyConfig(weight_dtype=_dtype(spec["weight_bits"]),
                                              granularity=_granularity(spec.get("group_size"))),
                  filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    if recipe.linear:
        spec = recipe.linear
        granularity = _granularity(spec.get("group_size"))
        if spec.get("activations", "none") == "int8_dynamic":
            config = Int8DynamicActivationIntxWeightConfig(weight_dtype=_dtype(spec["weight_bits"]),
                                                           weight_granularity=granularity)
        else:
            config = IntxWeightOnlyConfig(weight_dtype=_dtype(spec["weight_bits"]), granularity=granularity)
        quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and _groups_fit(m, spec))
    return model


def _groups_fit(linear: nn.Linear, spec: dict) -> bool:
    # A grouped scheme needs in_features divisible by the group; such a layer stays float (reported by the compiler).
    group = spec.get("group_size")
    return group is None or linear.in_features % group == 0
