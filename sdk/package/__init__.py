"""`edgeslm package BUNDLE --<platform> DIR`: turn a bundle into a ready app-side package, one module per
platform (ios.py, android.py). PLATFORMS maps the flag to the function."""
from __future__ import annotations

from edgeslm.package.android import package_android
from edgeslm.package.ios import package_ios

PLATFORMS = {"ios": package_ios, "android": package_android}   # flag name -> fn(bundle_path, out_dir, *, force) -> dict (the report)

__all__ = ["PLATFORMS", "package_android", "package_ios"]
