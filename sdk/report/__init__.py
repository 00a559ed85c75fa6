"""edgeslm.report: a farm run from the results store as HTML (inline SVG plots), Markdown, JSON or CSV,
and the comparison of two runs.

- data.py: store rows -> flat records (tolerates missing/extra metric fields, e.g. MCU results)
- plots.py: matplotlib -> inline SVG strings (no network, no files)
- render.py: html / md / json / csv renderers; write_report(store, run_id, fmt, out)
- compare.py: compare(store, run_a, run_b) -> regressions larger than the measured noise
"""
from __future__ import annotations

from edgeslm.report.render import FORMATS, render, write_report

__all__ = ["FORMATS", "render", "write_report"]
