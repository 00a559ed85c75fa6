"""ExecuTorch backend: XNNPACK-delegated .pte for CPUs (host, arm64 phones and boards).

Pipeline: apply the torchao recipe -> lower.lower_to_pte (export, XNNPACK, emit) -> model.pte.
Python runtime: session.ExecuTorchSession. Native runtime: runtime/executorch (C API).
"""
from __future__ import annotations

from pathlib import Path

from edgeslm.compilers.base import LowerResult, Unsupported, register


@register
class ExecuTorchCompiler:
    name = "executorch"
    recipes = ("fp32", "int8", "int4")

    def supports(self, target) -> bool:
        return target.kind == "cpu" and self.name in target.backends

    def lower(self, model, target, recipe, out: Path, *, progress=None) -> LowerResult:
        from edgeslm.compilers.executorch.lower import lower_to_pte
        from edgeslm.quant import apply_recipe

        if not self.supports(target):
            raise Unsupported(f"backend 'executorch' cannot build for target '{target.name}'",
                              fix="choose a CPU target: host, linux-arm64, android-arm64")
        if progress:
            progress("quantize")
        apply_recipe(model, recipe)
        return lower_to_pte(model, Path(out), progress)

    def open_session(self, bundle, threads: int | None = None):
        from edgeslm.compilers.executorch.session import ExecuTorchSession
        return ExecuTorchSession(bundle.artifact, threads=threads)
