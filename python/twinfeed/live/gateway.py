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

    stream = gateway.user_stream()                        # listen key + long-poll reader
    batch = stream.poll(timeout=1.0)                      # StreamBatch(events, gap)
    if batch.gap: ...                                     # missed events: refetch open orders

Every method returns the decoded JSON answer (dicts and lists in Binance's shape, numbers as
strings as Binance sends them). A Binance error answer raises :class:`VenueRejected` with its
``code`` and ``msg``; ``retryable`` is True for rate limits (-1003, HTTP 429/418), venue-side
failures (HTTP 5xx, -1001, -1007) and transport errors (``code`` 0: no answer at all), False
for everything the request itself got wrong. Signed requests carry ``timestamp`` from the local
wall clock plus ``time_offset_ms`` (set it with :meth:`OrderGateway.sync_time`) and
``recvWindow``. The user stream is the paper venue's long-poll endpoint (it serves no
websocket); events carry a venue-wide ``seq`` and the reader reports a gap when one is skipped.
The gateway keeps no state beyond the clock offset: safe to share between threads.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twinfeed.live.signing import ed25519_sign, encode_params, load_credentials, sign

__all__ = ["OrderGateway", "StreamBatch", "UserStream", "VenueRejected"]

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


@dataclass(frozen=True)
class StreamBatch:
    """Events read from the user stream, and whether any were missed before them."""

    events: list[dict[str, Any]]
    gap: bool
    last_seq: int


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
    ) -> None:
        """``private_key``: an Ed25519 private key (PEM) to sign with instead of the HMAC
        ``api_secret`` (a key registered with its public key at the venue)."""
        self.base_url = base_url.rstrip("/")
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
        """``POST /fapi/v1/listenKey``: a new user-stream key."""
        return str(self.request("POST", "/fapi/v1/listenKey", signed=False)["listenKey"])

    def events(self, listen_key: str, after: int, timeout: float = 5.0) -> dict[str, Any]:
        """One long-poll: ``{"events", "last", "first"}`` with events of ``seq > after``."""
        params = {"listenKey": listen_key, "after": after, "timeout": int(timeout * 1000)}
        return dict(
            self.request(
                "GET", "/fapi/v1/_events", params, signed=False, timeout=timeout + self.timeout
            )
        )

    def user_stream(self, after: int = 0) -> UserStream:
        """A reader of the user stream from sequence number ``after`` (0: from the start)."""
        return UserStream(self, self.listen_key(), after)


class UserStream:
    """Reads ``ORDER_TRADE_UPDATE`` events in order and notices missed ones."""

    def __init__(self, gateway: OrderGateway, listen_key: str, after: int = 0) -> None:
        self.gateway = gateway
        self.listen_key = listen_key
        self.last_seq = after

    def poll(self, timeout: float = 5.0) -> StreamBatch:
        """Events after the last one read, waiting up to ``timeout`` s for the first."""
        answer = self.gateway.events(self.listen_key, self.last_seq, timeout)
        events = list(answer["events"])
        gap = int(answer["first"]) > self.last_seq + 1 and bool(events)
        expected = self.last_seq + 1
        for event in events:
            if event["seq"] != expected:
                gap = True
            expected = event["seq"] + 1
        if events:
            self.last_seq = int(events[-1]["seq"])
        return StreamBatch(events, gap, self.last_seq)


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
