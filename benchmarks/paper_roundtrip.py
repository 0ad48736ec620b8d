"""Round trip of a new + cancel pair on the paper venue through a pooled HTTP client.

The market-data venue replays the bundled capture to its end (``--speed max``), the paper
venue follows it (its market frozen at the last touch), and one ``requests.Session`` (one
kept-alive connection) sends ``--pairs`` pairs: a signed LIMIT order far from the touch
(``POST /fapi/v1/order``), then its cancel (``DELETE /fapi/v1/order``). Each pair is timed from
the first request's send to the second answer's last byte (``time.perf_counter_ns``) after
``--warmup`` pairs. For scale, ``--per-request`` also times the same pairs with a new connection
per request (``urllib``, what the project's gateway does). The ``http.client`` row sends the
same pairs on one kept-alive connection with the standard library's client: the venue's share
without ``requests``' own per-call cost. Rate limits are lifted (Binance's
300 orders / 10 s would refuse the loop with 429). Loopback; client and venue share the
machine's cores (the load average before and after is printed). The venues run in a child
process, as a user runs them, so the clients do not share their interpreter.

    .venv/bin/python benchmarks/paper_roundtrip.py [--pairs 2000] [--per-request] [--json OUT]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import requests
from machine import cpu_model, load_average  # benchmarks/machine.py (this script's folder)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from twinfeed.live.paper_venue import PaperVenue, RateLimits  # noqa: E402
from twinfeed.live.venue import start_venue  # noqa: E402
from twinfeed.venues.binance.signing import sign  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

SYNTH = REPO / "data" / "synth-btcusdt.txt"
KEY, SECRET = "bench-key", "bench-secret"


def _signed(params: dict[str, str]) -> str:
    params = {**params, "timestamp": str(int(time.time() * 1000))}
    query = urllib.parse.urlencode(params)
    return f"{query}&signature={sign(query, SECRET)}"


def _percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def _pairs(send: Any, price: str, count: int) -> list[int]:
    times = []
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.002", "price": price}  # fmt: skip
    for _ in range(count):
        start = time.perf_counter_ns()
        placed = send("POST", _signed(order))
        send("DELETE", _signed({"symbol": "BTCUSDT", "orderId": str(placed["orderId"])}))
        times.append(time.perf_counter_ns() - start)
    return times


def _serve(ready: Any, stop: Any, keys: dict[str, str] | None = None) -> None:
    """The venues, in their own process as a user runs them (the clients' work must not share
    the venue's interpreter): the market-data venue replays the capture to its end, the paper
    venue (accepting ``keys`` too) freezes at its last touch; then ``(host, port, price)``
    goes to ``ready`` (``ws_url`` too when ``keys`` are given)."""
    with start_venue(SYNTH, speed="max") as md:
        # Binance's 300 orders / 10 s would stop the loop: the limits are lifted here.
        unlimited = RateLimits(10**9, 10**9, 10**9)
        paper = PaperVenue.start(
            SYNTH, md_status=md.status, keys={KEY: SECRET, **(keys or {})}, rate_limits=unlimited
        )
        try:

            def drain() -> None:
                try:
                    with connect(md.stream_url("btcusdt@bookTicker")) as client:
                        while True:
                            client.recv(timeout=60)
                except Exception:  # noqa: BLE001 - the venue closes at the end
                    return

            threading.Thread(target=drain, daemon=True).start()
            deadline = time.monotonic() + 60
            while not paper.frozen and time.monotonic() < deadline:
                time.sleep(0.05)
            touch = paper.engine.touch(0)
            assert touch is not None, "no market"
            price = f"{touch.bid_px - 500:.1f}"
            ready.put((paper.host, paper.port, price) + ((paper.ws_url,) if keys else ()))
            stop.wait()
        finally:
            paper.stop()


def report(
    results: dict[str, list[int]],
    pairs: int,
    warmup: int,
    load_before: Any,
    json_out: Path | None,
) -> None:
    """Prints the machine, the load and one table row a client (p50/p99/max); writes the
    rows to ``json_out`` when given."""
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"load average before: {load_before}, after: {load_average()}")
    print(f"{pairs} new+cancel pairs after {warmup} warm-up pairs, loopback")
    print()
    print("| client | p50 µs | p99 µs | max µs |")
    print("|---|---:|---:|---:|")
    rows = []
    for name, times in results.items():
        row = {
            "client": name,
            "pairs": len(times),
            "p50_us": _percentile(times, 0.50),
            "p99_us": _percentile(times, 0.99),
            "max_us": max(times) / 1000,
        }
        rows.append(row)
        print(f"| {name} | {row['p50_us']:.0f} | {row['p99_us']:.0f} | {row['max_us']:.0f} |")
    if json_out is not None:
        json_out.write_text(json.dumps({"load_before": load_before, "results": rows}, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--per-request", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = load_average()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(ready, stop), daemon=True)
    server.start()
    results: dict[str, Any] = {}
    try:
        host, port, price = ready.get(timeout=120)
        url = f"http://{host}:{port}/fapi/v1/order"
        with requests.Session() as session:
            session.headers["X-MBX-APIKEY"] = KEY

            def pooled(method: str, query: str) -> Any:
                answer = session.request(method, f"{url}?{query}", timeout=10)
                answer.raise_for_status()
                return answer.json()

            _pairs(pooled, price, args.warmup)
            results["pooled (requests.Session, keep-alive)"] = _pairs(pooled, price, args.pairs)
        # The same over http.client on one kept-alive connection: the venue's share of
        # the round trip without requests' own cost per call.
        connection = http.client.HTTPConnection(host, port, timeout=10)

        def bare(method: str, query: str) -> Any:
            connection.request(method, f"/fapi/v1/order?{query}", headers={"X-MBX-APIKEY": KEY})
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(body)
            return json.loads(body)

        _pairs(bare, price, args.warmup)
        results["http.client, one kept-alive connection"] = _pairs(bare, price, args.pairs)
        connection.close()
        if args.per_request:

            def fresh(method: str, query: str) -> Any:
                request = urllib.request.Request(f"{url}?{query}", method=method)
                request.add_header("X-MBX-APIKEY", KEY)
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return json.loads(answer.read())

            _pairs(fresh, price, args.warmup)
            results["new connection per request (urllib)"] = _pairs(fresh, price, args.pairs)
    finally:
        stop.set()
        server.join(timeout=30)
    report(results, args.pairs, args.warmup, load_before, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
