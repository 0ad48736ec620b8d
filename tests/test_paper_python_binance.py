"""python-binance (``binance.client.Client`` and ``BinanceSocketManager``, unmodified, pinned in
the dev dependencies) trades the paper venue through its own configuration: ``FUTURES_URL`` and
``FSTREAM_URL`` pointed at the venue, as its documentation points them at a testnet. A third
client beside ccxt and the official connector: each builds, signs and parses requests its own
way, so each finds different differences. The session runs in its own process
(``python_binance_session.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paper_rest import frozen_paper

KEY, SECRET = "pybinance-key", "pybinance-secret"
SESSION = Path(__file__).with_name("python_binance_session.py")
# Installed by `make setup` in a folder of its own: its `binance` package would collide with
# binance-futures-connector's in the virtualenv.
CLIENT = Path(sys.prefix) / "clients" / "python-binance"


def test_python_binance_trades_the_paper_venue_and_follows_its_user_stream() -> None:
    assert (CLIENT / "binance" / "client.py").is_file(), f"{CLIENT}: run `make setup`"
    env = {**os.environ, "PYTHONPATH": str(CLIENT)}
    with frozen_paper({KEY: SECRET}, maker_fee_bps=2.0, taker_fee_bps=4.0) as paper:
        touch = paper.engine.touch(0)
        assert touch is not None
        away = f"{touch.bid_px - 500:.1f}"
        run = subprocess.run(
            [sys.executable, str(SESSION), paper.url, paper.ws_url, KEY, SECRET, away],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout)
        venue_ms = paper.venue_ms()
    assert out["ping"] == {}
    assert abs(out["time"]["serverTime"] - venue_ms) < 1_000  # the replay clock
    assert [s["symbol"] for s in out["exchange_info"]["symbols"]] == ["BTCUSDT"]
    ticker = out["ticker"]
    assert (float(ticker["bidPrice"]), float(ticker["askPrice"])) == (touch.bid_px, touch.ask_px)
    resting = out["resting"]
    assert resting["status"] == "NEW" and resting["clientOrderId"] == "pyb-rest"
    assert out["queried"]["status"] == "NEW"
    assert [o["orderId"] for o in out["open"]] == [resting["orderId"]]
    assert out["modified"]["origQty"] == "0.003" and out["modified"]["price"] == away
    assert out["taken"]["status"] == "FILLED" and out["taken"]["executedQty"] == "0.004"
    (position,) = out["position"]
    assert position["positionAmt"] == "0.004" and float(position["entryPrice"]) > 0
    assert out["reduce"]["executedQty"] == "0.004"  # capped at the position it reduces
    assert out["off_tick_code"] in (-1111, -4014)
    assert out["unknown_order_code"] == -2013
    assert out["cancel_all"]["code"] == 200
    done = out["all_orders"]
    assert sorted(o["status"] for o in done) == ["CANCELED", "FILLED", "FILLED"]
    assert sum(float(t["qty"]) for t in out["trades"]) == pytest.approx(0.008)
    # v3 positionRisk lists only symbols with a position or open orders, as Binance's does.
    assert out["flat_position"] == []
    balances = {b["asset"]: b for b in out["balance"]}
    assert float(balances["USDT"]["balance"]) > 0
    assert out["account_can_trade"] is True and out["leverage"]["leverage"] == 5
    # The user socket (listen key by REST, then <FSTREAM_URL>private/ws/<listenKey>) saw the
    # fills of its three market orders.
    fills = [e["o"] for e in out["user_socket"] if e["o"]["x"] == "TRADE"]
    assert len({f["i"] for f in fills}) == 3
    assert sum(float(f["l"]) for f in fills) == pytest.approx(0.006)
