"""The venue port and its Binance adapter: one status table, one error mapping, and every
port call against the real paper venue on loopback (market frozen at the capture's end)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from paper_rest import frozen_paper
from twinfeed.live.brain.entry import PortEntry
from twinfeed.live.paper_params import ApiError
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.orders import Order
from twinfeed.venues.binance import wire
from twinfeed.venues.binance.adapter import BinanceVenue
from twinfeed.venues.binance.errors import venue_error
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.errors import VenueError
from twinfeed.venues.port import VenuePort

KEY, SECRET = "port-key", "port-secret"
ED_KEY = "port-ed25519-key"
_PRIVATE = Ed25519PrivateKey.generate()
PRIVATE_PEM = _PRIVATE.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
PUBLIC_PEM = (
    _PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
)
SYMBOL = "BTCUSDT"


def test_status_table_reads_back_what_the_venue_writes() -> None:
    """The venue writes with STATUS_OF_STATE and the client reads with STATE_OF_STATUS: every
    state comes back as itself ("new" as "acked": the venue has it), and Binance's other
    spellings are read too."""
    for state, status in wire.STATUS_OF_STATE.items():
        assert wire.STATE_OF_STATUS[status] == ("acked" if state == "new" else state)
    assert wire.STATE_OF_STATUS["EXPIRED_IN_MATCH"] == "expired"
    for state, execution in wire.EXECUTION_OF_STATE.items():
        assert wire.STATE_OF_STATUS[execution] == state


def test_one_error_mapping_for_client_and_paper_venue() -> None:
    """A code means the same to the client (venue_error) and the paper venue (ApiError)."""
    for code, status in ((-1003, 429), (-1003, 418), (-1001, 503), (-2013, 400), (-1021, 400)):
        client, paper = venue_error(code, "x", status), ApiError(code, "x", status)
        assert isinstance(paper, VenueError)
        for flag in ("retryable", "link_lost", "rate_limited", "unknown_order", "clock_skew"):
            assert getattr(client, flag) == getattr(paper, flag), (code, status, flag)
    limited = venue_error(-1003, "Too many requests.", 429, {"Retry-After": "7"})
    assert limited.rate_limited and limited.retryable and limited.retry_after_s == 7.0
    assert not limited.link_lost
    lost = venue_error(0, "no answer")
    assert lost.link_lost and lost.retryable and not lost.rate_limited
    assert venue_error(-5000, "gateway", 502).link_lost  # a 5xx: outcome unknown
    assert venue_error(-2011, "Unknown order sent.").unknown_order
    assert venue_error(-1021, "Timestamp outside recvWindow.").clock_skew
    plain = venue_error(-1111, "Precision is over the maximum defined for this asset.")
    assert not (plain.retryable or plain.link_lost or plain.rate_limited or plain.unknown_order)


def test_on_grid_rounds_to_the_step() -> None:
    assert wire.on_grid(61800.049999, "0.1") == "61800.0"
    assert wire.on_grid(61800.05, 0.1) == "61800.1"
    assert wire.on_grid(0.0015, "0.001") == "0.002"
    assert wire.on_grid(1234.5, "1") == "1235"  # halves away from zero
    assert wire.on_grid(0.1 + 0.2, None) == "0.3"
    assert wire.on_grid("1.23456789", "0.1") == "1.23456789"  # text is sent as given


@pytest.fixture(scope="module")
def paper() -> Iterator[PaperVenue]:
    with frozen_paper({KEY: SECRET, ED_KEY: PUBLIC_PEM}) as venue:
        yield venue


def test_binance_venue_serves_the_port(paper: PaperVenue) -> None:
    """Every port call in domain types, against the real paper venue."""
    venue = BinanceVenue(OrderGateway(paper.url, KEY, SECRET), stream=False)
    assert isinstance(venue, VenuePort)
    touch = paper.engine.touch(0)
    assert touch is not None
    bid, ask = touch.bid_px, touch.ask_px
    venue.ping()
    assert venue.balances()["USDT"] > 0

    resting = venue.send_order(Order("port-rest", 0, "buy", 0.002, round(bid - 500, 1)), SYMBOL)
    assert resting.state == "acked" and resting.venue_order_id is not None
    (listed,) = venue.open_orders(SYMBOL)
    assert (listed.symbol, listed.client_id, listed.report.state) == (SYMBOL, "port-rest", "acked")
    moved = venue.modify("port-rest", SYMBOL, 0.003, round(bid - 400, 1))
    assert moved.client_id == "port-rest" and moved.state == "acked"
    status = venue.order_status(SYMBOL, client_id="port-rest")
    assert status.report.venue_order_id == resting.venue_order_id
    assert venue.cancel("port-rest", SYMBOL).state == "cancelled"
    with pytest.raises(VenueError) as unknown:
        venue.order_status(SYMBOL, client_id="port-never-sent")
    assert unknown.value.unknown_order and not unknown.value.link_lost

    taken = venue.send_order(Order("port-take", 0, "buy", 0.002, ask), SYMBOL)
    assert taken.state == "filled" and taken.cum_qty == pytest.approx(0.002)
    (fill,) = venue.fills_since(SYMBOL)
    assert (fill.client_id, fill.side, fill.symbol) == ("port-take", "buy", SYMBOL)
    assert fill.qty == pytest.approx(0.002) and fill.price == ask and fill.ts_ns > 0
    assert venue.fills_since(SYMBOL, fill.trade_id + 1) == []
    assert venue.positions()[SYMBOL] == pytest.approx(0.002)


def test_port_sends_reduce_only_and_gtd_and_modifies_in_place(paper: PaperVenue) -> None:
    """The domain order's reduce-only flag and GTD date reach the venue as Binance's
    ``reduceOnly``/``timeInForce=GTD``/``goodTillDate``; the entry's modify (what the live
    runner's replace uses) changes the order in place, same id, with its side sent along."""
    venue = BinanceVenue(OrderGateway(paper.url, KEY, SECRET), stream=False)
    entry = PortEntry(venue)
    assert entry.supports_modify
    touch = paper.engine.touch(0)
    assert touch is not None
    taken = venue.send_order(Order("port-long", 0, "buy", 0.004, touch.ask_px), SYMBOL)
    assert taken.state == "filled"
    good_till = paper.venue_ms() + 3_600_000
    price = round(touch.ask_px + 500, 1)
    order = Order(
        "port-reduce", 0, "sell", 0.002, price, tif="GTD", reduce_only=True, good_till_ms=good_till
    )
    assert entry.send_order(order, SYMBOL).state == "acked"
    body = venue.gateway.order(SYMBOL, client_order_id="port-reduce")
    assert (body["reduceOnly"], body["timeInForce"]) == (True, "GTD")
    assert int(body["goodTillDate"]) == good_till // 1000 * 1000  # Binance keeps seconds
    moved = entry.send_modify("port-reduce", SYMBOL, "sell", 0.003, price + 100)
    assert moved.client_id == "port-reduce" and moved.state == "acked"
    body = venue.gateway.order(SYMBOL, client_order_id="port-reduce")
    assert Decimal(body["price"]) == Decimal(str(price + 100))
    assert Decimal(body["origQty"]) == Decimal("0.003")
    assert venue.cancel("port-reduce", SYMBOL).state == "cancelled"


def test_port_entry_treats_a_finished_order_cancel_as_none(paper: PaperVenue) -> None:
    """The brain's entry reads the adapter's flags, not Binance codes: cancelling an order the
    venue does not know (-2011) is None, not an error."""
    entry = PortEntry(BinanceVenue(OrderGateway(paper.url, KEY, SECRET), stream=False))
    assert entry.send_cancel("port-unknown", SYMBOL) is None


def _on_venue_clock(paper: PaperVenue, offset_ms: int, skew_s: float) -> bool:
    """A client clock ``skew_s`` off the wall clock, plus ``offset_ms``, reads the venue's
    clock (``/fapi/v1/time``: the replay's, frozen at the capture's end here)."""
    return abs((time.time() + skew_s) * 1000 + offset_ms - paper.venue_ms()) < 5_000


class _LosingProxy:
    """A real HTTP proxy on 127.0.0.1 in front of the paper venue: forwards every request and
    counts them by ``METHOD path``; the first ``lose`` answers to ``POST /fapi/v1/order`` are
    replaced by a 503 after the venue has acted on the request (an answer lost on the way
    back, as a gateway timeout is on Binance)."""

    def __init__(self, upstream: str, lose: int = 0) -> None:
        import http.server

        import urllib3

        self.counts: dict[str, int] = {}
        self.lose = lose
        pool = urllib3.PoolManager()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                return

            def _relay(self) -> None:
                name = f"{self.command} {self.path.split('?')[0]}"
                proxy.counts[name] = proxy.counts.get(name, 0) + 1
                headers = {"X-MBX-APIKEY": self.headers.get("X-MBX-APIKEY", "")}
                answer = pool.request(
                    self.command, upstream + self.path, headers=headers, retries=False
                )
                status, body = answer.status, answer.data
                extra = {
                    key: value
                    for key, value in answer.headers.items()
                    if key.lower() == "retry-after" or key.lower().startswith("x-mbx-")
                }
                if name == "POST /fapi/v1/order" and proxy.lose > 0:
                    proxy.lose -= 1
                    status, body, extra = 503, b"Service Unavailable", {}
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_lost_answer_to_a_new_order_is_settled_by_query_not_resent(paper: PaperVenue) -> None:
    """HTTP 503 after the venue took the order: the adapter asks for the order by its client
    id and returns its real state; the order was sent exactly once."""
    proxy = _LosingProxy(paper.url, lose=1)
    try:
        venue = BinanceVenue(OrderGateway(proxy.url, KEY, SECRET), stream=False)
        touch = paper.engine.touch(0)
        assert touch is not None
        order = Order("port-lost", 0, "buy", 0.002, round(touch.bid_px - 300, 1))
        report = venue.send_order(order, SYMBOL)
        assert report.client_id == "port-lost" and report.state == "acked"
        assert proxy.counts["POST /fapi/v1/order"] == 1  # never re-sent
        assert proxy.counts["GET /fapi/v1/order"] == 1  # settled by a query
        venue.cancel("port-lost", SYMBOL)
    finally:
        proxy.close()


def test_lost_answer_and_no_query_leaves_the_outcome_unknown(paper: PaperVenue) -> None:
    """When the query cannot find the order either, the error stays ``link_lost`` (the brain
    keeps the order ``new`` until reconciliation) and nothing is sent again."""
    proxy = _LosingProxy(paper.url, lose=1)
    try:
        venue = BinanceVenue(OrderGateway(proxy.url, KEY, SECRET), stream=False)
        bad_price = Order("port-lost-2", 0, "buy", 0.002, 1.0)  # refused: not in the book
        with pytest.raises(VenueError) as lost:
            venue.send_order(bad_price, SYMBOL)
        assert lost.value.link_lost and lost.value.http_status == 503
        assert proxy.counts["POST /fapi/v1/order"] == 1
        entry = PortEntry(venue)
        entry.pending_on_link_error = True
        proxy.lose = 1
        pending = entry.send_order(Order("port-lost-3", 0, "buy", 0.002, 1.0), SYMBOL)
        assert pending.state == "new" and proxy.counts["POST /fapi/v1/order"] == 2
    finally:
        proxy.close()


def test_clock_skew_resyncs_and_retries_once(paper: PaperVenue) -> None:
    """-1021 (timestamp outside recvWindow): the client resyncs its offset from the venue's
    time and sends once more; the order goes in once."""
    proxy = _LosingProxy(paper.url)
    try:
        gateway = OrderGateway(proxy.url, KEY, SECRET, clock=lambda: time.time() - 120.0)
        assert gateway.positions() is not None
        assert _on_venue_clock(paper, gateway.time_offset_ms, -120.0)
        assert proxy.counts["GET /fapi/v2/positionRisk"] == 2  # refused once, then accepted
        assert proxy.counts["GET /fapi/v1/time"] == 1
        assert gateway.positions() is not None  # the offset holds: no second resync
        assert proxy.counts["GET /fapi/v1/time"] == 1
    finally:
        proxy.close()


def test_retry_after_is_honoured_without_sending(paper: PaperVenue) -> None:
    """A 429 with Retry-After: until it has passed, calls are refused here (never sent)."""
    from twinfeed.live.paper_params import RateLimiter, RateLimits
    from twinfeed.venues.errors import NOT_SENT

    proxy = _LosingProxy(paper.url)
    before = paper.limiter
    paper.limiter = RateLimiter(RateLimits(weight_per_minute=3))
    try:
        gateway = OrderGateway(proxy.url, KEY, SECRET)
        with pytest.raises(VenueError) as limited:
            for _ in range(10):
                gateway.open_orders(SYMBOL)
        assert limited.value.rate_limited and limited.value.http_status == 429
        assert limited.value.retry_after_s is not None and limited.value.retry_after_s > 0
        sent = proxy.counts["GET /fapi/v1/openOrders"]
        with pytest.raises(VenueError) as held:
            gateway.open_orders(SYMBOL)
        assert held.value.code == NOT_SENT and held.value.rate_limited and not held.value.sent
        assert proxy.counts["GET /fapi/v1/openOrders"] == sent
    finally:
        paper.limiter = before
        proxy.close()


def test_orders_go_over_the_websocket_api(paper: PaperVenue) -> None:
    """With a WebSocket API session (Ed25519 logon), new, modify and cancel never touch REST;
    the answers are the REST order shape (newOrderRespType=RESULT: a taker is filled)."""
    from twinfeed.venues.binance.ws_api import WsApiClient

    proxy = _LosingProxy(paper.url)
    ws_api = WsApiClient(paper.ws_url, ED_KEY, PRIVATE_PEM, clock=lambda: time.time() - 120.0)
    venue = BinanceVenue(
        OrderGateway(proxy.url, ED_KEY, "", private_key=PRIVATE_PEM), stream=False, ws_api=ws_api
    )
    try:
        touch = paper.engine.touch(0)
        assert touch is not None
        bid, ask = touch.bid_px, touch.ask_px
        resting = venue.send_order(Order("ws-rest", 0, "sell", 0.002, round(ask + 300, 1)), SYMBOL)
        assert resting.state == "acked"
        assert _on_venue_clock(paper, ws_api.time_offset_ms, -120.0)  # logon resynced
        moved = venue.modify("ws-rest", SYMBOL, 0.003, round(ask + 200, 1))
        assert moved.state == "acked"
        assert venue.order_status(SYMBOL, client_id="ws-rest").report.venue_order_id == (
            resting.venue_order_id
        )
        assert venue.cancel("ws-rest", SYMBOL).state == "cancelled"
        taken = venue.send_order(Order("ws-take", 0, "sell", 0.002, bid), SYMBOL)
        assert taken.state == "filled" and taken.cum_qty == pytest.approx(0.002)
        with pytest.raises(VenueError) as unknown:
            venue.cancel("ws-never-sent", SYMBOL)
        assert unknown.value.unknown_order
        orders = {k: v for k, v in proxy.counts.items() if k.endswith("/fapi/v1/order")}
        assert orders == {"GET /fapi/v1/order": 1}  # only the status query went over REST
        assert venue.rest_fallbacks == 0
    finally:
        venue.close()
        proxy.close()


def test_websocket_api_unreachable_falls_back_to_rest(paper: PaperVenue) -> None:
    """No WebSocket API to connect to: nothing was sent, so REST takes the order."""
    import socket

    from twinfeed.venues.binance.ws_api import WsApiClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    ws_api = WsApiClient(f"ws://127.0.0.1:{closed_port}", ED_KEY, PRIVATE_PEM, timeout=2.0)
    proxy = _LosingProxy(paper.url)
    venue = BinanceVenue(OrderGateway(proxy.url, KEY, SECRET), stream=False, ws_api=ws_api)
    try:
        touch = paper.engine.touch(0)
        assert touch is not None
        order = Order("ws-fallback", 0, "buy", 0.002, round(touch.bid_px - 300, 1))
        assert venue.send_order(order, SYMBOL).state == "acked"
        assert venue.rest_fallbacks == 1 and proxy.counts["POST /fapi/v1/order"] == 1
        assert venue.cancel("ws-fallback", SYMBOL).state == "cancelled"
    finally:
        venue.close()
        proxy.close()


def test_prices_and_sizes_go_out_on_the_instrument_grid(paper: PaperVenue) -> None:
    """A price off the tick grid and a size off the lot grid are rounded to them (the venue
    would refuse -1111 otherwise); instruments come from the venue's exchangeInfo."""
    plain = BinanceVenue(OrderGateway(paper.url, KEY, SECRET), stream=False)
    instruments = plain.instruments()
    assert instruments[SYMBOL].tick_size == Decimal("0.1")
    touch = paper.engine.touch(0)
    assert touch is not None
    off_grid = Order("grid-1", 0, "buy", 0.0021000001, touch.bid_px - 300.04)
    with pytest.raises(VenueError) as refused:
        plain.send_order(off_grid, SYMBOL)
    assert refused.value.code == -1111
    venue = BinanceVenue(
        OrderGateway(paper.url, KEY, SECRET), stream=False, instruments=instruments
    )
    report = venue.send_order(off_grid, SYMBOL)
    assert report.state == "acked"
    placed = venue.gateway.order(SYMBOL, client_order_id="grid-1")
    assert float(placed["price"]) == round(touch.bid_px - 300.0, 1)
    assert float(placed["origQty"]) == 0.002
    venue.cancel("grid-1", SYMBOL)


def test_preflight_reads_the_venue_through_the_port(paper: PaperVenue) -> None:
    """Clock, rules, account and leftovers from the real paper venue; a rule that differs
    and an order left by an earlier run are problems (not when a recovery will adopt it)."""
    import dataclasses

    from twinfeed.live.brain.preflight import preflight

    venue = BinanceVenue(OrderGateway(paper.url, KEY, SECRET), stream=False)
    stated = venue.instruments()
    clean = preflight(venue, [SYMBOL], stated)
    assert clean.ok, clean.problems
    assert any(line.startswith("clock offset to the venue:") for line in clean.lines)
    assert any("may trade; one-way positions; balances USDT" in line for line in clean.lines)
    other = dataclasses.replace(stated[SYMBOL], tick_size=Decimal("0.5"))
    touch = paper.engine.touch(0)
    assert touch is not None
    venue.send_order(Order("left-1", 0, "buy", 0.002, round(touch.bid_px - 400, 1)), SYMBOL)
    try:
        checked = preflight(venue, [SYMBOL, "NOPEUSDT"], {SYMBOL: other})
        assert checked.problems == [
            f"{SYMBOL}: tick_size is 0.10 at the venue, 0.5 here",
            "NOPEUSDT: not listed by the venue",
            "1 open order(s) left at the venue from an earlier run: left-1",
        ]
        assert preflight(venue, [SYMBOL], stated, recovering=True).ok
    finally:
        venue.cancel("left-1", SYMBOL)


def test_connect_binance_from_a_private_key_file(
    paper: PaperVenue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint table's shape pointed at the local venue, keys from a 0600 file: an
    Ed25519 key takes the WebSocket API, and the preflight passes through it."""
    from twinfeed.live.brain.preflight import preflight
    from twinfeed.venues.binance.connect import connect_binance
    from twinfeed.venues.binance.endpoints import ENDPOINTS, Endpoints

    assert set(ENDPOINTS) == {"binance-usdm", "binance-usdm-testnet"}
    assert all(e.rest.startswith("https://") for e in ENDPOINTS.values())
    for name in ("TWINFEED_API_KEY", "TWINFEED_API_SECRET", "TWINFEED_API_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    pem = tmp_path / "key.pem"
    pem.write_text(PRIVATE_PEM)
    pem.chmod(0o600)
    keys = tmp_path / "keys.env"
    keys.write_text(f"TWINFEED_API_KEY={ED_KEY}\nTWINFEED_API_PRIVATE_KEY_FILE={pem}\n")
    keys.chmod(0o600)
    local = Endpoints(rest=paper.url, ws_api=paper.ws_url, streams=paper.ws_url)
    venue = connect_binance(local, keys)
    try:
        assert venue.ws_api is not None and PRIVATE_PEM not in repr(venue.gateway)
        assert preflight(venue, [SYMBOL], venue.instruments()).ok
        touch = paper.engine.touch(0)
        assert touch is not None
        order = Order("conn-1", 0, "buy", 0.002, round(touch.bid_px - 450, 1))
        assert venue.send_order(order, SYMBOL).state == "acked"
        assert venue.cancel("conn-1", SYMBOL).state == "cancelled"
        assert venue.rest_fallbacks == 0
    finally:
        venue.close()
    with pytest.raises(KeyError, match="binance-coinm"):
        connect_binance("binance-coinm", keys)


def test_live_on_binance_without_credentials_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    """No keys: the CLI names the variables and the file, and sends nothing anywhere."""
    from click.testing import CliRunner
    from twinfeed.cli import main

    for name in ("TWINFEED_API_KEY", "TWINFEED_API_SECRET", "TWINFEED_API_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["live", "--venue", "binance-usdm-testnet"])
    assert result.exit_code == 1
    assert "binance-usdm-testnet: no API credentials: set TWINFEED_API_KEY" in result.output


def test_the_stream_reader_syncs_the_clock_at_start_and_periodically(paper: PaperVenue) -> None:
    """A client clock two minutes slow: the reader measures the offset before any order, and
    again every ``clock_sync_s``, so signed requests are never refused for it."""
    from paper_stack import wait_for

    slow = OrderGateway(
        paper.url, KEY, SECRET, stream_url=paper.ws_url, clock=lambda: time.time() - 120.0
    )
    venue = BinanceVenue(slow, poll_timeout_s=0.05, clock_sync_s=0.1)
    try:
        wait_for("two clock syncs", lambda: venue.clock_syncs >= 2, 10)
        assert _on_venue_clock(paper, slow.time_offset_ms, -120.0)
        assert venue.positions() is not None
    finally:
        venue.close()


def test_request_weight_headers_slow_the_client_before_the_venue_refuses(
    paper: PaperVenue,
) -> None:
    """The client reads X-MBX-USED-WEIGHT-1M and holds its calls (not sent) near the limit:
    the venue never answers 429."""
    from twinfeed.live.paper_params import RateLimiter, RateLimits
    from twinfeed.venues.errors import NOT_SENT

    proxy = _LosingProxy(paper.url)
    before = paper.limiter
    paper.limiter = RateLimiter(RateLimits(weight_per_minute=20))
    try:
        gateway = OrderGateway(proxy.url, KEY, SECRET, weight_limit=20)
        with pytest.raises(VenueError) as held:
            for _ in range(100):
                gateway.open_orders(SYMBOL)
        assert held.value.code == NOT_SENT and held.value.rate_limited and not held.value.sent
        assert held.value.http_status == 0  # refused here, not by the venue
        assert 18 <= gateway.used_weight < 20
        assert "request weight used this minute" in held.value.message
    finally:
        paper.limiter = before
        proxy.close()
