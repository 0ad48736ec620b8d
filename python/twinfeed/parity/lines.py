"""Finding the capture line behind a record (for divergence reports)."""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from twinfeed.parity.compare import CaptureLine, Locator

GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        head = probe.read(2)
    if head == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _count_lines(path: Path) -> int:
    with _open(path) as f:
        return sum(1 for _ in f)


def capture_locator(paths: Sequence[str | Path]) -> Locator:
    """Maps a record's ``line`` (1-based, counted across ``paths`` in order) to its text."""
    files = [Path(p) for p in paths]
    counts: dict[Path, int] = {}

    def locate(line: int) -> CaptureLine | None:
        before = 0
        for path in files:
            if path not in counts:
                counts[path] = _count_lines(path)
            if line <= before + counts[path]:
                number = line - before
                with _open(path) as f:
                    raw = next(itertools.islice(f, number - 1, None), b"")
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if len(text) > 400:
                    text = text[:400] + f"... ({len(text)} chars)"
                return CaptureLine(str(path), number, text)
            before += counts[path]
        return None

    return locate
