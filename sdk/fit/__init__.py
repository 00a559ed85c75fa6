"""edgeslm.fit: the best bundle for a device budget (`edgeslm fit`, `edgeslm.fit(...)`).

Pipeline: shape.py (checkpoint shapes, no weights loaded) -> candidates.py (backend x recipe the target
supports) -> estimate.py (memory per candidate, before exporting) -> search.py (skip over budget, export,
measure on a farm device, judge with bounds.py, pick the best, write OUT) -> report.py (fit.json, fit.md,
the rich table).
"""
from edgeslm.fit.search import RULE, NothingFits, Settings, fit

__all__ = ["NothingFits", "RULE", "Settings", "fit"]


class _CallableModule(__import__("types").ModuleType):
    """`edgeslm.fit(...)` calls fit(): the package and the API function share the name."""

    def __call__(self, *args, **kwargs):
        return fit(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
