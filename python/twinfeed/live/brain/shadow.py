"""Shadow trading: live market data, orders matched inside the brain, nothing sent to a venue.

:class:`ShadowEntry` is an :class:`twinfeed.live.brain.entry.OrderEntry` over the backtester's
:class:`twinfeed.matching.MatchingEngine`. The trader hands it every batch of records it reads
(:meth:`ShadowEntry.market_data`, before the strategy sees them), so orders are matched against
the same live data the strategy decides on, with the backtest's rules (queue model, fees,
instrument grid, reduce-only, GTD). The engine's fills and order updates come back as
:class:`twinfeed.live.brain.oms.ExecutionReport` s, as a venue's would: the OMS, the trade DB,
risk and the fault policy run as in a real session. Event time is the records' ``local_ns``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from twinfeed.instruments import SymbolInstruments
from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.matching import MatchingEngine
from twinfeed.orders import Event, Fill, Order, Side
from twinfeed.venues.errors import VenueError

__all__ = ["ShadowEntry"]


class ShadowEntry:
    """Order entry into an in-brain matching engine (see the module docstring).

    Args:
        symbols: Venue symbol per record ``symbol_id`` (the trader's ``config.symbols``).
        instruments: Rules the engine applies (None: none).
        latency_ns / maker_fee_bps / taker_fee_bps: As the backtester's.
    """

    supports_modify = True

    def __init__(
        self,
        symbols: tuple[str, ...] | list[str],
        instruments: SymbolInstruments | None = None,
        *,
        latency_ns: int = 0,
        maker_fee_bps: float = 0.0,
        taker_fee_bps: float = 1.7,
    ) -> None:
        self.symbols = list(symbols)
        self.engine = MatchingEngine(
            latency_ns=latency_ns,
            maker_fee_bps=maker_fee_bps,
            taker_fee_bps=taker_fee_bps,
            instruments=instruments,
        )
        self.now_ns = 0
        self._reports: list[ExecutionReport] = []
        self._positions: dict[int, float] = {}

    # ---- market data (the trader calls this with every batch it reads) -----------------

    def market_data(self, records: np.ndarray[Any, Any]) -> None:
        """Matches working orders against ``records``."""
        if not len(records):
            return
        self.now_ns = max(self.now_ns, int(records["local_ns"][-1]))
        self._reports += self._to_reports(self.engine.on_batch(records))

    # ---- OrderEntry ---------------------------------------------------------------------

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        self.engine.submit(replace(order), self.now_ns)
        return self._answer(order.client_id)

    def send_cancel(self, client_id: str, symbol: str) -> ExecutionReport | None:
        order = self.engine.orders.get(client_id)
        if order is None or not order.is_open:
            return None
        self.engine.cancel(client_id, self.now_ns)
        return self._answer(client_id)

    def send_cancel_all(self, symbol: str) -> None:
        self.engine.cancel_all(self.now_ns, self.symbols.index(symbol))
        self._reports += self._to_reports(self.engine.advance(self.now_ns))

    def send_modify(
        self, client_id: str, symbol: str, side: Side, qty: float, price: float
    ) -> ExecutionReport:
        order = self.engine.orders.get(client_id)
        if order is None or not order.is_open:
            raise VenueError(-2013, "Order does not exist.", unknown_order=True)
        self.engine.replace(client_id, price, qty, self.now_ns)
        return self._answer(client_id)

    def poll_reports(self) -> list[ExecutionReport]:
        reports, self._reports = self._reports, []
        return reports

    def venue_positions(self) -> dict[str, float]:
        return {self.symbols[symbol]: qty for symbol, qty in sorted(self._positions.items())}

    def close(self) -> None:
        """Nothing to release (the :class:`PortEntry` interface)."""

    # ---- internals ----------------------------------------------------------------------

    def _answer(self, client_id: str) -> ExecutionReport:
        """The request's effect once it arrived (with latency, the order as it stands: its
        fate comes with the market data that follows)."""
        self._reports += self._to_reports(self.engine.advance(self.now_ns))
        order = self.engine.orders[client_id]
        return ExecutionReport(
            client_id, order.state, self.now_ns, cum_qty=order.filled_qty, reason=order.reason
        )

    def _to_reports(self, events: list[Event]) -> list[ExecutionReport]:
        reports = []
        orders = self.engine.orders
        for event in events:
            order = orders[event.client_id]
            if isinstance(event, Fill):
                sign = 1.0 if event.side == "buy" else -1.0
                held = self._positions.get(event.symbol, 0.0) + sign * event.qty
                self._positions[event.symbol] = round(held, 10)
                reports.append(
                    ExecutionReport(
                        event.client_id,
                        "partially_filled",
                        event.ts_ns,
                        cum_qty=order.filled_qty,
                        trade_id=event.fill_id,
                        last_qty=event.qty,
                        last_price=event.price,
                        fee=event.fee,
                        liquidity=event.liquidity,
                    )
                )
            else:
                reports.append(
                    ExecutionReport(
                        event.client_id,
                        event.state,
                        event.ts_ns,
                        cum_qty=event.filled_qty,
                        reason=event.reason,
                    )
                )
        return reports
