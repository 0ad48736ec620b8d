"""Order entry over Binance USD-M's WebSocket API (``/ws-fapi/v1``): the fast path.

One kept-open websocket, logged on once with an Ed25519 key (``session.logon``: later requests
carry only ``timestamp``, no signature), requests answered in order::

    client = WsApiClient("ws://127.0.0.1:P", api_key, private_key_pem)
    order = client.new_order("BTCUSDT", "BUY", "0.002", "61800.0", client_order_id="a1")
    client.cancel("BTCUSDT", client_order_id="a1")

The methods take and return what :class:`twinfeed.venues.binance.rest.OrderGateway`'s do
(``order.place`` with :func:`twinfeed.venues.binance.wire.order_params`, results in the REST
order shape), so the adapter uses either. Errors are
:class:`twinfeed.venues.errors.VenueError` from the one code table; ``sent`` is False when
the connection could not be opened (nothing left this process: REST may take the request),
True once a request was written (no answer then means its outcome is unknown). After a lost
answer the connection is dropped (answers would no longer match requests) and reopened at the
next call. -1021 resyncs the clock offset (``time``) and sends once more.
WebSocket API general info:
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from twinfeed.venues.binance.errors import venue_error
from twinfeed.venues.binance.signing import ed25519_sign
from twinfeed.venues.binance.wire import OrderCalls
from twinfeed.venues.errors import VenueError

__all__ = ["API_PATH", "WsApiClient"]

API_PATH = "/ws-fapi/v1"


class WsApiClient(OrderCalls):
    """A logged-on WebSocket API session (see the module docstring); thread-safe."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        private_key: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        recv_window: int = 5000,
    ) -> None:
        self.url = base_url.rstrip("/") + API_PATH
        self.api_key = api_key
        self._private_key = private_key
        self.timeout = timeout
        self.clock = clock
        self.recv_window = recv_window
        self.time_offset_ms = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._connection: ClientConnection | None = None
        self._exit = contextlib.ExitStack()

    def __repr__(self) -> str:
        return f"WsApiClient({self.url!r}, api_key={self.api_key[:4]}...)"

    # ---- session ------------------------------------------------------------------------

    def _open(self) -> ClientConnection:
        """The open, logged-on connection (opened now if needed; lock held)."""
        if self._connection is not None:
            return self._connection
        try:
            # Entered as a context manager (websockets 17.1 deprecates a bare connect()).
            exit_stack = contextlib.ExitStack()
            connection = exit_stack.enter_context(
                connect(self.url, open_timeout=self.timeout, close_timeout=1.0, compression=None)
            )
        except (InvalidHandshake, OSError, TimeoutError) as error:
            raise _unsent(f"no WebSocket API at {self.url}: {error}") from None
        self._connection, self._exit = connection, exit_stack
        try:
            try:
                self._logon(connection)
            except VenueError as error:
                if not error.clock_skew:
                    raise
                self._sync_time(connection)
                self._logon(connection)
        except VenueError:
            self._drop()
            raise
        return connection

    def _logon(self, connection: ClientConnection) -> None:
        params: dict[str, Any] = {"apiKey": self.api_key, "timestamp": self._timestamp()}
        params["signature"] = ed25519_sign(_payload(params), self._private_key)
        self._exchange(connection, "session.logon", params)

    def _drop(self) -> None:
        self._connection = None
        exit_stack, self._exit = self._exit, contextlib.ExitStack()
        exit_stack.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _timestamp(self) -> int:
        return int(self.clock() * 1000) + self.time_offset_ms

    def _exchange(
        self, connection: ClientConnection, method: str, params: Mapping[str, Any]
    ) -> Any:
        request_id = next(self._ids)
        message = json.dumps({"id": request_id, "method": method, "params": params})
        try:
            connection.send(message)
        except (ConnectionClosed, OSError) as error:
            self._drop()
            raise _unsent(f"{self.url} closed before {method}: {error}") from None
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                answer = json.loads(connection.recv(timeout=deadline - time.monotonic()))
                if answer.get("id") == request_id:
                    break
        except (TimeoutError, ConnectionClosed, OSError, ValueError) as error:
            self._drop()  # later answers would not match their requests
            raise venue_error(0, f"no answer to {method} from {self.url}: {error}") from None
        if answer.get("status") == 200:
            return answer.get("result")
        failure = answer.get("error") or {}
        raise venue_error(
            int(failure.get("code", -1000)),
            str(failure.get("msg", answer)),
            int(answer.get("status") or 0),
        )

    def call(self, method: str, params: Mapping[str, Any], *, signed: bool = True) -> Any:
        """One request on the session (``timestamp`` added to signed ones); -1021 resyncs
        the clock and sends once more."""
        with self._lock:
            connection = self._open()
            fields = {key: value for key, value in params.items() if value is not None}
            if not signed:
                return self._exchange(connection, method, fields)
            try:
                fields["timestamp"] = self._timestamp()
                return self._exchange(connection, method, fields)
            except VenueError as error:
                if not error.clock_skew:
                    raise
            self._sync_time(connection)
            fields["timestamp"] = self._timestamp()
            return self._exchange(connection, method, fields)

    def _sync_time(self, connection: ClientConnection) -> None:
        before = self.clock()
        server = int(self._exchange(connection, "time", {})["serverTime"])
        after = self.clock()
        self.time_offset_ms = int(server - (before + after) * 500)

    def ping(self) -> None:
        self.call("ping", {}, signed=False)

    # ---- orders (new_order, cancel, order, modify: wire.OrderCalls) ---------------------

    def order_call(self, action: str, params: Mapping[str, Any]) -> Any:
        return self.call(f"order.{action}", params)


def _payload(params: Mapping[str, Any]) -> str:
    """What a WebSocket API signature covers: the parameters sorted by name, ``k=v&...``."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params))


def _unsent(message: str) -> VenueError:
    error = venue_error(0, message)
    error.sent = False
    return error
