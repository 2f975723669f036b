"""Progress bars for long work (rich), kept at the edge of the program."""

import contextlib
import sys

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    def __init__(self, unit: str = ""):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?/s" if speed is None else f"{speed:,.0f}{self.unit}/s")


@contextlib.contextmanager
def progress_bar(description: str, total: float, unit: str = ""):
    """Yields `advance(done)` that sets the absolute progress; shows rate and ETA."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(f" {unit}" if unit else ""),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False, disable=not sys.stderr.isatty(), console=None) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


@contextlib.contextmanager
def step_bar(description: str, total: int):
    """Yields `step(name)` that advances the bar by one named step (the analysis steps)."""
    with progress_bar(description, total=total, unit=" steps") as advance:
        done = [0]

        def step(name: str) -> None:
            done[0] += 1
            advance(done[0])

        yield step
