"""CoreMLSession: run a bundle's .mlpackage with Core ML itself (macOS only): MLModel + MLState.

forward(ids, start_pos) -> last-position logits [V] float32. A new sequence (start_pos == 0) gets a
fresh state from make_state(). Off macOS, open() raises CannotRunHere with the numpy MIL interpreter
(interpret.MILSession) as the stand-in.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from edgeslm.compilers.base import CannotRunHere

NEEDS_MACOS = "Core ML runs only on macOS (coremltools predicts through the Core ML framework)"


class CoreMLSession:
    runtime = "Core ML (MLModel + MLState)"

    def __init__(self, mlpackage: Path, compute_units: str = "ALL"):
        import coremltools as ct
        t0 = time.perf_counter()
        self.model = ct.models.MLModel(str(mlpackage), compute_units=getattr(ct.ComputeUnit, compute_units))
        self.state = self.model.make_state()
        self.load_ms = (time.perf_counter() - t0) * 1e3

    def forward(self, ids: list[int], start_pos: int) -> np.ndarray:
        if start_pos == 0:
            self.state = self.model.make_state()
        feeds = {"tokens": np.array([ids], dtype=np.int32),
                 "input_pos": np.arange(start_pos, start_pos + len(ids), dtype=np.int32)}
        logits = self.model.predict(feeds, state=self.state)["logits"]
        return np.asarray(logits, dtype=np.float32).reshape(-1)[-logits.shape[-1]:]


def open_session(mlpackage: Path, compute_units: str = "ALL"):
    if platform.system() == "Darwin":
        return CoreMLSession(mlpackage, compute_units)
    from .interpret import MILSession
    raise CannotRunHere(NEEDS_MACOS, stand_in=MILSession(mlpackage))
