"""The live feed: records from the ingest's shared-memory ring, as numpy batches.

``Feed.read()`` returns a read-only structured array with dtype ``twinfeed.record_dtype()``,
made by the binding over one copy of the records out of the ring (no per-field decoding).

Lost records are never silent. The ingest never waits for the reader; if the reader falls more
than the ring's capacity behind, the oldest unread records are overwritten. Then:

- ``feed.overruns`` grows by the exact number of records lost, ``feed.overrun_events`` by one,
  and ``feed.last_lost`` holds the loss found by the latest read (0 if none);
- the batch returned starts right after the hole (a batch never spans one), so
  ``read_batch()`` returns ``FeedBatch(records, lost)``: ``lost`` records are missing
  immediately before ``records[0]``;
- with ``on_overrun="raise"``, ``read()`` raises :class:`FeedOverrun` instead of returning that
  batch; the batch is kept and returned by the next ``read()``, so nothing else is lost.

A book-level gap (the venue's sequence broke, or the connection dropped) is a different thing:
it arrives as a record of kind ``gap`` and is counted in ``health().gaps_seen``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from twinfeed._features import RingError, RingReader

OverrunPolicy = Literal["count", "raise"]


class FeedOverrun(RingError):
    """The reader fell behind and ``lost`` records were overwritten before it read them."""

    def __init__(self, lost: int, ring: str) -> None:
        super().__init__(
            f"ring {ring}: {lost} records lost to overrun (the reader fell more than the "
            "ring's capacity behind the ingest)"
        )
        self.lost = lost


class FeedBatch(NamedTuple):
    """Records read, and how many were lost immediately before ``records[0]``."""

    records: np.ndarray[Any, Any]
    lost: int


@dataclass(frozen=True)
class FeedHealth:
    """A snapshot of the feed's health, for deciding between "quiet market" and "dead feed"."""

    #: Seconds since the ``local_ns`` of the last heartbeat record read (None: none read yet).
    heartbeat_age_s: float | None
    #: Seconds since the ingest's last heartbeat, from the ring header (independent of how far
    #: this reader has read; None if the ingest has not written one).
    producer_heartbeat_age_s: float | None
    #: Seconds since the ``local_ns`` of the last record read.
    last_record_age_s: float | None
    #: Gap records seen (book continuity lost).
    gaps_seen: int
    #: Records lost to ring overrun, and how many times that happened.
    overruns: int
    overrun_events: int
    records_read: int
    #: Records published but not read yet.
    backlog: int
    producer_pid: int
    #: The ingest process exists (not a zombie).
    producer_alive: bool
    #: The ingest closed the ring cleanly (it will publish nothing more).
    producer_closed: bool
    #: The ingest's websocket is connected (header counter).
    connected: bool
    #: Every counter of the ring header (see ``twinfeed_ring::Counter``).
    counters: dict[str, int] = field(default_factory=dict)

    def is_stale(self, max_heartbeat_age_s: float) -> bool:
        """True if the feed cannot be trusted: producer gone, or no fresh heartbeat."""
        if not self.producer_alive:
            return True
        age = self.producer_heartbeat_age_s
        return age is None or age > max_heartbeat_age_s


class Feed:
    """Reader of one live ring. Not thread-safe: one reader per thread (each has its cursor)."""

    def __init__(self, reader: RingReader, on_overrun: OverrunPolicy = "count") -> None:
        if on_overrun not in ("count", "raise"):
            raise ValueError(f'on_overrun must be "count" or "raise", got {on_overrun!r}')
        self._reader = reader
        self._on_overrun = on_overrun
        self._pending: np.ndarray[Any, Any] | None = None
        self.overruns = 0
        self.overrun_events = 0
        self.last_lost = 0

    @classmethod
    def open(
        cls,
        name: str,
        expected_fingerprint: str | None = None,
        *,
        start: Literal["oldest", "latest"] = "oldest",
        on_overrun: OverrunPolicy = "count",
        wait: float = 0.0,
        spin_us: float = 50.0,
    ) -> Feed:
        """Opens ring ``name`` (``/dev/shm/twinfeed-<name>`` or an absolute path).

        ``expected_fingerprint`` refuses a ring whose records come from another feature config
        (RingError naming both fingerprints). ``start="oldest"`` returns every record still in
        the ring; ``"latest"`` only new ones. ``wait`` retries for that many seconds while the
        ring does not exist yet (the ingest is starting). A waiting ``read`` polls for
        ``spin_us`` microseconds before it sleeps until the ingest wakes it (tens of
        microseconds on a VM); a latency-critical reader raises it (say 5000) and pays with a
        busy core while the market is quiet.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                reader = RingReader.open(name, expected_fingerprint, start, spin_us)
                return cls(reader, on_overrun)
            except RingError as error:
                if "no such ring" not in str(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.02)

    # -- reading ---------------------------------------------------------------------------

    def read_batch(self, max_rows: int = 65536, timeout: float = 1.0) -> FeedBatch:
        """Up to ``max_rows`` records (waiting up to ``timeout`` s for the first), with the
        number lost right before them. Empty on timeout or once a closed ring is drained."""
        if self._pending is not None:
            records, self._pending = self._pending, None
            return FeedBatch(records, 0)
        return FeedBatch(*self._take(max_rows, timeout))

    def read(self, max_rows: int = 65536, timeout: float = 1.0) -> np.ndarray[Any, Any]:
        """Up to ``max_rows`` records as a read-only structured array (see the module doc for
        how lost records surface)."""
        if self._pending is not None:
            records, self._pending = self._pending, None
            return records
        records, lost = self._take(max_rows, timeout)
        if lost and self._on_overrun == "raise":
            self._pending = records
            raise FeedOverrun(lost, self.path)
        return records

    def _take(self, max_rows: int, timeout: float) -> tuple[np.ndarray[Any, Any], int]:
        # The latency-critical path: one binding call, one numpy view, no per-record Python.
        records, lost = self._reader.read(max_rows, timeout)
        self.last_lost = lost
        if lost:
            self.overruns += lost
            self.overrun_events += 1
        return records, lost

    def __iter__(self) -> Iterator[np.ndarray[Any, Any]]:
        """Non-empty batches until the ingest closes the ring and it is drained, or the
        ingest dies (then :class:`RingError`)."""
        while True:
            batch = self.read()
            if len(batch):
                yield batch
            elif self.closed:
                return
            elif not self._reader.writer_alive:
                raise RingError(
                    f"ring {self.path}: the ingest (pid {self.writer_pid}) died without closing it"
                )

    # -- state -----------------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """Ring sequence number of the next record this reader returns (lost ones counted)."""
        return int(self._reader.cursor)

    @property
    def records_read(self) -> int:
        """Records returned so far."""
        return int(self._reader.records_read)

    @property
    def gaps_seen(self) -> int:
        """Gap records among them."""
        return int(self._reader.gaps_seen)

    @property
    def closed(self) -> bool:
        """The ingest closed the ring and every record has been read."""
        return self._pending is None and self._reader.writer_closed and self._reader.backlog == 0

    @property
    def fingerprint(self) -> str:
        return self._reader.fingerprint

    @property
    def writer_pid(self) -> int:
        return self._reader.writer_pid

    @property
    def path(self) -> str:
        return self._reader.path

    @property
    def capacity(self) -> int:
        return self._reader.capacity

    @property
    def backlog(self) -> int:
        return self._reader.backlog

    def header(self) -> dict[str, Any]:
        """The ring header's fields and this reader's cursor."""
        return self._reader.header()

    def counters(self) -> dict[str, int]:
        """The ingest's counters from the ring header."""
        return self._reader.counters()

    def health(self) -> FeedHealth:
        now = time.time_ns()
        counters = self._reader.counters()

        def age(ns: int | None) -> float | None:
            return None if not ns else (now - ns) / 1e9

        pid = self._reader.writer_pid
        return FeedHealth(
            heartbeat_age_s=age(self._reader.last_heartbeat_ns),
            producer_heartbeat_age_s=age(counters.get("last_heartbeat_ns")),
            last_record_age_s=age(self._reader.last_record_ns),
            gaps_seen=self.gaps_seen,
            overruns=self.overruns,
            overrun_events=self.overrun_events,
            records_read=self.records_read,
            backlog=self._reader.backlog,
            producer_pid=pid,
            producer_alive=process_alive(pid),
            producer_closed=self._reader.writer_closed,
            connected=bool(counters.get("connected", 0)),
            counters=counters,
        )

    def __repr__(self) -> str:
        return f"Feed({self._reader!r}, overruns={self.overruns})"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a killed child nobody waited for)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
