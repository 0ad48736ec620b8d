"""The order management system: one state machine per order, keyed by client order id.

The venue reports what happened to an order as :class:`ExecutionReport` s: REST responses
(the acknowledgement of a new order, the result of a cancel) and user-stream events
(``ORDER_TRADE_UPDATE``). Reports can arrive twice (a REST response and the stream event that
says the same thing), out of order (the stream and REST race), or late (a fill that crossed a
cancel request on the wire). The OMS folds them into each order so that none of this changes
the result:

- **State** only moves forward: ``new < acked < partially_filled < terminal``. A report whose
  state is behind the order's is kept for its fill (if any) and otherwise ignored; once an
  order is terminal (filled, cancelled, rejected, expired) its state never changes again.
- **Fills** are keyed by the venue's trade id. A trade id already booked is never booked twice,
  so duplicates are harmless and reordered fills add up to the same quantity. A fill that
  arrives after the order turned cancelled still counts: the venue executed it.
- **Duplicates** by stream sequence number are dropped before anything else.
- ``venue_filled`` is the largest cumulative quantity any report claimed. While it exceeds
  the sum of booked fills, a trade report is still in flight (``Order.reason`` is untouched;
  :meth:`OrderManager.unsettled` lists such orders).

A cancel request for an order that already finished is a no-op (the OMS says so and sends
nothing). :meth:`OrderManager.apply` returns the :class:`twinfeed.orders.Fill` and
:class:`twinfeed.orders.OrderUpdate` events that the report caused, fills first, ready for the
portfolio, the trade DB and the strategy, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twinfeed.orders import (
    OPEN_STATES,
    TERMINAL_STATES,
    Event,
    Fill,
    Liquidity,
    Order,
    OrderState,
    OrderUpdate,
)

__all__ = [
    "STATE_RANK",
    "ExecutionReport",
    "OrderManager",
    "TrackedOrder",
    "UnknownOrder",
]

#: How far along an order is; reports never move an order backwards.
STATE_RANK: dict[str, int] = {
    "new": 0,
    "acked": 1,
    "partially_filled": 2,
    "filled": 3,
    "cancelled": 3,
    "rejected": 3,
    "expired": 3,
}

_QTY_EPS = 1e-9


class UnknownOrder(KeyError):
    """A report or request named a client order id the OMS never saw."""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What the venue said about one order at one moment.

    Attributes:
        client_id: Client order id.
        state: The order's state after the event.
        ts_ns: Event time (venue transaction time, ns).
        cum_qty: Cumulative executed quantity the venue reports.
        seq: User-stream sequence number (None for REST responses).
        trade_id: Trade id when this report carries an execution (None otherwise).
        last_qty: Quantity of that execution.
        last_price: Price of that execution.
        fee: Fee of that execution (quote currency; negative = rebate).
        liquidity: Maker or taker, for an execution.
        venue_order_id: The venue's order id.
        reason: Why an order was rejected or expired.
    """

    client_id: str
    state: OrderState
    ts_ns: int
    cum_qty: float = 0.0
    seq: int | None = None
    trade_id: int | None = None
    last_qty: float = 0.0
    last_price: float = 0.0
    fee: float = 0.0
    liquidity: Liquidity = "maker"
    venue_order_id: int | None = None
    reason: str = ""


@dataclass(slots=True)
class TrackedOrder:
    """An order and what the OMS knows about it beyond :class:`twinfeed.orders.Order`."""

    order: Order
    venue_filled: float = 0.0
    venue_order_id: int | None = None
    trade_ids: set[int] = field(default_factory=set)
    cancel_requested: bool = False
    reports: int = 0


class OrderManager:
    """Order state machines keyed by client order id. Single-threaded."""

    def __init__(self) -> None:
        self._orders: dict[str, TrackedOrder] = {}
        self._seen_seq: set[int] = set()
        self.duplicates = 0
        self.stale_reports = 0

    # ---- requests -----------------------------------------------------------------------

    def add(self, order: Order) -> Order:
        """Registers an order the brain is about to send (state ``new``)."""
        if order.client_id in self._orders:
            raise ValueError(f"duplicate client order id {order.client_id!r}")
        self._orders[order.client_id] = TrackedOrder(order)
        return order

    def request_cancel(self, client_id: str) -> bool:
        """Marks a cancel as requested; False (send nothing) if the order already finished."""
        tracked = self._tracked(client_id)
        if tracked.order.state in TERMINAL_STATES:
            return False
        tracked.cancel_requested = True
        return True

    def reject(self, client_id: str, ts_ns: int, reason: str) -> list[Event]:
        """Rejects an order locally (risk, or the venue refused the request)."""
        return self.apply(ExecutionReport(client_id, "rejected", ts_ns, reason=reason))

    # ---- reports ------------------------------------------------------------------------

    def apply(self, report: ExecutionReport) -> list[Event]:
        """Folds one report into its order; returns the events it caused (fills first)."""
        if report.seq is not None:
            if report.seq in self._seen_seq:
                self.duplicates += 1
                return []
            self._seen_seq.add(report.seq)
        tracked = self._tracked(report.client_id)
        tracked.reports += 1
        order = tracked.order
        events: list[Event] = []
        if report.venue_order_id is not None:
            tracked.venue_order_id = report.venue_order_id
        if report.cum_qty > tracked.venue_filled:
            tracked.venue_filled = report.cum_qty
        if (
            report.trade_id is not None
            and report.last_qty > 0
            and report.trade_id not in tracked.trade_ids
        ):
            tracked.trade_ids.add(report.trade_id)
            events.append(self._book_fill(tracked, report))
        changed = bool(events)
        rank = STATE_RANK[report.state]
        current = STATE_RANK[order.state]
        if order.state not in TERMINAL_STATES and rank > current:
            order.state = report.state
            changed = True
            if report.reason:
                order.reason = report.reason
            if order.active_ns < 0 and report.state != "rejected":
                order.active_ns = report.ts_ns
            if report.state in TERMINAL_STATES:
                order.done_ns = report.ts_ns
        elif rank < current or (rank == current and not events):
            self.stale_reports += 1
        if order.state == "acked" and order.filled_qty > _QTY_EPS:
            # A fill arrived before (or instead of) the partially-filled status.
            order.state = "partially_filled"
        if order.is_open and order.filled_qty >= order.qty - _QTY_EPS:
            order.state = "filled"
            order.done_ns = report.ts_ns
        if changed:
            events.append(OrderUpdate.of(order, report.ts_ns))
        return events

    def _book_fill(self, tracked: TrackedOrder, report: ExecutionReport) -> Fill:
        order = tracked.order
        qty = report.last_qty
        before = order.filled_qty
        after = before + qty
        order.avg_price = (
            report.last_price
            if before <= 0
            else (order.avg_price * before + report.last_price * qty) / after
        )
        order.filled_qty = after
        order.fees += report.fee
        queue_ns = max(report.ts_ns - order.active_ns, 0) if order.active_ns >= 0 else 0
        return Fill(
            client_id=order.client_id,
            symbol=order.symbol,
            side=order.side,
            price=report.last_price,
            qty=qty,
            fee=report.fee,
            liquidity=report.liquidity,
            ts_ns=report.ts_ns,
            fill_id=int(report.trade_id or 0),
            queue_ns=queue_ns if report.liquidity == "maker" else 0,
        )

    # ---- queries ------------------------------------------------------------------------

    def _tracked(self, client_id: str) -> TrackedOrder:
        try:
            return self._orders[client_id]
        except KeyError:
            raise UnknownOrder(client_id) from None

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, client_id: str) -> Order:
        """The order (a live object: read, don't mutate)."""
        return self._tracked(client_id).order

    def tracked(self, client_id: str) -> TrackedOrder:
        return self._tracked(client_id)

    def orders(self) -> list[Order]:
        """Every order, in submission order."""
        return [tracked.order for tracked in self._orders.values()]

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        """Orders that may still execute (of ``symbol``), in submission order."""
        return [
            tracked.order
            for tracked in self._orders.values()
            if tracked.order.state in OPEN_STATES
            and (symbol is None or tracked.order.symbol == symbol)
        ]

    def unsettled(self) -> list[Order]:
        """Orders whose venue-reported cumulative quantity exceeds the fills booked so far."""
        return [
            tracked.order
            for tracked in self._orders.values()
            if tracked.venue_filled > tracked.order.filled_qty + _QTY_EPS
        ]
