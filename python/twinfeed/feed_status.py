"""The feed-status state machine of the records, once, for the backtester and the live monitor.

What the records say about the feed (the live brain adds what only a live reader knows, the
ingest's heartbeats, in :class:`twinfeed.live.brain.monitor.FeedMonitor`):

- a ``gap`` record: ``degraded`` (the book lost continuity) until the next ``book`` record;
- a ``status`` record with :attr:`StatusEvent.DISCONNECTED`: ``stale`` until the next
  ``quote`` or ``book`` record;
- nothing else changes the status.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twinfeed.records import Kind, StatusEvent
from twinfeed.strategy import FeedStatus

__all__ = ["may_change", "next_status", "special_rows", "status_rows"]

_GAP = int(Kind.GAP)
_STATUS = int(Kind.STATUS)
_QUOTE = int(Kind.QUOTE)
_BOOK = int(Kind.BOOK)
_DISCONNECTED = int(StatusEvent.DISCONNECTED)


def next_status(current: FeedStatus, kind: int, flags: int) -> FeedStatus:
    """The status after a record of ``kind`` with ``flags`` (see the module docstring)."""
    if kind == _GAP:
        return "degraded"
    if kind == _STATUS:
        return "stale" if flags == _DISCONNECTED else current
    if (current == "degraded" and kind == _BOOK) or (
        current == "stale" and (kind in (_QUOTE, _BOOK))
    ):
        return "healthy"
    return current


def special_rows(records: np.ndarray[Any, Any]) -> list[int]:
    """Indices of the gap and status rows of ``records`` (the rows that can start a change)."""
    kinds = records["kind"]
    rows: list[int] = np.flatnonzero((kinds == _GAP) | (kinds == _STATUS)).tolist()
    return rows


def status_rows(records: np.ndarray[Any, Any], current: FeedStatus = "healthy") -> list[int]:
    """Indices of the rows of ``records`` that may change the status from ``current``: gap and
    status rows, and the quote/book rows from the first row at which the status may not be
    healthy (from the start while ``current`` is not; else from the first gap or status row,
    so a gap healed by a book in the same batch is seen healed). Every other row is a no-op."""
    kinds = records["kind"]
    mask = (kinds == _GAP) | (kinds == _STATUS)
    if current != "healthy":
        first = 0
    else:
        special = np.flatnonzero(mask)
        if not len(special):
            return []
        first = int(special[0])
    tail = kinds[first:]
    mask[first:] |= (tail == _QUOTE) | (tail == _BOOK)
    rows: list[int] = np.flatnonzero(mask).tolist()
    return rows


def may_change(current: FeedStatus, kind: int) -> bool:
    """True if a record of ``kind`` may change the status from ``current`` (the per-row
    test of :func:`status_rows`)."""
    return kind in (_GAP, _STATUS) or current != "healthy"
