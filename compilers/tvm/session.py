"""Run a TVM model library in Python through the Relax VM (the host-side reference for the native runner).

The KV caches live here (zeros at load), are passed to `main` on every call and come back updated in
place: forward(ids, start_pos) -> last-position logits [V] float32, like ExecuTorchSession.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def check_loadable(library: Path) -> None:
    """A library built for another architecture cannot run here: say so instead of a dlopen error."""
    import platform

    from edgeslm.errors import EdgeSLMError
    machines = {b"\x3e\x00": "x86_64", b"\xb7\x00": "aarch64"}      # ELF e_machine, little endian
    with open(library, "rb") as fh:
        header = fh.read(20)
    arch = machines.get(header[18:20], "unknown")
    if header[:4] == b"\x7fELF" and arch != platform.machine():
        raise EdgeSLMError(f"this model library is built for {arch}, this machine is {platform.machine()}",
                           path=library, fix="run it on the device: edgeslm profile BUNDLE --device qemu-aarch64 "
                           "(or a real board), or export with --target host")


class TVMSession:
    def __init__(self, library: Path, threads: int | None = None):
        import tvm
        from tvm import relax

        t0 = time.perf_counter()
        if threads:
            # TVM's CPU thread pool reads this when it starts (first parallel kernel)
            import os
            os.environ.setdefault("TVM_NUM_THREADS", str(threads))
        self._tvm = tvm
        self._lib = tvm.runtime.load_module(str(Path(library).resolve()))
        self._vm = relax.VirtualMachine(self._lib, tvm.cpu())
        meta = self._vm["metadata"]().numpy()
        abi, vocab, max_seq, bos, layers, h_kv, head_dim, n_eos = (int(v) for v in meta[:8])
        if abi != 1:
            raise ValueError(f"{library}: metadata ABI {abi}, this edgeslm reads 1")
        self.vocab_size, self.max_seq_len = vocab, max_seq
        self.bos_id = None if bos < 0 else bos
        self.eos_ids = [int(e) for e in meta[8:8 + n_eos]]
        shapes = [(h_kv, head_dim, max_seq), (h_kv, max_seq, head_dim)] * layers
        self._caches = [tvm.runtime.tensor(np.zeros(s, dtype=np.float32)) for s in shapes]
        self._prefill, self._decode = self._vm["prefill"], self._vm["decode"]
        self.load_ms = (time.perf_counter() - t0) * 1e3

    def metadata(self, name: str):
        return {"get_vocab_size": self.vocab_size, "get_max_seq_len": self.max_seq_len,
                "get_bos_id": self.bos_id, "get_eos_ids": self.eos_ids}[name]

    def reset(self) -> None:
        for cache in self._caches:
            cache.copyfrom(np.zeros(cache.shape, dtype=np.float32))

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        tvm = self._tvm
        tokens = tvm.runtime.tensor(np.array([ids], dtype=np.int64))               # [1, T]
        pos = tvm.runtime.tensor(np.arange(start_pos, start_pos + len(ids), dtype=np.int64))  # [T]
        run = self._decode if len(ids) == 1 else self._prefill
        out = run(tokens, pos, *self._caches)
        return out[0].numpy().reshape(-1)                                           # [V]
