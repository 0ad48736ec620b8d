"""Feed monitoring: healthy, degraded or stale, from the records and the ring's health.

The :class:`FeedMonitor` is the one place that decides whether the feed can be trusted. It
combines what the records say (the backtester's state machine, :mod:`twinfeed.feed_status`)
with what only a live reader can know (:class:`FeedHealth`: the
ingest died, or its heartbeats stopped: silence is not a quiet market).

The runner writes every transition to ``feed_events`` and hands it to its feed policy part
(:class:`twinfeed.live.brain.runner.FeedPolicy`: on ``stale`` it cancels all working orders and
blocks orders that open risk until the feed is healthy again; the fault policy,
:class:`twinfeed.live.brain.faults.FaultPolicy`, unwinds, restarts the ingest, delays resuming).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinfeed.feed_status import next_status, status_rows
from twinfeed.live.feed import FeedHealth
from twinfeed.strategy import FeedStatus

__all__ = ["FeedMonitor", "FeedTransition"]


@dataclass(frozen=True)
class FeedTransition:
    """A change of feed status, and why."""

    previous: FeedStatus
    status: FeedStatus
    reason: str
    detail: dict[str, Any]


class FeedMonitor:
    """Feed status from records and :class:`FeedHealth` snapshots.

    Args:
        stale_after_s: No ingest heartbeat for this long (or the ingest process gone) = stale.
        degraded_after_s: No ingest heartbeat for this long = degraded (the ingest is late).
    """

    def __init__(self, stale_after_s: float = 2.0, degraded_after_s: float = 0.5) -> None:
        self.stale_after_s = stale_after_s
        self.degraded_after_s = degraded_after_s
        self.status: FeedStatus = "healthy"
        self._records_status: FeedStatus = "healthy"
        self._seen_records = False
        self._first_record_wall = 0.0

    def observe(self, records: np.ndarray[Any, Any]) -> None:
        """Updates the record-derived status from a batch (gap/status/quote/book rows)."""
        if not len(records):
            return
        if not self._seen_records:
            self._seen_records = True
            self._first_record_wall = time.monotonic()
        rows = status_rows(records, self._records_status)
        if not rows:
            return
        kinds, flags = records["kind"], records["flags"]
        status = self._records_status
        for row in rows:
            status = next_status(status, int(kinds[row]), int(flags[row]))
        self._records_status = status

    def assess(self, health: FeedHealth | None) -> FeedTransition | None:
        """The new status given the latest health snapshot; a transition if it changed."""
        status, reason, detail = self._records_status, "records", {}
        if health is not None and self._seen_records:
            age = health.producer_heartbeat_age_s
            detail = {
                "heartbeat_age_s": age,
                "producer_alive": health.producer_alive,
                "connected": health.connected,
                "gaps_seen": health.gaps_seen,
                "overruns": health.overruns,
            }
            if not health.producer_alive:
                status, reason = "stale", "ingest process gone"
            elif age is None:
                # Records can precede the ingest's first heartbeat: allow it a grace period.
                if time.monotonic() - self._first_record_wall > self.stale_after_s:
                    status, reason = "stale", "no ingest heartbeat yet"
            elif age > self.stale_after_s:
                status, reason = "stale", f"no ingest heartbeat for {age} s"
            elif status == "healthy" and age > self.degraded_after_s:
                status, reason = "degraded", f"ingest heartbeat {age:.2f} s old"
        if status == self.status:
            return None
        transition = FeedTransition(self.status, status, reason, detail)
        self.status = status
        return transition
