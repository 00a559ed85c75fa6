"""Find the checkpoint directory and its files; refuse what must not be opened.

Steps: resolve the path (a plain model dir, an HF cache repo dir `models--org--name` via
`refs/main`, or a snapshot dir) -> require config.json / tokenizer.json -> pick the safetensors
weight files (sharded index, model.safetensors, or any *.safetensors) -> if only pickle files
(pytorch_model.bin, *.pt, *.pth, *.ckpt) exist, refuse them by name without opening them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeslm.errors import EdgeSLMError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
INDEX_NAME = "model.safetensors.index.json"
CONVERT_FIX = ("convert it to safetensors once, with transformers: python -c \"from transformers import "
               "AutoModelForCausalLM as M; M.from_pretrained('{d}').save_pretrained('{d}', "
               "safe_serialization=True)\"")


def resolve_checkpoint_dir(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise EdgeSLMError("no such checkpoint directory", path=p,
                           fix="pass a directory holding config.json, *.safetensors and tokenizer.json")
    if p.is_file():
        if p.suffix in PICKLE_SUFFIXES:
            raise _pickle_error(p)
        if p.name == "config.json" or p.suffix == ".safetensors":
            return resolve_checkpoint_dir(p.parent)
        raise EdgeSLMError("not a checkpoint directory (a file)", path=p,
                           fix="pass the directory holding config.json and *.safetensors")
    p = p.resolve()
    if (p / "snapshots").is_dir() and not (p / "config.json").exists():
        return _hf_cache_snapshot(p)
    return p


def _hf_cache_snapshot(repo: Path) -> Path:
    """`models--org--name/` -> `snapshots/<refs/main>/` (HF hub cache layout)."""
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if not snap.is_dir():
            raise EdgeSLMError(f"refs/main names snapshot {snap.name}, which is missing", path=repo,
                               fix="re-download the model or pass a snapshots/<rev> directory")
        return snap.resolve()
    snaps = sorted(d for d in (repo / "snapshots").iterdir() if d.is_dir())
    if len(snaps) == 1:
        return snaps[0].resolve()
    raise EdgeSLMError(f"HF cache repo without refs/main and with {len(snaps)} snapshots", path=repo,
                       fix="pass one snapshots/<rev> directory")


def read_json(path: Path, *, required: bool, fix: str) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise EdgeSLMError(f"missing {path.name}", path=path, fix=fix)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgeSLMError(f"cannot parse {path.name}: {e}", path=path, fix=fix) from None
    if not isinstance(data, dict):
        raise EdgeSLMError(f"{path.name} is not a JSON object", path=path, fix=fix)
    return data


def check_is_checkpoint(root: Path) -> None:
    """A directory with none of the files a checkpoint has is the wrong directory, not a broken one."""
    known = ("config.json", "tokenizer.json", INDEX_NAME)
    names = [c.name for c in root.iterdir()]
    if not any(n in known or n.endswith(".safetensors") or n.endswith(PICKLE_SUFFIXES) for n in names):
        raise EdgeSLMError("not a checkpoint directory (no config.json, *.safetensors or tokenizer.json)",
                           path=root, fix="pass the model directory, e.g. a Hugging Face download")


def weight_files(root: Path) -> list[Path]:
    """The safetensors files to read, sorted by name. Pickle-only checkpoints are refused unopened."""
    index = root / INDEX_NAME
    if index.exists():
        data = read_json(index, required=True, fix="re-download the checkpoint")
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise EdgeSLMError("no weight_map in the index", path=index, fix="re-download the checkpoint")
        files = sorted({root / name for name in weight_map.values()})
        for f in files:
            if not f.is_file():
                raise EdgeSLMError(f"missing weight shard {f.name} listed in {INDEX_NAME}", path=f,
                                   fix="download every shard listed in the index")
        return files
    if (root / "model.safetensors").is_file():
        return [root / "model.safetensors"]
    found = sorted(f for f in root.glob("*.safetensors") if f.is_file())
    if found:
        return found
    pickles = sorted(f for f in root.iterdir() if f.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise _pickle_error(pickles[0], len(pickles))
    if any(root.glob("*.gguf")):
        raise EdgeSLMError("only GGUF weights found; this path reads safetensors", path=root,
                           fix="load the GGUF with transformers (gguf_file=...) and save the state dict "
                               "with safetensors, or use a safetensors checkpoint")
    raise EdgeSLMError("missing weights: no *.safetensors file", path=root / "model.safetensors",
                       fix="download model.safetensors (or the shards and model.safetensors.index.json)")


def _pickle_error(first: Path, count: int = 1) -> EdgeSLMError:
    more = f" (and {count - 1} more)" if count > 1 else ""
    return EdgeSLMError(f"pickle checkpoint{more} refused, not opened: unpickling can run arbitrary code",
                        path=first, fix=CONVERT_FIX.format(d=first.parent))
