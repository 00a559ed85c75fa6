"""Backend x recipe candidates a target supports, derived from the registries (nothing hard-coded here
beyond the routes each compiler's lower() takes).

Steps of enumerate_candidates(target, backends, recipes): backends = the target profile's list that are
registered and whose compiler supports() the target (optionally filtered) -> recipes = the built-in
recipes (or the given names / .json files) -> keep the pairs the compiler accepts: compilers.base.check_recipe
plus the route checks lower() applies on this target (ExecuTorch: no float16/palettization on XNNPACK,
float16 only through Apple's Core ML delegate; TVM on a Cortex-M: the micro firmware's int8) ->
Candidate(backend, recipe). Pairs refused for an explicit request are returned with the reason.
kv_caches (e.g. ["float16", "int8"]): each ExecuTorch candidate on the XNNPACK route once per KV-cache dtype
(named backend/recipe+kv-DTYPE, exported with backend_options kv_cache); other routes keep their own cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgeslm.errors import EdgeSLMError


@dataclass(frozen=True)
class Candidate:
    backend: str
    recipe: object           # edgeslm.quant.QuantRecipe
    quant: str               # what export's --quant gets: a built-in name or a recipe .json path
    kv_cache: str | None = None   # ExecuTorch's KV-cache dtype (backend_options kv_cache); None: its default

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.recipe.name}" + (f"+kv-{self.kv_cache}" if self.kv_cache else "")


def route_check(compiler, target, recipe) -> None:
    """Raise Unsupported when `compiler.lower` would refuse `recipe` on `target` (before any work)."""
    from edgeslm.compilers.base import Unsupported, check_recipe

    check_recipe(compiler, recipe)
    if compiler.name == "executorch":
        if target.extra.get("executorch_delegate") == "coreml":
            from edgeslm.compilers.executorch.coreml_delegate import check_recipe as coreml_route
            coreml_route(recipe)
        elif recipe.features:
            raise Unsupported(f"ExecuTorch/XNNPACK does not take recipe '{recipe.name}' "
                              f"({', '.join(sorted(recipe.features))})")
    elif compiler.name == "tvm" and target.kind == "mcu":
        from edgeslm.compilers.micro import check_recipe as micro_route
        micro_route(recipe)


def enumerate_candidates(target, backends: list[str] | None = None, recipes: list[str] | None = None,
                         kv_caches: list[str] | None = None) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """(candidates, refused): refused lists (name, reason) only for pairs the user asked for by name."""
    from edgeslm.compilers import COMPILERS, get_compiler
    from edgeslm.compilers.executorch import KV_CACHE_DTYPES
    from edgeslm.compilers.base import Unsupported
    from edgeslm.quant import RECIPES, load_recipe

    available = [b for b in target.backends if b in COMPILERS and get_compiler(b).supports(target)]
    if backends:
        unknown = [b for b in backends if b not in available]
        if unknown:
            raise EdgeSLMError(f"backend '{unknown[0]}' cannot build for target '{target.name}'",
                               fix=f"backends for {target.name}: {', '.join(available) or 'none'}")
        available = [b for b in available if b in backends]
    unknown_kv = [k for k in kv_caches or [] if k not in KV_CACHE_DTYPES]
    if unknown_kv:
        raise EdgeSLMError(f"KV cache '{unknown_kv[0]}' is not one of {', '.join(KV_CACHE_DTYPES)}",
                           fix="pass --kv-caches with float16, float32 and/or int8")
    chosen = [(r, load_recipe(r)) for r in (recipes or list(RECIPES))]
    found, refused = [], []
    for backend in available:
        compiler = get_compiler(backend)
        for quant, recipe in chosen:
            try:
                route_check(compiler, target, recipe)
            except Unsupported as err:
                if recipes:
                    refused.append((f"{backend}/{recipe.name}", str(err).split(" — fix:")[0]))
                continue
            per_kv = kv_caches if kv_caches and backend == "executorch" and \
                target.extra.get("executorch_delegate") != "coreml" else [None]
            found += [Candidate(backend, recipe, quant, kv) for kv in per_kv]
    if not found:
        raise EdgeSLMError(f"no backend x recipe candidate for target '{target.name}'"
                           + (f" among recipes {', '.join(recipes)}" if recipes else ""),
                           fix=f"backends for {target.name}: {', '.join(available) or 'none'}; see "
                               "README 'Recipes per backend'")
    return found, refused
