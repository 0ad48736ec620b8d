"""Order entry round trip: a new + cancel pair on the local paper venue, through the brain's
Binance adapter (WebSocket API and pooled REST) and binance-futures-connector side by side.

The venues run in a child process as in ``paper_roundtrip.py`` (the market-data venue replays
the bundled capture to its end, the paper venue freezes at its last touch; rate limits lifted).
Each client sends ``--pairs`` pairs after ``--warmup`` pairs: a LIMIT order far from the touch,
then its cancel, timed from the first send to the second answer (``time.perf_counter_ns``):

- ``twinfeed WebSocket API``: :class:`twinfeed.venues.binance.adapter.BinanceVenue` with a
  :class:`~twinfeed.venues.binance.ws_api.WsApiClient` (one Ed25519-logged-on session:
  ``order.place`` with ``newOrderRespType=RESULT``, ``order.cancel``);
- ``twinfeed pooled REST``: the same adapter over :class:`OrderGateway` (urllib3 keep-alive
  pool, HMAC);
- ``binance-futures-connector``: ``UMFutures.new_order`` / ``cancel_order`` (its
  ``requests.Session``, kept alive).

Goal (issue 16): WebSocket API p50 under 0.3 ms and p99 under 1 ms on loopback. Run it on a
quiet machine (the load average before and after is printed)::

    .venv/bin/python benchmarks/order_entry.py [--pairs 2000] [--warmup 100] [--json OUT]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path

from machine import load_average  # benchmarks/machine.py (this script's folder)
from paper_roundtrip import KEY, SECRET, _serve, report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from binance.um_futures import UMFutures  # noqa: E402
from twinfeed.orders import Order  # noqa: E402
from twinfeed.venues.binance.adapter import BinanceVenue  # noqa: E402
from twinfeed.venues.binance.rest import OrderGateway  # noqa: E402
from twinfeed.venues.binance.signing import new_ed25519_key  # noqa: E402
from twinfeed.venues.binance.ws_api import WsApiClient  # noqa: E402

ED_KEY = "bench-ed25519-key"
SYMBOL = "BTCUSDT"


def _timed(pair: Callable[[int], None], start: int, count: int) -> list[int]:
    times = []
    for number in range(start, start + count):
        began = time.perf_counter_ns()
        pair(number)
        times.append(time.perf_counter_ns() - began)
    return times


def _adapter_pair(venue: BinanceVenue, price: float, prefix: str) -> Callable[[int], None]:
    def pair(number: int) -> None:
        client_id = f"{prefix}{number}"
        placed = venue.send_order(Order(client_id, 0, "buy", 0.002, price), SYMBOL)
        assert placed.state == "acked", placed
        assert venue.cancel(client_id, SYMBOL).state == "cancelled"

    return pair


def _connector_pair(client: UMFutures, price: str) -> Callable[[int], None]:
    def pair(number: int) -> None:
        placed = client.new_order(
            symbol=SYMBOL,
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.002",
            price=price,
            newClientOrderId=f"c{number}",
        )
        client.cancel_order(symbol=SYMBOL, orderId=placed["orderId"])

    return pair


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = load_average()
    private_pem, public_pem = new_ed25519_key()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(ready, stop, {ED_KEY: public_pem}), daemon=True)
    server.start()
    results: dict[str, list[int]] = {}
    try:
        host, port, price, ws_url = ready.get(timeout=120)
        url = f"http://{host}:{port}"
        ws_api = WsApiClient(ws_url, ED_KEY, private_pem)
        rest = OrderGateway(url, ED_KEY, "", private_key=private_pem)
        clients: list[tuple[str, Callable[[int], None], Callable[[], None]]] = []
        over_ws = BinanceVenue(rest, stream=False, ws_api=ws_api)
        clients.append(
            (
                "twinfeed WebSocket API (Ed25519 session)",
                _adapter_pair(over_ws, float(price), "w"),
                over_ws.close,
            )
        )
        pooled = BinanceVenue(OrderGateway(url, KEY, SECRET), stream=False)
        clients.append(
            (
                "twinfeed pooled REST (urllib3 keep-alive, HMAC)",
                _adapter_pair(pooled, float(price), "r"),
                pooled.close,
            )
        )
        connector = UMFutures(key=KEY, secret=SECRET, base_url=url)
        clients.append(
            (
                "binance-futures-connector (requests.Session, HMAC)",
                _connector_pair(connector, price),
                connector.session.close,
            )
        )
        for name, pair, close in clients:
            _timed(pair, 0, args.warmup)
            results[name] = _timed(pair, args.warmup, args.pairs)
            close()
        if over_ws.rest_fallbacks:
            raise RuntimeError(f"{over_ws.rest_fallbacks} WebSocket API requests went over REST")
    finally:
        stop.set()
        server.join(timeout=30)
    report(results, args.pairs, args.warmup, load_before, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
