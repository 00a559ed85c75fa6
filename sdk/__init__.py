"""edgeslm: export small language models to edge devices and measure them."""
__version__ = "0.1.0"
