"""Paper trading on the local venue: Binance USD-M futures order entry over the replayed market.

:class:`PaperVenue` is an HTTP server on loopback that accepts orders the way Binance's USD-M
futures REST API does and executes them with :class:`twinfeed.matching.MatchingEngine`, the
engine the backtester uses, against the capture that ``twinfeed-venue`` (the Rust market-data
venue) is replaying. So paper fills and backtest fills follow the same rules, and given the
same records and the same submit times they are the same fills (a test checks it)::

    md = start_venue(capture, speed=20)
    paper = PaperVenue.start(capture, md_status=md.status, keys={key: secret})
    gateway = OrderGateway(paper.url, key, secret, stream_url=paper.ws_url)  # live.gateway
    ...
    paper.stop(); md.stop()

Market data and time
    A background thread polls the market-data venue's status (``md_status``: a callable such as
    ``VenueProcess.status``, or the path of its ``--status-file``) every ``poll_interval`` s.
    The status names the capture line replayed last (``line_index``, 0-based) and its receive
    time ``local_ns``. The paper venue runs the batch binding over the same capture and feeds
    the engine every record with ``line <= line_index + 1`` (records number lines from 1), then
    sets its clock to that ``local_ns``. Requests are sent to the engine at that clock; they take
    effect ``latency_ns`` later (the engine's order-entry latency), so event times are the
    capture's time, never the wall clock. Before the replay starts the clock is just before the
    capture's first record and the market is unknown (limit orders rest, market orders are
    rejected). With ``--loop`` the engine follows every lap: on lap k it is fed the capture again
    from line 1 with every time moved forward by the venue's ``time_offset_ms`` (``k * lap_ms``),
    so its clock never goes back and resting orders keep matching. When the replay has finished
    the market freezes at its last state and requests are handled at their arrival time.
    That clock is the venue's time everywhere it states one, as on the market-data venue:
    ``/fapi/v1/time``, ``serverTime`` in exchangeInfo, order, trade and event times,
    ``goodTillDate`` and listen-key expiry. (At a replay speed other than 1 it runs faster than
    the wall clock, so a client that synchronised with it once falls behind it; its wall-clock
    timestamps stay timely, see Authentication.)

    A REST call that sends an order or a cancel answers once the engine has handled it (the
    replay passed its arrival time), waiting at most ``ack_timeout`` s of wall time; if the
    replay is slower than that, the answer shows the order as still ``NEW`` and the user stream
    reports what happens next.

Matching
    The rules are :mod:`twinfeed.matching`'s: a new LIMIT GTC order rests or takes the touch,
    IOC takes what it can and expires the rest, GTX (post-only) that would cross is refused
    with -5022 (the event stream shows it EXPIRED, as the engine decides it), MARKET takes the
    touch and sweeps. Fees are ``maker_fee_bps``/``taker_fee_bps`` of notional in the quote
    asset. Positions, entry prices, realized PnL and the wallet (``initial_balance`` plus realized
    PnL less fees) come from :class:`twinfeed.portfolio.Portfolio`; unrealized PnL is marked at
    the engine's current mid. One account, one-way position mode (``positionSide`` BOTH).

Endpoints (Binance USD-M; all answers JSON in Binance's shapes, errors as ``{"code", "msg"}``)
    Signed (see :mod:`twinfeed.venues.binance.signing`: HMAC keys, or Ed25519 keys registered with
    their public key): ``POST|PUT|DELETE|GET /fapi/v1/order`` (new, modify, cancel, query),
    ``POST /fapi/v1/order/test``, ``POST|PUT|DELETE /fapi/v1/batchOrders`` (at most 5 orders,
    10 cancels; answers in the order sent, each the order or its own error),
    ``DELETE /fapi/v1/allOpenOrders``, ``GET /fapi/v1/openOrder``, ``GET /fapi/v1/openOrders``,
    ``GET /fapi/v1/allOrders``, ``GET /fapi/v1/userTrades``, ``GET /fapi/v2|v3/account``,
    ``GET /fapi/v2|v3/balance``, ``GET /fapi/v2|v3/positionRisk``, ``POST /fapi/v1/leverage``,
    ``GET /fapi/v1/leverageBracket``, ``GET /fapi/v1/commissionRate``,
    ``GET|POST /fapi/v1/positionSide/dual`` (one-way only: hedge mode is -1020), see
    :mod:`twinfeed.live.paper_account`. API key only: ``POST|PUT|DELETE /fapi/v1/listenKey``.
    Open: ``GET /fapi/v1/time``, ``GET /fapi/v1/ping``, ``GET /fapi/v1/exchangeInfo`` (the
    instruments this venue trades, in Binance's shape for the capture's venue),
    ``GET /fapi/v1/ticker/bookTicker`` (the engine's touch).

Order parameters
    ``timeInForce`` GTC, IOC, GTX (post-only: -5022 when it would take), FOK (fills entirely
    at the touch on arrival or is refused with -5021; deeper levels are unknown to the engine)
    and GTD (``goodTillDate`` more than 600 s ahead of the venue clock and before
    253402300799000, else -5040; seconds only; expired by the venue once its clock passes it).
    ``reduceOnly=true``: an order that would open or increase the position is -2022
    "ReduceOnly Order is rejected."; a larger one works only the position's size; a resting one
    is expired once the position it reduced is closed or flipped. ``newOrderRespType`` ACK
    (default: the order as accepted) or RESULT (as the engine left it: fills included).
    Decimals follow Binance's ``^([0-9]{1,20})(\\.[0-9]{1,20})?$`` (-1100 otherwise: no
    ``1_0``, spaces, non-ASCII digits or exponents), ``newClientOrderId`` its
    ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$`` (-4015), a control character in any parameter is -1100
    (see :mod:`twinfeed.live.paper_params`).

Transport and rate limits
    Every answer leaves in one write (status line, headers and body in one ``sendall``) on a
    socket with TCP_NODELAY, so a kept-alive client (``requests.Session``) is not held up by
    Nagle and delayed ACKs. Answers carry ``X-MBX-USED-WEIGHT-1M`` (each endpoint's documented
    weight, per client IP) and, with an API key, ``X-MBX-ORDER-COUNT-10S`` / ``-1M``; over
    the limits (``rate_limits``, Binance's defaults 2400 weight a minute, 300 orders in 10 s,
    1200 a minute) a request is HTTP 429 -1003 (weight) or -1015 (orders) with
    ``Retry-After``; an IP that keeps sending after 429s is banned: HTTP 418 -1003 with
    ``Retry-After``.

Instruments
    ``instruments`` (symbol -> :class:`twinfeed.instruments.Instrument`) are the rules the
    venue applies and states; default: the capture's symbols looked up in the shipped table
    (:func:`twinfeed.instruments.load_table`) for the venue its frames come from. A capture
    symbol without rules is not listed: orders on it get -1121. The old ``rules``
    (:class:`SymbolRules`) still work when given alone.

    Authentication: a missing or unknown ``X-MBX-APIKEY`` is HTTP 401 -2015; a missing
    ``timestamp`` or ``signature`` -1102; a wrong signature -1022; a ``timestamp`` more than
    ``recvWindow`` ms (default 5000, at most 60000) behind the server's time, or more than
    1000 ms ahead of it, -1021. The venue has one clock, the replay's (see "Market data and
    time"); a ``timestamp`` is the client's clock, so it is timely within the window of either
    the venue clock (a client that synchronised with ``/fapi/v1/time``, as ccxt's
    ``adjustForTimeDifference`` and python-binance do) or the wall clock ``clock`` (a client
    that did not). Within the window a replayed request is taken again, as Binance takes it:
    ``recvWindow`` is Binance's replay
    defence). Order errors: -1102 missing parameter, -1100 malformed number,
    -1116/-1117/-1115 bad type/side/timeInForce, -1121 unknown symbol (or one without trading
    rules), then the symbol's :class:`twinfeed.instruments.Instrument` rules with Binance's codes
    (-1111 more decimals than the precision, -4014 / -4023 off the tick / step grid, -4004 below
    the minimum quantity, -4164 below the minimum notional; spot: -1013 Filter failure: ...),
    -4005 above the (MARKET_)LOT_SIZE maximum, -4013 / -4002 below / above PRICE_FILTER,
    -4003 quantity <= 0, -4013 price <= 0, -4116 duplicate
    ``newClientOrderId``, -5022 post-only would take, -2010 refused by the engine (e.g. a market
    order before any quote), -2011 cancel of an unknown or finished order, -2013 query of an
    unknown order.

User stream (websocket; :mod:`twinfeed.live.paper_ws`)
    ``POST|PUT|DELETE /fapi/v1/listenKey`` manage the account's listen key
    (:class:`twinfeed.live.paper_ws.ListenKeys`); the websocket server on ``ws_url`` streams
    ``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE`` and ``listenKeyExpired`` for it and serves the
    WebSocket API (``/ws-fapi/v1``). Events are published to :meth:`PaperVenue.subscribe`
    callbacks as they happen and kept (the last ``max_events``) in ``_events``, each with a
    venue-wide consecutive ``seq`` and the engine's time ``ns`` that stay inside the venue;
    ``E``/``T`` are the venue clock (capture time) in ms.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from twinfeed import _features
from twinfeed.instruments import (
    Instrument,
    InstrumentTable,
    SymbolInstruments,
    UnknownInstrumentError,
    capture_venue,
    load_table,
    with_capture_rules,
)
from twinfeed.live.paper_account import AccountEndpoints, num
from twinfeed.live.paper_ledger import PaperLedger
from twinfeed.live.paper_orders import (
    JournalEntry,
    OrderEndpoints,
    SymbolRules,
    _OrderInfo,
    _Unreachable,
)
from twinfeed.live.paper_params import (
    ApiError,
    RateLimiter,
    RateLimits,
    int_param,
    missing,
    weight_of,
)
from twinfeed.live.paper_ws import ListenKeys, PaperWebSocketServer, account_update
from twinfeed.matching import MatchingEngine
from twinfeed.orders import Event, Fill, OrderUpdate
from twinfeed.portfolio import Portfolio
from twinfeed.research.features import CapturePaths, _paths, open_run
from twinfeed.venues.binance.signing import (
    SignatureError,
    VerifyKey,
    ed25519_public_key,
    signed_params,
)
from twinfeed.venues.binance.wire import EXECUTION_OF_STATE, STATUS_OF_STATE

__all__ = [
    "ApiError",
    "JournalEntry",
    "PaperVenue",
    "RateLimits",
    "SymbolRules",
    "read_status_file",
]

StatusSource = Callable[[], Mapping[str, Any]] | str | Path

_missing = missing


@dataclass
class _Records:
    """The batch binding over the capture, handed out up to a capture line."""

    capture: CapturePaths
    config: Any = None
    batch_rows: int = 65_536
    run: Any = None
    batch: np.ndarray[Any, Any] | None = None
    offset: int = 0
    exhausted: bool = False
    symbols: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.run = open_run(self.capture, self.config)
        self._fetch()

    def _fetch(self) -> bool:
        raw = self.run.next_records(self.batch_rows)
        self.symbols = list(self.run.symbols())
        if raw is None:
            self.exhausted = True
            self.batch = None
            return False
        self.batch = np.frombuffer(raw, dtype=_features.record_dtype())
        self.offset = 0
        return True

    def first_local_ns(self) -> int | None:
        if self.batch is None or self.offset >= len(self.batch):
            return None
        return int(self.batch["local_ns"][self.offset])

    def take_until(self, line: int | None) -> list[np.ndarray[Any, Any]]:
        """Records with ``line <= line`` not yet taken (all remaining if ``line`` is None)."""
        out: list[np.ndarray[Any, Any]] = []
        while self.batch is not None:
            if self.offset >= len(self.batch):
                if not self._fetch():
                    break
                continue
            rest = self.batch[self.offset :]
            count = len(rest) if line is None else int(np.searchsorted(rest["line"], line, "right"))
            if count:
                out.append(rest[:count])
                self.offset += count
            if self.offset < len(self.batch):
                break
        return out


def read_status_file(path: str | Path) -> dict[str, Any]:
    """The Rust venue's status file (``{}`` before its first write)."""
    try:
        return dict(json.loads(Path(path).read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


_num = num


class PaperVenue(OrderEndpoints, AccountEndpoints):
    """Binance USD-M order entry over the replayed market. See the module docstring.

    Use :meth:`start` (it binds and starts the threads); ``.url`` is the REST base URL.
    """

    def __init__(
        self,
        capture: CapturePaths,
        md_status: StatusSource,
        *,
        keys: Mapping[str, VerifyKey],
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ns: int = 0,
        maker_fee_bps: float = 0.0,
        taker_fee_bps: float = 0.0,
        initial_balance: float = 10_000.0,
        rules: Mapping[str, SymbolRules] | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        poll_interval: float = 0.005,
        ack_timeout: float = 2.0,
        max_events: int = 100_000,
        config: Any = None,
        ledger: str | Path | None = None,
        carry_over: bool = False,
        rate_limits: RateLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("PaperVenue needs at least one API key")
        self.capture = capture
        self.host = host
        # Ed25519 public keys (PEM) parsed now: a malformed one fails here, not per request.
        self.keys = {
            key: ed25519_public_key(secret) or secret for key, secret in dict(keys).items()
        }
        #: The wall clock (s): rate-limit windows (they limit clients, whose clocks run in
        #: wall time) and the wall-time half of the ``timestamp`` check. Everything the venue
        #: states as its time runs on the replay clock (``venue_ms``).
        self.clock = clock
        #: Request weight and order counts per IP / API key (429 / 418 over the limits).
        self.limiter = RateLimiter(rate_limits or RateLimits(), clock)
        self._leverage: dict[str, int] = {}
        self.engine = MatchingEngine(latency_ns, maker_fee_bps, taker_fee_bps)
        self.portfolio = Portfolio()
        self.initial_balance = float(initial_balance)
        self.rules = dict(rules or {})
        #: Symbol -> trading rules (None: from the shipped table once the capture is read).
        self.instruments: dict[str, Instrument] | None = (
            dict(instruments) if instruments is not None else None
        )
        self.venue_name: str | None = None
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.max_events = max_events
        #: Every request the engine received, in order (see :class:`JournalEntry`).
        self.journal: list[JournalEntry] = []
        #: Status reads that failed (the market-data venue not up yet, or gone).
        self.status_errors = 0
        self._status = self._status_reader(md_status)
        self._config = config
        # The binding's run is bound to the thread that made it: the market thread makes it.
        self._records: _Records | None = None
        self._symbols: list[str] = []
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._now_ns = 0
        self._line = 0
        #: ``--loop``: the lap the engine follows, its first session line (lines of earlier
        #: laps), its time shift and the line within it fed through.
        self._lap = 0
        self._lap_base = 0
        self._lap_shift_ns = 0
        self._lap_line = 0
        self._frozen = False
        self._lock = threading.Condition(threading.RLock())
        self._orders: dict[str, _OrderInfo] = {}
        self._by_id: dict[int, str] = {}
        self._trades: list[dict[str, Any]] = []
        #: Open GTD and reduce-only orders: the venue may expire them (see _sweep).
        self._watched: dict[str, _OrderInfo] = {}
        #: Trades on disk (see twinfeed.live.paper_ledger); ids continue after its last ones.
        #: With ``carry_over``, the earlier sessions' trades, orders and positions are this
        #: venue's too (a session recovering a dead one's runs reconciles against them).
        self.ledger = PaperLedger(ledger) if ledger is not None else None
        self._trade_base = self.ledger.trade_base if self.ledger is not None else 0
        self._order_base = self.ledger.order_base if self.ledger is not None else 0
        self._carry_over = carry_over and self.ledger is not None
        if self._carry_over and self.ledger is not None:
            self._trades = list(self.ledger.trades)
        self._events: list[dict[str, Any]] = []
        self._seq = 0
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        #: The account's listen key (its validity on the venue clock; see paper_ws).
        self.listen_keys = ListenKeys(self)
        self._stopping = threading.Event()
        #: Set while :meth:`suspend` keeps the venue unreachable (state kept, matching goes on).
        self.suspended = False
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        #: User-data streams and the WebSocket API on their own loopback port (``ws_url``).
        self.ws = PaperWebSocketServer(self, host)
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="paper-http", daemon=True),
            threading.Thread(target=self._follow, name="paper-market", daemon=True),
        ]

    @classmethod
    def start(
        cls, capture: CapturePaths, md_status: StatusSource, port: int = 0, **options: Any
    ) -> PaperVenue:
        """Creates the venue on ``port`` (0 = free), starts serving and following the replay."""
        venue = cls(capture, md_status, port=port, **options)
        venue._threads[1].start()
        venue._ready.wait()
        if venue._failure is not None:
            venue._server.server_close()
            venue.ws.stop()
            raise venue._failure
        if venue._carry_over:
            venue._seed_portfolio()
        venue._threads[0].start()
        venue.ws.start()
        return venue

    def _seed_portfolio(self) -> None:
        """Books the ledger's trades of earlier sessions (``carry_over``)."""
        with self._lock:
            for trade in self._trades:
                if trade["symbol"] not in self._symbols:
                    continue
                self.portfolio.apply(
                    Fill(
                        f"ledger-{trade['orderId']}",
                        self._symbols.index(trade["symbol"]),
                        "buy" if trade["side"] == "BUY" else "sell",
                        float(trade["price"]),
                        float(trade["qty"]),
                        float(trade["commission"]),
                        "maker" if trade["maker"] else "taker",
                        int(trade["time"]) * 1_000_000,
                        int(trade["id"]),
                    )
                )

    def stop(self) -> None:
        """Stops serving and following; safe to call twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self.ws.stop()
        if self.ledger is not None:
            self.ledger.close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(5)

    def suspend(self) -> None:
        """Makes the venue unreachable, as a dropped connection does: the listening sockets
        (REST and websocket) are closed (new connections are refused) and open connections,
        user-data websockets included, are reset. Orders keep resting and matching the
        replay; every account, order and trade is kept for :meth:`resume`. Stream events
        published meanwhile reach no one (as on Binance: a reconnecting client reconciles
        through REST)."""
        if self.suspended or self._stopping.is_set():
            return
        self.suspended = True
        self._server.shutdown()
        self._server.server_close()
        self.ws.suspend()
        with self._lock:
            self._lock.notify_all()
            connections = list(self._connections)
        for connection in connections:
            # The client's read ends without an answer (the connection dropped).
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _check_reachable(self) -> None:
        """Under the lock, before an order, cancel or cancel-all takes effect: a request read
        just before :meth:`suspend` must not act while the venue is unreachable (the client
        sees its connection drop without an answer, as it would on a real outage)."""
        if self.suspended:
            raise _Unreachable

    def resume(self) -> None:
        """Listens again on the same host and port after :meth:`suspend`."""
        if not self.suspended or self._stopping.is_set():
            return
        self.ws.resume()
        server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        server.daemon_threads = True
        self._server = server
        thread = threading.Thread(target=server.serve_forever, name="paper-http", daemon=True)
        self._threads.append(thread)
        self.suspended = False
        thread.start()

    def __enter__(self) -> PaperVenue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """REST base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The websocket server (user-data streams, ``/ws-fapi/v1``), ``ws://127.0.0.1:PORT``."""
        return self.ws.url

    @property
    def line(self) -> int:
        """Capture lines (1-based, inclusive) the engine has been fed through; with
        ``--loop``, counted over the laps (lap k's line n is ``k * lines + n``)."""
        return self._line

    @property
    def lap(self) -> int:
        """The ``--loop`` lap the engine follows (0: the first)."""
        return self._lap

    @property
    def now_ns(self) -> int:
        """The venue's clock: capture receive time of the replay position."""
        return self._now_ns

    def venue_ms(self) -> int:
        """The venue's clock in ms, as ``/fapi/v1/time`` answers it: the replay clock (capture
        time, moved forward by ``--loop`` laps), the time of every order and event."""
        return self._now_ns // 1_000_000

    @property
    def frozen(self) -> bool:
        """True once the replay finished (for good: not a lap of ``--loop``)."""
        return self._frozen

    def wait_for_line(self, line: int, timeout: float = 30.0) -> bool:
        """Blocks until the engine has been fed through ``line`` (or the market froze)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._line < line and not self._frozen:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    return False
                self._lock.wait(left)
        return True

    # ---- market data --------------------------------------------------------------------

    @staticmethod
    def _status_reader(source: StatusSource) -> Callable[[], Mapping[str, Any]]:
        if callable(source):
            return source
        path = Path(source)
        return lambda: read_status_file(path)

    def _follow(self) -> None:
        try:
            self._records = _Records(self.capture, self._config)
            self._symbols = list(self._records.symbols)
            self._load_instruments()
            first = self._records.first_local_ns()
            self._now_ns = 0 if first is None else first - 1
        except BaseException as error:  # noqa: BLE001 - handed to start()
            self._failure = error
            return
        finally:
            self._ready.set()
        try:
            while not self._stopping.is_set():
                # Once the market froze nothing in the status can change it: no more polls
                # (each one an HTTP request holding the interpreter beside order entry).
                try:
                    status = {} if self._frozen else self._status()
                except Exception:  # noqa: BLE001 - a venue not up yet (or gone) is retried
                    self.status_errors += 1
                    status = {}
                if status:
                    self._apply_status(status)
                if self._watched:
                    with self._lock:
                        self._sweep()
                self._stopping.wait(self.poll_interval)
        finally:
            with self._lock:
                self._records = None  # dropped on the thread that made it

    def _apply_status(self, status: Mapping[str, Any]) -> None:
        line_index = status.get("line_index")
        local_ns = status.get("local_ns")
        lap = int(status.get("lap") or 0)
        # A venue that states no lap shift (older than the replay clock): freeze at lap 2.
        follows_laps = "time_offset_ms" in status and status.get("lines") is not None
        finished = bool(status.get("finished")) or (lap > self._lap and not follows_laps)
        with self._lock:
            if self._frozen:
                return
            if lap > self._lap and follows_laps:
                # --loop: the rest of this lap, then the market again from line 1 with every
                # time moved forward as the market-data venue moves it (time_offset_ms), so
                # the clock never goes back and resting orders keep matching.
                self._feed(None)
                self._records = _Records(self.capture, self._config)
                self._lap_base += int(status["lines"]) * (lap - self._lap)
                self._lap, self._lap_line = lap, 0
                self._lap_shift_ns = int(status["time_offset_ms"]) * 1_000_000
                self._line = self._lap_base
            target = None if line_index is None else int(line_index) + 1
            if target is None and not finished:
                return
            if target is None or target > self._lap_line:
                self._feed(target)
                if target is not None:
                    self._lap_line = target
                    self._line = self._lap_base + target
                if local_ns is not None and not finished:
                    self._now_ns = max(self._now_ns, int(local_ns) + self._lap_shift_ns)
                self._publish(self.engine.advance(self._now_ns))
            if finished:
                self._feed(None)
                self._frozen = True
                self._publish(self.engine.advance(self._now_ns))
            assert self._records is not None
            self._symbols = list(self._records.symbols)
            self.listen_keys.expire(self._now_ns)
            self._lock.notify_all()

    def _feed(self, line: int | None) -> None:
        """Feeds the engine the current lap's records through ``line`` (all if None), their
        times moved by the lap's shift (lock held)."""
        records = self._records
        assert records is not None
        shift = self._lap_shift_ns
        for batch in records.take_until(line):
            if shift:
                batch = batch.copy()
                batch["local_ns"] += shift
                batch["exchange_ns"][batch["exchange_ns"] > 0] += shift
            self._publish(self.engine.on_batch(batch))
            self._now_ns = max(self._now_ns, int(batch["local_ns"][-1]))

    def _settle(self, arrival_ns: int) -> None:
        """Waits (lock held) until the engine handled requests arriving by ``arrival_ns``."""
        deadline = time.monotonic() + self.ack_timeout
        while self._now_ns < arrival_ns:
            if self._frozen:
                self._now_ns = arrival_ns
                self._publish(self.engine.advance(arrival_ns))
                self._lock.notify_all()
                return
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.is_set():
                return
            self._lock.wait(left)

    # ---- engine events -> state and the user stream -------------------------------------

    def _publish(self, events: list[Event]) -> None:
        index = 0
        while index < len(events):
            event = events[index]
            index += 1
            if isinstance(event, Fill):
                update = events[index] if index < len(events) else None
                if isinstance(update, OrderUpdate) and update.client_id == event.client_id:
                    index += 1
                else:
                    update = None
                self._on_fill(event, update)
            else:
                self._on_update(event)

    def _on_fill(self, fill: Fill, update: OrderUpdate | None) -> None:
        info = self._orders[fill.client_id]
        info.notional += fill.price * fill.qty
        info.update_ms = fill.ts_ns // 1_000_000
        position = self.portfolio.position(fill.symbol)
        realized_before = position.realized
        self.portfolio.apply(fill)
        realized = position.realized - realized_before
        trade_id = self._trade_base + fill.fill_id
        trade = {
            "buyer": fill.side == "buy",
            "commission": _num(fill.fee),
            "commissionAsset": _quote_asset(info.symbol),
            "id": trade_id,
            "maker": fill.liquidity == "maker",
            "orderId": info.order_id,
            "price": _num(fill.price),
            "qty": _num(fill.qty),
            "quoteQty": _num(fill.price * fill.qty),
            "realizedPnl": _num(realized),
            "side": fill.side.upper(),
            "positionSide": "BOTH",
            "symbol": info.symbol,
            "time": fill.ts_ns // 1_000_000,
        }
        self._trades.append(trade)
        state = update.state if update is not None else info.order.state
        filled = update.filled_qty if update is not None else info.order.filled_qty
        if self.ledger is not None:  # on disk before anyone can hear of it
            order = self._order_json(info)
            order.update(
                status=STATUS_OF_STATE[state], executedQty=_num(filled), cumQty=_num(filled)
            )
            self.ledger.append(trade, order)
        self._emit(
            info,
            fill.ts_ns,
            "TRADE",
            STATUS_OF_STATE[state],
            filled,
            {
                "l": _num(fill.qty),
                "L": _num(fill.price),
                "n": _num(fill.fee),
                "N": _quote_asset(info.symbol),
                "t": trade_id,
                "m": fill.liquidity == "maker",
                "rp": _num(realized),
            },
        )
        self._publish_event(account_update(self, info.symbol, fill.symbol, fill.ts_ns))

    def _on_update(self, update: OrderUpdate) -> None:
        execution = EXECUTION_OF_STATE.get(update.state)
        if execution is None or update.reason.startswith(("cancel refused", "replace refused")):
            return
        info = self._orders[update.client_id]
        info.update_ms = update.ts_ns // 1_000_000
        self._emit(
            info, update.ts_ns, execution, STATUS_OF_STATE[update.state], update.filled_qty, {}
        )

    def _emit(
        self,
        info: _OrderInfo,
        ts_ns: int,
        execution: str,
        status: str,
        filled: float,
        extra: dict[str, Any],
    ) -> None:
        order = info.order
        ts_ms = ts_ns // 1_000_000
        # Bids and asks notional of the symbol's open orders (Event-Order-Update "b", "a").
        bids = asks = 0.0
        for other in self.engine.open_orders(order.symbol):
            notional = (other.price or 0.0) * (other.qty - other.filled_qty)
            if other.side == "buy":
                bids += notional
            else:
                asks += notional
        body = {
            "s": info.symbol,
            "c": order.client_id,
            "S": order.side.upper(),
            "o": order.type.upper(),
            "f": info.tif or order.tif,  # as sent: a GTD order rests as GTC in the engine
            "q": _num(order.qty),
            "p": _num(order.price or 0.0),
            "ap": _num(info.notional / filled) if filled > 0 else "0",
            "sp": "0",
            "x": execution,
            "X": status,
            "i": info.order_id,
            "l": "0",
            "z": _num(filled),
            "L": "0",
            "n": "0",
            "N": _quote_asset(info.symbol),
            "T": ts_ms,
            "t": 0,
            "b": _num(bids),
            "a": _num(asks),
            "m": False,
            "R": info.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": order.type.upper(),
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            # As the order's REST answer states them: self-trade prevention and price match
            # default to NONE ("selfTradePreventionMode ... default NONE", New Order,
            # https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api);
            # the venue has one account, so no self-trade to prevent, and no price match.
            "V": "NONE",
            "pm": "NONE",
            "gtd": info.good_till_ms,
        }
        body.update(extra)
        event = {"e": "ORDER_TRADE_UPDATE", "E": ts_ms, "T": ts_ms, "ns": ts_ns, "o": body}
        self._publish_event(event)

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Calls ``callback(event)`` for every event published from now on (under the venue's
        lock, in publishing order: it must only queue the event). Returns the unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish_event(self, event: dict[str, Any]) -> None:
        """Numbers and keeps an event, and hands it to every subscriber (lock held)."""
        self._seq += 1
        event["seq"] = self._seq
        self._events.append(event)
        if len(self._events) > self.max_events:
            del self._events[: len(self._events) - self.max_events]
        for callback in list(self._subscribers):
            callback(event)

    def _load_instruments(self) -> None:
        """The capture's venue, and its symbols' rules from the shipped table if not given."""
        try:
            self.venue_name = capture_venue(_paths(self.capture))
        except Exception:  # noqa: BLE001 - a folder or unreadable head: the venue stays unknown
            self.venue_name = None
        if self.instruments is None and self.rules:
            return
        if self.instruments is None:
            table = with_capture_rules(load_table(), _paths(self.capture))
            found: dict[str, Instrument] = {}
            for name in self._symbols:
                # A symbol without rules is not listed: -1121 on orders, not in exchangeInfo.
                with contextlib.suppress(UnknownInstrumentError):
                    found[name] = table.get(name, self.venue_name)
            self.instruments = found
        # The engine and the account value positions by the same rules (inverse contracts).
        listed = [self.instruments.get(name) for name in self._symbols]
        if all(i is not None for i in listed):
            rules = SymbolInstruments(None, self.venue_name, list(self._symbols), listed)  # type: ignore[arg-type]
            self.engine.instruments = rules
            self.portfolio.instruments = rules

    def exchange_info(self, _params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``GET /fapi/v1/exchangeInfo``: the rules this venue applies, Binance's shape."""
        venue = self.venue_name or "binance-usdm"
        listed = [i for i in (self.instruments or {}).values()]
        for instrument in listed:
            venue = instrument.venue
        answer = InstrumentTable(listed).exchange_info(venue)
        answer["serverTime"] = self.venue_ms()
        # What this venue enforces, in Binance's fields (Exchange Information,
        # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information):
        # its rate limits, and per symbol the order types and times in force it accepts
        # (clients such as ccxt refuse to send an order type a symbol does not list).
        limits = self.limiter.limits
        answer["rateLimits"] = [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": limits.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
             "limit": limits.orders_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": limits.orders_per_10s},
        ]  # fmt: skip
        for entry in answer["symbols"]:
            if entry.get("contractType") is None:  # spot: not this venue's order entry
                continue
            entry.setdefault("pair", entry["symbol"])
            entry.setdefault("underlyingType", "COIN")
            entry.setdefault("orderTypes", ["LIMIT", "MARKET"])
            entry.setdefault("timeInForce", ["GTC", "IOC", "FOK", "GTX", "GTD"])
        return answer

    def check_timestamp(self, params: Mapping[str, str]) -> None:
        """A signed request's ``timestamp`` against its ``recvWindow`` (REST and the WebSocket
        API). It is the client's clock: timely within the window of the venue clock (a client
        synchronised with ``/fapi/v1/time``) or of the wall clock ``clock`` (one that is not)."""
        timestamp = int_param(params, "timestamp", required=True)
        window = int_param(params, "recvWindow", 5000)
        assert timestamp is not None and window is not None
        if not 0 < window <= 60_000:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        # Binance's only defence against a replayed signed request is this window: "the
        # request is rejected if serverTime - timestamp > recvWindow" and a timestamp
        # more than 1 s ahead is refused too (General Info, Timing security,
        # https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info).
        # Within the window a replay is a new request (a second order without
        # newClientOrderId; -4116 with the same one), as on Binance.
        clocks = (self.clock() * 1000, float(self.venue_ms()))
        if any(timestamp < now + 1000 and now - timestamp <= window for now in clocks):
            return
        if all(timestamp >= now + 1000 for now in clocks):
            raise ApiError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # ---- requests -----------------------------------------------------------------------

    def _symbol(self, params: Mapping[str, str], required: bool = True) -> tuple[str, int] | None:
        name = params.get("symbol", "").upper()
        if not name:
            if required:
                raise _missing("symbol")
            return None
        symbols = self._symbols
        if name not in symbols:
            raise ApiError(-1121, "Invalid symbol.")
        return name, symbols.index(name)

    def _marked(self) -> list[tuple[str, Any, float]]:
        """(symbol name, position, mark price) of every symbol traded."""
        out = []
        for symbol_id, position in sorted(self.portfolio.positions.items()):
            touch = self.engine.touch(symbol_id)
            if touch is not None:
                self.portfolio.mark(symbol_id, (touch.bid_px + touch.ask_px) / 2)
            out.append((self._symbols[symbol_id], position, position.mark))
        return out

    def new_listen_key(self) -> dict[str, Any]:
        """``POST /fapi/v1/listenKey`` (see :class:`twinfeed.live.paper_ws.ListenKeys`)."""
        return self.listen_keys.create()

    def keepalive_listen_key(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``PUT /fapi/v1/listenKey``."""
        return self.listen_keys.keepalive(params)

    def close_listen_key(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``DELETE /fapi/v1/listenKey``."""
        return self.listen_keys.close(params)

    def _order_json(self, info: _OrderInfo) -> dict[str, Any]:
        order = info.order
        filled = order.filled_qty
        return {
            "orderId": info.order_id,
            "symbol": info.symbol,
            "status": STATUS_OF_STATE[order.state],
            "clientOrderId": order.client_id,
            "price": _num(order.price or 0.0),
            "avgPrice": _num(info.notional / filled) if filled > 0 else "0",
            "origQty": _num(order.qty),
            "executedQty": _num(filled),
            "cumQty": _num(filled),
            "cumQuote": _num(info.notional),
            "timeInForce": info.tif or order.tif,
            "type": order.type.upper(),
            "origType": order.type.upper(),
            "reduceOnly": info.reduce_only,
            "closePosition": False,
            "side": order.side.upper(),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": info.good_till_ms,
            "time": info.time_ms,
            "updateTime": info.update_ms,
        }


def _quote_asset(symbol: str) -> str:
    for quote in ("USDT", "USDC", "BUSD"):
        if symbol.endswith(quote):
            return quote
    return "USDT"


def _number(params: Mapping[str, str], name: str, default: float | None = None) -> float:
    text = params.get(name, "")
    if not text:
        if default is None:
            raise _missing(name)
        return default
    try:
        value = float(text)
    except ValueError:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


# ---- HTTP ---------------------------------------------------------------------------------

#: Largest request body read (order entry takes parameters, not documents).
MAX_BODY = 64 * 1024

_SIGNED: dict[tuple[str, str], Callable[[PaperVenue, Mapping[str, str]], Any]] = {
    ("POST", "/fapi/v1/order"): PaperVenue.new_order,
    ("PUT", "/fapi/v1/order"): PaperVenue.modify_order,
    ("DELETE", "/fapi/v1/order"): PaperVenue.cancel_order,
    ("GET", "/fapi/v1/order"): PaperVenue.query_order,
    ("POST", "/fapi/v1/order/test"): PaperVenue.test_order,
    ("POST", "/fapi/v1/batchOrders"): PaperVenue.batch_orders,
    ("PUT", "/fapi/v1/batchOrders"): PaperVenue.batch_modify,
    ("DELETE", "/fapi/v1/batchOrders"): PaperVenue.batch_cancel,
    ("DELETE", "/fapi/v1/allOpenOrders"): PaperVenue.cancel_all,
    ("GET", "/fapi/v1/openOrder"): PaperVenue.open_order,
    ("GET", "/fapi/v1/openOrders"): PaperVenue.open_orders,
    ("GET", "/fapi/v1/allOrders"): PaperVenue.all_orders,
    ("GET", "/fapi/v1/userTrades"): PaperVenue.user_trades,
    ("GET", "/fapi/v2/account"): PaperVenue.account,
    ("GET", "/fapi/v3/account"): PaperVenue.account_v3,
    ("GET", "/fapi/v2/balance"): PaperVenue.balance,
    ("GET", "/fapi/v3/balance"): PaperVenue.balance,
    ("GET", "/fapi/v2/positionRisk"): PaperVenue.position_risk,
    ("GET", "/fapi/v3/positionRisk"): PaperVenue.position_risk_v3,
    ("POST", "/fapi/v1/leverage"): PaperVenue.change_leverage,
    ("GET", "/fapi/v1/leverageBracket"): PaperVenue.leverage_bracket,
    ("GET", "/fapi/v1/commissionRate"): PaperVenue.commission_rate,
    ("GET", "/fapi/v1/positionSide/dual"): PaperVenue.position_mode,
    ("POST", "/fapi/v1/positionSide/dual"): PaperVenue.change_position_mode,
}


def _handler(venue: PaperVenue) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "twinfeed-paper"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: request lines carry signatures and keys."""

        def setup(self) -> None:
            super().setup()
            # Answers leave in one write (see _send); without Nagle they leave at once
            # instead of waiting for the client's delayed ACK of the previous segment.
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with venue._lock:
                venue._connections.add(self.connection)

        def finish(self) -> None:
            with venue._lock:
                venue._connections.discard(self.connection)
            with contextlib.suppress(OSError):  # reset by suspend()
                super().finish()

        def handle(self) -> None:
            try:
                super().handle()
            except OSError:  # reset by suspend(): the client sees the connection drop
                self.close_connection = True

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _body(self) -> str:
            """The request body; a malformed or oversized Content-Length, or a body that is not
            UTF-8, is a Binance error (the connection is closed: its framing is lost)."""
            text = (self.headers.get("Content-Length") or "0").strip()
            if not (text.isascii() and text.isdigit()):
                self.close_connection = True
                raise ApiError(-1000, f"malformed Content-Length {text[:40]!r}")
            if int(text) > MAX_BODY:
                self.close_connection = True
                raise ApiError(-1000, f"request body over {MAX_BODY} bytes")
            raw = self.rfile.read(int(text)) if int(text) else b""
            try:
                return raw.decode()
            except UnicodeDecodeError:
                raise ApiError(-1100, "Illegal characters found in a parameter.") from None

        def _dispatch(self, method: str) -> None:
            headers: dict[str, str] = {}
            try:
                split = urllib.parse.urlsplit(self.path)
                body = self._body()
                answer = self._answer(method, split.path, split.query, body, headers)
                status = 200
            except ApiError as error:
                status, answer = error.status, {"code": error.code, "msg": error.msg}
                headers.update(error.headers)
            except _Unreachable:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            except Exception as error:  # noqa: BLE001 - a bug must not kill the server thread
                status, answer = 500, {"code": -1000, "msg": f"internal error: {error!r}"}
            self._send(status, json.dumps(answer, separators=(",", ":")).encode(), headers)

        def _send(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
            """Status line, headers and body in one buffer, one ``sendall``: a body written
            after the headers as a second segment waits for the client's delayed ACK (40 ms
            on Linux) on a kept-alive connection."""
            reason = self.responses.get(status, ("",))[0]
            lines = [
                f"{self.protocol_version} {status} {reason}",
                f"Server: {self.version_string()}",
                f"Date: {self.date_time_string()}",
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
            ]
            lines.extend(f"{name}: {value}" for name, value in headers.items())
            if self.close_connection:
                lines.append("Connection: close")
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

        def _admit(self, method: str, path: str, params: Mapping[str, str]) -> dict[str, str]:
            """Rate limits: weight per IP, orders per API key (see paper_params)."""
            weight, orders_10s, orders_1m = weight_of(method, path, params)
            key = self.headers.get("X-MBX-APIKEY", "")
            account = key if key in venue.keys else None
            return venue.limiter.admit(
                self.client_address[0], account, weight, orders_10s, orders_1m
            )

        def _answer(
            self, method: str, path: str, query: str, body: str, headers: dict[str, str]
        ) -> Any:
            params = {
                **dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
                **dict(urllib.parse.parse_qsl(body, keep_blank_values=True)),
            }
            headers.update(self._admit(method, path, params))
            if path in ("/fapi/v1/ping",):
                return {}
            if path == "/fapi/v1/time":
                return {"serverTime": venue.venue_ms()}
            if path == "/fapi/v1/exchangeInfo" and method == "GET":
                return venue.exchange_info()
            if path == "/fapi/v1/ticker/bookTicker" and method == "GET":
                return venue.book_ticker(params)
            handler = _SIGNED.get((method, path))
            is_stream = path == "/fapi/v1/listenKey"
            if handler is None and not is_stream:
                raise ApiError(-1000, f"unknown endpoint {method} {path}", status=404)
            secret = venue.keys.get(self.headers.get("X-MBX-APIKEY", ""))
            if secret is None:
                raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
            if path == "/fapi/v1/listenKey":
                if method == "POST":
                    return venue.new_listen_key()
                if method == "PUT":
                    return venue.keepalive_listen_key(params)
                return venue.close_listen_key(params)
            assert handler is not None
            if not params.get("timestamp"):
                raise _missing("timestamp")
            if "signature" not in params:
                raise _missing("signature")
            try:
                # The order is read from exactly the bytes the signature covers (see
                # signed_params: a re-split between query string and body is refused).
                params = signed_params(query, body, secret)
            except SignatureError as error:
                raise ApiError(error.code, error.msg) from None
            venue.check_timestamp(params)
            return handler(venue, params)

    return Handler
