"""Orders, fills and order updates: the vocabulary shared by the backtester and the live brain.

An :class:`Order` is the mutable working state of one order, owned by whoever matches it (the
:class:`twinfeed.matching.MatchingEngine` in research and paper trading, the OMS live). Every
change to it is announced as an immutable :class:`OrderUpdate`; every execution as an immutable
:class:`Fill`. Strategies read orders and receive updates and fills; they never mutate an order.

Lifecycle (``OrderState``)::

    new ──> acked ──> partially_filled ──> filled
     │        │              │
     │        └──────────────┴──> cancelled | expired
     └──> rejected | expired

- ``new``: created by ``Context.submit``; still travelling to the venue (order-entry latency).
- ``acked``: live at the venue (resting limit order, or about to execute).
- ``partially_filled``: some quantity executed, the rest still working.
- ``filled``: all quantity executed.
- ``cancelled``: removed at the strategy's request (the filled part stays filled).
- ``rejected``: refused by the venue before it worked (bad quantity or price, no market).
- ``expired``: removed by the venue's rules: the unfilled rest of an IOC order, a FOK order
  that could not fill entirely, a post-only (GTX) order that would have taken liquidity
  (Binance reports the latter as EXPIRED too), or an order the venue expired (GTD time,
  a reduce-only order that would now increase the position).

Quantities are positive; the side says the direction. Prices and quantities are floats at the
API and exact integers of 1e-8 units inside the matching engine (the feature crate's scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC", "GTX", "FOK", "GTD"]
Liquidity = Literal["maker", "taker"]
OrderState = Literal[
    "new", "acked", "partially_filled", "filled", "cancelled", "rejected", "expired"
]

SIDES: tuple[Side, ...] = ("buy", "sell")
ORDER_TYPES: tuple[OrderType, ...] = ("limit", "market")
TIMES_IN_FORCE: tuple[TimeInForce, ...] = ("GTC", "IOC", "GTX", "FOK", "GTD")
#: States from which an order never moves again.
TERMINAL_STATES: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "expired"})
#: States of an order that may still execute.
OPEN_STATES: frozenset[str] = frozenset({"new", "acked", "partially_filled"})


def side_sign(side: Side) -> int:
    """+1 for a buy, -1 for a sell: the sign of the position change."""
    return 1 if side == "buy" else -1


@dataclass(slots=True)
class Order:
    """One order and its working state.

    Attributes:
        client_id: The strategy-side identifier, unique within a run.
        symbol: Symbol id as in the feature records (``record["symbol_id"]``).
        side: ``"buy"`` or ``"sell"``.
        qty: Total quantity ordered (base asset, > 0). A replace may change it.
        price: Limit price; ``None`` for market orders.
        type: ``"limit"`` or ``"market"``.
        tif: Time in force: ``"GTC"`` rests, ``"IOC"`` takes what it can and expires the rest,
            ``"GTX"`` is post-only (expires instead of taking liquidity), ``"FOK"`` fills
            entirely on arrival or expires without filling, ``"GTD"`` rests like GTC until
            ``good_till_ms`` and then expires.
        state: See the module docstring.
        filled_qty: Quantity executed so far.
        avg_price: Quantity-weighted average fill price (NaN before the first fill).
        fees: Fees paid so far in quote currency (negative = rebates received).
        submit_ns: Event time at which the strategy submitted the order.
        active_ns: Event time at which the venue accepted it (-1 until then).
        done_ns: Event time at which it reached a terminal state (-1 until then).
        reason: Why it was rejected or expired, or empty.
        reduce_only: Only ever reduces the position: its quantity is cut to the position on
            arrival, and it expires instead of filling once it would increase (or open) one.
        good_till_ms: For ``"GTD"``: the event time (ms) at which it expires (0: none).
    """

    client_id: str
    symbol: int
    side: Side
    qty: float
    price: float | None
    type: OrderType = "limit"
    tif: TimeInForce = "GTC"
    state: OrderState = "new"
    filled_qty: float = 0.0
    avg_price: float = float("nan")
    fees: float = 0.0
    submit_ns: int = 0
    active_ns: int = -1
    done_ns: int = -1
    reason: str = ""
    reduce_only: bool = False
    good_till_ms: int = 0

    def as_submitted(self) -> Order:
        """A fresh copy of the order as the strategy submitted it: the same request fields
        (ids, side, size, price, type, time in force, flags, submit time), no working state."""
        return Order(
            self.client_id,
            self.symbol,
            self.side,
            self.qty,
            self.price,
            type=self.type,
            tif=self.tif,
            submit_ns=self.submit_ns,
            reduce_only=self.reduce_only,
            good_till_ms=self.good_till_ms,
        )

    @property
    def remaining_qty(self) -> float:
        """Quantity still working (0 once the order is terminal)."""
        if self.state in TERMINAL_STATES:
            return 0.0
        return max(self.qty - self.filled_qty, 0.0)

    @property
    def is_open(self) -> bool:
        """True while the order may still execute (new, acked or partially filled)."""
        return self.state in OPEN_STATES


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order.

    Attributes:
        client_id: The order that executed.
        symbol: Symbol id.
        side: The order's side.
        price: Execution price.
        qty: Executed quantity (> 0).
        fee: Fee in quote currency for this fill (negative = rebate).
        liquidity: ``"maker"`` if the order rested and was hit, ``"taker"`` if it crossed.
        ts_ns: Event time of the execution.
        fill_id: Sequence number of the fill within its engine (1, 2, ...).
        queue_ns: Time the order had been working at the venue before this fill (0 for takers
            that executed on arrival).
    """

    client_id: str
    symbol: int
    side: Side
    price: float
    qty: float
    fee: float
    liquidity: Liquidity
    ts_ns: int
    fill_id: int
    queue_ns: int = 0


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change of an order's state, as the venue would report it.

    Attributes:
        client_id: The order.
        state: Its state after the change.
        ts_ns: Event time of the change.
        filled_qty: Total executed quantity after the change.
        remaining_qty: Quantity still working after the change (0 when terminal).
        price: Current limit price (``None`` for market orders).
        qty: Current total quantity.
        reason: For rejected/expired orders, and for refused cancels/replaces, why.
    """

    client_id: str
    state: OrderState
    ts_ns: int
    filled_qty: float
    remaining_qty: float
    price: float | None
    qty: float
    reason: str = ""

    @classmethod
    def of(cls, order: Order, ts_ns: int, reason: str = "") -> OrderUpdate:
        """A snapshot of ``order`` at ``ts_ns``."""
        return cls(
            client_id=order.client_id,
            state=order.state,
            ts_ns=ts_ns,
            filled_qty=order.filled_qty,
            remaining_qty=order.remaining_qty,
            price=order.price,
            qty=order.qty,
            reason=reason or order.reason,
        )


#: What the matching engine emits, in event order.
Event = Fill | OrderUpdate


def validate(order: Order) -> str:
    """Empty string if ``order`` is well formed, else the reason a venue would reject it."""
    if order.side not in SIDES:
        return f"side must be one of {SIDES}, got {order.side!r}"
    if order.type not in ORDER_TYPES:
        return f"type must be one of {ORDER_TYPES}, got {order.type!r}"
    if order.tif not in TIMES_IN_FORCE:
        return f"tif must be one of {TIMES_IN_FORCE}, got {order.tif!r}"
    if not (0 < order.qty < float("inf")):
        return f"qty must be a positive finite number, got {order.qty!r}"
    if order.type == "limit":
        if order.price is None or not (0 < order.price < float("inf")):
            return f"limit orders need a positive finite price, got {order.price!r}"
    elif order.tif in ("GTX", "GTD"):
        return f"market orders cannot be {order.tif}"
    if (order.tif == "GTD") != (order.good_till_ms > 0):
        return (
            f"good_till_ms goes with tif GTD only, got tif {order.tif!r} and good_till_ms "
            f"{order.good_till_ms!r}"
        )
    return ""
