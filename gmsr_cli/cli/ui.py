"""What the commands show on the terminal: progress bars and warnings on stderr, tables on stdout."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def stderr_console() -> Console:
    return Console(stderr=True)


def progress_bars(quiet: bool) -> Progress:
    """A rich Progress on stderr, shown only on a terminal and without --quiet."""
    console = stderr_console()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=quiet or not sys.stderr.isatty(),
    )


@contextmanager
def tile_progress(quiet: bool, description: str = "tiles") -> Iterator[Callable[[int, int], None]]:
    """A progress(done, total) callback that drives one bar of tiles."""
    with progress_bars(quiet) as bars:
        task = bars.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bars.update(task, completed=done, total=total)

        yield update


def warn(message: str) -> None:
    """One warning line on stderr."""
    click.echo(f"Warning: {message}", err=True)
