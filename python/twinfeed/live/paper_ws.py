"""The paper venue's websocket side: listen keys, the user-data stream and the WebSocket API.

Binance USD-M serves account events over a websocket per listen key, and order entry over a
second websocket protocol next to REST. :class:`twinfeed.live.paper_venue.PaperVenue` holds the
engine state; this module serves it the way Binance does, so unmodified clients (ccxt
``watch_orders``/``watch_balance``, binance-futures-connector ``user_data``) follow the paper
account::

    paper = PaperVenue.start(capture, md_status, keys={key: secret})
    paper.ws_url                                   # ws://127.0.0.1:P (its own loopback port)
    key = paper.new_listen_key()["listenKey"]      # or POST /fapi/v1/listenKey
    # ws://127.0.0.1:P/ws/<key>: ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, listenKeyExpired

Listen keys (:class:`ListenKeys`; https://developers.binance.com/docs/derivatives/
usds-margined-futures/user-data-streams/Start-User-Data-Stream, .../Keepalive-User-Data-Stream,
.../Close-User-Data-Stream)
    One account, so at most one active key: ``POST`` returns it (or a new 64-character one) and
    extends it by 60 minutes; ``PUT`` extends it; ``DELETE`` closes it and its streams. A key
    that is not the active one (never issued, closed or expired) gets -1125 "This listenKey does
    not exist.". Validity is measured on the venue's clock (capture time, like every event
    time): when the replay passes a key's expiry the stream sends ``listenKeyExpired`` and
    closes (https://developers.binance.com/docs/derivatives/usds-margined-futures/
    user-data-streams/Event-User-Data-Stream-Expired).

User-data stream (paths as in the shared interface: ``/ws/<key>``, ``/stream?streams=<key>``,
``/private/ws?listenKey=<key>``, ``/private/stream?listenKey=<key>``; the ``/stream`` forms wrap
each event as ``{"stream": key, "data": event}``; ``events=A/B`` on the private paths keeps
only those event types)
    Every event PaperVenue publishes is pushed as it is published (one subscriber queue per
    connection, no polling of the venue): ``ORDER_TRADE_UPDATE`` with every field of
    https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/
    Event-Order-Update, and after every fill (it moves the wallet by the fee and realized PnL)
    an ``ACCOUNT_UPDATE`` (reason ``ORDER``, the quote asset's balance and the symbol's
    position; https://developers.binance.com/docs/derivatives/usds-margined-futures/
    user-data-streams/Event-Balance-and-Position-Update). The venue's own ``seq``/``ns`` fields
    stay inside: Binance events carry no sequence number, so a client that reconnects has
    missed whatever was published meanwhile and reconciles through REST. The server pings every
    3 minutes and drops a connection that has not answered within 10 (Binance's rule; the
    ``websockets`` library answers pings and sends the pings).

WebSocket API (``/ws-fapi/v1``; https://developers.binance.com/docs/derivatives/
usds-margined-futures/websocket-api-general-info)
    Requests ``{"id", "method", "params"}``, answers ``{"id", "status", "result"|"error",
    "rateLimits"}``. ``session.logon`` (Ed25519 keys only), ``session.status``,
    ``session.logout``; ``order.place``, ``order.cancel``, ``order.modify``, ``order.status``,
    ``account.status``, ``account.position``, ``account.balance`` (signed: per request with
    ``apiKey``/``timestamp``/``signature``, HMAC or Ed25519, or by a logged-on session) go to
    the same PaperVenue methods as REST; ``userDataStream.start/ping/stop`` manage the listen
    key; ``ping`` and ``time`` are open. An API key's entry in ``PaperVenue.keys`` is its HMAC
    secret, or for an Ed25519 key its public key in PEM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.sync.server import Server, ServerConnection, serve

from twinfeed.venues.binance.signing import (
    CredentialsError,
    VerifyKey,
    check_signature,
    ed25519_public_key,
)

if TYPE_CHECKING:
    from twinfeed.live.paper_venue import PaperVenue

__all__ = [
    "LISTEN_KEY_VALIDITY_NS",
    "ListenKeys",
    "PaperWebSocketServer",
    "account_update",
    "register_user_stream",
]

log = logging.getLogger("twinfeed.live.paper_ws")

#: A listen key lives 60 minutes after its creation or last keepalive (venue clock).
LISTEN_KEY_VALIDITY_NS = 60 * 60 * 1_000_000_000
#: Binance's ping every 3 minutes; no pong within 10 minutes drops the connection
#: (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams).
PING_INTERVAL_S = 180.0
PONG_TIMEOUT_S = 600.0
#: Fields the venue keeps on its events for itself; never sent on the wire.
_INTERNAL = ("seq", "ns")
_KEY_ALPHABET = string.ascii_letters + string.digits
_NO_KEY = "This listenKey does not exist."
#: A user-data connection's queue: ("event", event), ("client", message) or ("closed", None).
_Inbox = queue.SimpleQueue[tuple[str, Any]]


def _api_error(code: int, msg: str, status: int = 400) -> Exception:
    from twinfeed.live.paper_venue import ApiError

    return ApiError(code, msg, status)


class ListenKeys:
    """The account's listen key and its expiry on the venue clock (see the module docstring).

    Called with the venue's lock held or taking it; ``validity_ns`` may be lowered (tests)."""

    def __init__(self, venue: PaperVenue, validity_ns: int = LISTEN_KEY_VALIDITY_NS) -> None:
        self.venue = venue
        self.validity_ns = validity_ns
        self.active: str | None = None
        self.expires_ns = 0

    def create(self) -> dict[str, Any]:
        """``POST /fapi/v1/listenKey``: the active key (or a new one), valid 60 more minutes."""
        with self.venue._lock:
            if self.active is None:
                self.active = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(64))
            self.expires_ns = self.venue.now_ns + self.validity_ns
            return {"listenKey": self.active}

    def _check(self, params: Mapping[str, str]) -> str:
        key = params.get("listenKey") or self.active
        if key is None or key != self.active:
            raise _api_error(-1125, _NO_KEY)
        return key

    def keepalive(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``PUT /fapi/v1/listenKey``: extends the active key (the ``listenKey`` parameter is
        optional for USD-M; if sent it must be the active key) or -1125."""
        with self.venue._lock:
            key = self._check(params)
            self.expires_ns = self.venue.now_ns + self.validity_ns
            return {"listenKey": key}

    def close(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``DELETE /fapi/v1/listenKey``: closes the key and its streams, or -1125."""
        with self.venue._lock:
            self._check(params)
            self.active = None
            return {}

    def valid(self, key: str) -> bool:
        return key == self.active

    def expire(self, now_ns: int) -> None:
        """Under the venue's lock, when its clock moved: an overdue key is published as
        ``listenKeyExpired`` (its streams send it and close) and forgotten."""
        if self.active is None or now_ns < self.expires_ns:
            return
        key, self.active = self.active, None
        # E is a string in Binance's example of this event (Event-User-Data-Stream-Expired).
        self.venue._publish_event(
            {"e": "listenKeyExpired", "E": str(now_ns // 1_000_000), "listenKey": key}
        )


def account_update(venue: PaperVenue, name: str, symbol_id: int, ts_ns: int) -> dict[str, Any]:
    """The ``ACCOUNT_UPDATE`` after a fill of ``name`` (venue lock held): the quote asset's
    wallet balance and the symbol's position, as Binance documents them (Event-Balance-and-
    Position-Update: ``B`` a/wb/cw/bc, ``P`` s/pa/ep/bep/cr/up/mt/iw/ps)."""
    from twinfeed.live.paper_venue import _num, _quote_asset

    positions = venue.portfolio.positions
    wallet = venue.initial_balance + sum(p.realized - p.fees for p in positions.values())
    position = venue.portfolio.position(symbol_id)
    touch = venue.engine.touch(symbol_id)
    if touch is not None:
        venue.portfolio.mark(symbol_id, (touch.bid_px + touch.ask_px) / 2)
    qty = position.qty
    entry = position.avg_price if position.units else 0.0
    fee_per_unit = position.fees / abs(qty) if qty else 0.0
    breakeven = entry + (fee_per_unit if qty > 0 else -fee_per_unit) if qty else 0.0
    ts_ms = ts_ns // 1_000_000
    return {
        "e": "ACCOUNT_UPDATE",
        "E": ts_ms,
        "T": ts_ms,
        "a": {
            "m": "ORDER",
            "B": [{"a": _quote_asset(name), "wb": _num(wallet), "cw": _num(wallet), "bc": "0"}],
            "P": [
                {
                    "s": name,
                    "pa": _num(qty),
                    "ep": _num(entry),
                    "bep": _num(breakeven),
                    "cr": _num(position.realized),
                    "up": _num(position.unrealized if position.units else 0.0),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }
            ],
        },
    }


def wire(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as Binance sends it: without the venue's own fields."""
    return {key: value for key, value in event.items() if key not in _INTERNAL}


# ---- the server -----------------------------------------------------------------------------


def _user_route(path: str) -> tuple[list[str], bool, frozenset[str] | None] | None:
    """(listen keys, combined stream?, event filter) of a user-data path, None if it is not one.
    The bare ``/ws`` and ``/stream`` take keys by a live ``SUBSCRIBE`` (as the official SDK's
    ``user_data(listen_key)`` does)."""
    split = urllib.parse.urlsplit(path)
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    route = split.path.rstrip("/")
    events = query.get("events")
    wanted = frozenset(events.split("/")) if events else None
    if route in ("/ws", "/stream") and not split.query:
        return [], route == "/stream", None
    if route.startswith("/ws/") and "@" not in route:
        return [route[4:]], False, None
    if route == "/stream" and query.get("streams") and "@" not in query["streams"]:
        return query["streams"].split("/"), True, None
    if route.startswith("/private/ws/"):
        return [route[len("/private/ws/") :]], False, wanted
    if route in ("/private/ws", "/private/stream") and query.get("listenKey"):
        return [query["listenKey"]], route.endswith("stream"), wanted
    return None


class PaperWebSocketServer:
    """The websocket server of a :class:`PaperVenue` on its own loopback port."""

    API_PATH = "/ws-fapi/v1"

    def __init__(self, venue: PaperVenue, host: str = "127.0.0.1", port: int = 0) -> None:
        self.venue = venue
        self.host = host
        self._closing = threading.Event()
        self._server = self._serve(port)
        self.port = int(self._server.socket.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._shutdown: threading.Thread | None = None
        # Subscriptions made during the handshake (so an event published right after the
        # client's connect() returned is not missed), taken over by the connection's handler.
        self._pending: dict[ServerConnection, tuple[_Inbox, Callable[[], None]]] = {}
        self._pending_lock = threading.Lock()

    def _serve(self, port: int) -> Server:
        return serve(
            self._handle,
            self.host,
            port,
            process_request=self._check_path,
            compression=None,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PONG_TIMEOUT_S,
            close_timeout=1.0,
        )

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> None:
        thread = threading.Thread(target=self._server.serve_forever, name="paper-ws", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        if not self._threads:  # never served: only the listening socket to close
            self._server.socket.close()
            return
        self._server.shutdown()
        for thread in self._threads:
            thread.join(5)

    def suspend(self) -> None:
        """The link drops: no new connections, open ones reset (no closing handshake).

        Returns at once: the server's shutdown waits for its connection handlers, which may
        need the venue's lock (held by the caller, possibly); :meth:`resume` waits for it."""
        server = self._server
        connections = list(server.connections)
        closing = threading.Thread(
            target=server.shutdown, kwargs={"close_connections": False}, name="paper-ws-down"
        )
        closing.start()
        for connection in connections:
            connection.close_socket()
        self._shutdown = closing

    def resume(self) -> None:
        if self._shutdown is not None:
            self._shutdown.join(10)
            self._shutdown = None
        self._server = self._serve(self.port)
        self.start()

    # ---- handshake and dispatch -----------------------------------------------------------

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urllib.parse.urlsplit(request.path).path.rstrip("/")
        if path == self.API_PATH:
            return None
        route = _user_route(request.path)
        if route is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if not all(self.venue.listen_keys.valid(key) for key in route[0]):
            body = json.dumps({"code": -1125, "msg": _NO_KEY})
            return connection.respond(HTTPStatus.BAD_REQUEST, body)
        inbox: _Inbox = queue.SimpleQueue()
        unsubscribe = self.venue.subscribe(lambda event: inbox.put(("event", event)))
        with self._pending_lock:
            # Handshakes that failed after this point never reach a handler: drop theirs.
            for stale in [c for c in self._pending if c.state is State.CLOSED]:
                self._pending.pop(stale)[1]()
            self._pending[connection] = (inbox, unsubscribe)
        return None

    def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        path = connection.request.path
        try:
            if urllib.parse.urlsplit(path).path.rstrip("/") == self.API_PATH:
                _ApiSession(self.venue, connection).serve()
                return
            route = _user_route(path)
            assert route is not None  # checked in the handshake
            self._user_data(connection, *route)
        except ConnectionClosed:
            pass

    def _user_data(
        self,
        connection: ServerConnection,
        keys: list[str],
        combined: bool,
        wanted: frozenset[str] | None,
    ) -> None:
        """Pushes the account's events to one connection; its reader thread hands client
        messages (``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` of listen keys) to the
        same queue, so this thread is the connection's only writer."""
        venue = self.venue
        with self._pending_lock:
            pending = self._pending.pop(connection, None)
        if pending is None:  # closed by the client already (and swept)
            return
        inbox, unsubscribe = pending
        subscribed = list(keys)
        in_url = bool(keys)

        def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                for message in connection:
                    inbox.put(("client", message))
            inbox.put(("closed", None))

        threading.Thread(target=read, name="paper-ws-read", daemon=True).start()
        try:
            while not self._closing.is_set():
                try:
                    kind, item = inbox.get(timeout=0.25)
                except queue.Empty:
                    alive = [key for key in subscribed if venue.listen_keys.valid(key)]
                    if len(alive) < len(subscribed):  # DELETE /fapi/v1/listenKey closed it
                        subscribed[:] = alive
                        if not alive:
                            break
                    continue
                if kind == "closed":
                    break
                if kind == "client":
                    connection.send(json.dumps(self._control(item, subscribed)))
                    continue
                ended = not self._push(connection, item, subscribed, combined, wanted)
                if ended and (in_url or not subscribed):
                    break
        finally:
            unsubscribe()
        connection.close()

    @staticmethod
    def _push(
        connection: ServerConnection,
        event: dict[str, Any],
        subscribed: list[str],
        combined: bool,
        wanted: frozenset[str] | None,
    ) -> bool:
        """Sends ``event`` once per subscribed key; False once an expiry ended a key."""
        kind = event.get("e")
        if kind == "listenKeyExpired":
            key = event.get("listenKey")
            if key not in subscribed:
                return True
            targets = [str(key)]
            subscribed.remove(str(key))
        elif wanted is not None and kind not in wanted:
            return True
        else:
            targets = subscribed
        data = wire(event)
        for key in targets:
            connection.send(json.dumps({"stream": key, "data": data} if combined else data))
        return kind != "listenKeyExpired"

    def _control(self, message: str | bytes, subscribed: list[str]) -> dict[str, Any]:
        """A live request on a user-data connection, answered as Binance's market streams
        answer them (``{"result": null, "id"}``; ``{"error": {"code", "msg"}, "id"}``)."""
        try:
            request = json.loads(message)
            method, request_id = request["method"], request.get("id")
            params = request.get("params") or []
        except (ValueError, KeyError, TypeError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected a request object"}}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(subscribed), "id": request_id}
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            return {
                "error": {"code": 2, "msg": "Invalid request: unknown method"},
                "id": request_id,
            }
        for key in params:
            if method == "UNSUBSCRIBE":
                if key in subscribed:
                    subscribed.remove(key)
            elif not self.venue.listen_keys.valid(str(key)):
                return {
                    "error": {"code": 2, "msg": f"Invalid request: {_NO_KEY}"},
                    "id": request_id,
                }
            elif key not in subscribed:
                subscribed.append(str(key))
        return {"result": None, "id": request_id}


# ---- WebSocket API ----------------------------------------------------------------------------

#: WebSocket API method -> the REST route whose PaperVenue method it calls
#: (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/websocket-api/
#: New-Order, Cancel-Order, Modify-Order, Query-Order; .../account/websocket-api/...).
_METHODS = {
    "order.place": ("POST", "/fapi/v1/order"),
    "order.cancel": ("DELETE", "/fapi/v1/order"),
    "order.modify": ("PUT", "/fapi/v1/order"),
    "order.status": ("GET", "/fapi/v1/order"),
    "account.status": ("GET", "/fapi/v2/account"),
    "v2/account.status": ("GET", "/fapi/v2/account"),
    "account.position": ("GET", "/fapi/v2/positionRisk"),
    "v2/account.position": ("GET", "/fapi/v2/positionRisk"),
    "account.balance": ("GET", "/fapi/v2/balance"),
    "v2/account.balance": ("GET", "/fapi/v2/balance"),
}
_WEIGHT_LIMIT = 2400


def _text(value: Any) -> str:
    """A JSON parameter value as the REST parameter string it stands for."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _payload(params: Mapping[str, Any]) -> str:
    """What a WebSocket API signature covers: every parameter but ``signature``, sorted by
    name, ``key=value`` joined by ``&`` (websocket-api-general-info, "SIGNED requests")."""
    return "&".join(f"{key}={_text(params[key])}" for key in sorted(params) if key != "signature")


def _is_ed25519(secret: VerifyKey) -> bool:
    """True for an API key registered with an Ed25519 public key (not an HMAC secret)."""
    try:
        return ed25519_public_key(secret) is not None
    except (ValueError, CredentialsError):
        return False


class _ApiSession:
    """One ``/ws-fapi/v1`` connection: requests answered in order."""

    def __init__(self, venue: PaperVenue, connection: ServerConnection) -> None:
        self.venue = venue
        self.connection = connection
        self.api_key: str | None = None
        self.connected_ms = venue.now_ns // 1_000_000
        self.authorized_ms: int | None = None
        self._minute = 0
        self._count = 0

    def serve(self) -> None:
        from twinfeed.live.paper_venue import _Unreachable

        for message in self.connection:
            try:
                answer = self.answer(message)
            except _Unreachable:
                self.connection.close_socket()
                return
            self.connection.send(json.dumps(answer))

    def _rate_limits(self, weight: int) -> list[dict[str, Any]]:
        minute = int(time.time() // 60)
        if minute != self._minute:
            self._minute, self._count = minute, 0
        self._count += weight
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": _WEIGHT_LIMIT,
                "count": self._count,
            }
        ]

    def answer(self, message: str | bytes) -> dict[str, Any]:
        from twinfeed.live.paper_venue import ApiError

        request_id: Any = None
        try:
            try:
                request = json.loads(message)
            except ValueError:
                raise ApiError(-1000, "Malformed request: not JSON.") from None
            if not isinstance(request, dict):
                raise ApiError(-1000, "Malformed request: not a JSON object.")
            request_id = request.get("id")
            method = request.get("method")
            params = request.get("params")
            params = {} if params is None else params
            if not isinstance(params, dict):
                # The WebSocket API's answer to array params (seen from Binance's servers).
                raise ApiError(-1135, "Invalid 'params' in JSON request; expected an object.")
            if not isinstance(method, str):
                raise ApiError(-1000, "Malformed request: 'method'.")
            result = self._call(method, params)
        except ApiError as error:
            return {
                "id": request_id,
                "status": error.status,
                "error": {"code": error.code, "msg": error.msg},
                "rateLimits": self._rate_limits(1),
            }
        return {
            "id": request_id,
            "status": 200,
            "result": result,
            "rateLimits": self._rate_limits(1),
        }

    def _call(self, method: str, params: dict[str, Any]) -> Any:
        from twinfeed.live.paper_venue import _SIGNED, ApiError, _missing

        venue = self.venue
        now_ms = venue.venue_ms()
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": now_ms}
        if method == "session.status":
            return self._session(now_ms)
        if method == "session.logout":
            self.api_key = self.authorized_ms = None
            return self._session(now_ms)
        if method.startswith("userDataStream."):
            self._key_only(params)
            action = method.split(".", 1)[1]
            if action == "start":
                return venue.listen_keys.create()
            if action == "ping":
                return venue.listen_keys.keepalive({})
            if action == "stop":
                return venue.listen_keys.close({})
            raise ApiError(-1000, f"Unknown method '{method}'.")
        if method == "session.logon":
            key = self._authenticate(params)
            if not _is_ed25519(venue.keys[key]):
                # Only Ed25519 keys may log on (websocket-api-general-info, session.logon).
                raise ApiError(-4056, "HMAC_SHA256 API key is not supported.")
            self.api_key, self.authorized_ms = key, now_ms
            return self._session(now_ms)
        route = _METHODS.get(method)
        handler = _SIGNED.get(route) if route is not None else None
        if handler is None:
            raise ApiError(-1000, f"Unknown method '{method}'.")
        if "signature" in params or self.api_key is None:
            self._authenticate(params)
        elif not params.get("timestamp"):
            raise _missing("timestamp")
        else:
            self._check_time(params)
        call = {key: _text(value) for key, value in params.items() if key != "signature"}
        call.pop("apiKey", None)
        return handler(venue, call)

    def _session(self, now_ms: int) -> dict[str, Any]:
        return {
            "apiKey": self.api_key,
            "authorizedSince": self.authorized_ms,
            "connectedSince": self.connected_ms,
            "returnRateLimits": True,
            "serverTime": now_ms,
        }

    def _key_only(self, params: Mapping[str, Any]) -> str:
        from twinfeed.live.paper_venue import ApiError

        key = params.get("apiKey") or self.api_key
        if not isinstance(key, str) or key not in self.venue.keys:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return key

    def _authenticate(self, params: Mapping[str, Any]) -> str:
        """A signed request's key (``apiKey``, ``timestamp``, ``signature``), or raises."""
        from twinfeed.live.paper_venue import ApiError, _missing

        for name in ("apiKey", "timestamp", "signature"):
            if params.get(name) in (None, ""):
                raise _missing(name)
        key = self._key_only(params)
        if not check_signature(_payload(params), str(params["signature"]), self.venue.keys[key]):
            raise ApiError(-1022, "Signature for this request is not valid.")
        self._check_time(params)
        return key

    def _check_time(self, params: Mapping[str, Any]) -> None:
        """``timestamp`` against ``recvWindow`` exactly as the REST handler checks it."""
        self.venue.check_timestamp(
            {n: str(params[n]) for n in ("timestamp", "recvWindow") if params.get(n) is not None}
        )


def register_user_stream(
    md_url: str, ws_port: int, *, timeout: float = 2.0, say: Callable[[str], None] | None = None
) -> bool:
    """Asks the market-data venue to forward user-data websockets to the paper venue's server
    (``POST <md>/_venue/user-stream?upstream=127.0.0.1:P``). A failure is logged, not raised:
    the paper venue's own ``ws_url`` still serves the streams. True when it answered 2xx."""
    base = md_url.replace("ws://", "http://").replace("wss://", "https://").rstrip("/")
    url = f"{base}/_venue/user-stream?upstream=127.0.0.1:{ws_port}"
    request = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as error:
        message = f"user-stream registration with {base} failed ({error}); clients must use ws://127.0.0.1:{ws_port}"
        log.warning("%s", message)
        if say is not None:
            say(message)
        return False
    return ok
