"""A python-binance session against the paper venue, run as its own process by
``test_paper_python_binance.py`` (python-binance's clients keep event loops and threads of
their own that outlive them; a separate process keeps them out of the test runner).

Usage: ``python python_binance_session.py REST_URL WS_URL KEY SECRET AWAY_PRICE``. Prints one
JSON object: what each call answered (or the error code it raised), for the test to check."""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from typing import Any

warnings.simplefilter("ignore")  # python-binance's own deprecation warnings

# Submodules, not `from binance import ...`: binance-futures-connector installs a
# `binance/__init__.py` of its own over python-binance's (both are the `binance` package).
from binance.async_client import AsyncClient  # noqa: E402
from binance.client import Client  # noqa: E402
from binance.exceptions import BinanceAPIException  # noqa: E402
from binance.ws.streams import BinanceSocketManager  # noqa: E402


def code_of(call: Any) -> int | None:
    try:
        call()
    except BinanceAPIException as error:
        return int(error.code)
    return None


def rest(url: str, key: str, secret: str, away: str) -> dict[str, Any]:
    client = Client(key, secret, ping=False)
    client.FUTURES_URL = f"{url}/fapi"
    out: dict[str, Any] = {
        "ping": client.futures_ping(),
        "time": client.futures_time(),
        "exchange_info": client.futures_exchange_info(),
        "ticker": client.futures_orderbook_ticker(symbol="BTCUSDT"),
    }
    resting = client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002",
        price=away, newClientOrderId="pyb-rest",
    )  # fmt: skip
    out["resting"] = resting
    out["queried"] = client.futures_get_order(symbol="BTCUSDT", orderId=resting["orderId"])
    out["open"] = client.futures_get_open_orders(symbol="BTCUSDT")
    out["modified"] = client.futures_modify_order(
        symbol="BTCUSDT", orderId=resting["orderId"], side="BUY", quantity="0.003", price=away
    )
    out["taken"] = client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.004", newOrderRespType="RESULT"
    )
    out["position"] = client.futures_position_information(symbol="BTCUSDT")
    out["reduce"] = client.futures_create_order(
        symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.010", reduceOnly="true",
        newOrderRespType="RESULT",
    )  # fmt: skip
    out["off_tick_code"] = code_of(
        lambda: client.futures_create_order(
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.002",
            price=away + "01",
        )  # fmt: skip
    )
    out["unknown_order_code"] = code_of(
        lambda: client.futures_get_order(symbol="BTCUSDT", orderId=987654321)
    )
    out["cancel_all"] = client.futures_cancel_all_open_orders(symbol="BTCUSDT")
    out["all_orders"] = client.futures_get_all_orders(symbol="BTCUSDT")
    out["trades"] = client.futures_account_trades(symbol="BTCUSDT")
    out["flat_position"] = client.futures_position_information(symbol="BTCUSDT")
    out["balance"] = client.futures_account_balance()
    out["account_can_trade"] = client.futures_account()["canTrade"]
    out["leverage"] = client.futures_change_leverage(symbol="BTCUSDT", leverage=5)
    client.close_connection()
    return out


async def user_socket(url: str, ws_url: str, key: str, secret: str) -> list[dict[str, Any]]:
    client = AsyncClient(key, secret)  # AsyncClient.create() would ping api.binance.com
    client.FUTURES_URL = f"{url}/fapi"
    manager = BinanceSocketManager(client)
    manager.FSTREAM_URL = f"{ws_url}/"
    seen: list[dict[str, Any]] = []
    try:
        async with manager.futures_user_socket() as stream:
            for _ in range(3):
                await client.futures_create_order(
                    symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002"
                )
            while sum(1 for e in seen if e["o"]["X"] == "FILLED") < 3:
                event = await asyncio.wait_for(stream.recv(), 10)
                if event.get("e") == "ORDER_TRADE_UPDATE":
                    seen.append(event)
    finally:
        await client.close_connection()
    return seen


def main() -> None:
    url, ws_url, key, secret, away = sys.argv[1:6]
    out = rest(url, key, secret, away)
    out["user_socket"] = asyncio.run(user_socket(url, ws_url, key, secret))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
