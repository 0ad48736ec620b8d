"""Output files appear complete or not at all.

Every file twinfeed writes for a reader to pick up later (feature Parquet, reports, plots,
artifacts, JSON) is written under a temporary name in the same folder and renamed over the
final name only once it is complete (``os.replace``: atomic within one file system). On a
failure, KeyboardInterrupt included, the temporary is removed and the final name keeps what it
held before: a failed or interrupted run never leaves a readable 0-row or partial file that
looks like a result.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "leftover_temporaries", "write_bytes", "write_text"]


def temporary_name(final: Path) -> Path:
    """``.<stem>.<random>.tmp<suffix>`` beside ``final`` (the suffix kept, so writers that pick
    a format from it, such as matplotlib, still do)."""
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex[:12]}.tmp{final.suffix}")


def leftover_temporaries(final: Path) -> list[Path]:
    """Temporaries of ``final`` (:func:`temporary_name`) that a writer killed before its
    rename left beside it."""
    if not final.parent.is_dir():
        return []
    pattern = f".{final.stem}.*.tmp{final.suffix}"
    return [p for p in final.parent.glob(pattern) if p.is_file()]


@contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``final`` for the caller to write; renames it to
    ``final`` when the block ends normally, removes it when the block raises (anything,
    KeyboardInterrupt included). Creates the folder if needed."""
    target = Path(final)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(final: str | os.PathLike[str], text: str) -> None:
    """``Path(final).write_text(text)``, atomically (see the module docstring)."""
    with atomic_path(final) as temporary:
        temporary.write_text(text)


def write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """``Path(final).write_bytes(data)``, atomically."""
    with atomic_path(final) as temporary:
        temporary.write_bytes(data)
