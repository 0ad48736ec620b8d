"""Record codes come from the binding, and the records' feed-status state machine exists once
(the backtester and the live monitor both fold :func:`twinfeed.feed_status.next_status`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import twinfeed
from hypothesis import given, settings
from hypothesis import strategies as st
from twinfeed import _features
from twinfeed.feed_status import next_status, status_rows
from twinfeed.live.brain.monitor import FeedMonitor
from twinfeed.research.backtest import Backtest
from twinfeed.strategy import Context, FeedStatus, Strategy


def test_enums_are_the_binding_tables() -> None:
    codes = _features.record_codes()
    for table, enum in (
        ("kind", twinfeed.Kind),
        ("flag", twinfeed.Flag),
        ("gap_reason", twinfeed.GapReason),
        ("status_event", twinfeed.StatusEvent),
    ):
        assert {m.name.lower(): int(m) for m in enum} == dict(codes[table]), table  # type: ignore[attr-defined]
    assert dict(codes["kind"]) == twinfeed.KIND


def test_transitions() -> None:
    kind, event = twinfeed.Kind, twinfeed.StatusEvent
    assert next_status("healthy", kind.GAP, twinfeed.GapReason.SEQUENCE) == "degraded"
    assert next_status("degraded", kind.QUOTE, 0) == "degraded"  # the book is still broken
    assert next_status("degraded", kind.BOOK, 0) == "healthy"
    assert next_status("healthy", kind.STATUS, event.DISCONNECTED) == "stale"
    assert next_status("stale", kind.STATUS, event.CONNECTED) == "stale"
    assert next_status("stale", kind.QUOTE, 0) == "healthy"
    assert next_status("healthy", kind.TRADE, 0) == "healthy"


def _records(rows: list[tuple[int, int]]) -> np.ndarray[Any, Any]:
    records = np.zeros(len(rows), dtype=twinfeed.record_dtype())
    for index, (kind, flags) in enumerate(rows):
        records[index]["kind"] = kind
        records[index]["flags"] = flags
        records[index]["local_ns"] = index + 1
        records[index]["symbol_id"] = 0
    for name in ("bid_px", "ask_px", "mid", "bid_qty", "ask_qty"):
        records[name] = np.nan
    return records


class _Statuses(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[FeedStatus] = []

    def on_feed_status(self, ctx: Context, status: FeedStatus) -> None:
        self.seen.append(status)


ROW = st.sampled_from(
    [
        (int(twinfeed.Kind.GAP), int(twinfeed.GapReason.SEQUENCE)),
        (int(twinfeed.Kind.STATUS), int(twinfeed.StatusEvent.DISCONNECTED)),
        (int(twinfeed.Kind.STATUS), int(twinfeed.StatusEvent.CONNECTED)),
        (int(twinfeed.Kind.QUOTE), 0),
        (int(twinfeed.Kind.BOOK), 0),
        (int(twinfeed.Kind.TRADE), 0),
        (int(twinfeed.Kind.HEARTBEAT), 0),
    ]
)


@settings(max_examples=40, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=30), st.sampled_from(["rows", "batches"]))
def test_backtest_and_monitor_agree(rows: list[tuple[int, int]], mode: str) -> None:
    records = _records(rows)
    expected: list[FeedStatus] = []
    status: FeedStatus = "healthy"
    for kind, flags in rows:
        new = next_status(status, kind, flags)
        if new != status:
            expected.append(new)
        status = new
    # Folding only the rows status_rows names gives the same status.
    folded: FeedStatus = "healthy"
    for index in status_rows(records, "healthy"):
        folded = next_status(folded, *rows[index])
    assert folded == status
    strategy = _Statuses()
    Backtest(strategy, records, mode=mode).run()  # type: ignore[arg-type]
    assert strategy.seen == expected
    monitor = FeedMonitor()
    monitor.observe(records)
    monitor.assess(None)
    assert monitor.status == status
