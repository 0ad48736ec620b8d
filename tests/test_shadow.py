"""``twinfeed live --shadow``: real processes on loopback (twinfeed-venue as the market-data
source, twinfeed-ingest, the brain); orders matched by the matching engine inside the brain on
that live data; no order venue exists at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from twinfeed.live.brain import LiveConfig
from twinfeed.live.brain.session import LiveSettings, SessionResult, run_session
from twinfeed.live.brain.shadow import ShadowEntry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shadow(tmp_path_factory: pytest.TempPathFactory) -> tuple[SessionResult, list[str]]:
    work = tmp_path_factory.mktemp("shadow")
    settings = LiveSettings(
        speed=20,
        duration_s=40,
        db=str(work / "trade.duckdb"),
        live=LiveConfig(drain_timeout_s=3.0),
        shadow=True,
    )
    said: list[str] = []
    with pytest.MonkeyPatch.context() as patch:

        def no_venue(*_args: Any, **_kwargs: Any) -> None:
            raise AssertionError("a shadow session must not start an order venue")

        patch.setattr("twinfeed.live.paper_venue.PaperVenue.start", no_venue)
        result = run_session(settings, work_dir=work / "session", on_status=said.append)
    return result, said


def test_shadow_session_trades_on_live_data_without_a_venue(
    shadow: tuple[SessionResult, list[str]],
) -> None:
    result, said = shadow
    summary = result.summary
    assert summary.status == "completed"
    assert summary.records > 0 and summary.orders > 0 and summary.fills > 0
    assert any(line.startswith("shadow:") for line in said)
    assert not any("paper order entry" in line for line in said)
    # The in-brain venue's positions are the brain's: reconciled.
    assert summary.reconciled is True
    con = duckdb.connect(str(result.db_path), read_only=True)
    signed = dict(
        con.execute(
            "SELECT symbol, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) FROM fills "
            "GROUP BY 1"
        ).fetchall()
    )
    for symbol, qty in signed.items():
        assert qty == pytest.approx(summary.venue_positions[symbol], abs=1e-9)
    # Fills carry the engine's queue model: the market maker's quotes fill as makers.
    liquidity = {row[0] for row in con.execute("SELECT liquidity FROM fills").fetchall()}
    assert "maker" in liquidity
    assert (
        con.execute("SELECT count(*) FROM orders WHERE state IN ('new', 'acked')").fetchall()[0][0]
        == 0
    )


def test_shadow_entry_reports_like_a_venue(tmp_path: Path) -> None:
    """Unit: fills and updates of the in-brain engine come back as execution reports, and a
    request waits for market data only as long as the latency says."""
    import numpy as np
    import twinfeed
    from twinfeed.orders import Order

    entry = ShadowEntry(("BTCUSDT",))
    records = np.zeros(2, dtype=twinfeed.record_dtype())
    for name in ("trade_px", "trade_qty"):
        records[name] = np.nan
    records["kind"] = twinfeed.Kind.QUOTE
    records["local_ns"] = [1, 2]
    records["bid_px"], records["bid_qty"] = 100.0, 1.0
    records["ask_px"], records["ask_qty"] = 100.1, 1.0
    entry.market_data(records[:1])
    ack = entry.send_order(Order("t", 0, "buy", 0.5, 100.1), "BTCUSDT")
    assert ack.state == "filled" and ack.cum_qty == 0.5
    reports = entry.poll_reports()
    (fill,) = [r for r in reports if r.trade_id is not None]
    assert (fill.last_qty, fill.last_price, fill.liquidity) == (0.5, 100.1, "taker")
    assert entry.venue_positions() == {"BTCUSDT": 0.5}
    rest = entry.send_order(Order("r", 0, "sell", 0.2, 100.5), "BTCUSDT")
    assert rest.state == "acked"
    moved = entry.send_modify("r", "BTCUSDT", "sell", 0.2, 100.4)
    assert moved.state == "acked" and entry.engine.orders["r"].price == 100.4
    assert entry.send_cancel("r", "BTCUSDT") is not None
    assert entry.engine.orders["r"].state == "cancelled"
    assert entry.send_cancel("r", "BTCUSDT") is None
