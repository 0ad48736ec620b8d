"""Human times for terminal output: UTC ISO 8601 with microseconds.

Records and the trade DB keep integer nanoseconds since the Unix epoch; people read
``2024-08-08T09:36:51.123456Z``. Nanoseconds below the microsecond are truncated (floor), so a
printed time never lies about the order of two events more than a microsecond apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["utc_iso", "utc_iso_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_iso(ns: int | None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for integer nanoseconds since the epoch; ``-`` for None
    or 0 (no time: e.g. a spot quote before any exchange time was seen)."""
    if not ns:
        return "-"
    moment = _EPOCH + timedelta(microseconds=int(ns) // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_iso_ns(ns: int | None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffffffffZ``: :func:`utc_iso` with every nanosecond, for tables
    that compare times exactly (a parity divergence); ``-`` for None or 0."""
    if not ns:
        return "-"
    return f"{utc_iso(ns)[:-1]}{int(ns) % 1000:03d}Z"
