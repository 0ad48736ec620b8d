"""The venue port: what the brain needs from an exchange, in the domain's types only.

The brain (OMS, reconciliation, crash recovery, the order-link guard) calls only this
protocol; an adapter under ``twinfeed/venues/<name>/`` implements it for one exchange
(:class:`twinfeed.venues.binance.adapter.BinanceVenue`). Orders go in as
:class:`twinfeed.orders.Order`; everything the venue says comes back as
:class:`twinfeed.live.brain.oms.ExecutionReport`, :class:`VenueOrder` or :class:`VenueFill`.
Every refusal or failure raises :class:`twinfeed.venues.errors.VenueError`, whose flags
(``link_lost``, ``rate_limited``, ``unknown_order``) the adapter sets from its own codes.

The user-event stream: the adapter reads it in its own thread and queues the reports;
:meth:`VenuePort.poll_reports` drains them without blocking. ``stream_errors`` counts the
times the stream closed (events may have been lost: the brain reconciles), ``stream_down``
is True until it is open again, and :meth:`VenuePort.wake_stream` ends its reconnect backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from twinfeed.orders import Liquidity, Order, Side

if TYPE_CHECKING:
    from twinfeed.instruments import Instrument
    from twinfeed.live.brain.oms import ExecutionReport

__all__ = ["VenueAccount", "VenueFill", "VenueOrder", "VenuePort"]


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue has it: its symbol and its state (as an execution report)."""

    symbol: str
    report: ExecutionReport

    @property
    def client_id(self) -> str:
        return self.report.client_id


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One of the account's trades as the venue lists it (``client_id`` "" if unknown)."""

    trade_id: int
    venue_order_id: int
    client_id: str
    symbol: str
    side: Side
    price: float
    qty: float
    fee: float
    liquidity: Liquidity
    ts_ns: int


@dataclass(frozen=True, slots=True)
class VenueAccount:
    """What the preflight checks of the account: may it trade, is it in hedge mode (the brain
    trades one-way positions), and its wallet balance per asset."""

    can_trade: bool
    hedge_mode: bool
    balances: dict[str, float]


@runtime_checkable
class VenuePort(Protocol):
    """An exchange account, as the brain uses it. See the module docstring."""

    stream_errors: int
    stream_down: bool
    #: True if :meth:`modify` changes an order in place (else the brain cancels and resends).
    supports_modify: bool

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        """Sends a new order; returns the venue's answer (its state after matching)."""
        ...

    def cancel(self, client_id: str, symbol: str) -> ExecutionReport:
        """Cancels one order; returns its state after the cancel."""
        ...

    def cancel_all(self, symbol: str) -> None:
        """Cancels every open order of ``symbol``."""
        ...

    def modify(
        self, client_id: str, symbol: str, qty: float, price: float, side: Side | None = None
    ) -> ExecutionReport:
        """Changes a resting limit order's price and total quantity in place (``side``, if
        given, spares the venue a lookup)."""
        ...

    def order_status(
        self, symbol: str, *, client_id: str | None = None, venue_order_id: int | None = None
    ) -> VenueOrder:
        """One order's state (raises VenueError with ``unknown_order`` if the venue has none)."""
        ...

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """The account's open orders (all symbols when ``symbol`` is None)."""
        ...

    def fills_since(self, symbol: str, from_trade_id: int = 0) -> list[VenueFill]:
        """Every trade of the account in ``symbol`` with an id from ``from_trade_id`` on."""
        ...

    def positions(self) -> dict[str, float]:
        """Signed position per symbol."""
        ...

    def balances(self) -> dict[str, float]:
        """Wallet balance per asset."""
        ...

    def ping(self) -> None:
        """Returns if the venue answers (raises VenueError otherwise)."""
        ...

    def account(self) -> VenueAccount:
        """Trading permission, position mode and balances."""
        ...

    def sync_clock(self) -> int:
        """Measures the venue's clock against ours; returns the offset (ms) now used."""
        ...

    def clock_offset_ms(self) -> int:
        """The venue's clock minus ours (ms), measured now; the offset in use is unchanged."""
        ...

    def instruments(self) -> dict[str, Instrument]:
        """The venue's instruments (trading rules) by symbol."""
        ...

    def poll_reports(self) -> list[ExecutionReport]:
        """User-stream reports received since the last call, in arrival order."""
        ...

    def wake_stream(self) -> None:
        """Ends the user-stream reader's reconnect backoff (the venue is reachable again)."""
        ...

    def close(self) -> None:
        """Stops the user-stream reader and closes connections."""
        ...
