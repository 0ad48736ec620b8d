"""Finding the capture line behind a record (for divergence reports)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from twinfeed._features import capture_line, capture_line_count
from twinfeed.parity.compare import CaptureLine, Locator


def capture_locator(paths: Sequence[str | Path]) -> Locator:
    """Maps a record's ``line`` (1-based, counted across ``paths`` in order) to its text. Files
    are read as the pipeline reads them (plain, gzip or zstd), so the numbers agree."""
    files = [Path(p) for p in paths]
    counts: dict[Path, int] = {}

    def locate(line: int) -> CaptureLine | None:
        before = 0
        for path in files:
            if path not in counts:
                counts[path] = capture_line_count(path)
            if line <= before + counts[path]:
                number = line - before
                raw = capture_line(path, number) or b""
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if len(text) > 400:
                    text = text[:400] + f"... ({len(text)} chars)"
                return CaptureLine(str(path), number, text)
            before += counts[path]
        return None

    return locate
