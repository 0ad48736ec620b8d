"""One strategy Context base for the backtester and the live runner: the same call means the
same order on both sides (id, default symbol, validation, reduce-only, GTD), and the live
runner's replace modifies in place where the venue can."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_brain_units import FakeFeed, _quotes
from twinfeed.context import ContextBase
from twinfeed.instruments import SymbolInstruments
from twinfeed.live.brain import LiveConfig, LiveTrader, RiskManager, TradeDB
from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.matching import MatchingEngine
from twinfeed.orders import Order, OrderUpdate, Side
from twinfeed.portfolio import Portfolio
from twinfeed.research.backtest import BacktestContext
from twinfeed.strategy import Context, Strategy


def _backtest_context(primary: int = 1) -> tuple[BacktestContext, MatchingEngine]:
    engine = MatchingEngine(latency_ns=5)
    none = SymbolInstruments(None, None, None)
    return BacktestContext(engine, Portfolio(none), {}, primary_symbol=primary), engine


def test_backtest_context_builds_orders_through_the_base() -> None:
    ctx, engine = _backtest_context(primary=1)
    assert isinstance(ctx, ContextBase) and isinstance(ctx, Context)
    ctx.now = 100
    first = ctx.submit("buy", 0.5, 99.0)
    dated = ctx.submit("sell", 0.5, 101.0, good_till_ms=7, reduce_only=True, symbol=0)
    assert (first, dated) == ("o1", "o2")
    assert engine.orders["o1"].symbol == 1  # the run's primary symbol, not 0
    order = engine.orders["o2"]
    assert (order.symbol, order.tif, order.good_till_ms, order.reduce_only) == (0, "GTD", 7, True)
    # Invalid: refused at once by the context (never sent, no latency), with the reason.
    bad = ctx.submit("buy", 0.5, tif="GTX", type="market")
    events = engine.advance(100)
    (update,) = [e for e in events if isinstance(e, OrderUpdate) and e.client_id == bad]
    assert update.state == "rejected" and update.ts_ns == 100
    assert "market orders cannot be GTX" in update.reason
    assert engine.pending_requests == 2


# ---- the live runner over an in-memory order entry -------------------------------------


@dataclass
class RecordingEntry:
    """An order entry that acks everything and records what it was asked."""

    supports_modify: bool = True
    sent: list[Order] = field(default_factory=list)
    modified: list[tuple[str, Side, float, float]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        self.sent.append(order)
        return ExecutionReport(order.client_id, "acked", 1)

    def send_cancel(self, client_id: str, symbol: str) -> ExecutionReport | None:
        self.cancelled.append(client_id)
        return ExecutionReport(client_id, "cancelled", 2)

    def send_cancel_all(self, symbol: str) -> None:
        pass

    def send_modify(
        self, client_id: str, symbol: str, side: Side, qty: float, price: float
    ) -> ExecutionReport:
        self.modified.append((client_id, side, qty, price))
        return ExecutionReport(client_id, "acked", 3)

    def poll_reports(self) -> list[ExecutionReport]:
        return []

    def venue_positions(self) -> dict[str, float]:
        return {"BTCUSDT": 0.0}


class _Quoter(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[OrderUpdate] = []
        self.calls = 0

    def on_record(self, ctx: Context, record: np.void) -> None:
        self.calls += 1
        if self.calls == 1:
            ctx.submit("sell", 0.01, 100.5, client_id="q", reduce_only=True, good_till_ms=9)
            ctx.submit("buy", -1.0, 99.0, client_id="bad")
        elif self.calls == 2:
            ctx.replace("q", 100.4, 0.02)

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        self.updates.append(update)


def _trader(tmp_path: Path, entry: RecordingEntry) -> tuple[LiveTrader, _Quoter, list[Any]]:
    strategy = _Quoter()
    trader = LiveTrader(
        LiveConfig(drain_timeout_s=0.05),
        strategy,
        entry,
        FakeFeed([_quotes([1_000]), _quotes([2_000]), _quotes([3_000])]),  # type: ignore[arg-type]
        TradeDB(tmp_path / "trade.duckdb"),
        RiskManager(),
    )
    deliveries: list[Any] = []
    requests: list[Any] = []
    deliver, request = trader.deliver, trader.request

    def spy_deliver(callback: Any, payload: Any = None) -> None:
        deliveries.append(callback)
        deliver(callback, payload)

    def spy_request(item: Any) -> list[str]:
        requests.append(item.action)
        return request(item)

    trader.deliver = spy_deliver  # type: ignore[method-assign]
    trader.request = spy_request  # type: ignore[method-assign]
    trader.run()
    trader.db.close()
    return trader, strategy, [deliveries, requests]


def test_live_replace_modifies_in_place_and_orders_carry_their_flags(tmp_path: Path) -> None:
    entry = RecordingEntry()
    trader, strategy, (deliveries, requests) = _trader(tmp_path, entry)
    (sent,) = entry.sent  # "bad" was refused by the context, never sent
    assert (sent.client_id, sent.tif, sent.reduce_only, sent.good_till_ms) == ("q", "GTD", True, 9)
    assert entry.modified == [("q", "sell", 0.02, 100.4)]
    assert "q.1" not in trader.oms  # no cancel-and-resend leg
    replaced = [u for u in strategy.updates if u.client_id == "q" and u.reason == "replaced"]
    assert len(replaced) == 1 and replaced[0].price == 100.4 and replaced[0].qty == 0.02
    (bad,) = [u for u in strategy.updates if u.client_id == "bad"]
    assert bad.state == "rejected" and "qty must be a positive" in bad.reason
    # The hook points saw every request and every callback.
    assert requests == ["submit", "submit", "replace"]
    assert deliveries[0] == "on_start" and deliveries[-1] == "on_stop"
    assert deliveries.count("on_record") == 3 and "on_order_update" in deliveries


def test_live_replace_without_modify_cancels_and_resends(tmp_path: Path) -> None:
    entry = RecordingEntry(supports_modify=False)
    trader, _, _ = _trader(tmp_path, entry)
    assert entry.modified == [] and entry.cancelled[0] == "q"
    assert [o.client_id for o in entry.sent] == ["q", "q.1"]
    assert entry.sent[1].reduce_only and entry.sent[1].good_till_ms == 9


@pytest.mark.parametrize("primary", [0, 2])
def test_default_symbol_is_the_primary_on_both_sides(primary: int) -> None:
    ctx, engine = _backtest_context(primary)
    ctx.submit("buy", 1.0, 100.0)
    assert engine.orders["o1"].symbol == primary
    assert ctx.position() == 0.0
