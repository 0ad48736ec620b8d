"""The live brain with real processes on loopback: twinfeed-venue, the paper venue,
twinfeed-ingest and the LiveTrader on the bundled synthetic capture.

(That paper fills agree with the matching engine called directly is covered by the paper
venue's own tests.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
import twinfeed
from twinfeed.live.brain import LiveConfig, LiveTrader, RiskConfig, RiskManager, TradeDB
from twinfeed.live.brain.entry import PortEntry
from twinfeed.live.brain.session import LiveSettings, SessionResult, run_session
from twinfeed.live.feed import FeedBatch, FeedHealth
from twinfeed.orders import OrderUpdate
from twinfeed.records import KIND
from twinfeed.strategy import Context, Strategy
from twinfeed.venues.binance.adapter import BinanceVenue

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> SessionResult:
    work = tmp_path_factory.mktemp("live")
    settings = LiveSettings(
        speed=20,
        duration_s=40,
        db=str(work / "trade.duckdb"),
        # A tight order rate: some of the market maker's quotes are refused by risk.
        risk=RiskConfig(orders_per_second=5, burst=5),
        live=LiveConfig(drain_timeout_s=5.0),
    )
    return run_session(settings, work_dir=work / "session")


def test_orders_and_fills_land_in_the_db(session: SessionResult) -> None:
    summary = session.summary
    assert summary.status == "completed"
    con = duckdb.connect(str(session.db_path), read_only=True)
    (run_id, status, fingerprint, build) = con.execute(
        "SELECT run_id, status, fingerprint, build FROM runs"
    ).fetchall()[0]
    assert run_id == summary.run_id and status == "completed"
    assert fingerprint == twinfeed.FeatureConfig.default().fingerprint
    assert '"profile"' in build
    orders = con.execute("SELECT count(*) FROM orders").fetchall()[0][0]
    fills = con.execute("SELECT count(*), sum(qty) FROM fills").fetchall()[0]
    assert orders == summary.orders > 0
    assert fills[0] == summary.fills > 0
    # Each fill belongs to an order whose filled quantity it adds up to.
    mismatched = con.execute(
        "SELECT o.client_id FROM orders o LEFT JOIN (SELECT client_id, sum(qty) AS q FROM "
        "fills GROUP BY 1) f USING (client_id) WHERE abs(coalesce(f.q, 0) - o.filled_qty) > 1e-9"
    ).fetchall()
    assert mismatched == []
    assert (
        con.execute("SELECT count(*) FROM orders WHERE state IN ('new', 'acked')").fetchall()[0][0]
        == 0
    )


def test_the_session_leaves_no_ring_behind(session: SessionResult) -> None:
    # Its rings are named live-<this process>-<n>; each holds the ring's memory in /dev/shm.
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm on this machine")
    assert session.summary.status == "completed"
    assert sorted(shm.glob(f"twinfeed-live-{os.getpid()}-*")) == []


def test_db_positions_equal_the_venue(session: SessionResult) -> None:
    summary = session.summary
    con = duckdb.connect(str(session.db_path), read_only=True)
    last = con.execute(
        "SELECT symbol, qty FROM position_snapshots ORDER BY ts_ns DESC, wall_ns DESC LIMIT 1"
    ).fetchall()
    signed = con.execute(
        "SELECT symbol, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) FROM fills GROUP BY 1"
    ).fetchall()
    # summary.venue_positions is the paper venue's /fapi/v2/positionRisk at the end.
    venue = summary.venue_positions
    assert summary.reconciled is True
    for symbol, qty in last + signed:
        assert qty == pytest.approx(venue[symbol], abs=1e-9)


def test_risk_rejections_are_recorded_with_reasons(session: SessionResult) -> None:
    con = duckdb.connect(str(session.db_path), read_only=True)
    rows = con.execute('SELECT client_id, "check", reason FROM risk_events').fetchall()
    assert rows and session.summary.risk_rejections == len(rows)
    assert {check for _, check, _ in rows} == {"rate"}
    assert all("order rate above 5/s" in reason for _, _, reason in rows)
    rejected = con.execute(
        "SELECT count(*) FROM orders WHERE state = 'rejected' AND reason LIKE 'risk: %'"
    ).fetchall()[0][0]
    assert rejected == len(rows)


class _OneFeed:
    fingerprint = twinfeed.FeatureConfig.default().fingerprint

    def __init__(self) -> None:
        records = np.zeros(1, dtype=twinfeed.record_dtype())
        records["kind"] = KIND["quote"]
        records["local_ns"] = 1
        records["bid_px"], records["ask_px"], records["mid"] = 61800.0, 61800.1, 61800.05
        self.batches = [records]

    def read_batch(self, max_rows: int = 0, timeout: float = 0.0) -> FeedBatch:
        if self.batches:
            return FeedBatch(self.batches.pop(), 0)
        return FeedBatch(np.zeros(0, dtype=twinfeed.record_dtype()), 0)

    closed = False
    records_read = 1

    def health(self) -> FeedHealth:
        return FeedHealth(0.01, 0.01, 0.01, 0, 0, 0, 1, 0, 1, True, False, True)


class _OneOrder(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[OrderUpdate] = []

    def on_record(self, ctx: Context, record: Any) -> None:
        ctx.submit("buy", 0.001, 61700.0, client_id="sig1")

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        self.updates.append(update)


def test_bad_signature_surfaces_as_rejected_order(tmp_path: Path) -> None:
    from twinfeed.live.paper_venue import PaperVenue
    from twinfeed.live.venue import BUNDLED_CAPTURE, start_venue
    from twinfeed.venues.binance.rest import OrderGateway

    with start_venue(BUNDLED_CAPTURE, speed="max") as market:
        paper = PaperVenue.start(BUNDLED_CAPTURE, market.status, keys={"k" * 16: "s" * 32})
        try:
            entry = PortEntry(
                BinanceVenue(OrderGateway(paper.url, "k" * 16, "wrong"), stream=False)
            )
            strategy = _OneOrder()
            db = TradeDB(tmp_path / "t.duckdb")
            trader = LiveTrader(
                LiveConfig(drain_timeout_s=0.1),
                strategy,
                entry,
                _OneFeed(),  # type: ignore[arg-type]
                db,
                RiskManager(RiskConfig(price_band_bps=1000)),
            )
            trader.start()
            trader.step()
            trader.step()
            trader.finish()
            db.close()
        finally:
            paper.stop()
    rejected = [u for u in strategy.updates if u.state == "rejected"]
    assert len(rejected) == 1 and "-1022" in rejected[0].reason
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    assert con.execute("SELECT state, reason FROM orders").fetchall()[0][0] == "rejected"
