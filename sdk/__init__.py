"""edgeslm: export small language models to edge devices and measure them."""
__version__ = "0.1.0"


def __getattr__(name: str):
    """edgeslm.export(...) = edgeslm.api.export (checkpoint path or nn.Module); imported lazily."""
    if name == "export":
        from edgeslm.api import export
        return export
    if name == "fit":           # edgeslm.fit(...): the package edgeslm.fit is callable (= edgeslm.fit.fit)
        import importlib
        return importlib.import_module("edgeslm.fit")
    raise AttributeError(f"module 'edgeslm' has no attribute '{name}'")
