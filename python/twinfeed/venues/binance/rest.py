"""Order gateway: a signed REST client for Binance USD-M futures order entry.

It speaks to :class:`twinfeed.live.paper_venue.PaperVenue` (and, the wire format being
Binance's, to any venue of that API); the live brain's OMS sends through it::

    gateway = OrderGateway("http://127.0.0.1:9444", api_key, api_secret)
    gateway = OrderGateway.from_credentials(url)          # TWINFEED_API_KEY/_SECRET or a file
    order = gateway.new_order("BTCUSDT", "BUY", quantity=0.01, price=61800.0)  # LIMIT GTC
    gateway.new_order("BTCUSDT", "SELL", quantity=0.01, type="MARKET")
    gateway.cancel("BTCUSDT", client_order_id=order["clientOrderId"])
    gateway.cancel_all("BTCUSDT"); gateway.open_orders(); gateway.order("BTCUSDT", order_id=1)
    gateway.account(); gateway.positions(); gateway.user_trades("BTCUSDT")

    gateway = OrderGateway(url, key, secret, stream_url="ws://127.0.0.1:9445")
    stream = gateway.user_stream()                        # listen key + user-data websocket
    events = stream.poll(timeout=1.0)                     # ORDER_TRADE_UPDATE, ACCOUNT_UPDATE...
    # UserStreamClosed: events may have been missed: reconcile through REST, then reopen

Every method returns the decoded JSON answer (dicts and lists in Binance's shape, numbers as
strings as Binance sends them). A Binance error answer raises
:class:`twinfeed.venues.errors.VenueError` with its ``code`` and ``msg``, classified by
:mod:`twinfeed.venues.binance.errors` (``code`` 0: no answer at all). Signed requests carry
``timestamp`` from the local wall clock plus ``time_offset_ms`` (set it with
:meth:`OrderGateway.sync_time`) and
``recvWindow``. The user stream is Binance's user-data websocket, ``<stream_url>/ws/<listenKey>``
(the paper venue's ``ws_url``, or the market-data venue that forwards it there; on Binance
``wss://fstream.binance.com``), read with the ``websockets`` sync client. Binance events carry no
sequence number: a stream that closed may have lost events, and its reader must reconcile through
REST (:mod:`twinfeed.live.brain.order_faults`). The gateway keeps no state beyond the clock
offset: safe to share between threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from twinfeed.venues.binance.errors import venue_error
from twinfeed.venues.binance.signing import ed25519_sign, encode_params, load_credentials, sign
from twinfeed.venues.binance.wire import OrderCalls
from twinfeed.venues.errors import NOT_SENT, VenueError

__all__ = ["OrderGateway", "UserStream", "UserStreamClosed"]

_QUERY_RETRY = urllib3.Retry(
    total=1, connect=1, read=1, status=0, other=0, redirect=0, raise_on_status=False
)


class UserStreamClosed(Exception):
    """The user-data websocket closed (or its listen key expired): events may have been missed."""


#: OrderCalls action -> HTTP method on ``/fapi/v1/order``.
_ORDER_METHODS = {"place": "POST", "cancel": "DELETE", "status": "GET", "modify": "PUT"}


class OrderGateway(OrderCalls):
    """Signed REST client for the USD-M order-entry subset. See the module docstring."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        recv_window: int = 5000,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        private_key: str | None = None,
        stream_url: str | None = None,
        weight_limit: int = 2400,
        weight_headroom: float = 0.9,
    ) -> None:
        """``private_key``: an Ed25519 private key (PEM) to sign with instead of the HMAC
        ``api_secret`` (a key registered with its public key at the venue).
        ``weight_limit``: the venue's request weight a minute (exchangeInfo ``rateLimits``,
        2400 on Binance USD-M); once the ``X-MBX-USED-WEIGHT-1M`` an answer reports reaches
        ``weight_headroom`` of it, calls are refused here (not sent) until the venue's minute
        turns, so the venue never has to answer 429."""
        self.base_url = base_url.rstrip("/")
        #: Websocket base of the user-data stream (``ws://127.0.0.1:P``); None: no stream.
        self.stream_url = None if stream_url is None else stream_url.rstrip("/")
        self.api_key = api_key
        self._secret = api_secret
        self._private_key = private_key or None
        self.recv_window = recv_window
        self.timeout = timeout
        self.clock = clock
        self.time_offset_ms = 0
        #: ``X-MBX-USED-WEIGHT-1M`` of the last answer (the venue's count of this minute).
        self.used_weight = 0
        #: ``time.monotonic()`` before which a Retry-After (or the local limiter) holds calls.
        self.retry_at = 0.0
        self.weight_limit = weight_limit
        self.weight_headroom = weight_headroom
        # Keep-alive connections to the venue (thread-safe; a few threads share it).
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=4, block=False)

    @classmethod
    def from_credentials(
        cls, base_url: str, path: str | os.PathLike[str] | None = None, **options: Any
    ) -> OrderGateway:
        """A gateway with keys from the environment or a 0600 file (see ``signing``)."""
        credentials = load_credentials(path)
        options.setdefault("private_key", credentials.private_key or None)
        return cls(base_url, credentials.api_key, credentials.api_secret, **options)

    def __repr__(self) -> str:
        return f"OrderGateway({self.base_url!r}, api_key={self.api_key[:4]}...)"

    # ---- transport ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        signed: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """One call; signed calls get ``timestamp``, ``recvWindow`` and ``signature``.

        A signed call refused with -1021 (its timestamp outside the venue's window) resyncs
        the clock offset and is sent once more (the venue refused it before acting). While a
        ``Retry-After`` of a 429/418 runs, calls are refused here without being sent."""
        wait = self.retry_at - time.monotonic()
        if wait > 0:
            raise VenueError(
                NOT_SENT,
                f"not sent: holding calls to {self.base_url} {wait:.1f} s more (Retry-After, "
                f"or {self.used_weight} of {self.weight_limit} request weight used this minute)",
                rate_limited=True,
                retry_after_s=wait,
                sent=False,
            )
        try:
            return self._send(method, path, params, signed, timeout)
        except VenueError as error:
            if error.retry_after_s is not None:
                self.retry_at = time.monotonic() + error.retry_after_s
            if not (signed and error.clock_skew):
                raise
        self.sync_time()
        return self._send(method, path, params, signed, timeout)

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        signed: bool,
        timeout: float | None,
    ) -> Any:
        fields = {key: value for key, value in (params or {}).items() if value is not None}
        if signed:
            fields["timestamp"] = int(self.clock() * 1000) + self.time_offset_ms
            fields["recvWindow"] = self.recv_window
            query = encode_params(fields)
            if self._private_key is not None:
                signature = urllib.parse.quote(ed25519_sign(query, self._private_key), safe="")
            else:
                signature = sign(query, self._secret)
            query += f"&signature={signature}"
        else:
            query = encode_params(fields)
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        try:
            response = self._pool.request(
                method,
                url,
                headers={"X-MBX-APIKEY": self.api_key},
                timeout=timeout or self.timeout,
                # A query may go once more on a fresh connection (a pooled one the venue had
                # dropped); anything that acts is never re-sent behind the caller's back.
                retries=_QUERY_RETRY if method == "GET" else False,
            )
        except urllib3.exceptions.NewConnectionError as error:
            refused = venue_error(0, f"no connection to {self.base_url}: {error}")
            refused.sent = False  # nothing left this process
            raise refused from None
        except urllib3.exceptions.HTTPError as error:
            raise venue_error(0, f"no answer from {self.base_url}: {error}") from None
        used = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if used is not None:
            self.used_weight = int(used)
            if self.used_weight >= self.weight_limit * self.weight_headroom:
                # Slow down before the venue refuses: wait for its minute to turn.
                venue_ms = int(self.clock() * 1000) + self.time_offset_ms
                self.retry_at = time.monotonic() + (60_000 - venue_ms % 60_000) / 1000
        if response.status >= 400:
            raise _rejection(response)
        try:
            return json.loads(response.data)
        except ValueError:
            raise venue_error(
                0, f"{method} {path}: HTTP {response.status} answer is not JSON"
            ) from None

    def measure_offset(self) -> int:
        """The venue's ``/fapi/v1/time`` minus this client's clock (ms, at the midpoint of the
        round trip); nothing is changed."""
        before = self.clock()
        server = self._send("GET", "/fapi/v1/time", None, False, None)["serverTime"]
        after = self.clock()
        return int(server - (before + after) * 500)

    def sync_time(self) -> int:
        """Sets ``time_offset_ms`` from the venue's ``/fapi/v1/time``; returns it."""
        self.time_offset_ms = self.measure_offset()
        return self.time_offset_ms

    def close(self) -> None:
        """Closes the pooled connections."""
        self._pool.clear()

    # ---- orders (new_order, cancel, order, modify: wire.OrderCalls) ---------------------

    def order_call(self, action: str, params: Mapping[str, Any]) -> Any:
        return self.request(_ORDER_METHODS[action], "/fapi/v1/order", params)

    def ping(self) -> None:
        """``GET /fapi/v1/ping``: raises VenueError if the venue does not answer."""
        self.request("GET", "/fapi/v1/ping", signed=False, timeout=2.0)

    def cancel_all(self, symbol: str) -> dict[str, Any]:
        """``DELETE /fapi/v1/allOpenOrders``."""
        return dict(self.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}))

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """``GET /fapi/v1/openOrders`` (all symbols when ``symbol`` is None)."""
        return list(self.request("GET", "/fapi/v1/openOrders", {"symbol": symbol}))

    def account(self) -> dict[str, Any]:
        """``GET /fapi/v2/account``."""
        return dict(self.request("GET", "/fapi/v2/account"))

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """``GET /fapi/v2/positionRisk``."""
        return list(self.request("GET", "/fapi/v2/positionRisk", {"symbol": symbol}))

    def user_trades(
        self, symbol: str, *, from_id: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """``GET /fapi/v1/userTrades``."""
        params = {"symbol": symbol, "fromId": from_id, "limit": limit}
        return list(self.request("GET", "/fapi/v1/userTrades", params))

    # ---- user stream --------------------------------------------------------------------

    def listen_key(self) -> str:
        """``POST /fapi/v1/listenKey``: the account's active user-stream key (or a new one)."""
        return str(self.request("POST", "/fapi/v1/listenKey", signed=False)["listenKey"])

    def keepalive_listen_key(self, listen_key: str | None = None) -> dict[str, Any]:
        """``PUT /fapi/v1/listenKey``: 60 more minutes (-1125 if the key is gone)."""
        params = {"listenKey": listen_key}
        return dict(self.request("PUT", "/fapi/v1/listenKey", params, signed=False))

    def close_listen_key(self, listen_key: str | None = None) -> dict[str, Any]:
        """``DELETE /fapi/v1/listenKey``: closes the key and its streams."""
        params = {"listenKey": listen_key}
        return dict(self.request("DELETE", "/fapi/v1/listenKey", params, signed=False))

    def user_stream(self, listen_key: str | None = None) -> UserStream:
        """The user-data websocket of ``listen_key`` (default: :meth:`listen_key`'s)."""
        if self.stream_url is None:
            raise ValueError("OrderGateway has no stream_url: no user-data websocket to open")
        key = listen_key if listen_key is not None else self.listen_key()
        return UserStream(f"{self.stream_url}/ws/{key}", key, timeout=self.timeout)


class UserStream:
    """One user-data websocket connection: events in the order the venue sent them.

    Events are read by :meth:`poll` in the caller's thread (nothing is read behind its back).
    A closed connection, or a ``listenKeyExpired`` event (delivered, then the stream is over),
    makes the next :meth:`poll` raise :class:`UserStreamClosed`; a new stream needs a new
    listen key (``POST``), and whatever was published in between is only in REST.
    """

    def __init__(self, url: str, listen_key: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.listen_key = listen_key
        self.expired = False
        self._closed: str | None = None
        self._lock = threading.Lock()
        # Entered as a context manager (websockets 17.1 deprecates a bare connect()).
        self._exit = contextlib.ExitStack()
        try:
            self.connection: ClientConnection = self._exit.enter_context(
                connect(
                    url, open_timeout=timeout, close_timeout=1.0, compression=None, max_size=2**24
                )
            )
        except InvalidStatus as error:
            raise _handshake_rejection(error) from None
        except (InvalidHandshake, OSError, TimeoutError) as error:
            raise venue_error(0, f"no user stream at {url}: {error}") from None

    def poll(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """Events received, waiting up to ``timeout`` s for the first; raises
        :class:`UserStreamClosed` once the stream is over (after its last events)."""
        with self._lock:
            if self._closed is not None:
                raise UserStreamClosed(self._closed)
            events: list[dict[str, Any]] = []
            wait: float = timeout
            try:
                while True:
                    message = self.connection.recv(timeout=wait)
                    event = json.loads(message)
                    events.append(event)
                    if event.get("e") == "listenKeyExpired":
                        self.expired = True
                        self._closed = "listen key expired"
                        break
                    wait = 0
            except TimeoutError:
                pass
            except ConnectionClosed as error:
                self._closed = f"user stream closed: {error}"
            if self._closed is not None and not events:
                raise UserStreamClosed(self._closed)
            return events

    def close(self) -> None:
        self._exit.close()


def _handshake_rejection(error: InvalidStatus) -> VenueError:
    """A refused websocket handshake as the venue's error (e.g. -1125 for an unknown key)."""
    response = error.response
    try:
        body = json.loads(response.body or b"")
        code, msg = int(body["code"]), str(body["msg"])
    except (ValueError, KeyError, TypeError):
        code, msg = -1000, f"websocket handshake refused: HTTP {response.status_code}"
    return venue_error(code, msg, response.status_code)


def _rejection(response: urllib3.BaseHTTPResponse) -> VenueError:
    raw = response.data.decode(errors="replace")
    try:
        body = json.loads(raw)
        code, msg = int(body["code"]), str(body["msg"])
    except (ValueError, KeyError, TypeError):
        code, msg = -1000, raw[:200] or f"HTTP {response.status}"
    return venue_error(code, msg, response.status, dict(response.headers.items()))
