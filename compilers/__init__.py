"""Backends, one vertical slice each. Importing this package registers them in COMPILERS."""
from edgeslm.compilers.base import COMPILERS, Compiler, LowerResult, Unsupported, get_compiler, register  # noqa: F401
from edgeslm.compilers import executorch  # noqa: F401  (registers "executorch")
from edgeslm.compilers import micro  # noqa: F401,E402  (registers "micro")
from edgeslm.compilers import tvm  # noqa: F401  (registers "tvm")
from edgeslm.compilers import coreml  # noqa: F401,E402  (registers "coreml")
