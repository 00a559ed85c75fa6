"""ExecuTorch backend: XNNPACK-delegated .pte for CPUs (host, arm64 phones and boards).

Pipeline (prepare()): quantize (8da4w group 32 / 8da8w linears: edgeslm's own fused q/k/v + RoPE, MLP and
linear ops, qlinear_op.py, and RMSNorm, norm_op.py; other schemes and embeddings: torchao) -> attention as
the fused edgeslm::sdpa_cached_tokens op over a float16 KV cache for quantized recipes, float32 for fp32
(sdpa_op.py) -> lower.lower_to_pte (export, XNNPACK for what is left unless the decoder is covered by own
ops, emit) -> model.pte. Kernels: runtime/kernels.
Apple targets (profile key executorch_delegate = "coreml"): coreml_delegate.lower_coreml_pte instead.
Python runtime: session.ExecuTorchSession. Native runtime: runtime/executorch (C API).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeslm.compilers.base import LowerResult, Unsupported, register


def quantize(model, recipe, *, qlinear: bool = True):
    """The recipe applied in place as this backend does: 8da4w group 32 / 8da8w linears as edgeslm's
    quantized ops (qlinear_op.py) and then RMSNorm as edgeslm::rms_norm (norm_op.py); everything else
    (embeddings, other schemes) with torchao. Returns model."""
    from edgeslm.compilers.executorch.norm_op import use_norm_op
    from edgeslm.compilers.executorch.qlinear_op import qlinear_bits, use_qlinear
    from edgeslm.quant import apply_recipe

    bits = qlinear_bits(recipe.linear) if qlinear else None
    if not bits:
        return apply_recipe(model, recipe)
    apply_recipe(model, dataclasses.replace(recipe, linear=None))          # embeddings (torchao)
    use_qlinear(model, bits)
    use_norm_op(model)                        # RMSNorm as edgeslm::rms_norm: no XNNPACK needed between ops
    return model


KV_CACHE_DTYPES = ("float16", "float32", "int8")


def kv_cache_dtype(recipe, kv_cache: str | None = None) -> str:
    """The attention cache's dtype: `kv_cache` when given ("float16" | "float32" | "int8": a float32 scale
    per key and value row, sdpa_op.py), else float16 for quantized recipes (half the bytes each decode step
    reads at long contexts; llama.cpp's default too) and float32 for fp32 (bundles equal to the float model)."""
    if kv_cache is None:
        return "float32" if recipe.is_float else "float16"
    if kv_cache not in KV_CACHE_DTYPES:
        raise Unsupported(f"backend option kv_cache={kv_cache!r} is not one of {list(KV_CACHE_DTYPES)}",
                          fix="pass backend_options={'kv_cache': ...} (or --kv-cache) with float16, float32 or int8")
    return kv_cache


def prepare(model, recipe, *, qlinear: bool = True, sdpa_op: bool = True, kv_cache: str | None = None):
    """The model exactly as this backend lowers it (and the eager reference the tests compare bundles with):
    quantize() -> attention as edgeslm::sdpa_cached_tokens over a kv_cache_dtype() cache. Returns model."""
    import torch

    quantize(model, recipe, qlinear=qlinear)
    if sdpa_op:
        from edgeslm.compilers.executorch.sdpa_op import use_sdpa_op
        use_sdpa_op(model, getattr(torch, kv_cache_dtype(recipe, kv_cache)))
    return model


def covered_by_own_ops(model) -> bool:
    """True when every linear, norm and attention of the decoder runs on edgeslm's own kernels (fused
    q/k/v + RoPE, MLP, quantized linears, RMSNorm, cache write + attention): what is left (residual adds, the
    embedding, the mask) is cheap on ExecuTorch's CPU kernels, and XNNPACK would only add a delegate call
    per fragment and most of the lowering time."""
    from torch import nn

    from edgeslm.compilers.executorch.sdpa_op import SdpaKVCache
    from edgeslm.models.attention import Attention
    from edgeslm.models.layers import MLP, RMSNorm
    for mod in model.modules():
        if type(mod) in (nn.Linear, MLP, RMSNorm):
            return False
        if type(mod) is Attention and (mod.qkv is None or type(mod.cache) is not SdpaKVCache):
            return False
    return True


@register
class ExecuTorchCompiler:
    name = "executorch"
    recipes = ("fp32", "int8", "int4")
    recipe_features = ("float16",)          # only on the Core ML delegate route (refused by XNNPACK below)

    def supports(self, target) -> bool:
        return target.kind == "cpu" and self.name in target.backends

    def lower(self, model, target, recipe, out: Path, *, progress=None, sdpa_op: bool = True,
              qlinear: bool = True, kv_cache: str | None = None) -> LowerResult:
        """sdpa_op=False keeps attention as XNNPACK bmms over the whole float32 cache; qlinear=False
        quantizes linears with torchao for XNNPACK's GEMMs (both False: a .pte any stock ExecuTorch runtime
        runs); kv_cache "float16" | "float32" | "int8" overrides the cache dtype (kv_cache_dtype())."""
        from edgeslm.compilers.executorch.lower import lower_to_pte

        if not self.supports(target):
            raise Unsupported(f"backend 'executorch' cannot build for target '{target.name}'",
                              fix="choose a CPU target: host, linux-arm64, android-arm64")
        if target.extra.get("executorch_delegate") == "coreml":
            if kv_cache is not None:
                raise Unsupported(f"backend option kv_cache={kv_cache!r} does not apply on target '{target.name}': "
                                  "the Core ML delegate keeps the caches as float16 state",
                                  fix="drop --kv-cache (or choose a CPU target: host, linux-arm64, android-arm64)")
            from edgeslm.compilers.executorch.coreml_delegate import lower_coreml_pte
            return lower_coreml_pte(model, target, recipe, Path(out), progress)
        if recipe.features:
            raise Unsupported(f"backend 'executorch' does not take recipe '{recipe.name}' on target "
                              f"'{target.name}' (needs {', '.join(sorted(recipe.features))})",
                              fix="choose fp32, int8 or int4 (fp16 only on Apple targets' Core ML delegate)")
        if not sdpa_op and kv_cache not in (None, "float32"):
            raise Unsupported(f"backend option kv_cache={kv_cache!r} needs edgeslm's attention op",
                              fix="drop sdpa_op=False, or keep the float32 cache")
        kv = kv_cache_dtype(recipe, kv_cache) if sdpa_op else "float32"
        if kv == "int8" and model.max_seq_len % 16:
            raise Unsupported(f"an int8 KV cache needs a context that is a multiple of 16, not {model.max_seq_len}",
                              fix=f"export with --max-seq-len {(model.max_seq_len + 15) // 16 * 16}")
        from edgeslm.compilers.executorch.sdpa_op import MAX_INT8_HEAD_DIM
        if kv == "int8" and (model.config.head_dim % 4 or model.config.head_dim > MAX_INT8_HEAD_DIM):
            raise Unsupported(f"an int8 KV cache needs a head size that is a multiple of 4 and at most "
                              f"{MAX_INT8_HEAD_DIM}, not {model.config.head_dim}", fix="export with --kv-cache float16")
        if progress:
            progress("quantize")
        prepare(model, recipe, qlinear=qlinear, sdpa_op=sdpa_op, kv_cache=kv)
        result = lower_to_pte(model, Path(out), progress, xnnpack=not covered_by_own_ops(model))
        result.metadata["kv_cache_dtype"] = kv
        result.metadata["kv_cache_bytes"] = sum(int(b.numel()) * b.element_size()
                                                for name, b in model.named_buffers()
                                                if name.endswith(("cache.k", "cache.v")))
        return result

    def open_session(self, bundle, threads: int | None = None):
        from edgeslm.compilers.executorch.coreml_delegate import refuse_off_apple
        from edgeslm.compilers.executorch.session import ExecuTorchSession
        refuse_off_apple(bundle.artifact)
        return ExecuTorchSession(bundle.artifact, threads=threads)
