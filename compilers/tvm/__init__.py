"""TVM backend: Relax model libraries (model.so) for CPUs (host, arm64 phones and boards).

Pipeline: wrap.prepare (explicit KV cache, GEMV-shaped linears, int8-rounded weights: the linears end up
stored dequantized, see lower.py) -> torch.export ->
Relax import (kv_write.py maps the cache write to an in-place TIR call) -> pipeline.PHASES (legalize,
fuse, schedule, bind weights, finalize) -> tvm.compile + export_library (cross-linked for arm64).
Python runtime: session.TVMSession (Relax VM). Native runtime: runtime/tvm (C API).
"""
from __future__ import annotations

from pathlib import Path

from edgeslm.compilers.base import Unsupported, register


@register
class TVMCompiler:
    name = "tvm"
    recipes = ("fp32", "int8")

    def supports(self, target) -> bool:
        return target.kind in ("cpu", "mcu") and self.name in target.backends

    def check_fits(self, model, target) -> None:
        if target.kind == "mcu":
            from edgeslm.compilers.micro import MicroCompiler
            MicroCompiler().check_fits(model, target)

    def lower(self, model, target, recipe, out: Path, *, progress=None, tuned: bool = True):
        from edgeslm.compilers.tvm.lower import lower_to_library

        if target.kind == "mcu":
            # no TVM runtime fits a Cortex-M: TVM generates the C kernels, the micro firmware runs them
            from edgeslm.compilers.micro import check_recipe as micro_recipe
            from edgeslm.compilers.micro.tvm_kernels import lower_for_mcu
            micro_recipe(recipe)
            return lower_for_mcu(model, target, recipe, Path(out), progress=progress)
        if not self.supports(target):
            raise Unsupported(f"backend 'tvm' cannot build for target '{target.name}'",
                              fix="choose a CPU target: host, linux-arm64, android-arm64")
        self.check_recipe(recipe)
        self._host_twin = None
        if target.triple != "native":
            import tempfile
            self._twin_dir = tempfile.TemporaryDirectory(prefix="edgeslm-tvm-host-twin-")
            self._host_twin = Path(self._twin_dir.name) / "model.so"
        result = lower_to_library(model, recipe, target, Path(out), progress, tuned=tuned, host_twin=self._host_twin)
        if self._host_twin is not None:
            result.metadata["accuracy_checked_on"] = ("a host build of the same lowered Relax program (the "
                                                      f"{target.name} library itself runs on the device)")
        return result

    def check_recipe(self, recipe) -> None:
        linear, emb = recipe.linear or {}, recipe.embedding or {}
        if getattr(recipe, "features", None):          # float16, palettization: CoreML's recipes
            pass
        elif recipe.is_float or (linear.get("weight_bits") == 8 and emb.get("weight_bits", 8) == 8):
            return
        raise Unsupported(f"backend 'tvm' takes the fp32 and int8 recipes, not '{recipe.name}'",
                          fix="use --quant fp32 or --quant int8 (int4 is available with --backend executorch)")

    def open_session(self, bundle, threads: int | None = None):
        from edgeslm.compilers.tvm.session import TVMSession, check_loadable
        library = bundle.path / bundle.manifest["artifact"]
        if library.suffix == ".elf":          # a Cortex-M bundle: the micro integer reference runs it here
            from edgeslm.compilers.micro import MicroCompiler
            return MicroCompiler().open_session(bundle, threads=threads)
        twin = getattr(self, "_host_twin", None)
        if twin is not None and twin.is_file():
            library = twin                      # export's accuracy step on a cross-built bundle
        else:
            check_loadable(library)
        return TVMSession(library, threads=threads)
