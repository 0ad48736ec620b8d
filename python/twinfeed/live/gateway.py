"""Order gateway: a small signed client for Binance USD-M futures order entry.

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
strings as Binance sends them). A Binance error answer raises :class:`VenueRejected` with its
``code`` and ``msg``; ``retryable`` is True for rate limits (-1003, HTTP 429/418), venue-side
failures (HTTP 5xx, -1001, -1007) and transport errors (``code`` 0: no answer at all), False
for everything the request itself got wrong. Signed requests carry ``timestamp`` from the local
wall clock plus ``time_offset_ms`` (set it with :meth:`OrderGateway.sync_time`) and
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
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from twinfeed.live.signing import ed25519_sign, encode_params, load_credentials, sign

__all__ = ["OrderGateway", "UserStream", "UserStreamClosed", "VenueRejected"]

_RETRYABLE_CODES = frozenset({-1001, -1003, -1007})


class VenueRejected(Exception):
    """The venue refused a request (or did not answer: ``code`` 0).

    Attributes:
        code: Binance error code (0 for transport failures).
        msg: Binance error message.
        retryable: True if sending the same request again later may succeed.
        http_status: HTTP status of the answer (0 for transport failures).
    """

    def __init__(self, code: int, msg: str, retryable: bool, http_status: int = 0) -> None:
        super().__init__(f"venue rejected ({code}): {msg}")
        self.code = code
        self.msg = msg
        self.retryable = retryable
        self.http_status = http_status


class UserStreamClosed(Exception):
    """The user-data websocket closed (or its listen key expired): events may have been missed."""


class OrderGateway:
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
    ) -> None:
        """``private_key``: an Ed25519 private key (PEM) to sign with instead of the HMAC
        ``api_secret`` (a key registered with its public key at the venue)."""
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
        """One call; signed calls get ``timestamp``, ``recvWindow`` and ``signature``."""
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
        request = urllib.request.Request(url, method=method)
        request.add_header("X-MBX-APIKEY", self.api_key)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise _rejection(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise VenueRejected(0, f"no answer from {self.base_url}: {reason}", True) from None

    def sync_time(self) -> int:
        """Sets ``time_offset_ms`` from the venue's ``/fapi/v1/time``; returns it."""
        before = self.clock()
        server = self.request("GET", "/fapi/v1/time", signed=False)["serverTime"]
        after = self.clock()
        self.time_offset_ms = int(server - (before + after) * 500)
        return self.time_offset_ms

    # ---- orders -------------------------------------------------------------------------

    def new_order(
        self,
        symbol: str,
        side: str,
        quantity: float | str,
        price: float | str | None = None,
        *,
        type: str = "LIMIT",  # noqa: A002 - Binance's parameter name
        time_in_force: str | None = None,
        client_order_id: str | None = None,
        reduce_only: bool | None = None,
    ) -> dict[str, Any]:
        """``POST /fapi/v1/order``; LIMIT orders default to GTC. Returns the order as the
        venue's matching left it (``newOrderRespType=RESULT``)."""
        kind = type.upper()
        if kind == "LIMIT" and time_in_force is None:
            time_in_force = "GTC"
        params = {
            "symbol": symbol,
            "side": side.upper(),
            "type": kind,
            "timeInForce": time_in_force,
            "quantity": _decimal(quantity),
            "price": None if price is None else _decimal(price),
            "newClientOrderId": client_order_id,
            "reduceOnly": reduce_only,
            "newOrderRespType": "RESULT",
        }
        return dict(self.request("POST", "/fapi/v1/order", params))

    def cancel(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> dict[str, Any]:
        """``DELETE /fapi/v1/order`` by client order id or order id; returns the order."""
        params = {"symbol": symbol, "origClientOrderId": client_order_id, "orderId": order_id}
        return dict(self.request("DELETE", "/fapi/v1/order", params))

    def cancel_all(self, symbol: str) -> dict[str, Any]:
        """``DELETE /fapi/v1/allOpenOrders``."""
        return dict(self.request("DELETE", "/fapi/v1/allOpenOrders", {"symbol": symbol}))

    def order(
        self, symbol: str, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> dict[str, Any]:
        """``GET /fapi/v1/order``."""
        params = {"symbol": symbol, "origClientOrderId": client_order_id, "orderId": order_id}
        return dict(self.request("GET", "/fapi/v1/order", params))

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
            raise VenueRejected(0, f"no user stream at {url}: {error}", True) from None

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


def _handshake_rejection(error: InvalidStatus) -> VenueRejected:
    """A refused websocket handshake as the venue's error (e.g. -1125 for an unknown key)."""
    response = error.response
    try:
        body = json.loads(response.body or b"")
        code, msg = int(body["code"]), str(body["msg"])
    except (ValueError, KeyError, TypeError):
        code, msg = -1000, f"websocket handshake refused: HTTP {response.status_code}"
    retryable = response.status_code >= 500 or response.status_code in (418, 429)
    return VenueRejected(code, msg, retryable, response.status_code)


def _decimal(value: float | str) -> str:
    if isinstance(value, str):
        return value
    text = f"{value:.8f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _rejection(error: urllib.error.HTTPError) -> VenueRejected:
    raw = error.read().decode(errors="replace")
    try:
        body = json.loads(raw)
        code, msg = int(body["code"]), str(body["msg"])
    except (ValueError, KeyError, TypeError):
        code, msg = -1000, raw[:200] or error.reason
    retryable = error.code >= 500 or error.code in (418, 429) or code in _RETRYABLE_CODES
    return VenueRejected(code, msg, retryable, error.code)
