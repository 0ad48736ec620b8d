"""The Strategy API, shared by the backtester and the live trader.

A strategy is a class with callbacks; the runner (:class:`twinfeed.research.backtest.Backtest`
in research, the live brain later) calls them in event order and hands each call a
:class:`Context` to read state and send orders through. The same class runs unchanged in both.

Callback order for one step of market data:

1. ``on_fill`` and ``on_order_update`` for what the venue did up to the new data, in the
   order it happened (a fill comes before the update it causes);
2. ``on_feed_status`` if the feed's health changed;
3. ``on_record(ctx, record)`` for each record, or ``on_batch(ctx, records)`` once for a batch
   if the strategy sets ``wants_batches = True``.

``on_start`` runs before the first record, ``on_stop`` after the last (the runner then
cancels whatever the strategy left working).

Per-record versus batches: Python costs about 1 µs per record per callback, so a strategy
that can decide on a whole batch with numpy should override :meth:`Strategy.on_batch` and set
``wants_batches = True``. The backtester then cuts the record stream on a fixed event-time grid
(``decision_interval_ns``) and calls ``on_batch`` at the end of each non-empty interval with
``ctx.now_ns`` = the time of its last record; orders sent then can only affect later records.
The default ``on_batch`` calls ``on_record`` for each row: that is what a runner that only has
batches (the live ring) does for per-record strategies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from twinfeed.instruments import Instrument
from twinfeed.orders import Fill, Order, OrderType, OrderUpdate, Side, TimeInForce

FeedStatus = Literal["healthy", "degraded", "stale"]
#: ``healthy``: records flow and the book is consistent. ``degraded``: the book lost continuity
#: (a gap record) and is being rebuilt; the touch from the quote stream may still be good.
#: ``stale``: the feed is disconnected or silent; nothing it says is current.
FEED_STATUSES: tuple[FeedStatus, ...] = ("healthy", "degraded", "stale")


@dataclass(frozen=True, slots=True)
class PnL:
    """Profit and loss in the settlement currency (all symbols together): the quote asset for
    spot and USD-M, the coin for COIN-M inverse contracts (``Portfolio.currency``).

    Attributes:
        realized: Closed-trade profit, before fees.
        unrealized: Mark-to-market of open positions at the last mid.
        fees: Fees paid (negative = rebates earned).
        total: ``realized + unrealized - fees``.
    """

    realized: float
    unrealized: float
    fees: float

    @property
    def total(self) -> float:
        return self.realized + self.unrealized - self.fees


@runtime_checkable
class Context(Protocol):
    """What a strategy sees and can do. The backtester and the live runner implement it.

    Times are nanoseconds of event time: the capture's receive clock in research, the
    records' receive time live. Never the wall clock, so a replay is reproducible.
    """

    @property
    def now_ns(self) -> int:
        """Event time of the latest data the strategy has seen."""
        ...

    @property
    def params(self) -> Mapping[str, Any]:
        """The strategy's parameters (defaults merged with the run's overrides)."""
        ...

    def submit(
        self,
        side: Side,
        qty: float,
        price: float | None = None,
        type: OrderType = "limit",
        tif: TimeInForce = "GTC",
        client_id: str | None = None,
        symbol: int | None = None,
        *,
        reduce_only: bool = False,
        good_till_ms: int | None = None,
    ) -> str:
        """Sends an order; returns its client order id (generated if not given).

        ``price`` is required for limit orders and ignored for market orders. ``symbol`` is a
        record ``symbol_id``, default the run's primary symbol. ``tif``: ``GTC``, ``IOC``,
        ``GTX`` (post-only), ``FOK`` or ``GTD`` with ``good_till_ms`` (event time in ms; a
        ``good_till_ms`` alone makes a GTC order GTD). ``reduce_only``: the order may only
        reduce the position (cut to it; refused or expired when it would increase it). The
        order starts in state ``new``; its fate arrives as order updates and fills. An invalid
        order (:func:`twinfeed.orders.validate`) is ``rejected`` at once and never sent.
        """
        ...

    def cancel(self, client_id: str) -> None:
        """Requests cancellation of one order (refused if it finished first)."""
        ...

    def cancel_all(self, symbol: int | None = None) -> list[str]:
        """Requests cancellation of every open order (of ``symbol``); returns their ids."""
        ...

    def replace(self, client_id: str, price: float, qty: float) -> None:
        """Requests a new limit price and total quantity for a working order."""
        ...

    def position(self, symbol: int | None = None) -> float:
        """Signed position in base units (> 0 long) of ``symbol`` (default: primary symbol)."""
        ...

    def pnl(self) -> PnL:
        """Realized, unrealized and fees so far."""
        ...

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        """Orders that may still execute, in submission order (read-only views)."""
        ...

    def instrument(self, symbol: int | str | None = None) -> Instrument:
        """The trading rules of ``symbol`` (a record ``symbol_id`` or the venue's name; default
        the primary symbol): tick and step grids with rounding helpers, minimums, contract size.
        The same rules the matching engine, the paper venue and risk apply
        (:class:`twinfeed.instruments.Instrument`); ``UnknownInstrumentError`` if the run has
        none for it."""
        ...


class Strategy:
    """Base class of strategies. Override the callbacks you need; all default to doing nothing.

    Parameters: subclasses list theirs with defaults in ``default_params``; a run's overrides
    are merged over them, unknown names are an error (a typo would otherwise be ignored
    silently). The merged mapping is ``self.params`` and ``ctx.params``.

    Attributes:
        name: Shown in reports and artifacts (default: the class's qualified name).
        wants_batches: Set ``True`` in a subclass that overrides :meth:`on_batch` to take whole
            batches of records (see the module docstring).
        default_params: Parameter names and default values (JSON-serialisable).
    """

    name: ClassVar[str] = ""
    wants_batches: ClassVar[bool] = False
    default_params: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            known = ", ".join(sorted(self.default_params)) or "none"
            raise ValueError(
                f"{type(self).__name__}: unknown parameter(s) {', '.join(unknown)} (known: {known})"
            )
        self.params: dict[str, Any] = {**self.default_params, **params}

    @classmethod
    def qualified_name(cls) -> str:
        """``module:Class``, the form ``twinfeed backtest --strategy`` accepts."""
        return f"{cls.__module__}:{cls.__qualname__}"

    def on_start(self, ctx: Context) -> None:
        """Called once before the first record."""

    def on_record(self, ctx: Context, record: np.void) -> None:
        """Called for each record (one row of ``twinfeed.record_dtype()``), in stream order."""

    def on_batch(self, ctx: Context, records: np.ndarray[Any, Any]) -> None:
        """Called with a batch of records when ``wants_batches``; default: ``on_record`` each."""
        for record in records:
            self.on_record(ctx, record)

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        """Called when one of the strategy's orders changes state (acked, filled, ...)."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """Called for each execution, before the order update it causes."""

    def on_feed_status(self, ctx: Context, status: FeedStatus) -> None:
        """Called when the feed's health changes (``healthy``/``degraded``/``stale``)."""

    def on_stop(self, ctx: Context) -> None:
        """Called once after the last record."""
