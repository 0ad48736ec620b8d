"""Shared CLI helpers: console, config loading, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from twinfeed import FeatureConfig, TwinfeedError

console = Console(stderr=False)


def load_config(path: Path | None) -> FeatureConfig:
    """The config at ``path``, or the default; errors become click errors naming the file."""
    if path is None:
        return FeatureConfig.default()
    try:
        return FeatureConfig.from_toml(str(path))
    except TwinfeedError as error:
        raise click.ClickException(str(error)) from error


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A byte-progress bar; yields ``advance(done, total)``. Quiet when not on a terminal."""
    with Progress(
        f"[bold]{label}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance
