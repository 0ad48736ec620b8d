"""Removes what dead sessions left behind: their rings in /dev/shm and their temporary folders.

A ``kill -9`` of ``twinfeed live`` skips every ``finally``: the ring of its ingest (13 MB of
/dev/shm by default) and its temporary folders stay. Each of them carries the pid of the
Python process that made it (``twinfeed-live-<pid>-...`` rings and folders,
``twinfeed-venue-<pid>-...`` folders, ``twinfeed-ingest-<pid>-...`` config files), so the next
session removes those whose process is gone. A reused pid only delays the cleanup.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from twinfeed.live.feed import process_alive

__all__ = ["clean_dead_leftovers", "tagged"]

_TAGGED = re.compile(r"^twinfeed-(?:live|venue|ingest)-(\d+)-")


def tagged(kind: str, pid: int) -> str:
    """The name prefix of a leftover-prone ``kind`` (live, venue, ingest) of process ``pid``."""
    return f"twinfeed-{kind}-{pid}-"


def clean_dead_leftovers(shm: str | Path = "/dev/shm", tmp: str | Path | None = None) -> list[Path]:
    """Deletes rings and temporary folders/files of dead processes; returns what it removed."""
    removed: list[Path] = []
    for folder in (Path(shm), Path(tmp or tempfile.gettempdir())):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _TAGGED.match(path.name)
            if match is None or process_alive(int(match.group(1))):
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                continue
            except OSError:
                continue  # not ours to remove (another user's): leave it
            removed.append(path)
    return removed
