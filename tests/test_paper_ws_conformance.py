"""Unmodified Binance clients follow the paper venue's user-data websocket and WebSocket API.

Real processes on loopback: ``twinfeed-venue`` replays the bundled capture, the paper venue
follows it in this process with its websocket server on its own port. Clients are used as
their users use them, pointed at the venue through their own configuration only:

- ccxt 4.5.90 ``binanceusdm`` (``ccxt.pro``): ``watch_orders`` and ``watch_balance`` over
  ``/private/ws?listenKey=`` (ccxt's rewrite of ``urls.api.ws.linear``) see every fill of the
  session: each order's filled quantity and status, and the wallet balance after the last fee;
- binance-futures-connector 4.2.0: ``UMFuturesWebsocketClient(stream_url=...)``
  ``user_data(listen_key)`` (bare ``/ws`` and a live SUBSCRIBE) receives ORDER_TRADE_UPDATE
  with every documented field; ``renew_listen_key``/``close_listen_key`` of an unknown key give
  -1125;
- the WebSocket API (``/ws-fapi/v1``) with the ``websockets`` client: ``session.logon`` with an
  Ed25519 key, ``order.place``/``order.status``/``order.cancel`` through the REST methods, HMAC
  per-request signatures, refusals with Binance's codes;
- listen key expiry on the venue clock: the stream sends ``listenKeyExpired`` and closes.

No timing assertions: every wait has a deadline that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from binance.error import ClientError
from binance.um_futures import UMFutures
from binance.websocket.um_futures.websocket_client import UMFuturesWebsocketClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from paper_rest import binanceusdm, drain
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.live.paper_ws import LISTEN_KEY_VALIDITY_NS
from twinfeed.live.venue import VenueProcess, start_venue
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.errors import VenueError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SYNTH = Path(__file__).resolve().parents[1] / "data" / "synth-btcusdt.txt"
KEY, SECRET = "conformance-key", "conformance-secret-0123456789abcdef"
ED_KEY = "conformance-ed25519"
ED_PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ED_PUBLIC_PEM = (
    ED_PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
)
ED_PRIVATE_PEM = ED_PRIVATE.private_bytes(
    Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
).decode()
#: ORDER_TRADE_UPDATE "o" fields of Binance USD-M (https://developers.binance.com/docs/
#: derivatives/usds-margined-futures/user-data-streams/Event-Order-Update).
ORDER_FIELDS = set(
    [
        "s",
        "c",
        "S",
        "o",
        "f",
        "q",
        "p",
        "ap",
        "sp",
        "x",
        "X",
        "i",
        "l",
        "z",
        "L",
        "N",
        "n",
        "T",
        "t",
        "b",
        "a",
        "m",
        "R",
        "wt",
        "ot",
        "ps",
        "cp",
        "rp",
        "pP",
        "si",
        "ss",
        "V",
        "pm",
        "gtd",
    ]
)


@dataclass
class Market:
    md: VenueProcess
    paper: PaperVenue
    gateway: OrderGateway


@pytest.fixture(scope="module")
def market() -> Iterator[Market]:
    # Slow enough that the replay (and so the venue clock) still moves in the last test.
    md = start_venue(SYNTH, speed=3)
    paper = PaperVenue.start(
        SYNTH,
        md_status=md.status,
        keys={KEY: SECRET, ED_KEY: ED_PUBLIC_PEM},
        maker_fee_bps=1.0,
        taker_fee_bps=4.0,
    )
    threading.Thread(target=drain, args=(md,), daemon=True).start()
    try:
        assert paper.wait_for_line(60)
        print(f"paper REST {paper.url}, websocket {paper.ws_url}")
        yield Market(md, paper, OrderGateway(paper.url, KEY, SECRET, stream_url=paper.ws_url))
    finally:
        paper.stop()
        md.stop()


def _wait(what: str, check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _ccxt(paper: PaperVenue) -> Any:
    return binanceusdm(
        paper.url, paper.url, paper.ws_url, f"{paper.ws_url}/ws-fapi/v1", pro=True, key=KEY,
        secret=SECRET,
    )  # fmt: skip


def test_ccxt_watch_orders_and_balance_see_every_fill(market: Market) -> None:
    paper, gateway = market.paper, market.gateway
    ids = [f"ccxt-{n}" for n in range(4)]

    async def session() -> tuple[dict[str, Any], list[Any]]:
        exchange = _ccxt(paper)
        seen: dict[str, Any] = {}
        balances: list[Any] = []

        async def orders() -> None:
            while True:
                for order in await exchange.watch_orders("BTC/USDT:USDT"):
                    seen[order["clientOrderId"]] = order

        async def balance() -> None:
            while True:
                balances.append(await exchange.watch_balance())

        tasks = [asyncio.create_task(orders()), asyncio.create_task(balance())]
        try:
            deadline = time.monotonic() + 20
            while not paper._subscribers:  # noqa: SLF001 - ccxt connected
                assert time.monotonic() < deadline, "ccxt never opened the user stream"
                await asyncio.sleep(0.01)
            for index, client_id in enumerate(ids):
                side = "BUY" if index % 2 == 0 else "SELL"
                await asyncio.to_thread(
                    gateway.new_order,
                    "BTCUSDT",
                    side,
                    0.002,
                    type="MARKET",
                    client_order_id=client_id,
                )
            while not all(seen.get(i, {}).get("status") == "closed" for i in ids):
                assert time.monotonic() < deadline, f"ccxt saw only {sorted(seen)}"
                await asyncio.sleep(0.01)
            # The last fill's ACCOUNT_UPDATE follows its order update: wait for the wallet the
            # venue reports (nothing else trades meanwhile).
            account = await asyncio.to_thread(gateway.account)
            wallet = float(account["totalWalletBalance"])

            def settled() -> bool:
                return bool(balances) and abs(balances[-1]["USDT"]["total"] - wallet) < 1e-9

            while not settled():
                assert time.monotonic() < deadline, f"ccxt balances {balances[-1:]}, venue {wallet}"
                await asyncio.sleep(0.01)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await exchange.close()
        return seen, balances

    seen, balances = asyncio.run(session())
    for client_id in ids:
        venue_order = gateway.order("BTCUSDT", client_order_id=client_id)
        assert venue_order["status"] == "FILLED"
        assert seen[client_id]["filled"] == pytest.approx(float(venue_order["executedQty"]))
        assert seen[client_id]["average"] == pytest.approx(float(venue_order["avgPrice"]))
    wallet = float(gateway.account()["totalWalletBalance"])
    assert balances and balances[-1]["USDT"]["total"] == pytest.approx(wallet)


def test_connector_user_data_and_unknown_listen_keys(market: Market) -> None:
    paper, gateway = market.paper, market.gateway
    rest = UMFutures(key=KEY, secret=SECRET, base_url=paper.url)
    listen_key = rest.new_listen_key()["listenKey"]
    assert len(listen_key) == 64 and rest.new_listen_key()["listenKey"] == listen_key
    received: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    client = UMFuturesWebsocketClient(
        stream_url=paper.ws_url, on_message=lambda _socket, text: received.put(json.loads(text))
    )
    try:
        client.user_data(listen_key, id=7)
        assert received.get(timeout=10) == {"result": None, "id": 7}
        gateway.new_order("BTCUSDT", "BUY", 0.002, type="MARKET", client_order_id="conn-1")
        events = []
        while not any(e.get("o", {}).get("X") == "FILLED" for e in events):
            events.append(received.get(timeout=10))
    finally:
        client.stop()
        client.socket_manager.ws.shutdown()  # stop() sends a close frame, leaves the socket
    updates = [e for e in events if e["e"] == "ORDER_TRADE_UPDATE"]
    assert {u["o"]["c"] for u in updates} == {"conn-1"}
    fill = updates[-1]
    assert set(fill) == {"e", "E", "T", "o"} and set(fill["o"]) == ORDER_FIELDS
    assert (fill["o"]["x"], fill["o"]["l"], fill["o"]["m"]) == ("TRADE", "0.002", False)
    trade = gateway.user_trades("BTCUSDT")[-1]
    assert (fill["o"]["t"], fill["o"]["L"], fill["o"]["n"]) == (
        trade["id"],
        trade["price"],
        trade["commission"],
    )
    assert fill["E"] <= paper.now_ns // 1_000_000  # the venue's clock, not the wall clock

    for call in (rest.renew_listen_key, rest.close_listen_key):
        with pytest.raises(ClientError) as refused:
            call("x" * 64)
        assert (refused.value.error_code, refused.value.error_message) == (
            -1125,
            "This listenKey does not exist.",
        )
    assert rest.renew_listen_key(listen_key) == {"listenKey": listen_key}
    rest.session.close()
    # The old long-poll endpoint of our own is gone.
    request = urllib.request.Request(f"{paper.url}/fapi/v1/_events?listenKey={listen_key}")
    request.add_header("X-MBX-APIKEY", KEY)
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(request, timeout=10)
    assert gone.value.code == 404
    gone.value.close()


def _ed25519(params: dict[str, Any]) -> dict[str, Any]:
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": base64.b64encode(ED_PRIVATE.sign(payload.encode())).decode()}


def _hmac(params: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return {**params, "signature": signature}


def test_websocket_api_orders_logon_and_signatures(market: Market) -> None:
    paper = market.paper
    with connect(f"{paper.ws_url}/ws-fapi/v1") as api:

        def call(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
            request_id = f"r{time.monotonic_ns()}"
            api.send(json.dumps({"id": request_id, "method": method, "params": params or {}}))
            answer = json.loads(api.recv(timeout=10))
            assert answer["id"] == request_id and answer["rateLimits"][0]["limit"] == 2400
            return dict(answer)

        now = int(time.time() * 1000)
        unsigned = call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})
        assert unsigned["status"] == 400 and unsigned["error"]["code"] == -1102
        bad = call("session.logon", {"apiKey": ED_KEY, "timestamp": now, "signature": "AAAA"})
        assert bad["error"] == {"code": -1022, "msg": "Signature for this request is not valid."}
        hmac_logon = call("session.logon", _hmac({"apiKey": KEY, "timestamp": now}))
        assert hmac_logon["error"]["code"] == -4056
        stale = call("session.logon", _ed25519({"apiKey": ED_KEY, "timestamp": now - 60_000}))
        assert stale["error"]["code"] == -1021

        logon = call("session.logon", _ed25519({"apiKey": ED_KEY, "timestamp": now}))
        assert logon["status"] == 200 and logon["result"]["apiKey"] == ED_KEY
        placed = call(
            "order.place",
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "0.002",
                "newClientOrderId": "wsapi-1",
                "timestamp": int(time.time() * 1000),
            },
        )
        assert placed["status"] == 200, placed
        assert placed["result"]["clientOrderId"] == "wsapi-1"
        status = call(
            "order.status",
            {
                "symbol": "BTCUSDT",
                "origClientOrderId": "wsapi-1",
                "timestamp": int(time.time() * 1000),
            },
        )
        assert status["result"]["status"] == "FILLED"
        assert status["result"] == market.gateway.order("BTCUSDT", client_order_id="wsapi-1")

        bid = paper.engine.touch(0)
        assert bid is not None
        far = f"{round(bid.bid_px - 200, 1):.1f}"
        signed = _hmac(
            {
                "apiKey": KEY,
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.002",
                "price": far,
                "newClientOrderId": "wsapi-2",
                "timestamp": int(time.time() * 1000),
            }
        )
        resting = call("order.place", signed)
        assert resting["status"] == 200 and resting["result"]["status"] == "NEW", resting
        cancelled = call(
            "order.cancel",
            {
                "symbol": "BTCUSDT",
                "origClientOrderId": "wsapi-2",
                "timestamp": int(time.time() * 1000),
            },
        )
        assert cancelled["result"]["status"] == "CANCELED"
        again = call(
            "order.cancel",
            _hmac(
                {
                    "apiKey": KEY,
                    "symbol": "BTCUSDT",
                    "origClientOrderId": "wsapi-2",
                    "timestamp": int(time.time() * 1000),
                }
            ),
        )
        assert again["error"]["code"] == -2011
        tampered = _hmac({"apiKey": KEY, "symbol": "BTCUSDT", "timestamp": now})
        tampered["symbol"] = "ETHUSDT"
        assert call("order.status", tampered)["error"]["code"] == -1022
        assert call("no.such.method")["error"]["code"] == -1000
        api.send(json.dumps({"id": "list", "method": "order.status", "params": []}))
        assert json.loads(api.recv(timeout=10))["error"]["code"] == -1135
        assert call("session.logout")["result"]["apiKey"] is None


class _DB:
    def __init__(self) -> None:
        self.checks: list[str] = []

    def risk_event(self, _ts: int, _cid: str, check: str, _reason: str, _detail: Any) -> None:
        self.checks.append(check)


def test_brain_stream_reopened_at_once_still_reconciles(market: Market) -> None:
    """Binance's events carry no sequence number: a stream that closed may have lost events
    even if the reader reopened it before the loop looked, so the order link reconciles."""
    from types import SimpleNamespace

    from twinfeed.live.brain.entry import PortEntry
    from twinfeed.live.brain.oms import OrderManager
    from twinfeed.live.brain.order_faults import OrderLink
    from twinfeed.live.brain.risk import RiskManager
    from twinfeed.venues.binance.adapter import BinanceVenue

    paper, gateway = market.paper, market.gateway
    venue = BinanceVenue(
        OrderGateway(paper.url, KEY, SECRET, stream_url=paper.ws_url), poll_timeout_s=0.05
    )
    entry = PortEntry(venue)
    try:
        db = _DB()
        trader = SimpleNamespace(
            gateway=entry, risk=RiskManager(), oms=OrderManager(), db=db, ctx=SimpleNamespace(now=0)
        )
        link = OrderLink(trader)
        gateway.new_order("BTCUSDT", "SELL", 0.002, type="MARKET", client_order_id="brain-1")
        reports: list[Any] = []
        _wait(
            "the fill on the brain's stream",
            lambda: (
                reports.extend(entry.poll_reports())
                or any(r.client_id == "brain-1" and r.state == "filled" for r in reports)
            ),
        )
        link.step()
        assert link.up and db.checks == []
        gateway.close_listen_key()  # the venue closes the stream; the reader reopens it
        _wait("the stream reopened", lambda: venue.stream_gaps == 1 and not venue.stream_down)
        link.step()
        assert not link.up and db.checks == ["venue_disconnected"]
    finally:
        entry.close()


def test_listen_key_expires_on_the_venue_clock(market: Market) -> None:
    """Last: it ends the account's listen key."""
    paper, gateway = market.paper, market.gateway
    assert not paper.frozen, "the replay ended before the expiry test: slow the venue down"
    key = gateway.listen_key()
    with (
        connect(f"{paper.ws_url}/ws/{key}") as raw,
        connect(f"{paper.ws_url}/private/stream?listenKey={key}") as combined,
    ):
        _wait("both streams subscribed", lambda: len(paper._subscribers) >= 2)  # noqa: SLF001
        paper.listen_keys.validity_ns = 50_000_000  # 50 ms of capture time
        gateway.keepalive_listen_key(key)
        expired = json.loads(raw.recv(timeout=20))
        assert expired["e"] == "listenKeyExpired" and expired["listenKey"] == key
        assert int(expired["E"]) <= paper.now_ns // 1_000_000
        wrapped = json.loads(combined.recv(timeout=20))
        assert wrapped == {"stream": key, "data": expired}
        with pytest.raises(ConnectionClosed):
            raw.recv(timeout=20)
    with pytest.raises(VenueError) as refused:
        gateway.keepalive_listen_key(key)
    assert refused.value.code == -1125
    paper.listen_keys.validity_ns = LISTEN_KEY_VALIDITY_NS
    new = gateway.listen_key()
    assert new != key and len(new) == 64
    gateway.close_listen_key(new)
    with pytest.raises(VenueError) as closed:
        gateway.user_stream(new)
    assert (closed.value.code, closed.value.http_status) == (-1125, 400)


def test_user_stream_registration_failure_is_reported_not_raised(market: Market) -> None:
    """``POST <md venue>/_venue/user-stream``: a venue that refuses (or is gone) is said, and
    the paper venue's own websocket still serves the stream."""
    from twinfeed.live.paper_ws import register_user_stream

    said: list[str] = []
    gone = "http://127.0.0.1:9"  # discard port: nothing listens on loopback
    assert register_user_stream(gone, market.paper.ws.port, say=said.append) is False
    assert len(said) == 1 and "user-stream registration with http://127.0.0.1:9 failed" in said[0]
    assert f"ws://127.0.0.1:{market.paper.ws.port}" in said[0]
