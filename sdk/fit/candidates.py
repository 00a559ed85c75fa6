"""Backend x recipe candidates a target supports, derived from the registries (nothing hard-coded here
beyond the routes each compiler's lower() takes).

Steps of enumerate_candidates(target, backends, recipes): backends = the target profile's list that are
registered and whose compiler supports() the target (optionally filtered) -> recipes = the built-in
recipes (or the given names / .json files) -> keep the pairs the compiler accepts: compilers.base.check_recipe
plus the route checks lower() applies on this target (ExecuTorch: no float16/palettization on XNNPACK,
float16 only through Apple's Core ML delegate; TVM on a Cortex-M: the micro firmware's int8) ->
Candidate(backend, recipe). Pairs refused for an explicit request are returned with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgeslm.errors import EdgeSLMError


@dataclass(frozen=True)
class Candidate:
    backend: str
    recipe: object           # edgeslm.quant.QuantRecipe
    quant: str               # what export's --quant gets: a built-in name or a recipe .json path

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.recipe.name}"


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


def enumerate_candidates(target, backends: list[str] | None = None,
                         recipes: list[str] | None = None) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """(candidates, refused): refused lists (name, reason) only for pairs the user asked for by name."""
    from edgeslm.compilers import COMPILERS, get_compiler
    from edgeslm.compilers.base import Unsupported
    from edgeslm.quant import RECIPES, load_recipe

    available = [b for b in target.backends if b in COMPILERS and get_compiler(b).supports(target)]
    if backends:
        unknown = [b for b in backends if b not in available]
        if unknown:
            raise EdgeSLMError(f"backend '{unknown[0]}' cannot build for target '{target.name}'",
                               fix=f"backends for {target.name}: {', '.join(available) or 'none'}")
        available = [b for b in available if b in backends]
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
            found.append(Candidate(backend, recipe, quant))
    if not found:
        raise EdgeSLMError(f"no backend x recipe candidate for target '{target.name}'"
                           + (f" among recipes {', '.join(recipes)}" if recipes else ""),
                           fix=f"backends for {target.name}: {', '.join(available) or 'none'}; see "
                               "README 'Recipes per backend'")
    return found, refused
