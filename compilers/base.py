"""The Compiler seam: one class per backend, registered by name.

Core code (api, CLI, bundle) only ever talks to `COMPILERS[name]`; it never names a backend.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Protocol

from edgeslm.errors import EdgeSLMError


@dataclass
class Fallback:
    """One op the backend did not take, and why (shown to the user in the lowering report)."""
    op: str
    count: int
    reason: str


@dataclass
class LowerResult:
    artifacts: list[str]                    # file names written into `out`, relative
    delegated: dict[str, int]               # backend/delegate name -> number of ops it took
    fallbacks: list[Fallback] = field(default_factory=list)
    planned_arena_bytes: int = 0            # memory the runtime must plan for activations + KV
    metadata: dict = field(default_factory=dict)  # backend facts worth keeping in the manifest
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Compiler(Protocol):
    name: ClassVar[str]

    def supports(self, target) -> bool: ...

    def lower(self, model, target, recipe, out: Path, *, progress: Callable[[str], None] | None = None) -> LowerResult: ...


class Unsupported(EdgeSLMError):
    """A backend declines a model, target or recipe; the message says which and why."""


class CannotRunHere(EdgeSLMError):
    """Raised by `open_session` when this host cannot execute the backend's artifact (e.g. Core ML off
    macOS); verbs that need to run it (run, eval) fail with this one line. `reason` is the why; `stand_in`
    may hold a session that computes the same program another way (described by its `runtime`
    attribute): export then records accuracy measured through it."""

    def __init__(self, reason: str, stand_in=None):
        super().__init__(f"this host cannot run the bundle: {reason}",
                         fix="run it on the target device (edgeslm package --ios for Apple bundles)")
        self.reason = reason
        self.stand_in = stand_in


def check_recipe(compiler, recipe) -> None:
    """Refuse a recipe the backend cannot honour, in one line. A compiler may define its own
    `check_recipe(recipe)`; otherwise it takes float32 + affine integer recipes, plus the recipe
    features (QuantRecipe.features: "float16", "palettize") it lists in `recipe_features`."""
    own = getattr(compiler, "check_recipe", None)
    if own is not None:
        own(recipe)
        return
    missing = recipe.features - set(getattr(compiler, "recipe_features", ()))
    if missing:
        raise Unsupported(f"backend '{compiler.name}' does not take recipe '{recipe.name}' "
                          f"(needs {', '.join(sorted(missing))})",
                          fix="choose another --quant (see README 'Recipes per backend')")


COMPILERS: dict[str, Callable[[], Compiler]] = {}


def register(cls):
    """Class decorator: make a compiler selectable by its `name`."""
    COMPILERS[cls.name] = cls
    return cls


def get_compiler(name: str) -> Compiler:
    # Importing the package registers the built-in backends.
    import edgeslm.compilers  # noqa: F401
    try:
        return COMPILERS[name]()
    except KeyError:
        raise EdgeSLMError(f"unknown backend '{name}'",
                           fix=f"choose one of: {', '.join(sorted(COMPILERS))}") from None
