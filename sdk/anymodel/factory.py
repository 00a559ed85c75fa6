"""`path/to/file.py:factory` -> nn.Module, for `edgeslm export file.py:factory`.

Steps: split at the last ':' -> the file must exist and end in .py -> import it by path under a private
module name (its folder is on sys.path only during the import, for sibling imports) -> getattr factory ->
call it with no arguments -> the result must be a torch.nn.Module. Every failure is one EdgeSLMError
naming the file and, for errors raised by the user's code, the line that raised.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path

from edgeslm.errors import EdgeSLMError

FORM_FIX = "write it as path/to/file.py:factory, where factory() returns the torch.nn.Module"


def is_factory_spec(text: str) -> bool:
    head, sep, tail = str(text).rpartition(":")
    return bool(sep) and head.endswith(".py") and tail.isidentifier()


def _raised_at(err: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
    msg = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return msg + (f" (line {frames[-1].lineno}: {(frames[-1].line or '').strip()})" if frames else "")


def load_factory(spec: str):
    from torch import nn

    head, _, name = str(spec).rpartition(":")
    path = Path(head).resolve()
    if not is_factory_spec(spec):
        raise EdgeSLMError(f"cannot read model factory '{spec}'", fix=FORM_FIX)
    if not path.is_file():
        raise EdgeSLMError("no such Python file", path=path, fix=FORM_FIX)
    module_name = "edgeslm_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    mod_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[module_name] = module            # dataclasses and torch.export look classes up by module
    sys.path.insert(0, str(path.parent))
    try:
        mod_spec.loader.exec_module(module)
    except Exception as err:  # the user's module: any error type
        sys.modules.pop(module_name, None)
        raise EdgeSLMError(f"importing the file raised {_raised_at(err, path)}", path=path,
                           fix="run `python FILE` to see the whole traceback, fix it and retry") from None
    finally:
        sys.path.remove(str(path.parent))
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        raise EdgeSLMError(f"no callable '{name}' in the file", path=path,
                           fix=f"name one of: {', '.join(defined) or '(none defined)'}")
    try:
        model = factory()
    except Exception as err:  # the user's factory: any error type
        raise EdgeSLMError(f"{name}() raised {_raised_at(err, path)}", path=path,
                           fix=f"make {name}() callable without arguments and return the model") from None
    if not isinstance(model, nn.Module):
        raise EdgeSLMError(f"{name}() returned {type(model).__name__}, not a torch.nn.Module", path=path,
                           fix=f"return the model instance from {name}()")
    return model
