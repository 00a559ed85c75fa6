"""Shared fixtures. Keep this small: helpers live in their own modules (tiny_checkpoints.py, ...)."""
from __future__ import annotations

import pytest


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
