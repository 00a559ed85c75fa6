"""Shared fixtures. Keep this small: helpers live in their own modules (tiny_checkpoints.py, ...)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """tiny_checkpoint(family) -> Path of a tiny random HF checkpoint, built once per session.
    Shared between tests: copy it before modifying anything in it."""
    from tiny_checkpoints import make_tiny_checkpoint

    made = {}

    def get(family: str):
        if family not in made:
            made[family] = make_tiny_checkpoint(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return made[family]

    return get


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as an HF checkpoint dir (converted once, cached in .cache/)."""
    from edgeslm.errors import EdgeSLMError
    from edgeslm.quickstart import find_smollm2_gguf, quickstart
    try:
        find_smollm2_gguf()
    except EdgeSLMError as err:
        if os.environ.get("CI") == "true":   # make test installs it: missing in CI is a failure
            raise
        pytest.skip(str(err))
    return quickstart(ROOT / ".cache" / "quickstart-smollm2", progress=False)
