"""The matching engine: simulated execution against recorded market data.

One engine serves the backtester (:mod:`twinfeed.research.backtest`) and the paper venue, so
their fills agree. It is deterministic: its output is a pure function of the sequence of calls
(``submit``/``cancel``/``replace`` with their times, and the feature records fed to it). It keeps
no wall clock, iterates no unordered containers, and does all price and quantity arithmetic on
exact integers of 1e-8 units, the scale the feature crate parses decimals to; only the queue
estimate (a fraction of displayed size) is a float, updated in one fixed order.

Market state
    The engine sees the market through feature records (``twinfeed.record_dtype()``):

    - ``quote`` and ``book`` records give the touch: best bid/ask price and displayed size. Both
      Binance streams number their updates in one update-id space, so a touch record whose
      ``update_id`` is not newer than the last applied one of its symbol is stale (it arrived
      late) and is ignored; ``update_id == 0`` means unknown and is always applied. Records with
      a NaN touch are ignored. Deeper levels are not known.
    - ``trade`` records give prints: price and size. The aggressor side is not used: a print at
      a price means that level traded.
    - Every other kind (bars, gaps, heartbeats, status) leaves the market state unchanged.

Clock
    All times are the capture's receive clock (``local_ns``); exchange timestamps are never
    mixed in (recorders' clocks are offset from the venue's). Orders, cancels and replaces sent
    at ``now_ns`` reach the venue at ``now_ns + latency_ns`` and are handled, in the order they
    were sent, before the first record with ``local_ns >=`` that arrival time. Events carry the
    arrival time (order handling) or the record's ``local_ns`` (fills from market activity).

Rules
    1. **Validation.** Bad side/type/tif, a quantity that is not positive (or below 1e-8), a
       limit order without a positive price, or a post-only market order is ``rejected`` on
       arrival. A market order with no touch
       known yet is rejected (``no market``).
    2. **Market orders** take the opposite touch at its price, up to its displayed size (less
       what this engine's own orders already took from that same touch). The rest sweeps
       deeper levels the records do not show: it fills at the touch price worsened by
       ``sweep_slippage_bps`` (so the price may be off the tick grid). Market orders always fill
       completely. Taker fee.
    3. **Limit orders that cross on arrival** (buy price >= best ask, sell price <= best bid) are
       takers: they fill at the touch price, up to its displayed size (less what was already
       taken). Then IOC expires the rest; GTC rests the rest at its limit price, which is
       through the old touch, so with nothing ahead of it. **Post-only (GTX)** orders that would
       cross expire without filling (reason ``post-only would cross``), as Binance does.
       IOC orders that do not cross expire without filling. **Fill-or-kill (FOK)** orders fill
       entirely at the touch on arrival if its displayed size (less what was taken) covers
       them, else expire without filling (deeper levels are not known, so none is assumed).
    4. **Resting limit orders** get a queue-ahead estimate on arrival: the displayed size at their
       price if it is the touch, 0 if their price is better than the touch (a new level), and
       unknown if it is behind the touch (deeper levels are not recorded). An unknown queue is
       set to the displayed size when the level first shows at the touch.
    5. **Queue updates.** A print at the order's price first consumes the queue ahead, then
       fills the order (partial fills); several of this engine's orders at one price fill in
       time priority, and together never take more than the print. When the displayed size at
       the level shrinks by more than the prints explained, the difference is cancellations,
       assumed spread evenly through the queue: the queue ahead shrinks in proportion
       (``ahead *= size_now / size_before``, the linear probability queue model). The queue ahead
       never exceeds the displayed size. If the best bid drops below a resting buy (or the best
       ask rises above a resting sell), its level is empty in the real book: queue ahead 0.
       While the level is behind the touch its size is not visible and nothing changes.
    6. **Trading through.** A print strictly better than a resting order's price (below a buy,
       above a sell), or an opposite touch at or through it (best ask <= buy price, best bid >=
       sell price), fills the whole remaining quantity at the order's own price: a counterparty
       was willing to trade there, and would have met this order first. (This is the
       optimistic-but-standard rule of hftbacktest's queue models; it only triggers where the
       simulated order stands where the recorded book has nobody.)
    7. **Prices.** Makers fill at their limit price, takers at the touch price (never worse than
       their limit). Fees are ``price * qty * bps / 10_000`` in quote currency, maker or taker
       rate by liquidity; negative bps are rebates.
    8. **Cancels** remove the rest of an open order on arrival. A cancel or replace that arrives
       after the order finished is refused: the engine reports the order's unchanged state with
       a reason. **Replace** sets a new price and total quantity (which must exceed the filled
       quantity). Same price and no larger quantity keeps the queue position (as Binance's
       modify does); otherwise the order loses its place and is handled as a new arrival at the
       new price (rules 3-4; a post-only replace that would cross expires).
    9. **Good-till-date (GTD)** orders rest like GTC and expire at ``good_till_ms`` (event
       time), reason :data:`GTD_EXPIRED`. **Reduce-only** orders never increase (or open) a
       position of this engine's own fills: on arrival their quantity is cut to the position
       (none to reduce: ``rejected``, :data:`REDUCE_ONLY_REJECTED`); a fill that would go past
       flat is cut at flat, and one that finds nothing left to reduce expires the order
       (:data:`REDUCE_ONLY_EXPIRED`). Binance expires such a resting order as soon as the
       position closes; here it expires when it would next fill (the same fills, a later
       update).

Fast path
    :meth:`MatchingEngine.on_batch` gives exactly the events of calling
    :meth:`MatchingEngine.on_record` on each row in turn (a property test checks it). Between
    request arrivals it finds, with numpy, the rows that can affect a working order (touch rows
    at or through a working price, prints at or through one) and runs the per-row logic on
    those only; the touch of skipped rows is applied in bulk. On long stretches, when no two
    orders share a level, each order goes over only the rows that change its state (crosses,
    prints at or through it, visible-size changes at its level) and the events are merged back
    into per-row order. With no working orders a batch costs a few numpy calls.

Layout, by job
    :mod:`twinfeed.matching_state`: fixed-point keys, markets, working orders and the one
    queue-update rule (rule 5: ``_Working.see_level`` and ``see_print``), prepared columns.
    This module: the engine (requests, arrivals, fills, the per-row definition).
    :mod:`twinfeed.matching_batch`: the batch paths, which must equal the per-row definition.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from twinfeed.matching_batch import BatchPaths
from twinfeed.matching_state import (
    _SCALE_F,
    SCALE,
    RecordColumns,
    Touch,
    _Market,
    _Working,
    price_key,
    qty_units,
)
from twinfeed.orders import Event, Fill, Order, OrderUpdate, validate

if TYPE_CHECKING:
    from twinfeed.instruments import SymbolInstruments

__all__ = [
    "GTD_EXPIRED",
    "REDUCE_ONLY_EXPIRED",
    "REDUCE_ONLY_REJECTED",
    "SCALE",
    "MatchingEngine",
    "RecordColumns",
    "Touch",
    "price_key",
    "qty_units",
]

#: Reasons of the venue's own verdicts on GTD and reduce-only orders (Binance's wording).
GTD_EXPIRED = "goodTillDate reached"
REDUCE_ONLY_REJECTED = "-2022 ReduceOnly Order is rejected."
REDUCE_ONLY_EXPIRED = "reduce-only order would increase the position"


class MatchingEngine(BatchPaths):
    """Deterministic simulated venue. See the module docstring for the matching rules.

    Args:
        latency_ns: Order-entry latency: requests sent at ``now_ns`` take effect at
            ``now_ns + latency_ns`` (receive clock of the records).
        maker_fee_bps: Fee on maker fills in basis points of notional (negative = rebate).
        taker_fee_bps: Fee on taker fills in basis points of notional.
        sweep_slippage_bps: Price penalty for the part of a market order beyond the displayed
            touch size (rule 2).
        queue_fraction: Share of the displayed size ahead of a new resting order (rule 4);
            1.0 (default) puts it behind everything shown.
        instruments: The run's trading rules (:class:`twinfeed.instruments.SymbolInstruments`).
            An order (or replace) off the symbol's tick or step grid, below its minimum
            quantity or notional is refused on arrival with Binance's code and message as its
            reason (e.g. ``-1111 Precision is over the maximum defined for this asset.``), as
            the paper venue and the exchange refuse it; fees of inverse contracts are charged on
            their coin value. None: no rule checks (records built in memory).

    Usage::

        engine = MatchingEngine(latency_ns=1_000_000, taker_fee_bps=4.0)
        engine.submit(Order("o1", 0, "buy", 0.01, 61800.0), now_ns)
        for event in engine.on_batch(records):  # or engine.on_record(row)
            ...  # Fill / OrderUpdate, in event order
    """

    def __init__(
        self,
        latency_ns: int = 0,
        maker_fee_bps: float = 0.0,
        taker_fee_bps: float = 0.0,
        sweep_slippage_bps: float = 1.0,
        instruments: SymbolInstruments | None = None,
        queue_fraction: float = 1.0,
    ) -> None:
        if latency_ns < 0:
            raise ValueError(f"latency_ns must be >= 0, got {latency_ns}")
        self.latency_ns = int(latency_ns)
        self.maker_fee_bps = float(maker_fee_bps)
        self.taker_fee_bps = float(taker_fee_bps)
        self.sweep_slippage_bps = float(sweep_slippage_bps)
        if not 0.0 <= queue_fraction <= 1.0:
            raise ValueError(f"queue_fraction must be in [0, 1], got {queue_fraction}")
        #: Where a resting order starts in its level's queue (rule 4): the share of the
        #: displayed size ahead of it; 1.0 = behind everything shown. Fitted from a live run
        #: by twinfeed.parity.queue_fit.fit_queue.
        self.queue_fraction = float(queue_fraction)
        self._maker_rate = self.maker_fee_bps * 1e-4
        self._taker_rate = self.taker_fee_bps * 1e-4
        self.instruments = instruments
        #: symbol id -> contract size of an inverse instrument (fees in coin).
        self._inverse: dict[int, float] = {}
        #: symbol id -> the instrument's step in engine units (maker partial fills are cut to it).
        self._step_units: dict[int, int] = {}
        self._markets: dict[int, _Market] = {}
        self._orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}  # open orders, in submission order
        self._working: dict[str, _Working] = {}
        self._pending: list[tuple[int, int, str, Any]] = []
        #: symbol id -> net position in units from this engine's fills (reduce-only orders).
        self._held: dict[int, int] = {}
        self._sequence = 0
        self._fill_ids = 0
        self._events: list[Event] = []
        #: Segments with at least this many candidate rows take the per-order path (numpy
        #: picks each order's rows; worth it when segments are long). Results are identical.
        self.per_order_min_rows = 96
        #: Segments up to this many rows are scanned in Python instead of with numpy calls.
        self.short_segment_rows = 48

    # ---- requests -----------------------------------------------------------------------

    def submit(self, order: Order, now_ns: int) -> None:
        """Sends ``order``; it reaches the venue at ``now_ns + latency_ns``.

        The engine takes ownership of ``order`` and updates it in place (state, fills). Its
        ``client_id`` must be new to this engine.
        """
        if order.client_id in self._orders:
            raise ValueError(f"duplicate client_id {order.client_id!r}")
        order.state = "new"
        order.submit_ns = now_ns
        self._orders[order.client_id] = order
        self._open[order.client_id] = order
        self._schedule(now_ns, "submit", order)

    def refuse(self, order: Order, now_ns: int, reason: str) -> None:
        """Records ``order`` as refused before it was sent (pre-trade risk): it never reaches
        the venue; its ``rejected`` update comes with the next events."""
        if order.client_id in self._orders:
            raise ValueError(f"duplicate client_id {order.client_id!r}")
        order.submit_ns = now_ns
        self._orders[order.client_id] = order
        self._finish(order, "rejected", now_ns, reason)

    def cancel(self, client_id: str, now_ns: int) -> None:
        """Sends a cancel for ``client_id``; it takes effect on arrival (rule 8)."""
        self._order(client_id)
        self._schedule(now_ns, "cancel", client_id)

    def cancel_all(self, now_ns: int, symbol: int | None = None) -> list[str]:
        """Sends cancels for every open order (of ``symbol`` if given); returns their ids."""
        ids = [
            order.client_id
            for order in self._open.values()
            if symbol is None or order.symbol == symbol
        ]
        for client_id in ids:
            self._schedule(now_ns, "cancel", client_id)
        return ids

    def expire(self, client_id: str, now_ns: int, reason: str) -> None:
        """Sends the venue's own expiry of an open order (a GTD time reached, a reduce-only
        order that can no longer reduce): on arrival it ends ``expired`` with ``reason``, as a
        cancel ends ``cancelled``; refused like a cancel if the order already finished."""
        self._order(client_id)
        self._schedule(now_ns, "expire", (client_id, reason))

    def replace(self, client_id: str, price: float, qty: float, now_ns: int) -> None:
        """Sends a replace: new limit ``price`` and total ``qty`` (rule 8)."""
        self._order(client_id)
        self._schedule(now_ns, "replace", (client_id, float(price), float(qty)))

    # ---- market data --------------------------------------------------------------------

    def on_record(self, record: np.void | np.ndarray[Any, Any]) -> list[Event]:
        """Feeds one record; returns the events it caused (arrivals due first)."""
        records = np.asarray(record).reshape(1)
        return self.process(RecordColumns(records), 0, 1)

    def on_batch(self, records: np.ndarray[Any, Any]) -> list[Event]:
        """Feeds a batch of records; same events as :meth:`on_record` row by row."""
        return self.process(RecordColumns(records), 0, len(records))

    def advance(self, now_ns: int) -> list[Event]:
        """Handles requests that have arrived by ``now_ns`` without market data (timers)."""
        self._arrive_until(now_ns)
        return self._take_events()

    def process(self, columns: RecordColumns, start: int, stop: int) -> list[Event]:
        """Feeds rows ``start:stop`` of prepared ``columns``; returns the events caused."""
        if stop - start == 1 or not columns.monotonic:
            times = columns.row_lists()[4]
            pending = self._pending
            for row in range(start, stop):
                if pending and pending[0][0] <= times[row]:
                    self._arrive_until(times[row])
                self._one_row(columns, row)
            return self._take_events()
        row = start
        while row < stop:
            if self._pending:
                due = self._pending[0][0]
                arrival_row = row + int(
                    np.searchsorted(columns.local_ns[row:stop], due, side="left")
                )
            else:
                arrival_row = stop
            if arrival_row > row:
                self._segment(columns, row, arrival_row)
                row = arrival_row
            if row < stop:
                self._arrive_until(int(columns.local_ns[row]))
        return self._take_events()

    # ---- queries ------------------------------------------------------------------------

    @property
    def orders(self) -> dict[str, Order]:
        """Every order this engine has seen, by client id (read-only views)."""
        return self._orders

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        """Orders that may still execute, in submission order."""
        if symbol is None:
            return list(self._open.values())
        return [order for order in self._open.values() if order.symbol == symbol]

    def touch(self, symbol: int = 0) -> Touch | None:
        """The symbol's touch, sizes net of what own takers consumed, or None if unknown."""
        market = self._markets.get(symbol)
        if market is None or not market.known:
            return None
        return Touch(
            market.bid / _SCALE_F,
            (market.bid_units - market.bid_taken) / _SCALE_F,
            market.ask / _SCALE_F,
            (market.ask_units - market.ask_taken) / _SCALE_F,
            market.last_uid,
        )

    def queue_ahead(self, client_id: str) -> float | None:
        """Estimated quantity ahead of a resting order (None if unknown or not resting)."""
        working = self._working.get(client_id)
        if working is None or working.queue < 0:
            return None
        return working.queue / _SCALE_F

    @property
    def pending_requests(self) -> int:
        """Requests sent but not yet arrived."""
        return len(self._pending)

    # ---- internals: requests ------------------------------------------------------------

    def _order(self, client_id: str) -> Order:
        try:
            return self._orders[client_id]
        except KeyError:
            raise KeyError(f"unknown client_id {client_id!r}") from None

    def _schedule(self, now_ns: int, action: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(
            self._pending, (int(now_ns) + self.latency_ns, self._sequence, action, payload)
        )

    def _market(self, symbol: int) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            market = self._markets[symbol] = _Market()
        return market

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _arrive_until(self, now_ns: int) -> None:
        pending = self._pending
        while pending and pending[0][0] <= now_ns:
            ts, _, action, payload = heapq.heappop(pending)
            if action == "submit":
                self._arrive(payload, ts)
            elif action == "cancel":
                self._arrive_cancel(payload, ts)
            elif action == "expire":
                client_id, reason = payload
                self._arrive_expire(client_id, reason, ts)
            elif action == "deadline":
                order = self._orders[payload]
                if order.is_open:
                    self._finish(order, "expired", ts, GTD_EXPIRED)
            else:
                client_id, price, qty = payload
                self._arrive_replace(client_id, price, qty, ts)

    def _update(self, order: Order, ts: int, reason: str = "") -> None:
        self._events.append(OrderUpdate.of(order, ts, reason))

    def _finish(self, order: Order, state: Any, ts: int, reason: str = "") -> None:
        order.state = state
        order.done_ns = ts
        order.reason = reason
        self._open.pop(order.client_id, None)
        working = self._working.pop(order.client_id, None)
        if working is not None:
            self._market(order.symbol).working.remove(working)
        self._update(order, ts)

    def _rules_refusal(
        self, symbol: int, qty: float, price: float | None, kind: str, market: _Market | None
    ) -> str:
        """Binance's refusal of ``qty``/``price`` under the symbol's rules ("" if accepted)."""
        assert self.instruments is not None
        if not self.instruments.enforced:
            return ""
        instrument = self.instruments.maybe(symbol)
        if instrument is None:
            return "-1121: Invalid symbol."
        if instrument.inverse:
            self._inverse[symbol] = float(instrument.contract_size)
        self._step_units[symbol] = int(instrument.step_size * SCALE)
        reference = None
        if kind == "market" and market is not None and market.known:
            touch = self.touch(symbol)
            if touch is not None:
                reference = (touch.bid_px + touch.ask_px) / 2
        refusal = instrument.check_order(qty, price, kind, reference_price=reference)
        return "" if refusal is None else str(refusal)

    def _arrive(self, order: Order, ts: int) -> None:
        reason = validate(order)
        market = self._market(order.symbol)
        if not reason and qty_units(order.qty) < 1:
            reason = f"qty {order.qty!r} is below the 1e-8 resolution"
        if not reason and order.type == "market" and not market.known:
            reason = "no market"
        if not reason and self.instruments is not None:
            reason = self._rules_refusal(order.symbol, order.qty, order.price, order.type, market)
        if not reason and order.reduce_only:
            units = self._reducible(order)
            if units <= 0:
                reason = REDUCE_ONLY_REJECTED
            elif units < qty_units(order.qty):
                order.qty = units / _SCALE_F
        if reason:
            self._finish(order, "rejected", ts, reason)
            return
        order.active_ns = ts
        self._place(_Working(order), market, ts, replaced=False)
        if order.tif == "GTD" and order.is_open:
            self._sequence += 1
            due = max(order.good_till_ms * 1_000_000, ts)
            heapq.heappush(self._pending, (due, self._sequence, "deadline", order.client_id))

    def _reducible(self, order: Order) -> int:
        """Units ``order`` may still execute without increasing (or opening) a position."""
        held = self._held.get(order.symbol, 0)
        return held if order.side == "sell" else -held

    def _place(self, working: _Working, market: _Market, ts: int, replaced: bool) -> None:
        """Rules 2-4 for an order (or a replace that lost its place) arriving at ``ts``."""
        order = working.order
        if order.type == "market":
            self._update_acked(order, ts, replaced)
            self._take(working, market, ts, limit=None)
            rest = working.units - working.filled
            if rest > 0 and order.is_open:
                touch = market.ask if working.sign > 0 else market.bid
                worse = 1.0 + working.sign * self.sweep_slippage_bps * 1e-4
                self._fill(working, rest, round(touch * worse), "taker", ts)
            return
        if market.known:
            opposite = market.ask if working.sign > 0 else -market.bid
            crosses = opposite <= working.key
        else:
            crosses = False
        if crosses and order.tif == "GTX":
            self._finish(order, "expired", ts, "post-only would cross")
            return
        if order.tif == "FOK":
            available = 0
            if crosses:
                available = (
                    market.ask_units - market.ask_taken
                    if working.sign > 0
                    else market.bid_units - market.bid_taken
                )
            if available < working.units - working.filled:
                self._finish(order, "expired", ts, "FOK: could not fill entirely")
                return
            self._update_acked(order, ts, replaced)
            self._take(working, market, ts, limit=working.key)
            return
        if order.tif == "IOC":
            if not crosses:
                self._finish(order, "expired", ts, "IOC: nothing to take")
                return
            self._update_acked(order, ts, replaced)
            self._take(working, market, ts, limit=working.key)
            if order.is_open:
                self._finish(order, "expired", ts, "IOC: rest expired")
            return
        self._update_acked(order, ts, replaced)
        working.start = self.queue_fraction
        if crosses:
            self._take(working, market, ts, limit=working.key)
            if not order.is_open:
                return
            working.queue = 0.0
            working.level = 0.0
        elif market.known:
            same = market.bid if working.sign > 0 else -market.ask
            if same == working.key:
                size = float(market.bid_units if working.sign > 0 else market.ask_units)
                working.level = size
                working.queue = size * working.start
            elif same < working.key:
                working.queue = working.level = 0.0
        self._working[order.client_id] = working
        market.working.append(working)

    def _update_acked(self, order: Order, ts: int, replaced: bool) -> None:
        if order.state == "new":
            order.state = "acked"
        self._update(order, ts, "replaced" if replaced else "")

    def _take(self, working: _Working, market: _Market, ts: int, limit: int | None) -> None:
        """Takes the displayed opposite touch, up to the order's size (and limit)."""
        if working.sign > 0:
            available = market.ask_units - market.ask_taken
            price = market.ask
        else:
            available = market.bid_units - market.bid_taken
            price = market.bid
        if limit is not None and working.sign * price > limit:
            return
        units = min(working.units - working.filled, available)
        if working.order.reduce_only:  # take from the touch only what it may execute
            units = min(units, self._reducible(working.order))
        if units <= 0:
            return
        if working.sign > 0:
            market.ask_taken += units
        else:
            market.bid_taken += units
        self._fill(working, units, price, "taker", ts)

    def _arrive_cancel(self, client_id: str, ts: int) -> None:
        order = self._orders[client_id]
        if not order.is_open:
            self._update(order, ts, f"cancel refused: order is {order.state}")
            return
        self._finish(order, "cancelled", ts)

    def _arrive_expire(self, client_id: str, reason: str, ts: int) -> None:
        order = self._orders[client_id]
        if not order.is_open:
            self._update(order, ts, f"cancel refused: order is {order.state}")
            return
        self._finish(order, "expired", ts, reason)

    def _arrive_replace(self, client_id: str, price: float, qty: float, ts: int) -> None:
        order = self._orders[client_id]
        if not order.is_open:
            self._update(order, ts, f"replace refused: order is {order.state}")
            return
        if order.type != "limit":
            self._update(order, ts, "replace refused: not a limit order")
            return
        working = self._working[client_id]
        new_units = qty_units(qty)
        if not (price > 0 and price < float("inf")) or new_units <= working.filled:
            reason = f"replace refused: price {price} / qty {qty} (filled {order.filled_qty})"
            self._update(order, ts, reason)
            return
        if self.instruments is not None:
            refusal = self._rules_refusal(order.symbol, qty, price, "limit", None)
            if refusal:
                self._update(order, ts, f"replace refused: {refusal}")
                return
        new_key = working.sign * price_key(price)
        keeps_place = new_key == working.key and new_units <= working.units
        order.qty = new_units / _SCALE_F
        order.price = price
        working.units = new_units
        if keeps_place:
            self._update(order, ts, "replaced")
            return
        market = self._market(order.symbol)
        self._working.pop(client_id)
        market.working.remove(working)
        working.key = new_key
        working.queue = -1.0
        working.level = 0.0
        self._place(working, market, ts, replaced=True)

    # ---- internals: market data ---------------------------------------------------------

    def _fill(self, working: _Working, units: int, key: int, liquidity: Any, ts: int) -> None:
        order = working.order
        if order.reduce_only:
            allowed = self._reducible(order)
            if allowed <= 0:
                self._finish(order, "expired", ts, REDUCE_ONLY_EXPIRED)
                return
            units = min(units, allowed)
        step = self._step_units.get(order.symbol)
        if step and liquidity == "maker" and units < working.units - working.filled:
            # A venue fills whole lots: the queue model's partial share is cut to the step.
            units -= units % step
            if units <= 0:
                return
        price = abs(key) / _SCALE_F
        qty = units / _SCALE_F
        rate = self._maker_rate if liquidity == "maker" else self._taker_rate
        size = self._inverse.get(order.symbol)
        # Inverse contracts: the fee is on the coin value of the contracts' USD face value.
        fee = price * qty * rate if size is None else qty * size / price * rate
        working.filled += units
        working.notional += price * qty
        self._held[order.symbol] = self._held.get(order.symbol, 0) + working.sign * units
        order.filled_qty = working.filled / _SCALE_F
        order.avg_price = working.notional / order.filled_qty
        order.fees += fee
        self._fill_ids += 1
        queue_ns = ts - order.active_ns if liquidity == "maker" else 0
        self._events.append(
            Fill(
                order.client_id,
                order.symbol,
                order.side,
                price,
                qty,
                fee,
                liquidity,
                ts,
                self._fill_ids,
                queue_ns,
            )
        )
        if working.filled >= working.units:
            self._finish(order, "filled", ts)
        else:
            order.state = "partially_filled"
            self._update(order, ts)

    def _maker_fill_rest(self, working: _Working, ts: int) -> None:
        self._fill(working, working.units - working.filled, working.key, "maker", ts)

    def _touch_row(
        self, market: _Market, bid: int, bid_units: int, ask: int, ask_units: int, ts: int
    ) -> None:
        """Rules 5-6 for an applied touch update."""
        market.set_touch(bid, bid_units, ask, ask_units)
        crossed: list[_Working] | None = None
        for working in market.working:
            if working.sign > 0:
                same, size_units, opposite = bid, bid_units, ask
            else:
                same, size_units, opposite = -ask, ask_units, -bid
            key = working.key
            if opposite <= key:
                if crossed is None:
                    crossed = [working]
                else:
                    crossed.append(working)
                continue
            if same > key:
                continue  # behind the touch: its size is not visible
            working.see_level(float(size_units) if same == key else 0.0)
        if crossed is not None:
            for working in crossed:
                self._maker_fill_rest(working, ts)

    def _trade_row(self, market: _Market, trade_key: int, units: int, ts: int) -> None:
        """Rules 5-6 for a print of ``units`` at ``trade_key``."""
        taken_at_level: dict[int, int] | None = None
        for working in tuple(market.working):
            key = working.key
            signed = working.sign * trade_key
            if signed < key:
                self._maker_fill_rest(working, ts)
                continue
            if signed > key or working.queue < 0:
                continue
            passed = working.see_print(units)
            taken = 0 if taken_at_level is None else taken_at_level.get(key, 0)
            available = passed - taken
            if available >= 1.0:
                fill = min(working.units - working.filled, int(available))
                if taken_at_level is None:
                    taken_at_level = {}
                taken_at_level[key] = taken + fill
                self._fill(working, fill, key, "maker", ts)

    def _one_row(self, columns: RecordColumns, row: int) -> None:
        """The per-row logic for one row (the definition the batch paths must equal)."""
        (is_touch, is_trade, symbol, update_id, ts, bid, bid_units, ask, ask_units, trade_key,
         trade_units) = columns.row_lists()  # fmt: skip
        if is_touch[row]:
            market = self._market(symbol[row])
            uid = update_id[row]
            if uid != 0:
                if uid <= market.last_uid:
                    return
                market.last_uid = uid
            self._touch_row(market, bid[row], bid_units[row], ask[row], ask_units[row], ts[row])
        elif is_trade[row]:
            market = self._market(symbol[row])
            if market.working:
                self._trade_row(market, trade_key[row], trade_units[row], ts[row])


def fills_and_updates(events: Iterable[Event]) -> tuple[list[Fill], list[OrderUpdate]]:
    """Splits an event list into fills and order updates, each in event order."""
    fills: list[Fill] = []
    updates: list[OrderUpdate] = []
    for event in events:
        if isinstance(event, Fill):
            fills.append(event)
        else:
            updates.append(event)
    return fills, updates


def total_filled(fills: Sequence[Fill], client_id: str) -> float:
    """Sum of fill quantities of one order (exact in 1e-8 units)."""
    return sum(qty_units(fill.qty) for fill in fills if fill.client_id == client_id) / _SCALE_F
