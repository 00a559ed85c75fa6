"""Training text available offline on every machine: the docstrings of Python's standard library.

Steps: every Lib/*.py of the running interpreter, sorted -> ast.parse (never imported or executed) ->
module/class/function docstrings longer than 40 characters -> whitespace folded into prose lines ->
one string (~0.8 MB on CPython 3.11). The interpreter version is recorded with the model.
"""
from __future__ import annotations

import ast
import re
import sysconfig
from pathlib import Path


def stdlib_docstrings(min_chars: int = 40) -> list[str]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(lib.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    docs.append(_fold(doc))
    return docs


def _fold(doc: str) -> str:
    """Paragraphs joined into single lines, runs of blanks collapsed: prose a tiny model can learn."""
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", doc)]
    return "\n".join(p for p in paragraphs if p)
