"""One unmodified ccxt client on the local venue's two ports, configured as a user configures it.

``twinfeed-venue`` (market data) replays the bundled capture; the paper venue (order entry)
follows it and registers its websocket server with the market-data venue, which forwards
user-data websockets to it. ccxt 4.5.90 ``binanceusdm`` gets only base URLs: the public REST API
and the websocket base at the market-data venue, the private REST API at the paper venue. So
``load_markets`` reads the market-data venue's exchangeInfo, ``watch_trades`` its ``/public/ws``
(or ``/market/ws``) streams, and ``watch_orders`` / ``watch_balance`` the user-data stream that
the market-data venue splices to the paper venue (``/private/ws?listenKey=``), while orders go
to the paper venue by REST. Asserted: every fill of the session reaches ``watch_orders`` with
the venue's filled quantity and average price, and the last balance is the venue's wallet.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paper_rest import binanceusdm, drain
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.live.paper_ws import register_user_stream
from twinfeed.live.venue import VenueProcess, start_venue
from twinfeed.venues.binance.rest import OrderGateway

SYNTH = Path(__file__).resolve().parents[1] / "data" / "synth-btcusdt.txt"
KEY, SECRET = "e2e-key", "e2e-secret-0123456789abcdef0123456789"
SYMBOL = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def venues() -> Iterator[tuple[VenueProcess, PaperVenue]]:
    md = start_venue(SYNTH, speed=3)
    paper = PaperVenue.start(SYNTH, md_status=md.status, keys={KEY: SECRET}, taker_fee_bps=4.0)
    threading.Thread(target=drain, args=(md,), daemon=True).start()
    try:
        assert paper.wait_for_line(60)
        port = urllib.parse.urlsplit(paper.ws_url).port
        assert port is not None
        assert register_user_stream(md.http_url, port), "the venue refused the upstream"
        yield md, paper
    finally:
        paper.stop()
        md.stop()


def _client(md: VenueProcess, paper: PaperVenue) -> Any:
    return binanceusdm(md.http_url, paper.url, md.url, pro=True, key=KEY, secret=SECRET)


def test_ccxt_trades_and_follows_fills_through_the_market_data_port(
    venues: tuple[VenueProcess, PaperVenue],
) -> None:
    md, paper = venues
    gateway = OrderGateway(paper.url, KEY, SECRET)

    async def session() -> tuple[dict[str, Any], list[Any], list[Any], list[str]]:
        exchange = _client(md, paper)
        seen: dict[str, Any] = {}
        balances: list[Any] = []
        trades: list[Any] = []
        placed: list[str] = []

        async def orders() -> None:
            while True:
                for order in await exchange.watch_orders(SYMBOL):
                    seen[order["id"]] = order

        async def balance() -> None:
            while True:
                balances.append(await exchange.watch_balance())

        async def tape() -> None:
            while True:
                trades.extend(await exchange.watch_trades(SYMBOL))

        try:
            markets = await exchange.load_markets()
            assert markets[SYMBOL]["id"] == "BTCUSDT"
            tasks = [asyncio.create_task(job()) for job in (orders, balance, tape)]
            deadline = time.monotonic() + 30
            while not paper._subscribers:  # noqa: SLF001 - ccxt's user stream reached the paper venue
                assert time.monotonic() < deadline, "the user stream never reached the paper venue"
                await asyncio.sleep(0.01)
            for side in ("buy", "sell", "buy", "sell"):
                order = await exchange.create_order(SYMBOL, "market", side, 0.002)
                placed.append(order["id"])
            while not all(seen.get(i, {}).get("status") == "closed" for i in placed):
                assert time.monotonic() < deadline, f"ccxt saw {sorted(seen)} of {placed}"
                await asyncio.sleep(0.01)
            wallet = float((await asyncio.to_thread(gateway.account))["totalWalletBalance"])
            while not (balances and balances[-1]["USDT"]["total"] == pytest.approx(wallet)):
                assert time.monotonic() < deadline, f"balances {balances[-1:]}, venue {wallet}"
                await asyncio.sleep(0.01)
            while not trades:
                assert time.monotonic() < deadline, "no public trade reached watch_trades"
                await asyncio.sleep(0.01)
        finally:
            for task in locals().get("tasks", []):
                task.cancel()
            await asyncio.gather(*locals().get("tasks", []), return_exceptions=True)
            await exchange.close()
        return seen, balances, trades, placed

    seen, balances, trades, placed = asyncio.run(session())
    assert len(placed) == 4
    for order_id in placed:
        venue_order = gateway.order("BTCUSDT", order_id=int(order_id))
        assert venue_order["status"] == "FILLED"
        assert seen[order_id]["filled"] == pytest.approx(float(venue_order["executedQty"]))
        assert seen[order_id]["average"] == pytest.approx(float(venue_order["avgPrice"]))
    assert all(t["symbol"] == SYMBOL and t["price"] > 0 for t in trades)


def test_ccxt_orders_over_the_websocket_api(venues: tuple[VenueProcess, PaperVenue]) -> None:
    """ccxt's WebSocket API order methods (``/ws-fapi/v1``: order.place, order.status,
    order.modify, order.cancel, HMAC-signed per request) against the paper venue."""
    md, paper = venues
    gateway = OrderGateway(paper.url, KEY, SECRET)

    async def session() -> tuple[Any, Any, Any, Any]:
        exchange = binanceusdm(
            md.http_url, paper.url, md.url, f"{paper.ws_url}/ws-fapi/v1", pro=True, key=KEY,
            secret=SECRET,
        )  # fmt: skip
        try:
            await exchange.load_markets()
            book = await asyncio.to_thread(gateway.request, "GET", "/fapi/v1/ticker/bookTicker",
                                           {"symbol": "BTCUSDT"}, signed=False)  # fmt: skip
            away = round(float(book["bidPrice"]) - 500, 1)
            placed = await exchange.create_order_ws(SYMBOL, "limit", "buy", 0.002, away)
            status = await exchange.fetch_order_ws(placed["id"], SYMBOL)
            edited = await exchange.edit_order_ws(
                placed["id"], SYMBOL, "limit", "buy", 0.003, away - 10
            )
            cancelled = await exchange.cancel_order_ws(placed["id"], SYMBOL)
        finally:
            await exchange.close()
        return placed, status, edited, cancelled

    placed, status, edited, cancelled = asyncio.run(session())
    assert placed["status"] == "open" and status["id"] == placed["id"]
    assert edited["amount"] == pytest.approx(0.003)
    assert cancelled["status"] == "canceled"
    venue_order = gateway.order("BTCUSDT", order_id=int(placed["id"]))
    assert venue_order["status"] == "CANCELED" and venue_order["origQty"] == "0.003"
