"""Micro backend: a tiny Llama-family decoder -> self-contained Cortex-M C project + firmware.elf.

Pipeline of lower(): check recipe (int8) and architecture -> quantize.quantize_model (int8 per-row weights,
Q16 norms, Q30 RoPE; one weights blob) -> budget.check (refuse early with the numbers) ->
project.emit_project (runtime/micro sources, model_config.h with the static arena plan, linker script
with the target's MEMORY budget, Makefile) -> build.build_firmware (arm-none-eabi-gcc; the linker
enforces the budget) -> memory use from the ELF.

Host-side session: reference.MicroSession, the bit-exact integer reference of the firmware.
Devices: edgeslm.farm.qemu_cortex_m (qemu-system-arm), profiling: edgeslm.farm.micro_profile.
"""
from __future__ import annotations

from pathlib import Path

from edgeslm.compilers.base import LowerResult, Unsupported, register

FIRMWARE_DIR = "firmware"
KERNELS = ("portable", "dsp", "mve", "tvm")       # int8 matvec implementations (runtime/micro/kernels.c)
ARTIFACT = f"{FIRMWARE_DIR}/firmware.elf"


def check_recipe(recipe) -> None:
    lin, emb = recipe.linear or {}, recipe.embedding or {}
    if lin.get("weight_bits") != 8 or lin.get("group_size") is not None or emb.get("weight_bits", 8) != 8:
        raise Unsupported(f"the micro backend implements int8 per-row weights only, not recipe '{recipe.name}'",
                          fix="pass --quant int8")


@register
class MicroCompiler:
    name = "micro"
    recipes = ("int8",)

    def supports(self, target) -> bool:
        return target.kind == "mcu" and self.name in target.backends

    def check_recipe(self, recipe) -> None:
        check_recipe(recipe)

    def check_fits(self, model, target) -> None:
        """Refuse, with the numbers, a model that cannot fit the target (called by export right after ingest)."""
        from edgeslm.compilers.micro import budget
        from edgeslm.compilers.micro.quantize import blob_bytes, model_meta
        meta = model_meta(model)
        budget.check(budget.estimate(blob_bytes(meta), meta, target), target,
                     sum(p.numel() for p in model.parameters()))

    def lower(self, model, target, recipe, out: Path, *, progress=None, kernel: str | None = None) -> LowerResult:
        import time

        from edgeslm.compilers.micro import budget, build, project
        from edgeslm.compilers.micro.quantize import blob_bytes, model_meta, quantize_model

        if not self.supports(target):
            raise Unsupported(f"backend 'micro' cannot build for target '{target.name}' (kind {target.kind})",
                              fix="choose a Cortex-M target: cortex-m4, cortex-m7, cortex-m55")
        check_recipe(recipe)
        kernel = kernel or target.extra.get("kernel", "portable")
        if kernel not in KERNELS:
            raise Unsupported(f"unknown micro kernel '{kernel}'", fix=f"choose one of: {', '.join(KERNELS)}")
        if kernel == "mve" and target.cpu != "cortex-m55":
            raise Unsupported(f"the mve kernel needs Helium (Cortex-M55), not {target.cpu}", fix="use --target cortex-m55")
        timings = {}
        t0 = time.perf_counter()
        if progress:
            progress("quantize")
        self.check_fits(model, target)           # unsupported architecture / too big: before any quantization
        meta = model_meta(model)
        est = budget.estimate(blob_bytes(meta), meta, target)
        packed, meta = quantize_model(model)
        timings["quantize"] = time.perf_counter() - t0
        if progress:
            progress("emit")
        folder = Path(out) / FIRMWARE_DIR
        project.emit_project(folder, packed, meta, target, kernel)
        if kernel == "tvm":                      # TVM-generated matvec kernels (tvm_kernels.py)
            from edgeslm.compilers.micro import tvm_kernels
            tvm_kernels.emit(folder, meta)
        if progress:
            progress("lower")
        t0 = time.perf_counter()
        elf = build.build_firmware(folder, target, kernel)
        timings["build"] = time.perf_counter() - t0
        use = build.memory_use(elf)
        memory = {"flash_bytes": use["flash_bytes"], "ram_bytes": use["ram_bytes"],
                  "flash_budget_bytes": target.flash_bytes, "ram_budget_bytes": target.memory_bytes,
                  "arena_bytes": est["arena_bytes"], "kv_cache_bytes": est["kv_cache_bytes"],
                  "weights_bytes": len(packed.blob), "stack_reserved_bytes": use["stack_reserved_bytes"]}
        return LowerResult(
            artifacts=[ARTIFACT],
            delegated={f"micro-{kernel}": 7 * meta["layers"] + 1},
            planned_arena_bytes=est["arena_bytes"],
            metadata={"memory": memory, "kv_cache_bytes": est["kv_cache_bytes"], "kernel": kernel, "cpu": target.cpu, "qemu_machine": target.qemu_machine,
                      "compiler": build.gcc_version(), "sections": use["sections"], "micro_model": meta,
                      "numerics": "int8 per-row weights, int8 power-of-two activations, Q16 residual, "
                                  "int8 KV cache, fixed-point softmax/SiLU/RMSNorm (bit-exact reference: "
                                  "compilers/micro/reference.py)"},
            timings_s=timings)

    def open_session(self, bundle, threads: int | None = None):
        from edgeslm.compilers.micro.reference import MicroSession
        return MicroSession(bundle.artifact.parent)
