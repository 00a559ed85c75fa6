"""QuantRecipe: a small JSON map, validated once, recorded verbatim in every manifest."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from edgeslm.errors import EdgeSLMError

_LINEAR_KEYS = {"activations", "weight_bits", "group_size"}
_EMBEDDING_KEYS = {"weight_bits", "group_size"}


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    description: str
    linear: dict | None      # {"activations": "int8_dynamic"|"none", "weight_bits": 4|8, "group_size": int|None}
    embedding: dict | None   # {"weight_bits": 8, "group_size": int|None}

    @property
    def is_float(self) -> bool:
        return self.linear is None and self.embedding is None

    def to_dict(self) -> dict:
        return asdict(self)


def parse_recipe(raw: dict, source: str) -> QuantRecipe:
    def bad(msg: str) -> EdgeSLMError:
        return EdgeSLMError(f"invalid quantization recipe: {msg}", path=source,
                            fix="see sdk/quant/recipes/int4.json for the format")

    unknown = set(raw) - {"name", "description", "linear", "embedding"}
    if unknown or "name" not in raw:
        raise bad(f"unknown keys {sorted(unknown)}" if unknown else "missing 'name'")
    for part, keys in (("linear", _LINEAR_KEYS), ("embedding", _EMBEDDING_KEYS)):
        spec = raw.get(part)
        if spec is None:
            continue
        if not isinstance(spec, dict) or set(spec) - keys:
            raise bad(f"'{part}' takes only {sorted(keys)}")
        if spec.get("weight_bits") not in (4, 8):
            raise bad(f"'{part}.weight_bits' must be 4 or 8")
        group = spec.get("group_size")
        if group is not None and (not isinstance(group, int) or group <= 0 or group & (group - 1)):
            raise bad(f"'{part}.group_size' must be a power of two or null (per channel)")
        if part == "linear" and spec.get("activations", "none") not in ("int8_dynamic", "none"):
            raise bad("'linear.activations' must be 'int8_dynamic' or 'none'")
    return QuantRecipe(name=raw["name"], description=raw.get("description", ""),
                       linear=raw.get("linear"), embedding=raw.get("embedding"))


def _builtin() -> dict[str, QuantRecipe]:
    folder = resources.files("edgeslm.quant") / "recipes"
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            recipe = parse_recipe(json.loads(entry.read_text()), entry.name)
            out[recipe.name] = recipe
    return out


RECIPES: dict[str, QuantRecipe] = _builtin()


def load_recipe(name_or_path: str) -> QuantRecipe:
    """A built-in recipe by name (fp32, int8, int4) or a JSON file of the same format."""
    if name_or_path in RECIPES:
        return RECIPES[name_or_path]
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise EdgeSLMError(f"not valid JSON ({err.msg}, line {err.lineno})", path=path,
                               fix="fix the JSON syntax") from None
        return parse_recipe(raw, str(path))
    raise EdgeSLMError(f"unknown quantization recipe '{name_or_path}'",
                       fix=f"choose one of: {', '.join(RECIPES)} or a recipe .json file")
