"""Capture files on the Python side: listing a live capture folder in writing order."""

from __future__ import annotations

import re
from pathlib import Path

_CAPTURE_NAME = re.compile(r"^capture-(\d{6,})\.txt(\.zst)?$")


def capture_files(folder: str | Path) -> list[Path]:
    """The ``capture-NNNNNN.txt`` (or zstd ``.txt.zst``) files of a live capture folder, oldest
    first."""
    files = [
        (int(m.group(1)), p)
        for p in Path(folder).iterdir()
        if (m := _CAPTURE_NAME.match(p.name)) is not None
    ]
    return [p for _, p in sorted(files)]
