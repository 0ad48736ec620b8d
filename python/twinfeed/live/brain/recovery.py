"""Crash recovery: a brain restarted on the same trade DB picks up where the dead one was.

:func:`recover` runs right after the new run starts (``LiveTrader(..., recover=True)``):

1. runs still marked ``running`` (their brain died without ``end_run``) become ``crashed``;
2. the portfolio is rebuilt from every fill in the DB (account level: the venue's position is
   the sum of everything this account traded);
3. the venue's ``userTrades`` are compared with the DB by trade id: fills that happened while
   no brain was listening are written once (under the new run, ``strategy_id`` from the
   order's row) and booked;
4. orders of crashed runs still open at the venue (``openOrders``) are adopted: copied into
   the new run's ``orders``, tracked by the OMS with the trade ids already booked (so a
   replayed stream event cannot book a fill twice), and cancelled like any order at the end;
   orders the DB thinks open but the venue finished get the venue's final state.

The venue is the truth; the DB is made to agree with it, never the other way round.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from twinfeed.orders import Fill, Order
from twinfeed.venues.port import VenueOrder, VenuePort

__all__ = ["RecoveryReport", "recover"]

log = logging.getLogger("twinfeed.live.recovery")

_OPEN = ("new", "acked", "partially_filled")


@dataclass
class RecoveryReport:
    crashed_runs: list[str] = field(default_factory=list)
    fills_replayed: int = 0
    fills_inserted: int = 0
    orders_adopted: list[str] = field(default_factory=list)
    orders_closed: int = 0
    positions: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _venue(trader: Any) -> VenuePort:
    port = getattr(trader.gateway, "port", None)
    if port is None:
        raise TypeError("recovery needs a PortEntry (a venue port to query)")
    return port


def recover(trader: Any) -> RecoveryReport:
    """Rebuilds ``trader``'s state from its DB and the venue (see the module docstring)."""
    db = trader.db
    con = db.con
    port = _venue(trader)
    symbols = list(trader.config.symbols)
    report = RecoveryReport()
    crashed = [
        row[0]
        for row in con.execute(
            "SELECT run_id FROM runs WHERE status = 'running' AND run_id != ?", [db.run_id]
        ).fetchall()
    ]
    report.crashed_runs = crashed
    if crashed:
        con.execute(
            "UPDATE runs SET status = 'crashed', ended_at = now() WHERE status = 'running' "
            "AND run_id != ?",
            [db.run_id],
        )
    columns = (
        "client_id, strategy_id, symbol, side, type, tif, qty, price, submit_ns, "
        "submit_wall_ns, mid_at_submit, state, filled_qty, run_id"
    )
    orders: dict[str, tuple[Any, ...]] = {
        row[0]: row
        for row in con.execute(f"SELECT {columns} FROM orders ORDER BY submit_wall_ns").fetchall()
    }
    fills = con.execute(
        "SELECT client_id, symbol, side, price, qty, fee, liquidity, ts_ns, trade_id FROM fills "
        "ORDER BY ts_ns, wall_ns"
    ).fetchall()
    booked: dict[str, set[int]] = {}
    for client_id, symbol, side, price, qty, fee, liquidity, ts_ns, trade_id in fills:
        if symbol not in symbols:
            continue
        trader.portfolio.apply(
            Fill(
                client_id, symbols.index(symbol), side, price, qty, fee, liquidity, ts_ns, trade_id
            )
        )
        booked.setdefault(client_id, set()).add(int(trade_id))
        report.fills_replayed += 1
    known = {trade_id for ids in booked.values() for trade_id in ids}
    for symbol in symbols:
        for trade in port.fills_since(symbol):
            trade_id = trade.trade_id
            if trade_id in known:
                continue
            client_id = trade.client_id
            row = orders.get(client_id)
            strategy_id = row[1] if row is not None else client_id
            fill = Fill(
                client_id,
                symbols.index(symbol),
                trade.side,
                trade.price,
                trade.qty,
                trade.fee,
                trade.liquidity,
                trade.ts_ns,
                trade_id,
            )
            order = (
                _order_from_row(row)
                if row is not None
                else Order(client_id, fill.symbol, fill.side, fill.qty, fill.price)
            )
            db.fill(
                fill,
                symbol=symbol,
                strategy_id=strategy_id,
                order=order,
                submit_wall_ns=int(row[9] or 0) if row is not None else 0,
                mid_at_submit=float(row[10]) if row is not None and row[10] is not None else 0.0,
            )
            trader.portfolio.apply(fill)
            booked.setdefault(client_id, set()).add(trade_id)
            known.add(trade_id)
            report.fills_inserted += 1
    venue_open: dict[str, VenueOrder] = {}
    for symbol in symbols:
        for venue_order in port.open_orders(symbol):
            venue_open[venue_order.client_id] = venue_order
    for client_id, row in orders.items():
        if row[11] not in _OPEN or row[13] == db.run_id:
            continue
        found = venue_open.get(client_id)
        if found is None:
            try:
                final = port.order_status(row[2], client_id=client_id).report
                state, filled = final.state, final.cum_qty
            except Exception:  # unknown to the venue (never arrived): it cannot execute
                state, filled = "rejected", float(row[12] or 0.0)
            con.execute(
                "UPDATE orders SET state = ?, filled_qty = ? WHERE run_id = ? AND client_id = ?",
                [state, filled, row[13], client_id],
            )
            report.orders_closed += 1
            continue
        _adopt(trader, row, found, booked.get(client_id, set()))
        con.execute(
            "UPDATE orders SET state = 'adopted' WHERE run_id = ? AND client_id = ?",
            [row[13], client_id],
        )
        report.orders_adopted.append(client_id)
    report.positions = {
        trader.symbol_name(symbol): position.qty
        for symbol, position in sorted(trader.portfolio.positions.items())
    }
    db.risk_event(trader.ctx.now, "", "recovery", "recovered after a crash", report.to_dict())
    log.warning("recovery: %s", report.to_dict())
    return report


def _order_from_row(row: tuple[Any, ...]) -> Order:
    (client_id, _strategy, _symbol, side, type_, tif, qty, price, submit_ns) = row[:9]
    return Order(client_id, 0, side, float(qty), price, type=type_, tif=tif, submit_ns=submit_ns)


def _adopt(trader: Any, row: tuple[Any, ...], found: VenueOrder, trade_ids: set[int]) -> None:
    from twinfeed.live.brain.runner import _LegInfo, _Logical

    symbols = list(trader.config.symbols)
    client_id, strategy_id, symbol = row[0], row[1], row[2]
    order = _order_from_row(row)
    order.symbol = symbols.index(symbol)
    filled = found.report.cum_qty
    order.state = "partially_filled" if filled > 0 else "acked"
    order.active_ns = int(row[8] or 0)
    trader.oms.add(order)
    tracked = trader.oms.tracked(client_id)
    tracked.venue_filled = filled
    tracked.trade_ids = set(trade_ids)
    tracked.venue_order_id = found.report.venue_order_id
    order.filled_qty = filled
    view = order.as_submitted()
    view.state, view.filled_qty = order.state, filled
    mid = float(row[10]) if row[10] is not None else float("nan")
    trader._legs[client_id] = _LegInfo(client_id, int(row[9] or time.time_ns()), mid)
    trader.logical[client_id] = _Logical(view, client_id)
    trader.db.order(
        order, symbol=symbol, strategy_id=strategy_id, submit_wall_ns=int(row[9] or 0), mid=mid
    )
