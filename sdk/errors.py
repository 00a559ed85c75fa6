"""User-facing errors: one line naming the file and the fix; the CLI prints it and exits 2."""
from __future__ import annotations

from pathlib import Path


class EdgeSLMError(Exception):
    """An error caused by the user's input. `str(err)` is the whole one-line message."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        parts = [f"{path}: {message}" if path is not None else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" — ".join(parts))
