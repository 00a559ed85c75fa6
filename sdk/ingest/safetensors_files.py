"""Read safetensors headers ourselves (to name the file and the fault), then tensors via `safetensors`.

File layout: u64 little-endian header length N | N bytes of JSON {name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {...}} | data. A file shorter than the header's
largest end offset is truncated; anything unparsable is corrupt. No pickle is ever involved.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeslm.errors import EdgeSLMError

_FIX = "re-download this file (its sha256 should match the one the hub lists)"
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
             "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
_MAX_HEADER = 100_000_000   # the safetensors format's own limit


@dataclass(frozen=True)
class TensorInfo:
    file: Path
    name: str                 # the name in the file
    dtype: str                # safetensors dtype tag, e.g. "BF16"
    shape: tuple[int, ...]


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Validate the header against the file size; return tensor name -> TensorInfo."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise EdgeSLMError(f"truncated safetensors file ({size} bytes, no header)", path=path, fix=_FIX)
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise EdgeSLMError(f"corrupt or truncated safetensors file: header length {n} but the file has "
                               f"{size} bytes", path=path, fix=_FIX)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise EdgeSLMError(f"corrupt safetensors header: {e}", path=path, fix=_FIX) from None
    infos, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, stop) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
            numel = 1
            for d in shape:
                numel *= d
            if dtype not in _ITEMSIZE or stop - begin != numel * _ITEMSIZE[dtype] or begin < 0:
                raise ValueError(f"dtype {dtype}, shape {list(shape)}, offsets {[begin, stop]} disagree")
        except (KeyError, TypeError, ValueError) as e:
            raise EdgeSLMError(f"corrupt safetensors header entry for {name}: {e}", path=path, fix=_FIX) from None
        infos[name] = TensorInfo(path, name, dtype, shape)
        end = max(end, stop)
    if 8 + n + end > size:
        raise EdgeSLMError(f"truncated safetensors file: {size} bytes, the header needs {8 + n + end}",
                           path=path, fix=_FIX)
    return infos


def read_tensor(info: TensorInfo, handle) -> torch.Tensor:
    """Read one tensor from an open `safetensors.safe_open` handle."""
    if info.dtype not in _FLOAT_DTYPES:
        raise EdgeSLMError(f"tensor {info.name} has dtype {info.dtype}; expected floating-point weights",
                           path=info.file, fix="use an unquantized (F32/F16/BF16) checkpoint")
    try:
        return handle.get_tensor(info.name)
    except Exception as e:   # safetensors raises its own error types
        raise EdgeSLMError(f"cannot read tensor {info.name}: {e}", path=info.file, fix=_FIX) from None


def open_file(path: Path):
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt")
    except Exception as e:
        raise EdgeSLMError(f"corrupt safetensors file: {e}", path=path, fix=_FIX) from None


def sha256_files(paths: list[Path]) -> str:
    """sha256 over the files' bytes, concatenated in sorted file-name order."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda p: p.name):
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
