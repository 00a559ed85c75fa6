"""Export any nn.Module that meets the decoder contract into a verified ExecuTorch bundle.

Steps (shown through edgeslm.progress):
  check      contract.check_decoder: attributes, forward signature, cache buffers, trial prefill shape
  reference  eager logits, teacher-forced one token at a time through the module's own KV cache, and
             greedy golden tokens (prefill + decode)
  quantize / export / lower / emit / write   compilers.executorch (lower_to_pte on a DecoderAdapter);
             torch.export failures are reported with the offending line of the user's source
  accuracy   the draft bundle's logits and greedy tokens vs the eager reference (api._accuracy_check)
  manifest   the same schema as checkpoint exports; model.architecture = "custom:<Class>"
"""
from __future__ import annotations

import copy
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeslm.anymodel.contract import DecoderAdapter, _source, check_decoder, user_line
from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import staged_directory

PROMPT_SEED = 1234


class EagerSession:
    """The eager module behind the session interface: forward(ids, start_pos) -> last logits [V]."""

    runtime = "eager PyTorch"

    def __init__(self, model: DecoderAdapter):
        self.model = model

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        tokens = torch.tensor([ids], dtype=torch.long)                            # [1, T]
        pos = torch.arange(start_pos, start_pos + len(ids), dtype=torch.long)     # [T]
        with torch.no_grad():
            logits = self.model(tokens, pos)                                      # [1, V]
        return logits.reshape(-1, logits.shape[-1])[-1].double().numpy()


def weights_sha256(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def random_prompts(vocab_size: int, max_len: int, n: int = 3) -> list[list[int]]:
    """Seeded token ids when no tokenizer is given (a custom model has no fixed text prompts)."""
    rng = np.random.default_rng(PROMPT_SEED)
    return [rng.integers(0, vocab_size, size=max_len).tolist() for _ in range(n)]


def export_decoder_module(model: nn.Module, *, out: str | Path, target: str = "host", quant: str = "fp32",
                          tokenizer_dir: str | Path | None = None, force: bool = False,
                          progress: bool = True, name: str | None = None):
    from edgeslm import accuracy, api
    from edgeslm.bundle import Bundle, load_bundle, write_manifest
    from edgeslm.compilers import get_compiler
    from edgeslm.compilers.base import Unsupported, check_recipe
    from edgeslm.progress import steps
    from edgeslm.quant import load_recipe
    from edgeslm.targets import get_target

    out = Path(out)
    compiler, target_obj, recipe = get_compiler("executorch"), get_target(target), load_recipe(quant)
    check_recipe(compiler, recipe)
    if out.exists() and not force:
        raise EdgeSLMError("output directory exists", path=out, fix="choose another -o or pass --force to replace it")
    if not compiler.supports(target_obj):
        raise EdgeSLMError(f"backend 'executorch' cannot build for target '{target}'",
                           fix="targets for executorch: see 'edgeslm targets'")
    tokenizer = None
    if tokenizer_dir is not None:
        from edgeslm.text import Tokenizer
        tokenizer = Tokenizer.from_dir(tokenizer_dir)
    names = ["check", "reference", "quantize", "export", "lower", "emit", "write", "accuracy", "manifest"]
    started = time.perf_counter()
    with steps(f"export {type(model).__name__} executorch/{target}/{recipe.name}", names, enabled=progress) as step:
        step("check")
        check_decoder(model)
        source = _source(model)
        if not recipe.is_float:            # quantization rewrites modules in place: keep the caller's intact
            model = copy.deepcopy(model)
        adapter = DecoderAdapter(model).eval()

        step("reference")
        max_len = min(32, adapter.max_seq_len - api.GOLDEN_STEPS - 1)
        if max_len < 2:
            raise EdgeSLMError(f"max_seq_len {adapter.max_seq_len} is too short for the accuracy check",
                               path=source, fix=f"use max_seq_len >= {api.GOLDEN_STEPS + 3}")
        prompts = accuracy.encode_fixed_prompts(tokenizer, max_len) if tokenizer else \
            random_prompts(adapter.vocab_size, max_len)
        eager = EagerSession(adapter)
        reference = [accuracy.session_logits(eager, ids) for ids in prompts]      # [L, V] each
        golden = api._greedy_session(eager, prompts[0], api.GOLDEN_STEPS)[0]
        params = sum(p.numel() for p in model.parameters())
        sha = weights_sha256(model)

        with staged_directory(out, force=force) as stage:
            try:
                result = compiler.lower(adapter, target_obj, recipe, stage, progress=step)
            except Unsupported as err:
                line = user_line(err.__cause__, source) if err.__cause__ is not None else None
                if line is None:
                    raise
                raise EdgeSLMError(f"torch.export cannot trace {type(model).__name__}: "
                                   f"{str(err).split(' — ')[0].removeprefix('torch.export failed: ')}"
                                   f" at {line}", path=source,
                                   fix="replace Python control flow on tensor values (if/for on .item(), "
                                       "data-dependent shapes) with torch.where / torch.cond / static shapes"
                                   ) from None
            if tokenizer_dir is not None:
                for fname in api.TOKENIZER_FILES:
                    if (Path(tokenizer_dir) / fname).is_file():
                        shutil.copyfile(Path(tokenizer_dir) / fname, stage / fname)

            step("accuracy")
            check = api._accuracy_check(compiler, Bundle(path=stage, manifest={"artifact": result.artifacts[0]}),
                                        prompts, reference, golden)
            check["reference"] = f"eager float32 PyTorch ({type(model).__name__}, decode path)"

            step("manifest")
            artifact_bytes = api._tree_bytes(stage / result.artifacts[0])
            kv_bytes = sum(b.numel() * b.element_size() for b in model.buffers() if b.dim() >= 2)
            write_manifest(stage, {
                "edgeslm_version": api.__version__,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "model": {
                    "name": name or type(model).__name__,
                    "source": str(source) if source else None,
                    "architecture": f"custom:{type(model).__name__}",
                    "config": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                               "num_layers": adapter.config.num_layers},
                    "parameters": int(params),
                    "vocab_size": adapter.vocab_size,
                    "max_seq_len": adapter.max_seq_len,
                    "bos_id": adapter.bos_id,
                    "eos_ids": adapter.eos_ids,
                    "weights_sha256": sha,
                    "has_chat_template": bool(tokenizer and tokenizer.config.get("chat_template")),
                },
                "quant": recipe.to_dict(),
                "backend": "executorch",
                "target": {"name": target_obj.name, "triple": target_obj.triple, "arch": target_obj.arch},
                "artifact": result.artifacts[0],
                "lowering": result.to_dict(),
                "memory": {"artifact_bytes": artifact_bytes, "kv_cache_bytes": kv_bytes,
                           "planned_arena_bytes": result.planned_arena_bytes,
                           "expected_peak_bytes": artifact_bytes + result.planned_arena_bytes},
                "accuracy": check,
                "toolchain": api.toolchain_versions(),
                "export_seconds": round(time.perf_counter() - started, 2),
                "timings_s": {k: round(v, 3) for k, v in step.timings.items()},
            })
    return load_bundle(out)
