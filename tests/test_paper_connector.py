"""binance-futures-connector 4.2.0 (``UMFutures(key, secret, base_url=...)``), unmodified,
against the paper venue; and each refusal the venue used to get wrong answered with Binance's
code (never a 500). Real venue stack on loopback, market frozen at the capture's last touch."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from binance.error import ClientError
from binance.um_futures import UMFutures
from paper_rest import frozen_paper, looping_paper
from paper_stack import wait_for
from twinfeed.live.paper_params import RateLimiter, RateLimits
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.binance.signing import sign

KEY, SECRET = "connector-key", "connector-secret"


@pytest.fixture(scope="module")
def paper() -> Iterator[PaperVenue]:
    with frozen_paper({KEY: SECRET}, maker_fee_bps=2.0, taker_fee_bps=4.0) as venue:
        yield venue


def _code(call: Any) -> int:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.status_code in (400, 401, 404, 418, 429), caught.value.error_message
    return int(caught.value.error_code)


def test_connector_trades_the_paper_venue_end_to_end(paper: PaperVenue) -> None:
    um = UMFutures(KEY, SECRET, base_url=paper.url, show_limit_usage=True)
    (symbol,) = um.exchange_info()["data"]["symbols"]
    assert symbol["symbol"] == "BTCUSDT"
    ticker = um.book_ticker("BTCUSDT")["data"]
    touch = paper.engine.touch(0)
    assert touch is not None
    assert (float(ticker["bidPrice"]), float(ticker["askPrice"])) == (touch.bid_px, touch.ask_px)
    assert ticker["bidPrice"].split(".")[1].__len__() == 2  # the tick's decimals ("0.10")
    bid, ask = touch.bid_px, touch.ask_px

    placed = um.new_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.002, price=round(bid - 500, 1),
        timeInForce="GTC", newClientOrderId="conn-rest",
    )  # fmt: skip
    usage = placed["limit_usage"]
    assert usage["x-mbx-order-count-10s"] == "1" and usage["x-mbx-order-count-1m"] == "1"
    assert int(usage["x-mbx-used-weight-1m"]) >= 1  # exchangeInfo 1 + bookTicker 2, order 0
    order = placed["data"]
    assert order["status"] == "NEW" and order["clientOrderId"] == "conn-rest"
    # Modify (PUT /fapi/v1/order): same values -5027; new price and quantity taken.
    same = _code(lambda: um.modify_order("BTCUSDT", "BUY", 0.002, round(bid - 500, 1),
                                         orderId=order["orderId"]))  # fmt: skip
    assert same == -5027
    modified = um.modify_order(
        "BTCUSDT", "BUY", 0.004, round(bid - 450, 1), orderId=order["orderId"]
    )
    assert modified["data"]["origQty"] == "0.004" and modified["data"]["price"] == str(
        round(bid - 450, 1)
    )
    assert um.get_open_orders("BTCUSDT", orderId=order["orderId"])["data"]["status"] == "NEW"
    assert [o["orderId"] for o in um.get_orders(symbol="BTCUSDT")["data"]] == [order["orderId"]]

    # Test order: checked, not placed. GTD: at least 600 s ahead (-5040), then rests.
    assert (
        um.new_order_test(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.002)["data"]
        == {}
    )
    now_ms = um.time()["data"]["serverTime"]
    gtd = dict(symbol="BTCUSDT", side="SELL", type="LIMIT", quantity=0.002,
               price=round(ask + 500, 1), timeInForce="GTD")  # fmt: skip
    assert _code(lambda: um.new_order(**gtd, goodTillDate=now_ms + 60_000)) == -5040
    good_till = um.new_order(**gtd, goodTillDate=now_ms + 700_000)["data"]
    assert (
        good_till["timeInForce"] == "GTD"
        and good_till["goodTillDate"] == (now_ms + 700_000) // 1000 * 1000
    )

    # Batch: answers in order, each its order or its own error.
    batch = um.new_batch_order(
        [
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.002",
             "price": str(round(bid - 600, 1)), "timeInForce": "GTC"},
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1_0",
             "price": str(round(bid - 600, 1)), "timeInForce": "GTC"},
            {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.002",
             "reduceOnly": "true"},
        ]
    )["data"]  # fmt: skip
    assert batch[0]["status"] == "NEW"
    assert batch[1]["code"] == -1100 and batch[2]["code"] == -2022
    too_many = [{"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}] * 6
    assert _code(lambda: um.new_batch_order(too_many)) == -4082
    cancelled = um.cancel_batch_order("BTCUSDT", [batch[0]["orderId"], 10**9], None)["data"]
    assert cancelled[0]["status"] == "CANCELED" and cancelled[1]["code"] == -2011

    # Market buy (RESULT: as executed; ACK, the default: as accepted), then account views,
    # trades, leverage, fees, position mode.
    bought = um.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.003,
                          newOrderRespType="RESULT")["data"]  # fmt: skip
    assert bought["status"] == "FILLED" and bought["avgPrice"] == str(ask)
    acked = um.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.003)["data"]
    assert (acked["status"], acked["executedQty"]) == ("NEW", "0")
    assert um.query_order("BTCUSDT", orderId=acked["orderId"])["data"]["status"] == "FILLED"
    um.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.003)
    (risk,) = um.get_position_risk(symbol="BTCUSDT")["data"]
    assert risk["positionAmt"] == "0.003" and risk["positionSide"] == "BOTH"
    (balance,) = um.balance()["data"]
    assert balance["asset"] == "USDT" and float(balance["balance"]) < 10_000
    account = um.account()["data"]
    assert account["positions"][0]["positionAmt"] == "0.003"
    assert account["totalWalletBalance"] == balance["balance"]
    trade = um.get_account_trades("BTCUSDT")["data"][0]
    assert trade["orderId"] == bought["orderId"] and trade["maker"] is False
    assert um.change_leverage("BTCUSDT", 20)["data"]["leverage"] == 20
    assert _code(lambda: um.change_leverage("BTCUSDT", 500)) == -4028
    assert um.leverage_brackets(symbol="BTCUSDT")["data"]["brackets"][0]["initialLeverage"] == 125
    fees = um.commission_rate("BTCUSDT")["data"]
    assert (fees["makerCommissionRate"], fees["takerCommissionRate"]) == ("0.0002", "0.0004")
    assert um.get_position_mode()["data"] == {"dualSidePosition": False}
    assert _code(lambda: um.change_position_mode("true")) == -1020
    assert _code(lambda: um.change_position_mode("false")) == -4059

    # All orders, cancel, cancel all.
    every = um.get_all_orders("BTCUSDT")["data"]
    assert [o["orderId"] for o in every] == sorted(o["orderId"] for o in every)
    assert {order["orderId"], good_till["orderId"], bought["orderId"]} <= {
        o["orderId"] for o in every
    }
    assert um.query_order("BTCUSDT", orderId=bought["orderId"])["data"]["status"] == "FILLED"
    assert um.cancel_order("BTCUSDT", orderId=order["orderId"])["data"]["status"] == "CANCELED"
    assert _code(lambda: um.get_open_orders("BTCUSDT", orderId=order["orderId"])) == -2013
    um.cancel_open_orders("BTCUSDT")
    assert um.get_orders(symbol="BTCUSDT")["data"] == []


def _signed(session: requests.Session, url: str, method: str, path: str, query: str) -> Any:
    signature = sign(query, SECRET)
    answer = session.request(
        method,
        f"{url}{path}?{query}&signature={signature}",
        headers={"X-MBX-APIKEY": KEY},
        timeout=10,
    )
    return answer


def _refusal(session: requests.Session, url: str, **params: str) -> tuple[int, int]:
    fields = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    fields.update(params)
    fields["timestamp"] = str(int(time.time() * 1000))
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if v is not None})
    answer = _signed(session, url, "POST", "/fapi/v1/order", query)
    return answer.status_code, int(answer.json().get("code", 0))


def test_each_refusal_gets_binances_code(paper: PaperVenue) -> None:
    """The issue's list: what the venue accepted (or answered with a 500) that Binance
    refuses, each with Binance's code."""
    touch = paper.engine.touch(0)
    assert touch is not None
    price = f"{touch.bid_px - 500:.1f}"
    with requests.Session() as session:
        cases = {
            # (quantity, price, extra) -> code
            "underscore": (("1_0", price, {}), -1100),
            "spaces": ((" 0.01 ", price, {}), -1100),
            "arabic-indic digits": (("٠٫٠١", price, {}), -1100),
            "exponent qty": (("1e-2", price, {}), -1100),
            "qty 1e308": (("1e308", price, {}), -1100),
            "309-digit qty": (("1" + "0" * 308, price, {}), -1100),
            "price 1e-300": (("0.01", "1e-300", {}), -1100),
            "300-decimal price": (("0.01", "0." + "0" * 299 + "1", {}), -1100),
            "price below PRICE_FILTER min": (("0.01", "500", {}), -4013),
            "price above PRICE_FILTER max": (("0.001", "5000000", {}), -4002),
            "market over MARKET_LOT_SIZE max": (
                ("1000000", None, {"type": "MARKET", "timeInForce": None}),
                -4005,
            ),
            "10k-character clientOrderId": (("0.01", price, {"newClientOrderId": "a" * 10_000}), -4015),
            "newline clientOrderId": (("0.01", price, {"newClientOrderId": "a\nb"}), -4015),
            "clientOrderId with a space": (("0.01", price, {"newClientOrderId": "a b"}), -4015),
            "newline in symbol": (("0.01", price, {"symbol": "BTCUSDT\n"}), -1100),
            "reduce-only from flat": (
                ("0.01", None, {"type": "MARKET", "timeInForce": None, "reduceOnly": "true"}),
                -2022,
            ),
            "bad reduceOnly": (("0.01", price, {"reduceOnly": "yes"}), -1130),
            "bad newOrderRespType": (("0.01", price, {"newOrderRespType": "FULL"}), -1136),
            "hedge positionSide": (("0.01", price, {"positionSide": "LONG"}), -4061),
            "GTD without goodTillDate": (("0.01", price, {"timeInForce": "GTD"}), -1102),
        }  # fmt: skip
        got = {}
        for name, ((qty, at, extra), _) in cases.items():
            got[name] = _refusal(session, paper.url, quantity=qty, price=at, **extra)
        assert got == {name: (400, code) for name, (_, code) in cases.items()}
        assert not paper.engine.open_orders()  # none of them placed anything

        # A replayed signed request: within recvWindow Binance takes it again (a second order:
        # no newClientOrderId); outside it, -1021. No order is placed by the stale one.
        query = urllib.parse.urlencode(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.002", "price": price, "recvWindow": "1000",
             "timestamp": str(int(time.time() * 1000))}
        )  # fmt: skip
        first = _signed(session, paper.url, "POST", "/fapi/v1/order", query).json()
        second = _signed(session, paper.url, "POST", "/fapi/v1/order", query).json()
        assert first["orderId"] != second["orderId"]
        time.sleep(1.1)
        stale = _signed(session, paper.url, "POST", "/fapi/v1/order", query)
        assert (stale.status_code, stale.json()["code"]) == (400, -1021)
        assert len(paper.engine.open_orders()) == 2
        _signed(session, paper.url, "DELETE", "/fapi/v1/allOpenOrders",
                f"symbol=BTCUSDT&timestamp={int(time.time() * 1000)}")  # fmt: skip


def test_rate_limits_answer_429_then_418_with_retry_after(paper: PaperVenue) -> None:
    """Weight over the minute's limit: 429 -1003 with Retry-After; going on after it: 418
    (banned) with Retry-After; order counts over the 10 s limit: 429 -1015."""
    saved = paper.limiter

    # A clock standing at 1,000,000.5 s: every request falls in the same windows.
    def clock() -> float:
        return 1_000_000.5

    limits = RateLimits(weight_per_minute=6, orders_per_10s=2, ban_after=2)
    paper.limiter = RateLimiter(limits, clock)
    try:
        with requests.Session() as session:
            url = f"{paper.url}/fapi/v1/time"
            seen = [session.get(url, timeout=10) for _ in range(6)]
            assert [a.headers["X-MBX-USED-WEIGHT-1M"] for a in seen] == [
                "1",
                "2",
                "3",
                "4",
                "5",
                "6",
            ]
            over = session.get(url, timeout=10)
            assert (over.status_code, over.json()["code"]) == (429, -1003)
            assert over.headers["Retry-After"] == "20"  # to the next minute, 1,000,020 s
            assert "current limit is 6 requests per minute" in over.json()["msg"]
            session.get(url, timeout=10)
            banned = session.get(url, timeout=10)
            assert (banned.status_code, banned.json()["code"]) == (418, -1003)
            assert banned.headers["Retry-After"] == "120"
            still = session.get(url, timeout=10)
            assert still.status_code == 418 and "IP banned until" in still.json()["msg"]
        paper.limiter = RateLimiter(RateLimits(orders_per_10s=2), clock)
        um = UMFutures(KEY, SECRET, base_url=paper.url)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": 0.002,
                 "reduceOnly": "true"}  # fmt: skip
        assert [_code(lambda: um.new_order(**order)) for _ in range(3)] == [-2022, -2022, -1015]
    finally:
        paper.limiter = saved


def test_answers_leave_in_one_write_on_a_kept_alive_nodelay_connection(
    paper: PaperVenue,
) -> None:
    """Headers and body in one write, TCP_NODELAY on the accepted socket, and one connection
    for many requests. The old handler wrote the headers, then the body: two segments, the
    second held back by Nagle until the client's delayed ACK (44 ms a request)."""
    writes: list[int] = []
    nodelay: list[int] = []
    base = paper._server.RequestHandlerClass

    class Counting(base):  # type: ignore[valid-type, misc]
        def setup(self) -> None:
            super().setup()
            nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            real = self.wfile.write

            def write(data: bytes) -> int:
                writes.append(len(data))
                return real(data)

            self.wfile.write = write  # type: ignore[method-assign]

    paper._server.RequestHandlerClass = Counting
    try:
        connection = http.client.HTTPConnection(paper.host, paper.port, timeout=10)
        touch = paper.engine.touch(0)
        assert touch is not None
        order = (
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.002"
            f"&price={touch.bid_px - 500:.1f}"
        )
        for _ in range(3):
            connection.request("GET", "/fapi/v1/time")
            assert connection.getresponse().read().startswith(b'{"serverTime":')
            query = f"{order}&timestamp={int(time.time() * 1000)}"
            path = f"/fapi/v1/order?{query}&signature={sign(query, SECRET)}"
            connection.request("POST", path, headers={"X-MBX-APIKEY": KEY})
            placed = json.loads(connection.getresponse().read())
            query = (
                f"symbol=BTCUSDT&orderId={placed['orderId']}&timestamp={int(time.time() * 1000)}"
            )
            path = f"/fapi/v1/order?{query}&signature={sign(query, SECRET)}"
            connection.request("DELETE", path, headers={"X-MBX-APIKEY": KEY})
            assert json.loads(connection.getresponse().read())["status"] == "CANCELED"
        connection.close()
    finally:
        paper._server.RequestHandlerClass = base
    assert len(nodelay) == 1 and nodelay[0] != 0  # one connection, Nagle off
    assert len(writes) == 9  # one write per answer


def test_the_venue_expires_gtd_orders_and_reduce_only_orders_that_cannot_reduce() -> None:
    """A GTD order ends EXPIRED once the venue clock (the replay's, here lapping at 200x)
    passes its goodTillDate; a resting reduce-only order ends EXPIRED once the position it
    reduced is closed by another order. (Both were impossible before: GTD was -1115 and
    reduceOnly was ignored; then GTD expired on the wall clock while every other venue time
    was the replay's.)"""
    with looping_paper({KEY: SECRET}) as venue:
        events: list[dict[str, Any]] = []
        venue.subscribe(events.append)
        gateway = OrderGateway(venue.url, KEY, SECRET)
        touch = venue.engine.touch(0)
        assert touch is not None
        away = f"{touch.ask_px + 5000:.1f}"
        now_ms = gateway.request("GET", "/fapi/v1/time", signed=False)["serverTime"]
        assert abs(now_ms - venue.venue_ms()) < 60_000 < abs(now_ms - time.time() * 1000)
        gtd = gateway.request(
            "POST", "/fapi/v1/order",
            {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "0.002",
             "price": away, "timeInForce": "GTD", "goodTillDate": now_ms + 700_000},
        )  # fmt: skip
        gateway.new_order("BTCUSDT", "BUY", "0.003", type="MARKET")
        closing = gateway.new_order("BTCUSDT", "SELL", "0.003", away, reduce_only=True)
        assert closing["status"] == "NEW" and closing["reduceOnly"] is True
        gateway.new_order("BTCUSDT", "SELL", "0.003", type="MARKET")  # flat: nothing to reduce
        wait_for(
            "the reduce-only order to expire",
            lambda: gateway.order("BTCUSDT", order_id=closing["orderId"])["status"] == "EXPIRED",
            10,
        )
        assert gateway.order("BTCUSDT", order_id=gtd["orderId"])["status"] == "NEW"
        wait_for(
            "the GTD order to expire",
            lambda: gateway.order("BTCUSDT", order_id=gtd["orderId"])["status"] == "EXPIRED",
            60,
        )
        assert [e.action for e in venue.journal].count("expire") == 2
        # The user stream states the order as sent: GTD with its goodTillDate, reduce-only;
        # it expired on the venue clock, once that clock passed goodTillDate.
        updates = {(e["o"]["i"], e["o"]["X"]): e for e in events if e["e"] == "ORDER_TRADE_UPDATE"}
        expired_gtd = updates[(gtd["orderId"], "EXPIRED")]
        assert expired_gtd["o"]["f"] == "GTD" and expired_gtd["o"]["gtd"] == gtd["goodTillDate"]
        assert gtd["goodTillDate"] <= expired_gtd["E"] < gtd["goodTillDate"] + 60_000
        assert updates[(closing["orderId"], "EXPIRED")]["o"]["R"] is True


def test_signed_timestamps_on_the_venue_clock_or_the_wall_clock_are_timely() -> None:
    """The venue states one time, the replay's (2024 on the bundled capture), as Binance's
    ``/fapi/v1/time``. A client that synchronised with it and one on the wall clock are both
    timely; a timestamp on neither clock is -1021."""
    with frozen_paper({KEY: SECRET}) as venue:
        server_ms = UMFutures(KEY, SECRET, base_url=venue.url).time()["serverTime"]
        assert server_ms == venue.venue_ms() < time.time() * 1000 - 365 * 86_400_000
        assert abs(server_ms - venue.exchange_info()["serverTime"]) < 1_000

        def balance(timestamp_ms: float) -> Any:
            query = f"timestamp={int(timestamp_ms)}"
            digest = hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
            return requests.get(
                f"{venue.url}/fapi/v2/balance?{query}&signature={digest}",
                headers={"X-MBX-APIKEY": KEY},
                timeout=10,
            ).json()

        assert isinstance(balance(venue.venue_ms()), list)  # synchronised with the venue
        assert isinstance(balance(time.time() * 1000), list)  # on the wall clock
        for drift_ms in (-3_600_000, 3_600_000, -10_000):
            assert balance(time.time() * 1000 + drift_ms)["code"] == -1021
            assert balance(venue.venue_ms() + drift_ms)["code"] == -1021


def test_modify_rules_and_batch_modify(paper: PaperVenue) -> None:
    """Modify as Binance documents it: a quantity at or below the executed one cancels the
    order; a finished one is -2013; PUT /fapi/v1/batchOrders answers each modification in
    order."""
    um = UMFutures(KEY, SECRET, base_url=paper.url)
    touch = paper.engine.touch(0)
    assert touch is not None
    # Takes the whole displayed ask, rests the rest at its limit: partially filled.
    wanted = round(touch.ask_qty + 0.01, 3)
    partial = um.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=wanted,
                           price=touch.ask_px, timeInForce="GTC",
                           newOrderRespType="RESULT")  # fmt: skip
    assert partial["status"] == "PARTIALLY_FILLED"
    executed = partial["executedQty"]
    cut = um.modify_order("BTCUSDT", "BUY", executed, touch.ask_px, orderId=partial["orderId"])
    assert cut["status"] == "CANCELED" and cut["executedQty"] == executed
    market = um.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.002)
    assert (
        _code(
            lambda: um.modify_order(
                "BTCUSDT", "SELL", 0.003, touch.bid_px, orderId=market["orderId"]
            )
        )  # fmt: skip
        == -2013  # already filled: no longer an open order
    )
    resting = [
        um.new_order(
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            quantity=0.002,
            price=round(touch.bid_px - 700 - i, 1),
            timeInForce="GTC",
        )  # fmt: skip
        for i in range(2)
    ]
    changes = [
        {"symbol": "BTCUSDT", "orderId": resting[0]["orderId"], "side": "BUY",
         "quantity": "0.003", "price": str(round(touch.bid_px - 650, 1))},
        {"symbol": "BTCUSDT", "orderId": resting[1]["orderId"], "side": "SELL",
         "quantity": "0.003", "price": str(round(touch.bid_px - 650, 1))},
    ]  # fmt: skip
    query = urllib.parse.urlencode(
        {"batchOrders": json.dumps(changes), "timestamp": str(int(time.time() * 1000))}
    )
    with requests.Session() as session:
        answers = _signed(session, paper.url, "PUT", "/fapi/v1/batchOrders", query).json()
    assert answers[0]["origQty"] == "0.003" and answers[0]["price"] == str(
        round(touch.bid_px - 650, 1)
    )
    assert answers[1]["code"] == -1130  # the side of an order cannot change
    um.cancel_open_orders("BTCUSDT")
