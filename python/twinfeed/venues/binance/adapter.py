"""The Binance USD-M adapter of the venue port (:class:`twinfeed.venues.port.VenuePort`).

:class:`BinanceVenue` wraps the REST client (:class:`twinfeed.venues.binance.rest.OrderGateway`)
and reads the user-data websocket in a background thread, queueing its events in arrival
order; :meth:`BinanceVenue.poll_reports` drains the queue without blocking, so the trader sees
them only at its own step boundaries. ``stream_gaps`` counts the streams reopened after one
closed: Binance's events carry no sequence number, so each reopening may have missed events,
and ``stream_errors`` grows with it; the brain's order-link guard then reconciles through the
port. ``stream_down`` is True from a closed stream until a new one is open; the reader retries
with exponential backoff (``stream_retry_s`` doubling up to ``stream_retry_max_s``;
:meth:`wake_stream` retries at once) with the account's listen key (``POST`` returns the active
one, or a new one once it expired), and keeps the key alive with a ``PUT`` every
``keepalive_s`` seconds (Binance: a key lives 60 minutes). The same thread measures the
venue's clock at start and every ``clock_sync_s`` (None: never; a -1021 also resyncs at
once).

Orders, cancels and modifies go over the WebSocket API (``ws_api``, a
:class:`twinfeed.venues.binance.ws_api.WsApiClient`) when given, over REST when it is not or
when its connection cannot be opened (``VenueError.sent`` False: nothing left). Prices and
quantities go out on the instrument's grid (``instruments``: symbol -> Instrument, e.g. from
:meth:`instruments`; without it, as given, up to 8 decimals). A new order whose request got
no usable answer (timeout, dropped connection, HTTP 5xx) is never sent again: it is looked up
by its client order id over REST, and only if that finds it is its state returned; otherwise
the error is raised with ``link_lost`` (the outcome stays unknown for the brain's
reconciliation).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from twinfeed.instruments import Instrument, InstrumentTable
from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.orders import Order, Side
from twinfeed.venues.binance import wire
from twinfeed.venues.errors import VenueError
from twinfeed.venues.port import VenueAccount, VenueFill, VenueOrder

__all__ = ["BinanceVenue"]


class BinanceVenue:
    """:class:`twinfeed.venues.port.VenuePort` over Binance USD-M (see the module docstring)."""

    def __init__(
        self,
        gateway: Any,
        *,
        stream: bool = True,
        poll_timeout_s: float = 1.0,
        stream_retry_s: float = 0.1,
        stream_retry_max_s: float = 1.0,
        keepalive_s: float = 30 * 60.0,
        ws_api: Any = None,
        instruments: Mapping[str, Instrument] | None = None,
        market: str = "binance-usdm",
        clock_sync_s: float | None = 10 * 60.0,
    ) -> None:
        """``market``: the instrument table's venue name the exchangeInfo is read as
        (``binance-usdm``; the local venue also serves ``binance-coinm`` and spot captures)."""
        self.gateway = gateway
        self.ws_api = ws_api
        self.market = market
        self._instruments = dict(instruments) if instruments is not None else None
        #: Requests the WebSocket API could not take that went over REST instead.
        self.rest_fallbacks = 0
        self.stream_gaps = 0
        self.stream_errors = 0
        #: Binance changes a resting LIMIT order's price and quantity in place (order.modify).
        self.supports_modify = True
        self.stream_down = False
        self.stream_retry_s = stream_retry_s
        self.stream_retry_max_s = stream_retry_max_s
        self.keepalive_s = keepalive_s
        self.clock_sync_s = clock_sync_s
        #: Clock resyncs the stream reader made (at start and every ``clock_sync_s``).
        self.clock_syncs = 0
        self._queue: deque[Mapping[str, Any]] = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._client_ids: dict[int, str] = {}
        if stream:
            self._stream = gateway.user_stream()
            self._thread = threading.Thread(
                target=self._read_stream, args=(poll_timeout_s,), name="user-stream", daemon=True
            )
            self._thread.start()

    # ---- user stream --------------------------------------------------------------------

    def _read_stream(self, timeout: float) -> None:
        delay = self.stream_retry_s
        next_keepalive = time.monotonic() + self.keepalive_s
        next_sync = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.clock_sync_s is not None and time.monotonic() >= next_sync:
                    next_sync = time.monotonic() + self.clock_sync_s
                    with contextlib.suppress(VenueError):  # not the stream's fault: next time
                        self.sync_clock()
                        self.clock_syncs += 1
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
        self._wake.set()

    def close(self) -> None:
        """Stops the stream reader (waits for its current poll to return), its stream and
        the order-entry connections."""
        if self.ws_api is not None:
            self.ws_api.close()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def poll_reports(self) -> list[ExecutionReport]:
        reports = []
        while self._queue:
            report = wire.report_from_stream_event(self._queue.popleft())
            if report is not None:
                reports.append(report)
        return reports

    # ---- orders -------------------------------------------------------------------------

    def _entry(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """An order call over the WebSocket API, or REST if that cannot take it."""
        if self.ws_api is not None:
            try:
                return dict(getattr(self.ws_api, name)(*args, **kwargs))
            except VenueError as error:
                if error.sent:
                    raise
                self.rest_fallbacks += 1
        return dict(getattr(self.gateway, name)(*args, **kwargs))

    def _grid(self, symbol: str) -> Instrument | None:
        return None if self._instruments is None else self._instruments.get(symbol)

    def _price(self, symbol: str, price: float) -> str:
        instrument = self._grid(symbol)
        return wire.on_grid(price, instrument.tick_size if instrument is not None else None)

    def _qty(self, symbol: str, qty: float) -> str:
        instrument = self._grid(symbol)
        return wire.on_grid(qty, instrument.step_size if instrument is not None else None)

    def send_order(self, order: Order, symbol: str) -> ExecutionReport:
        limit = order.type == "limit"
        try:
            body = self._entry(
                "new_order",
                symbol,
                wire.SIDES[order.side],
                self._qty(symbol, order.qty),
                self._price(symbol, order.price) if limit and order.price is not None else None,
                type=wire.TYPES[order.type],
                time_in_force=order.tif.upper() if limit else None,
                client_order_id=order.client_id,
                reduce_only=True if order.reduce_only else None,
                good_till_date=order.good_till_ms or None,
            )
        except VenueError as error:
            if not (error.link_lost and error.sent):
                raise
            return self._settle_unknown(order.client_id, symbol, error)
        return wire.report_from_order(body)

    def _settle_unknown(self, client_id: str, symbol: str, error: VenueError) -> ExecutionReport:
        """A new order whose answer was lost: its state by query, never a second send."""
        try:
            return self.order_status(symbol, client_id=client_id).report
        except VenueError:
            raise error from None

    def cancel(self, client_id: str, symbol: str) -> ExecutionReport:
        return wire.report_from_order(self._entry("cancel", symbol, client_order_id=client_id))

    def cancel_all(self, symbol: str) -> None:
        self.gateway.cancel_all(symbol)

    def modify(
        self, client_id: str, symbol: str, qty: float, price: float, side: Side | None = None
    ) -> ExecutionReport:
        body = self._entry(
            "modify",
            symbol,
            client_order_id=client_id,
            quantity=self._qty(symbol, qty),
            price=self._price(symbol, price),
            side=None if side is None else wire.SIDES[side],
        )
        return wire.report_from_order(body)

    def order_status(
        self, symbol: str, *, client_id: str | None = None, venue_order_id: int | None = None
    ) -> VenueOrder:
        body = self.gateway.order(symbol, client_order_id=client_id, order_id=venue_order_id)
        return wire.order_from_rest(body)

    def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [wire.order_from_rest(body) for body in self.gateway.open_orders(symbol)]

    def fills_since(self, symbol: str, from_trade_id: int = 0) -> list[VenueFill]:
        fills: list[VenueFill] = []
        from_id = from_trade_id
        while True:
            page = self.gateway.user_trades(symbol, from_id=from_id, limit=1000)
            for trade in page:
                order_id = int(trade["orderId"])
                client_id = self._client_ids.get(order_id)
                if client_id is None:  # userTrades names the venue's order id only
                    client_id = self.order_status(symbol, venue_order_id=order_id).client_id
                    self._client_ids[order_id] = client_id
                fills.append(wire.fill_from_user_trade(trade, client_id))
            if len(page) < 1000:
                return fills
            from_id = int(page[-1]["id"]) + 1

    # ---- account ------------------------------------------------------------------------

    def positions(self) -> dict[str, float]:
        return {str(row["symbol"]): float(row["positionAmt"]) for row in self.gateway.positions()}

    def balances(self) -> dict[str, float]:
        assets = self.gateway.account().get("assets", [])
        return {str(row["asset"]): float(row["walletBalance"]) for row in assets}

    def ping(self) -> None:
        self.gateway.ping()

    def account(self) -> VenueAccount:
        body = self.gateway.account()
        mode = self.gateway.request("GET", "/fapi/v1/positionSide/dual")
        return VenueAccount(
            can_trade=bool(body.get("canTrade")),
            hedge_mode=bool(mode.get("dualSidePosition")),
            balances={
                str(row["asset"]): float(row["walletBalance"]) for row in body.get("assets", [])
            },
        )

    def clock_offset_ms(self) -> int:
        return int(self.gateway.measure_offset())

    def sync_clock(self) -> int:
        offset = int(self.gateway.sync_time())
        if self.ws_api is not None:
            self.ws_api.time_offset_ms = offset
        return offset

    def instruments(self) -> dict[str, Instrument]:
        """The venue's instruments (``GET /fapi/v1/exchangeInfo``), by symbol."""
        answer = self.gateway.request("GET", "/fapi/v1/exchangeInfo", signed=False)
        origin = f"{self.gateway.base_url}/fapi/v1/exchangeInfo"
        table = InstrumentTable.from_json({self.market: answer}, origin)
        return {instrument.symbol: instrument for instrument in table}
