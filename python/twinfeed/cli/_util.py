"""Shared CLI helpers: console, config loading, progress bars."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def output_path(path: Path | None, *, option: str = "--out", folder: bool = False) -> Path | None:
    """``path`` checked as an output the user named: its parent folder must exist (a typo in
    a folder name is an error, not a new tree of folders), and an existing ``path`` must be a
    file (or, with ``folder``, a folder)."""
    if path is None:
        return None
    parent = path.parent
    if not parent.is_dir():
        raise click.ClickException(
            f"{option} {path}: folder {parent} does not exist; create it first "
            f"(mkdir -p {parent}) or give another path"
        )
    if folder and path.exists() and not path.is_dir():
        raise click.ClickException(f"{option} {path}: is a file; give a folder")
    if not folder and path.is_dir():
        raise click.ClickException(f"{option} {path}: is a folder; give a file name")
    return path


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """A JSON object given inline or as ``@file.json``; errors name the option and the file."""
    if text is None:
        return None
    origin = "the value"
    if text.startswith("@"):
        path = Path(text[1:])
        origin = str(path)
        try:
            text = path.read_text()
        except OSError as error:
            reason = error.strerror or str(error)
            raise click.ClickException(
                f"{option} @{path}: cannot read {path} ({reason}); give an existing JSON file "
                "or inline JSON"
            ) from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.ClickException(
            f"{option}: {origin} is not JSON: {error.msg} at line {error.lineno} column "
            f"{error.colno}; expected a JSON object such as '{{\"order_qty\": 0.01}}'"
        ) from error
    if not isinstance(value, dict):
        raise click.ClickException(
            f"{option}: {origin} must be a JSON object ({{...}}), got {type(value).__name__}"
        )
    return value


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
