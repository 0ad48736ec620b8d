"""Order entry as the brain sees it: the :class:`OrderEntry` protocol and :class:`PortEntry`.

The brain's loop talks to a venue through four calls and one event source
(:class:`OrderEntry`). :class:`PortEntry` provides them over any venue port
(:class:`twinfeed.venues.port.VenuePort`; the session wires the Binance adapter in), and adds
the brain's own policy: the order-link guard's hold and error hook. Tests use an in-memory
venue. Everything the venue says comes back as :class:`twinfeed.live.brain.oms.ExecutionReport`
s, so the OMS never sees wire formats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.orders import Order, Side
from twinfeed.venues.errors import NOT_SENT, VenueError
from twinfeed.venues.port import VenuePort

__all__ = ["NOT_SENT", "OrderEntry", "PortEntry"]

_T = TypeVar("_T")


@runtime_checkable
class OrderEntry(Protocol):
    """What the brain needs from a venue. Calls are synchronous; reports may also come later
    through :meth:`poll_reports` (duplicates and reordering are the OMS's problem)."""

    #: True if :meth:`send_modify` works (else a replace is a cancel and a new order).
    supports_modify: bool

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        """Sends a new order; returns the venue's acknowledgement. Raises VenueError."""
        ...

    def send_cancel(self, client_id: str, symbol: str) -> ExecutionReport | None:
        """Cancels one order; returns its state after the cancel (None: unknown to the venue,
        e.g. it already finished). Raises VenueError."""
        ...

    def send_cancel_all(self, symbol: str) -> None:
        """Cancels every open order of ``symbol``."""
        ...

    def send_modify(
        self, client_id: str, symbol: str, side: Side, qty: float, price: float
    ) -> ExecutionReport:
        """Changes a resting limit order's price and total quantity in place; returns its
        state after the change. Raises VenueError."""
        ...

    def poll_reports(self) -> list[ExecutionReport]:
        """Execution reports received since the last call, in arrival order (non-blocking)."""
        ...

    def venue_positions(self) -> dict[str, float]:
        """Signed position per symbol according to the venue (reconciliation)."""
        ...


class PortEntry:
    """:class:`OrderEntry` over a :class:`twinfeed.venues.port.VenuePort`.

    Hooks for the brain's order-link guard (:mod:`twinfeed.live.brain.order_faults`):
    ``on_error`` is called with every :class:`VenueError` of a venue call (in the caller's
    thread); while ``hold`` is set (a reason), orders and cancels are refused locally with code
    :data:`NOT_SENT` and never sent; with ``pending_on_link_error``, a new order whose request
    got no usable answer (:attr:`VenueError.link_lost`) is reported ``new`` (its outcome
    unknown, settled by a query in reconciliation, never re-sent) instead of refused.
    """

    def __init__(self, port: VenuePort) -> None:
        self.port = port
        self.on_error: Callable[[VenueError], None] | None = None
        self.hold: str | None = None
        self.pending_on_link_error = False
        self.supports_modify = port.supports_modify

    def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return function(*args)
        except VenueError as error:
            if self.on_error is not None:
                self.on_error(error)
            raise

    def _held(self) -> None:
        if self.hold is not None:
            raise VenueError(NOT_SENT, f"not sent: {self.hold}")

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        self._held()
        try:
            return self._call(self.port.send_order, order, symbol)
        except VenueError as error:
            if self.pending_on_link_error and error.link_lost:
                # It may have reached the venue: "new" until reconciliation finds out.
                return ExecutionReport(order.client_id, "new", 0)
            raise

    def send_cancel(self, client_id: str, symbol: str) -> ExecutionReport | None:
        self._held()
        try:
            return self._call(self.port.cancel, client_id, symbol)
        except VenueError as error:
            if error.unknown_order:
                return None
            raise

    def send_cancel_all(self, symbol: str) -> None:
        self._held()
        self._call(self.port.cancel_all, symbol)

    def send_modify(
        self, client_id: str, symbol: str, side: Side, qty: float, price: float
    ) -> ExecutionReport:
        self._held()
        return self._call(self.port.modify, client_id, symbol, qty, price, side)

    def poll_reports(self) -> list[ExecutionReport]:
        return self.port.poll_reports()

    def venue_positions(self) -> dict[str, float]:
        return self._call(self.port.positions)

    def close(self) -> None:
        self.port.close()
