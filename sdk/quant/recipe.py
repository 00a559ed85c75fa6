"""QuantRecipe: a small JSON map, validated once, recorded verbatim in every manifest."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from edgeslm.errors import EdgeSLMError

_LINEAR_KEYS = {"activations", "weight_bits", "group_size", "scheme"}
_EMBEDDING_KEYS = {"weight_bits", "group_size", "scheme"}
# Optional keys beyond torchao's shape (each compiler declares which it takes, see compilers/base.py):
#   "dtype": "float32" (default) | "float16"   precision of everything not quantized (weights, activations)
#   "<part>.scheme": "affine" (default: scale [+ zero point] per channel/group) | "palettize" (k-means
#                   lookup table of 2**weight_bits float values per tensor; group_size must be null)
DTYPES = ("float32", "float16")
SCHEMES = ("affine", "palettize")


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    description: str
    linear: dict | None      # {"activations": "int8_dynamic"|"none", "weight_bits": 4|8, "group_size": int|None}
    embedding: dict | None   # {"weight_bits": 8, "group_size": int|None}
    dtype: str = "float32"   # "float32" | "float16": precision of what is not quantized

    @property
    def features(self) -> set[str]:
        """What a compiler must support beyond float32 + affine integer weights: {"float16", "palettize"}."""
        out = {self.dtype} - {"float32"}
        for spec in (self.linear, self.embedding):
            if spec and spec.get("scheme", "affine") != "affine":
                out.add(spec["scheme"])
        return out

    @property
    def is_float(self) -> bool:
        return self.linear is None and self.embedding is None

    def to_dict(self) -> dict:
        return asdict(self)


def parse_recipe(raw: dict, source: str) -> QuantRecipe:
    def bad(msg: str) -> EdgeSLMError:
        return EdgeSLMError(f"invalid quantization recipe: {msg}", path=source,
                            fix="see sdk/quant/recipes/int4.json for the format")

    unknown = set(raw) - {"name", "description", "linear", "embedding", "dtype"}
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
        if spec.get("scheme", "affine") not in SCHEMES:
            raise bad(f"'{part}.scheme' must be one of {', '.join(SCHEMES)}")
        if spec.get("scheme") == "palettize" and group is not None:
            raise bad(f"'{part}.group_size' must be null for 'palettize' (one lookup table per tensor)")
    if raw.get("dtype", "float32") not in DTYPES:
        raise bad(f"'dtype' must be one of {', '.join(DTYPES)}")
    return QuantRecipe(name=raw["name"], description=raw.get("description", ""),
                       linear=raw.get("linear"), embedding=raw.get("embedding"), dtype=raw.get("dtype", "float32"))


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
    """A built-in recipe by name (fp32, fp16, int8, int4, pal4) or a JSON file of the same format."""
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
