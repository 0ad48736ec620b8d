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


def capture_stem(name: str) -> str:
    """A capture file's name without its compression and text suffixes (``day.txt.gz`` ->
    ``day``): the stem outputs made from it are named after."""
    for suffix in (".gz", ".zst", ".zstd", ".txt", ".log", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name


def head_frames(path: str | os.PathLike[str], lines: int = 64) -> list[bytes]:
    """The frames (text after the receive stamp) of the first ``lines`` lines of a capture file,
    plain, gzip or zstd (read through the binding, which knows every capture encoding)."""
    from twinfeed import _features
    from twinfeed.research.features import is_url

    if is_url(path):
        return _url_head_frames(str(path), lines)
    frames = []
    for number in range(1, lines + 1):
        line = _features.capture_line(path, number)
        if line is None:
            break
        _, _, frame = line.partition(b" ")
        frames.append(frame)
    return frames


def _url_head_frames(url: str, lines: int) -> list[bytes]:
    """:func:`head_frames` of a capture behind an fsspec URL: its first MiB, plain or gzip
    (zstd when the ``zstandard`` module is there; otherwise no frames)."""
    import zlib

    from twinfeed.research.features import open_url

    _, handle, _ = open_url(url)
    with handle:
        head = handle.read(1 << 20)
    if head[:2] == b"\x1f\x8b":
        data = zlib.decompressobj(wbits=47).decompress(head)
    elif head[:4] == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard
        except ImportError:
            return []
        data = zstandard.ZstdDecompressor().decompressobj().decompress(head)
    else:
        data = head
    complete = data.split(b"\n")[:-1][:lines]
    return [line.partition(b" ")[2] for line in complete if line]
