"""Order entry as the brain sees it: the :class:`OrderEntry` protocol, and Binance parsing.

The brain talks to a venue through four calls and one event source. Anything that implements
:class:`OrderEntry` will do: :class:`BinanceOrderEntry` wraps the REST/user-stream client of
:mod:`twinfeed.live.gateway` (the paper venue, or Binance USD-M itself), tests use an
in-memory venue. Everything the venue says comes back as
:class:`twinfeed.live.brain.oms.ExecutionReport` s, so the OMS never sees wire formats.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.orders import Order, OrderState

__all__ = [
    "BINANCE_STATES",
    "NOT_SENT",
    "BinanceOrderEntry",
    "OrderEntry",
    "OrderRefused",
    "report_from_order_response",
    "report_from_stream_event",
]


class OrderRefused(Exception):
    """The venue refused a request (bad signature, bad order, unknown order, ...).

    Attributes:
        code: The venue's error code (Binance's negative codes; 0 if none).
        message: The venue's message.
        retryable: Whether sending the same request again may succeed (throttling, timeouts).
        http_status: The HTTP status of the answer (0: no answer, or not HTTP).
    """

    def __init__(
        self, code: int, message: str, retryable: bool = False, http_status: int = 0
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.http_status = http_status

    @property
    def link_lost(self) -> bool:
        """No usable answer: no connection (code 0), the venue's own failures (HTTP 5xx,
        -1001 disconnected, -1007 timeout: the request's outcome is unknown)."""
        return self.code in (0, -1001, -1007) or self.http_status >= 500

    @property
    def rate_limited(self) -> bool:
        """Throttled: -1003 (too many requests), HTTP 429, or 418 (IP banned for a while)."""
        return self.code == -1003 or self.http_status in (418, 429)


@runtime_checkable
class OrderEntry(Protocol):
    """What the brain needs from a venue. Calls are synchronous; reports may also come later
    through :meth:`poll_reports` (duplicates and reordering are the OMS's problem)."""

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        """Sends a new order; returns the venue's acknowledgement. Raises OrderRefused."""
        ...

    def send_cancel(self, client_id: str, symbol: str) -> ExecutionReport | None:
        """Cancels one order; returns its state after the cancel (None: unknown to the venue,
        e.g. it already finished). Raises OrderRefused."""
        ...

    def send_cancel_all(self, symbol: str) -> None:
        """Cancels every open order of ``symbol``."""
        ...

    def poll_reports(self) -> list[ExecutionReport]:
        """Execution reports received since the last call, in arrival order (non-blocking)."""
        ...

    def venue_positions(self) -> dict[str, float]:
        """Signed position per symbol according to the venue (reconciliation)."""
        ...


#: Binance order status -> twinfeed order state.
BINANCE_STATES: dict[str, OrderState] = {
    "NEW": "acked",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
}

#: The code of a request the brain refused itself and never sent (the venue is unreachable
#: or the brain is backing off a rate limit): see ``BinanceOrderEntry.hold``.
NOT_SENT = -1

_SIDES = {"buy": "BUY", "sell": "SELL"}
_TYPES = {"limit": "LIMIT", "market": "MARKET"}
#: Binance unknown-order codes: cancelling an order that already finished.
UNKNOWN_ORDER_CODES = frozenset({-2011, -2013})


def _ms_to_ns(value: Any) -> int:
    return int(value) * 1_000_000 if value is not None else 0


def report_from_order_response(body: Mapping[str, Any]) -> ExecutionReport:
    """An ExecutionReport from a REST order object (POST/DELETE /fapi/v1/order)."""
    state = BINANCE_STATES.get(str(body.get("status", "NEW")), "acked")
    ts = body.get("updateTime") or body.get("transactTime") or body.get("time")
    return ExecutionReport(
        client_id=str(body["clientOrderId"]),
        state=state,
        ts_ns=_ms_to_ns(ts),
        cum_qty=float(body.get("executedQty") or body.get("cumQty") or 0.0),
        venue_order_id=int(body["orderId"]) if body.get("orderId") is not None else None,
    )


def report_from_stream_event(event: Mapping[str, Any]) -> ExecutionReport | None:
    """An ExecutionReport from a user-stream ``ORDER_TRADE_UPDATE`` (None for other events:
    ``ACCOUNT_UPDATE``, ``listenKeyExpired``). Binance's events carry no sequence number
    (``seq`` stays None unless an event has ``seq``/``sequence``/``u``); a repeated trade is
    recognised by its trade id, a repeated status by its rank (see the OMS)."""
    if event.get("e") != "ORDER_TRADE_UPDATE":
        return None
    order = event["o"]
    state = BINANCE_STATES.get(str(order.get("X")))
    if state is None:
        return None
    seq = event.get("seq", event.get("sequence", event.get("u")))
    trade = order.get("x") == "TRADE" and float(order.get("l") or 0) > 0
    fee = float(order.get("n") or 0.0) if trade else 0.0
    return ExecutionReport(
        client_id=str(order["c"]),
        state=state,
        ts_ns=int(event["ns"])
        if event.get("ns") is not None
        else _ms_to_ns(order.get("T") or event.get("T") or event.get("E")),
        cum_qty=float(order.get("z") or 0.0),
        seq=int(seq) if seq is not None else None,
        trade_id=int(order["t"]) if trade else None,
        last_qty=float(order["l"]) if trade else 0.0,
        last_price=float(order["L"]) if trade else 0.0,
        fee=fee,
        liquidity="maker" if order.get("m") else "taker",
        venue_order_id=int(order["i"]) if order.get("i") is not None else None,
        reason=str(order.get("reason", "")) if state in ("rejected", "expired") else "",
    )


class BinanceOrderEntry:
    """:class:`OrderEntry` over :class:`twinfeed.live.gateway.OrderGateway`.

    A background thread reads the user-data websocket (``gateway.user_stream()``) and queues
    its events in arrival order; :meth:`poll_reports` drains the queue without blocking, so
    the trader sees them only at its own step boundaries (what the strategy sees does not
    depend on when the thread ran within a step). ``stream_gaps`` counts the streams reopened
    after one closed: Binance's events carry no sequence number, so each reopening may have
    missed events, and ``stream_errors`` grows with it; the order-link guard
    (:mod:`twinfeed.live.brain.order_faults`) then reconciles through REST.

    Hooks for the brain's order-link guard: ``on_error`` is called with every
    :class:`OrderRefused` of a REST call (in the caller's thread); while ``hold`` is set (a
    reason), orders and cancels are refused locally with code :data:`NOT_SENT` and never sent;
    with ``pending_on_link_error``, a new order whose request got no usable answer
    (:attr:`OrderRefused.link_lost`) is reported ``new`` (its outcome unknown, settled by
    reconciliation) instead of refused. ``stream_down`` is True from a closed stream until a
    new one is open; the reader retries with exponential backoff (``stream_retry_s`` doubling
    up to ``stream_retry_max_s``; :meth:`wake_stream` retries at once) with the account's
    listen key (``POST`` returns the active one, or a new one once it expired), and keeps the
    key alive with a ``PUT`` every ``keepalive_s`` seconds (Binance: a key lives 60 minutes).
    """

    def __init__(
        self,
        gateway: Any,
        *,
        stream: bool = True,
        poll_timeout_s: float = 1.0,
        stream_retry_s: float = 0.1,
        stream_retry_max_s: float = 1.0,
        keepalive_s: float = 30 * 60.0,
    ) -> None:
        self.gateway = gateway
        self.stream_gaps = 0
        self.stream_errors = 0
        self.stream_down = False
        self.stream_retry_s = stream_retry_s
        self.stream_retry_max_s = stream_retry_max_s
        self.keepalive_s = keepalive_s
        self.on_error: Callable[[OrderRefused], None] | None = None
        self.hold: str | None = None
        self.pending_on_link_error = False
        self._queue: deque[Mapping[str, Any]] = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        if stream:
            self._stream = gateway.user_stream()
            self._thread = threading.Thread(
                target=self._read_stream, args=(poll_timeout_s,), name="user-stream", daemon=True
            )
            self._thread.start()

    def _read_stream(self, timeout: float) -> None:
        delay = self.stream_retry_s
        next_keepalive = time.monotonic() + self.keepalive_s
        while not self._stop.is_set():
            try:
                if self._stream is None:
                    self._stream = self.gateway.user_stream()
                    self.stream_gaps += 1  # what was published while it was closed is lost
                    next_keepalive = time.monotonic() + self.keepalive_s
                events = self._stream.poll(timeout=timeout)
                self.stream_down = False
                delay = self.stream_retry_s
                self._queue.extend(events)
                if time.monotonic() >= next_keepalive:
                    next_keepalive = time.monotonic() + self.keepalive_s
                    self.gateway.keepalive_listen_key(self._stream.listen_key)
            except Exception:  # closed, expired or unreachable: reopen, counted
                self.stream_errors += 1
                self.stream_down = True
                if self._stream is not None:
                    with contextlib.suppress(Exception):
                        self._stream.close()
                    self._stream = None
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, self.stream_retry_max_s)

    def wake_stream(self) -> None:
        """Ends the stream reader's backoff wait (the venue is reachable again)."""
        self._wake.set()

    def close(self) -> None:
        """Stops the stream reader (waits for its current poll to return) and its stream."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from twinfeed.live.gateway import VenueRejected

        try:
            return function(*args, **kwargs)
        except VenueRejected as error:
            refused = OrderRefused(
                int(error.code),
                str(error.msg),
                bool(error.retryable),
                int(getattr(error, "http_status", 0) or 0),
            )
            if self.on_error is not None:
                self.on_error(refused)
            raise refused from error

    def _held(self) -> None:
        if self.hold is not None:
            raise OrderRefused(NOT_SENT, f"not sent: {self.hold}")

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        self._held()
        try:
            body = self._call(
                self.gateway.new_order,
                symbol,
                _SIDES[order.side],
                order.qty,
                order.price if order.type == "limit" else None,
                type=_TYPES[order.type],
                time_in_force=order.tif if order.type == "limit" else None,
                client_order_id=order.client_id,
            )
        except OrderRefused as error:
            if self.pending_on_link_error and error.link_lost:
                # It may have reached the venue: "new" until reconciliation finds out.
                return ExecutionReport(order.client_id, "new", 0)
            raise
        return report_from_order_response(body)

    def send_cancel(self, client_id: str, symbol: str) -> ExecutionReport | None:
        self._held()
        try:
            body = self._call(self.gateway.cancel, symbol, client_order_id=client_id)
        except OrderRefused as error:
            if error.code in UNKNOWN_ORDER_CODES:
                return None
            raise
        return report_from_order_response(body)

    def send_cancel_all(self, symbol: str) -> None:
        self._held()
        self._call(self.gateway.cancel_all, symbol)

    def poll_reports(self) -> list[ExecutionReport]:
        reports = []
        while self._queue:
            report = report_from_stream_event(self._queue.popleft())
            if report is not None:
                reports.append(report)
        return reports

    def venue_positions(self) -> dict[str, float]:
        positions: dict[str, float] = {}
        for row in self._call(self.gateway.positions):
            positions[str(row["symbol"])] = float(row["positionAmt"])
        return positions
