"""The public Python API; the CLI is a thin layer over these functions.

export:   checkpoint (HF dir, HF cache, .gguf) -> ingest -> float reference -> compiler.lower -> accuracy -> bundle
run:      bundle -> backend session -> tokenizer + sampler + generation loop
info, targets, evaluate, quickstart: see each function.
"""
from __future__ import annotations

import os
import platform
import shutil
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable

import numpy as np

from edgeslm import __version__
from edgeslm.bundle import Bundle, load_bundle, tokenizer_manifest, write_manifest
from edgeslm.errors import EdgeSLMError
from edgeslm.fsutil import staged_directory

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json")
GOLDEN_STEPS = 16


def cache_dir() -> Path:
    return Path(os.environ.get("EDGESLM_CACHE", Path.home() / ".cache" / "edgeslm"))


def toolchain_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "edgeslm": __version__}
    for pkg in ("torch", "executorch", "torchao", "transformers", "apache-tvm", "coremltools"):
        try:
            versions[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def resolve_checkpoint(path: str | Path, progress: bool = True) -> Path:
    """A .gguf file is converted once into an HF checkpoint dir under the cache; dirs pass through."""
    path = Path(path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise EdgeSLMError("no such GGUF file", path=path, fix="check the path")
        from edgeslm.quickstart import gguf_to_hf
        st = path.stat()
        key = f"{path.stem}-{st.st_size}-{int(st.st_mtime)}"
        return gguf_to_hf(path, cache_dir() / "gguf" / key, progress=progress)
    return path


def export(checkpoint: str | Path, *, out: str | Path, backend: str = "executorch", target: str = "host",
           quant: str = "fp32", max_seq_len: int | None = None, force: bool = False,
           progress: bool = True, backend_options: dict | None = None, **module_options) -> Bundle:
    """Checkpoint -> verified bundle in `out` (steps in the module docstring). backend_options: extra keyword
    arguments for the backend's lower(), e.g. {"tuned": False} for TVM's untuned baseline.
    `checkpoint` may also be a torch.nn.Module: edgeslm.anymodel.export_module (module_options:
    tokenizer_dir for a decoder, example_inputs / dynamic_shapes for a plain graph)."""
    if not isinstance(checkpoint, (str, os.PathLike)):
        from edgeslm.anymodel import export_module
        return export_module(checkpoint, out=out, backend=backend, target=target, quant=quant, force=force,
                             progress=progress, **module_options)
    from edgeslm.compilers import get_compiler
    from edgeslm.compilers.base import check_recipe
    from edgeslm.quant import load_recipe
    from edgeslm.targets import get_target

    out = Path(out)
    target_obj = get_target(target)
    compiler = get_compiler(backend)
    recipe = load_recipe(quant)
    check_recipe(compiler, recipe)
    if out.exists() and not force:
        raise EdgeSLMError("output directory exists", path=out, fix="choose another -o or pass --force to replace it")
    if not compiler.supports(target_obj):
        raise EdgeSLMError(f"backend '{backend}' cannot build for target '{target}'",
                           fix=f"targets for {backend}: see 'edgeslm targets'")
    from edgeslm.progress import steps
    names = ["ingest", "reference", "quantize", "export", "lower", "emit", "write", "accuracy", "manifest"]
    started = time.perf_counter()
    with steps(f"export {backend}/{target}/{recipe.name}", names, enabled=progress) as step:
        step("ingest")
        ckpt_dir = resolve_checkpoint(checkpoint, progress=progress)
        from edgeslm.ingest import load_checkpoint
        from edgeslm.text import Tokenizer
        loaded = load_checkpoint(ckpt_dir, max_seq_len=max_seq_len)
        tokenizer = Tokenizer.from_dir(loaded.root)
        model = loaded.model
        if hasattr(compiler, "check_fits"):   # a backend with a hard memory budget (MCU) refuses before the work
            compiler.check_fits(model, target_obj)

        step("reference")
        from edgeslm import accuracy
        prompts = accuracy.encode_fixed_prompts(tokenizer, max_len=min(48, model.max_seq_len - GOLDEN_STEPS - 1))
        reference = [accuracy.eager_logits(model, ids) for ids in prompts]
        golden = accuracy.greedy_eager(model, prompts[0], GOLDEN_STEPS)
        params = sum(p.numel() for p in model.parameters())

        with staged_directory(out, force=force) as stage:
            result = compiler.lower(model, target_obj, recipe, stage, progress=step, **(backend_options or {}))
            for name in TOKENIZER_FILES:
                if (loaded.root / name).is_file():
                    shutil.copyfile(loaded.root / name, stage / name)

            step("accuracy")
            check = _accuracy_check(compiler, Bundle(path=stage, manifest={"artifact": result.artifacts[0]}),
                                    prompts, reference, golden)

            step("manifest")
            artifact_bytes = _tree_bytes(stage / result.artifacts[0])
            cfg = model.config
            kv_bytes = result.metadata.get("kv_cache_bytes") or \
                2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * model.max_seq_len * 4   # float32 cache
            manifest = {
                "edgeslm_version": __version__,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "model": {
                    "name": loaded.hf_config.get("_name_or_path") or Path(str(checkpoint)).name,
                    "source": str(Path(str(checkpoint)).resolve()),
                    "architecture": cfg.architecture,
                    "config": cfg.to_dict(),
                    "parameters": int(params),
                    "vocab_size": int(model.vocab_size),
                    "max_seq_len": int(model.max_seq_len),
                    "bos_id": model.bos_id,
                    "eos_ids": [int(e) for e in model.eos_ids],
                    "weights_sha256": loaded.weights_sha256,
                    "has_chat_template": bool(loaded.tokenizer_config.get("chat_template")),
                },
                "tokenizer": tokenizer_manifest(tokenizer),   # text prompts for the native runtime
                "quant": recipe.to_dict(),
                "backend": backend,
                "target": {"name": target_obj.name, "triple": target_obj.triple, "arch": target_obj.arch},
                "artifact": result.artifacts[0],
                "lowering": result.to_dict(),
                "memory": {
                    "artifact_bytes": artifact_bytes,
                    "kv_cache_bytes": kv_bytes,
                    "planned_arena_bytes": result.planned_arena_bytes,
                    "expected_peak_bytes": artifact_bytes + result.planned_arena_bytes,
                    **result.metadata.get("memory", {}),   # backend facts (MCU: flash/RAM used vs budget)
                },
                "accuracy": check,
                "toolchain": toolchain_versions(),
                "export_seconds": round(time.perf_counter() - started, 2),
                "timings_s": {k: round(v, 3) for k, v in step.timings.items()},
            }
            write_manifest(stage, manifest)
    return load_bundle(out)


def _accuracy_check(compiler, draft: Bundle, prompts, reference, golden) -> dict:
    """Teacher-forced comparison + golden greedy tokens of the draft bundle against eager float. A backend
    this host cannot run (CannotRunHere) records status "not run here: <reason>", or measures through the
    stand-in session it offers, named in `runtime`."""
    from edgeslm import accuracy
    from edgeslm.compilers.base import CannotRunHere

    base = dict(prompts=[list(map(int, p)) for p in prompts], reference_greedy=golden,
                reference="eager float32 PyTorch (edgeslm decoder)")
    try:
        session, runtime = compiler.open_session(draft), "native"
    except CannotRunHere as err:
        if err.stand_in is None:
            return dict(base, status=f"not run here: {err.reason}")
        session, runtime = err.stand_in, f"stand-in: {err.stand_in.runtime} ({err.reason})"
    candidate = [accuracy.session_logits(session, ids) for ids in prompts]
    check = accuracy.compare(reference, candidate)
    bundle_greedy, runner_up, margins = _greedy_session(session, prompts[0], GOLDEN_STEPS)
    check.update(base, bundle_greedy=bundle_greedy, bundle_greedy_runner_up=runner_up,
                 bundle_greedy_margins=margins, greedy_match=bundle_greedy == golden,
                 status="measured", runtime=runtime)
    return check


def _tree_bytes(path: Path) -> int:
    """Size of an artifact: a file, or a directory artifact (.mlpackage) summed over its files."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _greedy_session(session, ids: list[int], steps: int) -> tuple[list[int], list[int], list[float]]:
    """Greedy tokens of the bundle, with the runner-up token and the top-1 minus top-2 logit margin of every
    step: a device whose kernels round differently may flip a near-tie, and the farm's gate must know."""
    logits = session.forward(list(ids), 0)
    out, runner_up, margins = [], [], []
    for pos in range(len(ids), len(ids) + steps):
        top2 = np.argsort(logits)[-2:][::-1]
        out.append(int(top2[0]))
        runner_up.append(int(top2[1]))
        margins.append(float(logits[top2[0]] - logits[top2[1]]))
        logits = session.forward([out[-1]], pos)
    return out, runner_up, margins


def open_session(bundle: Bundle, threads: int | None = None):
    from edgeslm.compilers import get_compiler
    return get_compiler(bundle.backend).open_session(bundle, threads=threads)


def run(bundle_path: str | Path, prompt: str, *, max_new_tokens: int = 64, temperature: float | None = None,
        top_p: float | None = None, seed: int | None = None, chat: bool = False,
        on_text: Callable[[str], None] | None = None):
    """Generate text from a bundle on this host. Greedy unless a temperature is given."""
    from edgeslm.generate import generate
    from edgeslm.text import Sampler, Tokenizer

    bundle = load_bundle(bundle_path)
    if bundle.manifest["model"].get("kind") == "graph":    # edgeslm.anymodel plain graph: no tokens to generate
        raise EdgeSLMError("this bundle is a plain graph, not a decoder: it has no text to generate",
                           path=bundle.path, fix="call it with executorch.runtime (edgeslm.anymodel.plain.run_executorch)")
    tokenizer = Tokenizer.from_dir(bundle.path)
    sampler = Sampler(temperature=temperature, top_p=top_p, seed=seed)
    if chat:
        if not bundle.manifest["model"].get("has_chat_template"):
            raise EdgeSLMError("this model has no chat template", path=bundle.path / "tokenizer_config.json",
                               fix="drop --chat, or export a checkpoint whose tokenizer_config.json has one")
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        prompt_ids = tokenizer.encode(text, add_bos=False)
    else:
        prompt_ids = tokenizer.encode(prompt)
    session = open_session(bundle)
    stream = tokenizer.stream()

    def on_token(token: int) -> None:
        piece = stream.push(token)
        if piece and on_text:
            on_text(piece)

    eos = set(bundle.manifest["model"]["eos_ids"]) | set(tokenizer.eos_ids)
    result = generate(session, prompt_ids, max_new_tokens=max_new_tokens, max_seq_len=bundle.max_seq_len,
                      sample=sampler.sample, eos_ids=eos, on_token=on_token, source="--prompt")
    tail = stream.flush()
    if tail and on_text:
        on_text(tail)
    result.text = tokenizer.decode([t for t in result.tokens if t not in eos])
    return result


def profile(bundle_path: str | Path, devices: list | None = None, **options) -> dict:
    """Profile a bundle with the native runner on farm devices ("local", "qemu-aarch64", ...).
    Options as `edgeslm.farm.profile.profile`: prompt_lengths, max_new_tokens, reps, threads, timeout_s, out."""
    from edgeslm.farm.profile import profile as _profile
    return _profile(bundle_path, devices or ["local"], **options)


def fit(checkpoint: str | Path, *, target: str, out: str | Path, max_memory, **options) -> dict:
    """The best bundle within a device budget (edgeslm.fit.search): backend x recipe candidates, memory
    estimated before export, the rest exported and measured on a device of the target. Options as
    `edgeslm.fit.fit`: min_decode_tps, max_quality_loss, context, device, farm, backends, recipes, work, ..."""
    from edgeslm.fit import fit as _fit
    return _fit(checkpoint, target=target, out=out, max_memory=max_memory, **options)


def build_runner(target: str = "host", *, force: bool = False, progress: bool = True) -> Path:
    """Build (or reuse from the cache) the native runner + libraries for a target; returns the folder."""
    from edgeslm.native import build_runner as _build
    return _build(target, force=force, progress=progress)


def info(bundle_path: str | Path) -> dict:
    bundle = load_bundle(bundle_path)
    return dict(bundle.manifest, path=str(bundle.path))


def targets() -> list[dict]:
    from edgeslm.compilers import COMPILERS
    from edgeslm.targets import TARGETS
    rows = []
    for t in TARGETS.values():
        row = t.to_dict()
        row["available_backends"] = [b for b in t.backends if b in COMPILERS and COMPILERS[b]().supports(t)]
        rows.append(row)
    return rows


def quickstart(out_dir: str | Path, progress: bool = True, size: str = "smollm2") -> Path:
    """size "smollm2": the real SmolLM2-135M-Instruct; "micro": a ~0.45 M parameter Llama trained here for
    microcontrollers (edgeslm.micro_model, cached)."""
    if size == "micro":
        from edgeslm.micro_model import make_micro_model
        return make_micro_model(Path(out_dir), progress=progress)
    if size != "smollm2":
        raise EdgeSLMError(f"unknown quickstart size '{size}'", fix="choose smollm2 or micro")
    from edgeslm.quickstart import quickstart as _quickstart
    return _quickstart(Path(out_dir), progress=progress)
