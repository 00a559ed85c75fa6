"""Core ML backend: a stateful ML Program (.mlpackage) for iPhones and Macs, converted on any OS.

Pipeline: recipe check -> convert.convert (Core ML decoder variant, torch.export, coremltools.convert
with the KV caches as model state, coremltools.optimize compression) -> model.mlpackage.
Runtimes: session.CoreMLSession on macOS; elsewhere interpret.MILSession (numpy MIL interpreter) is the
named stand-in that export's accuracy step measures through. Read-back tools: mil.py.
"""
from __future__ import annotations

from pathlib import Path

from edgeslm.compilers.base import LowerResult, Unsupported, register

# recipe name -> what Core ML does with it (README "Recipes per backend")
RECIPES = ("fp16", "int8", "int4", "pal4")


@register
class CoreMLCompiler:
    name = "coreml"
    recipe_features = ("float16", "palettize")

    def supports(self, target) -> bool:
        return self.name in target.backends and "coreml_deployment_target" in target.extra

    def check_recipe(self, recipe) -> None:
        """Any float16 recipe, or integer/palettized weights (computed in float16). float32 is refused:
        Core ML model state (the KV cache) is float16 only, so an fp32 bundle would not be what it says."""
        if recipe.dtype == "float32" and recipe.is_float:
            raise Unsupported(f"backend 'coreml' does not take recipe '{recipe.name}': Core ML keeps the KV "
                              "cache state in float16", fix=f"use --quant fp16 (or one of {', '.join(RECIPES)})")
        for part in ("linear", "embedding"):
            spec = getattr(recipe, part)
            if spec and spec.get("scheme", "affine") == "affine" and spec.get("group_size") is None \
                    and spec["weight_bits"] != 8:
                raise Unsupported(f"backend 'coreml' does not take recipe '{recipe.name}': per-channel "
                                  f"{spec['weight_bits']}-bit {part} weights", fix="set a group_size (e.g. 32)")

    def lower(self, model, target, recipe, out: Path, *, progress=None) -> LowerResult:
        from edgeslm.compilers.coreml.convert import convert
        if not self.supports(target):
            raise Unsupported(f"backend 'coreml' cannot build for target '{target.name}'",
                              fix="choose --target ios-arm64 or macos-arm64")
        self.check_recipe(recipe)
        if progress:
            progress("quantize")
        return convert(model, target, recipe, Path(out), progress)

    def open_session(self, bundle, threads: int | None = None):
        from edgeslm.compilers.coreml.session import open_session
        lowering = bundle.manifest.get("lowering", {}).get("metadata", {})
        return open_session(bundle.artifact, lowering.get("compute_units", "ALL"))
