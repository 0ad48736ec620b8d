"""Paper venue: real ``twinfeed-venue`` replaying the synthetic capture, the PaperVenue over it,
and the OrderGateway as the client, all on loopback. No timing assertions.

The tests share one replay (module fixture, speed 15: ~8 s of market). They run in file order:
the happy path places its orders early, while the market still moves; the last test waits for
the replay's end and checks that a fresh MatchingEngine fed the same records with the same
submit times (the venue's journal) gives exactly the fills the venue reported, for every order
every test sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.live.venue import VenueProcess, start_venue
from twinfeed.matching import MatchingEngine
from twinfeed.orders import Fill, Order
from twinfeed.research.features import iter_record_batches
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.binance.signing import (
    CredentialsError,
    create_credentials_file,
    load_credentials,
    sign,
    verify,
)
from twinfeed.venues.errors import VenueError
from websockets.sync.client import connect

SYNTH = Path(__file__).resolve().parents[1] / "data" / "synth-btcusdt.txt"
KEY, SECRET = "test-key", "test-secret"
MAKER_BPS, TAKER_BPS = 1.0, 4.0
TICK = 0.1

# Order status -> the statuses it may move to (Binance names).
NEXT = {
    "NEW": {"NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"},
    "PARTIALLY_FILLED": {"PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"},
}
FINAL = {"FILLED", "CANCELED", "EXPIRED", "REJECTED"}
HAPPY: dict[str, Any] = {}  # what the happy path's first half leaves for its second half


@dataclass
class Market:
    md: VenueProcess
    paper: PaperVenue
    gateway: OrderGateway


def _drain(md: VenueProcess) -> None:
    """A market-data client: the replay clock starts when one subscribes."""
    try:
        with connect(md.stream_url("btcusdt@bookTicker", "btcusdt@trade")) as client:
            while True:
                client.recv(timeout=60)
    except Exception:  # noqa: BLE001 - the venue closes at the end of the replay
        return


@pytest.fixture(scope="module")
def market() -> Iterator[Market]:
    md = start_venue(SYNTH, speed=15)
    paper = PaperVenue.start(
        SYNTH,
        md_status=md.status,
        keys={KEY: SECRET},
        maker_fee_bps=MAKER_BPS,
        taker_fee_bps=TAKER_BPS,
    )
    threading.Thread(target=_drain, args=(md,), daemon=True).start()
    try:
        assert paper.wait_for_line(60)
        yield Market(md, paper, OrderGateway(paper.url, KEY, SECRET, stream_url=paper.ws_url))
    finally:
        paper.stop()
        md.stop()


def _touch(paper: PaperVenue) -> tuple[float, float]:
    touch = paper.engine.touch(0)
    assert touch is not None
    return touch.bid_px, touch.ask_px


def _rejected(call: Any) -> VenueError:
    with pytest.raises(VenueError) as caught:
        call()
    return caught.value


class PaperOrders(RuleBasedStateMachine):
    """Random submit/cancel sequences against the live paper venue; invariants over HTTP."""

    market: Market
    examples = 0

    def __init__(self) -> None:
        super().__init__()
        PaperOrders.examples += 1
        self.prefix = f"hyp{PaperOrders.examples}-"
        self.gateway = self.market.gateway
        self.stream = self.gateway.user_stream()  # events from now on
        self.ids: list[str] = []
        self.status: dict[str, str] = {}

    @rule(
        side=st.sampled_from(["BUY", "SELL"]),
        kind=st.sampled_from(["LIMIT", "LIMIT", "MARKET"]),
        tif=st.sampled_from(["GTC", "GTC", "IOC", "GTX"]),
        offset=st.integers(-3, 3),
        lots=st.integers(2, 30),  # 0.002 BTC and up: BTCUSDT's minimum notional is 100 USDT
    )
    def submit(self, side: str, kind: str, tif: str, offset: int, lots: int) -> None:
        bid, ask = _touch(self.market.paper)
        near = bid if side == "BUY" else ask
        sign_ = 1 if side == "BUY" else -1
        price = round(near + sign_ * offset * TICK, 1) if kind == "LIMIT" else None
        client_id = f"{self.prefix}{len(self.ids)}"
        try:
            self.gateway.new_order(
                "BTCUSDT",
                side,
                lots / 1000,
                price,
                type=kind,
                time_in_force=tif if kind == "LIMIT" else None,
                client_order_id=client_id,
            )
        except VenueError as error:
            assert error.code == -5022 and tif == "GTX"
        self.ids.append(client_id)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if not self.ids:
            return
        client_id = data.draw(st.sampled_from(self.ids))
        try:
            answer = self.gateway.cancel("BTCUSDT", client_order_id=client_id)
            assert answer["status"] == "CANCELED"
        except VenueError as error:
            assert error.code == -2011

    @invariant()
    def orders_are_consistent(self) -> None:
        """Reads race the replay, so each check only compares reads in a safe order."""
        if not self.ids:
            return
        open_before = {order["clientOrderId"] for order in self.gateway.open_orders("BTCUSDT")}
        orders = [self.gateway.order("BTCUSDT", client_order_id=i) for i in self.ids]
        open_after = {order["clientOrderId"] for order in self.gateway.open_orders("BTCUSDT")}
        trades: dict[int, float] = {}
        for trade in self.gateway.user_trades("BTCUSDT", limit=1000):
            trades[trade["orderId"]] = trades.get(trade["orderId"], 0.0) + float(trade["qty"])
        for order in orders:
            executed = float(order["executedQty"])
            traded = trades.get(order["orderId"], 0.0)
            assert executed <= float(order["origQty"]) + 1e-12
            if order["status"] in FINAL:
                assert order["clientOrderId"] not in open_after
                assert executed == pytest.approx(traded, abs=1e-12)
            else:
                assert order["clientOrderId"] in open_before
                assert executed <= traded + 1e-12
        for event in self.stream.poll(timeout=0):
            if event["e"] != "ORDER_TRADE_UPDATE":
                continue
            body = event["o"]
            if body["c"].startswith(self.prefix):
                before = self.status.get(body["c"], "NEW")
                assert before in NEXT and body["X"] in NEXT[before], (before, body)
                self.status[body["c"]] = body["X"]

    def teardown(self) -> None:
        self.stream.close()
        # Not cancel_all: the happy path's resting order shares the venue.
        for order in self.gateway.open_orders("BTCUSDT"):
            if order["clientOrderId"].startswith(self.prefix):
                try:
                    self.gateway.cancel("BTCUSDT", client_order_id=order["clientOrderId"])
                except VenueError as error:
                    assert error.code == -2011  # filled meanwhile


def test_happy_path_rest_fill_market_cancel_and_account(market: Market) -> None:
    gateway, paper = market.gateway, market.paper
    stream = gateway.user_stream()
    bid, ask = _touch(paper)
    # The synthetic market drifts down ~20 USD over the capture: a bid 10 below fills later.
    resting = gateway.new_order("BTCUSDT", "BUY", 0.01, round(bid - 10, 1), client_order_id="h-b1")
    assert resting["status"] == "NEW" and resting["executedQty"] == "0.0"
    far = gateway.new_order("BTCUSDT", "SELL", 0.02, round(ask + 100, 1), client_order_id="h-s1")
    taken = gateway.new_order("BTCUSDT", "SELL", 0.005, type="MARKET", client_order_id="h-m1")
    assert taken["status"] == "FILLED" and taken["executedQty"] == "0.005"

    open_ids = {order["clientOrderId"] for order in gateway.open_orders("BTCUSDT")}
    assert {"h-s1"} <= open_ids <= {"h-s1", "h-b1"}
    cancelled = gateway.cancel("BTCUSDT", order_id=far["orderId"])
    assert cancelled["status"] == "CANCELED"
    assert _rejected(lambda: gateway.cancel("BTCUSDT", client_order_id="h-s1")).code == -2011
    assert "h-s1" not in {order["clientOrderId"] for order in gateway.open_orders()}
    HAPPY.update(stream=stream, resting=resting, taken=taken, ask=ask)


def test_random_order_sequences_keep_the_invariants(market: Market) -> None:
    """Runs while the replay still moves (the tests before it only place a few orders)."""
    PaperOrders.market = market
    run_state_machine_as_test(
        PaperOrders,
        settings=settings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_after_the_replay_fills_cancel_all_account_and_events(market: Market) -> None:
    gateway, paper = market.gateway, market.paper
    stream, resting, taken, ask = HAPPY["stream"], HAPPY["resting"], HAPPY["taken"], HAPPY["ask"]
    assert paper.wait_for_line(10**9)  # the replay trades down through h-b1
    assert gateway.order("BTCUSDT", client_order_id="h-b1")["status"] == "FILLED"
    for index in range(3):
        gateway.new_order("BTCUSDT", "SELL", 0.002, round(ask + 50 + index, 1))
    assert len(gateway.open_orders("BTCUSDT")) == 3
    assert gateway.cancel_all("BTCUSDT")["code"] == 200
    assert gateway.open_orders("BTCUSDT") == []

    mine = {resting["orderId"], taken["orderId"]}
    trades = [t for t in gateway.user_trades("BTCUSDT") if t["orderId"] in mine]
    assert {t["maker"] for t in trades if t["orderId"] == resting["orderId"]} == {True}
    assert {t["maker"] for t in trades if t["orderId"] == taken["orderId"]} == {False}
    for trade in trades:
        rate = MAKER_BPS if trade["maker"] else TAKER_BPS
        assert float(trade["commission"]) == pytest.approx(
            float(trade["price"]) * float(trade["qty"]) * rate * 1e-4
        )
    # Account and position agree with every trade the venue reported (all tests so far).
    everything = gateway.user_trades("BTCUSDT", limit=1000)
    signed = sum(float(t["qty"]) * (1 if t["buyer"] else -1) for t in everything)
    (position,) = gateway.positions("BTCUSDT")
    assert float(position["positionAmt"]) == pytest.approx(signed, abs=1e-9)
    account = gateway.account()
    wallet = 10_000 + sum(float(t["realizedPnl"]) - float(t["commission"]) for t in everything)
    assert float(account["totalWalletBalance"]) == pytest.approx(wallet)
    assert float(account["totalUnrealizedProfit"]) == pytest.approx(
        float(position["unRealizedProfit"])
    )

    every = []
    while batch := stream.poll(timeout=0.2):
        every += batch
    stream.close()
    # Binance's events: no sequence number, venue-clock times in order; each fill's
    # ORDER_TRADE_UPDATE is followed by the ACCOUNT_UPDATE it caused.
    assert not [e for e in every if "seq" in e or "ns" in e]
    assert [e["E"] for e in every] == sorted(e["E"] for e in every)
    for index, event in enumerate(every):
        if event["e"] == "ORDER_TRADE_UPDATE" and event["o"]["x"] == "TRADE":
            account = every[index + 1]
            assert account["e"] == "ACCOUNT_UPDATE" and account["a"]["m"] == "ORDER"
            assert account["a"]["P"][0]["s"] == event["o"]["s"] == "BTCUSDT"
    events = [e for e in every if e["e"] == "ORDER_TRADE_UPDATE"]
    b1 = [e["o"] for e in events if e["o"]["c"] == "h-b1"]
    assert b1[0]["x"] == "NEW" and b1[-1]["X"] == "FILLED"
    assert sum(float(o["l"]) for o in b1 if o["x"] == "TRADE") == pytest.approx(0.01)
    assert [e["o"]["x"] for e in events if e["o"]["c"] == "h-s1"] == ["NEW", "CANCELED"]


def test_authentication_and_order_errors(market: Market) -> None:
    gateway, paper = market.gateway, market.paper
    unknown = OrderGateway(paper.url, "nobody", SECRET)
    error = _rejected(unknown.open_orders)
    assert (error.code, error.http_status, error.retryable) == (-2015, 401, False)
    assert "Invalid API-key" in error.msg
    assert _rejected(OrderGateway(paper.url, KEY, "wrong").account).code == -1022
    stale = OrderGateway(paper.url, KEY, SECRET, clock=lambda: __import__("time").time() - 10)
    # -1021, then the client resyncs its offset with /fapi/v1/time and sends once more:
    # it signs on the venue clock (the replay's time), which is timely.
    assert stale.account()["canTrade"]
    offset_ms = stale.time_offset_ms
    assert abs((time.time() - 10) * 1000 + offset_ms - paper.venue_ms()) < 5_000
    request = urllib.request.Request(f"{paper.url}/fapi/v2/account?recvWindow=5000")
    request.add_header("X-MBX-APIKEY", KEY)
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=10)
    assert http.value.code == 400 and b"-1102" in http.value.read()

    bid, ask = _touch(paper)
    gtx = _rejected(lambda: gateway.new_order("BTCUSDT", "BUY", 0.01, ask, time_in_force="GTX"))
    assert gtx.code == -5022
    # BTCUSDT's published rules (data/instruments/binance.json), with Binance's codes: two
    # decimals are allowed (pricePrecision 2) but not off the 0.1 tick; three are too many.
    assert _rejected(lambda: gateway.new_order("BTCUSDT", "BUY", 0.01, bid + 0.05)).code == -4014
    assert _rejected(lambda: gateway.new_order("BTCUSDT", "BUY", 0.01, bid + 0.005)).code == -1111
    assert _rejected(lambda: gateway.new_order("BTCUSDT", "BUY", 0.0001, bid)).code == -1111
    assert _rejected(lambda: gateway.new_order("BTCUSDT", "BUY", 0.001, bid)).code == -4164
    assert _rejected(lambda: gateway.new_order("BTCUSDT", "BUY", 0, bid)).code == -4003
    assert _rejected(lambda: gateway.new_order("ETHUSDT", "BUY", 0.01, bid)).code == -1121
    assert _rejected(lambda: gateway.new_order("BTCUSDT", "UP", 0.01, bid)).code == -1117
    assert _rejected(lambda: gateway.order("BTCUSDT", order_id=10**9)).code == -2013
    assert _rejected(lambda: gateway.cancel("BTCUSDT", order_id=10**9)).code == -2011
    gateway.new_order("BTCUSDT", "BUY", 0.002, round(bid - 500, 1), client_order_id="dup")
    again = _rejected(
        lambda: gateway.new_order("BTCUSDT", "BUY", 0.002, bid, client_order_id="dup")
    )
    assert again.code == -4116
    gateway.cancel("BTCUSDT", client_order_id="dup")
    assert _rejected(lambda: OrderGateway("http://127.0.0.1:1", KEY, SECRET).account()).retryable


def test_exchange_info_states_the_rules_it_enforces(market: Market) -> None:
    """GET /fapi/v1/exchangeInfo: Binance's shape, the same rules new_order applies (the old
    venue had no such endpoint and a 0.1 tick for every symbol)."""
    with urllib.request.urlopen(f"{market.paper.url}/fapi/v1/exchangeInfo", timeout=10) as answer:
        info = json.loads(answer.read())
    (entry,) = info["symbols"]
    assert entry["symbol"] == "BTCUSDT" and entry["quantityPrecision"] == 3
    filters = {f["filterType"]: f for f in entry["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10"
    assert filters["LOT_SIZE"]["stepSize"] == "0.001"
    assert filters["MIN_NOTIONAL"]["notional"] == "100"


def test_signing_and_credentials(tmp_path: Path) -> None:
    query = "symbol=BTCUSDT&side=BUY&timestamp=1"
    body = "quantity=1&price=2"
    signature = sign(query, SECRET, body)
    assert verify(query, f"{body}&signature={signature}", SECRET)
    assert verify(f"{query}&signature={signature}", body, SECRET)
    assert not verify(f"{query}&signature={signature}", body + "0", SECRET)
    # Binance's documented example (USD-M futures API docs, "SIGNED Endpoint Examples").
    example = (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
        "&recvWindow=5000&timestamp=1591702613943"
    )
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    assert sign(example, secret) == (
        "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )
    path = tmp_path / "credentials"
    made = create_credentials_file(path)
    assert load_credentials(path, environ={}) == made and made.api_secret not in repr(made)
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_credentials(path, environ={})
    env = {"TWINFEED_API_KEY": "k", "TWINFEED_API_SECRET": "s"}
    assert load_credentials(path, environ=env).api_key == "k"


def test_paper_fills_equal_the_engine_fed_the_same_records(market: Market) -> None:
    """Every order all tests sent: the journal replayed into a fresh engine gives the fills the
    venue reported (price, quantity, fee, liquidity, time), in order."""
    paper, gateway = market.paper, market.gateway
    assert paper.wait_for_line(10**9) and paper.frozen
    # The same rules as the venue's engine (whole lots, the symbol's tick).
    engine = MatchingEngine(0, MAKER_BPS, TAKER_BPS, instruments=paper.engine.instruments)
    batches = iter(list(iter_record_batches(SYNTH)))
    pending = next(batches)
    fills: list[Fill] = []

    def feed(line: int | None) -> None:
        nonlocal pending
        while pending is not None:
            count = len(pending) if line is None else int((pending["line"] <= line).sum())
            fills.extend(e for e in engine.on_batch(pending[:count]) if isinstance(e, Fill))
            if count < len(pending):
                pending = pending[count:]
                return
            pending = next(batches, None)

    for entry in list(paper.journal):
        feed(entry.line)
        if entry.action == "submit":
            p = entry.payload
            order = Order(p["client_id"], p["symbol"], p["side"], p["qty"], p["price"],
                          p["type"], p["tif"])  # fmt: skip
            engine.submit(order, entry.now_ns)
        elif entry.action == "cancel":
            engine.cancel(entry.payload, entry.now_ns)
        else:
            engine.cancel_all(entry.now_ns, entry.payload)
        fills.extend(e for e in engine.advance(entry.now_ns) if isinstance(e, Fill))
    feed(None)
    fills.extend(e for e in engine.advance(paper.now_ns) if isinstance(e, Fill))

    reported = gateway.user_trades("BTCUSDT", from_id=1, limit=1000)
    order_ids = {o.client_id: i for i, o in enumerate(paper.engine.orders.values(), start=1)}
    assert len(fills) > 3 and len(reported) == len(fills)
    for fill, trade in zip(fills, reported, strict=True):
        assert trade["id"] == fill.fill_id
        assert trade["orderId"] == order_ids[fill.client_id]
        assert float(trade["price"]) == fill.price and float(trade["qty"]) == fill.qty
        assert float(trade["commission"]) == pytest.approx(
            fill.fee, abs=5e-9
        )  # venue prints 8 decimals
        assert trade["maker"] == (fill.liquidity == "maker")
        assert trade["time"] == fill.ts_ns // 1_000_000


def test_cli_serves_orders_beside_the_market_data(tmp_path: Path) -> None:
    """``twinfeed venue`` starts the paper venue too, with a fresh 0600 credentials file."""
    credentials = tmp_path / "credentials"
    command = "import twinfeed.cli.venue_cmd; from twinfeed.cli import main; main()"
    args = ["venue", "--port", "0", "--speed", "10", "--credentials-file", str(credentials)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINFEED_API_")}
    with subprocess.Popen(
        [sys.executable, "-c", command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            md_port = int(process.stdout.readline().strip().rsplit(":", 1)[1])
            line = ""
            while "paper orders on" not in line:
                line = process.stderr.readline()
                assert line, "the CLI ended without starting the paper venue"
            url = line.split("paper orders on ", 1)[1].split()[0]
            gateway = OrderGateway.from_credentials(url, credentials)
            assert oct(credentials.stat().st_mode & 0o777) == "0o600"
            with connect(f"ws://127.0.0.1:{md_port}/stream?streams=btcusdt@trade") as client:
                client.recv(timeout=30)
                while True:  # the paper venue sees a quote within a few status polls
                    try:
                        order = gateway.new_order("BTCUSDT", "BUY", 0.01, type="MARKET")
                        break
                    except VenueError as error:
                        assert error.code == -2010  # no market yet
                assert order["status"] == "FILLED"
                assert float(gateway.positions("BTCUSDT")[0]["positionAmt"]) == 0.01
                process.send_signal(signal.SIGINT)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
