"""Run a .pte in Python through ExecuTorch's runtime (the host-side reference for the native runner)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch


def _register_kernels(pte: Path) -> None:
    # Quantized bundles use quantized_decomposed::* ops (embedding_byte, ...): their kernels live here.
    import executorch.kernels.quantized  # noqa: F401
    if _uses_own_ops(pte):                # edgeslm::sdpa_cached(_tokens): built on first use (runtime/kernels)
        from edgeslm.native.kernels import load_kernels
        load_kernels()


def _uses_own_ops(pte: Path) -> bool:
    """True if the program names an edgeslm:: operator (the operator table holds the names as strings)."""
    import mmap
    with open(pte, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b"edgeslm::") >= 0


class ExecuTorchSession:
    """forward(ids, start_pos) -> last-position logits [V] float32; the KV cache lives in the program."""

    def __init__(self, pte: Path, threads: int | None = None):
        from executorch.runtime import Runtime
        _register_kernels(Path(pte))
        t0 = time.perf_counter()
        self._program = Runtime.get().load_program(Path(pte))
        self._method = self._program.load_method("forward")
        self.load_ms = (time.perf_counter() - t0) * 1e3
        # tokens per forward (older bundles: the whole context); longer inputs run in chunks
        self.chunk = int(self.metadata("get_max_seq_len"))

    def metadata(self, name: str):
        return self._program.load_method(name).execute([])[0]

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        for at in range(0, len(ids), self.chunk):
            part = ids[at:at + self.chunk]
            tokens = torch.tensor([part], dtype=torch.long)                              # [1, T]
            pos = torch.arange(start_pos + at, start_pos + at + len(part), dtype=torch.long)  # [T]
            logits = self._method.execute([tokens, pos])[0]                              # [1, V]
        return logits.reshape(-1, logits.shape[-1])[-1].float().numpy()
