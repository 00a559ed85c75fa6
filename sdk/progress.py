"""Rich progress for long steps (ingest, quantize, lower); silent with --quiet/--json."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

STDERR = Console(stderr=True)


@contextmanager
def steps(title: str, names: list[str], enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """Yield `step(name)`: marks the previous step done and starts `name`. Durations end up in `.timings`."""
    timings: dict[str, float] = {}
    state = {"name": None, "t0": 0.0}

    def close_current() -> None:
        if state["name"] is not None:
            timings[state["name"]] = timings.get(state["name"], 0.0) + time.perf_counter() - state["t0"]

    if not enabled or not sys.stderr:
        def step(name: str) -> None:
            close_current()
            state.update(name=name, t0=time.perf_counter())
        step.timings = timings  # type: ignore[attr-defined]
        yield step
        close_current()
        return

    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=STDERR, transient=False) as bar:
        task = bar.add_task(title, total=len(names))

        def step(name: str) -> None:  # noqa: F811
            if state["name"] is not None:
                bar.advance(task)
            close_current()
            state.update(name=name, t0=time.perf_counter())
            bar.update(task, description=f"{title}: {name}")

        step.timings = timings  # type: ignore[attr-defined]
        yield step
        close_current()
        bar.update(task, completed=len(names), description=f"{title}: done")
