"""Capture files on the Python side: listing a live capture folder in writing order."""

from __future__ import annotations

import os
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


def head_frames(path: str | os.PathLike[str], lines: int = 64) -> list[bytes]:
    """The frames (text after the receive stamp) of the first ``lines`` lines of a capture file,
    plain, gzip or zstd (read through the binding, which knows every capture encoding)."""
    from twinfeed import _features

    frames = []
    for number in range(1, lines + 1):
        line = _features.capture_line(path, number)
        if line is None:
            break
        _, _, frame = line.partition(b" ")
        frames.append(frame)
    return frames
