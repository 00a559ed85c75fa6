"""`edgeslm package BUNDLE --<platform> DIR`: turn a bundle into a ready app-side package, one module per
platform (ios.py; an android.py adds `--android` the same way). PLATFORMS maps the flag to the function."""
from __future__ import annotations

from edgeslm.package.ios import package_ios

PLATFORMS = {"ios": package_ios}   # flag name -> fn(bundle_path, out_dir, *, force) -> dict (the report)

__all__ = ["PLATFORMS", "package_ios"]
