"""Input specs for plain graphs: "tokens:int64[1,128],mask:float32[1,128]" -> names, dtypes, shapes.

parse_spec -> [InputSpec]; make_inputs -> example tensors (ints: ones, floats: seeded normal, bools: True);
describe -> the JSON form recorded in a bundle's manifest; check_inputs -> one line when inputs do not fit
the module's forward.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

import torch

from edgeslm.errors import EdgeSLMError

DTYPES = {"int64": torch.int64, "int32": torch.int32, "float32": torch.float32, "float16": torch.float16,
          "bool": torch.bool}
_ITEM = re.compile(r"^\s*([A-Za-z_]\w*)\s*:\s*(\w+)\s*\[([\d,\s]*)\]\s*$")
SPEC_FIX = "write inputs as name:dtype[d0,d1,...], comma-separated, e.g. tokens:int64[1,128] " \
           f"(dtypes: {', '.join(DTYPES)})"


@dataclass
class InputSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]


def parse_spec(text: str) -> list[InputSpec]:
    items = re.split(r",(?![^\[]*\])", text.strip())     # commas outside [...]
    specs = []
    for item in items:
        m = _ITEM.match(item)
        if not m:
            raise EdgeSLMError(f"cannot read input spec '{item.strip()}'", fix=SPEC_FIX)
        name, dtype, dims = m.groups()
        if dtype not in DTYPES:
            raise EdgeSLMError(f"unknown dtype '{dtype}' in input spec '{item.strip()}'", fix=SPEC_FIX)
        shape = tuple(int(d) for d in dims.split(",") if d.strip())
        if any(d < 1 for d in shape):
            raise EdgeSLMError(f"dimensions must be >= 1 in input spec '{item.strip()}'", fix=SPEC_FIX)
        specs.append(InputSpec(name, dtype, shape))
    if len({s.name for s in specs}) != len(specs):
        raise EdgeSLMError(f"input names repeat in '{text}'", fix=SPEC_FIX)
    return specs


def make_inputs(specs: list[InputSpec], seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in specs:
        dtype = DTYPES[s.dtype]
        if dtype.is_floating_point:
            out.append(torch.randn(s.shape, generator=gen).to(dtype))
        elif dtype == torch.bool:
            out.append(torch.ones(s.shape, dtype=torch.bool))
        else:
            out.append(torch.ones(s.shape, dtype=dtype))      # valid token ids and attention masks alike
    return tuple(out)


def describe(tensors, names: list[str] | None = None) -> list[dict]:
    flat = [t for t in tensors]
    names = names or [f"output_{i}" for i in range(len(flat))]
    return [{"name": n, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
            for n, t in zip(names, flat)]


def input_names(model, n: int) -> list[str]:
    params = [p.name for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return params[:n] + [f"input_{i}" for i in range(len(params), n)]


def check_inputs(model, inputs: tuple, where=None) -> None:
    """The inputs must bind to forward's positional parameters."""
    try:
        inspect.signature(model.forward).bind(*inputs)
    except TypeError as err:
        raise EdgeSLMError(f"{len(inputs)} example input(s) do not fit {type(model).__name__}.forward ({err})",
                           path=where, fix="give one input spec per forward argument, in order") from None
