"""``twinfeed-venue`` against unmodified Binance clients, on the real USD-M capture.

ccxt 4.5.90 (``binanceusdm``, pointed at the venue only through its ``urls`` configuration)
must sync its order book at the first REST snapshot and receive trades; the websocket paths
Binance uses now (``/public``, ``/market``, ``/private``) must route as Binance routes them;
the REST snapshot, bookTicker and time answer from the replay; user-data websockets are
spliced to an upstream that sees the client's own request.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paper_rest import binanceusdm
from test_venue import Expected, open_client, read_capture, receive_all
from twinfeed.live.venue import VenueError, VenueProcess, start_venue
from websockets.exceptions import InvalidStatus
from websockets.sync.server import ServerConnection, serve

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture(scope="module")
def usdm(usdm_capture: Path) -> Expected:
    return read_capture(usdm_capture)


def pointed_ccxt(venue: VenueProcess) -> Any:
    """ccxt's binanceusdm with every market-data URL on the venue (its own configuration)."""
    return binanceusdm(venue.http_url, ws=venue.url, pro=True)


def levels(side: list[list[Any]], count: int) -> list[tuple[float, float]]:
    return [(float(price), float(amount)) for price, amount, *_ in side[:count]]


async def one_sync(venue: VenueProcess) -> dict[str, int]:
    """One fresh ccxt client: watch_order_book until the local book has been compared with a
    venue snapshot of the same update id. Returns what was seen."""
    exchange = pointed_ccxt(venue)
    snapshots = 0
    fetch = exchange.fetch_rest_order_book_safe

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal snapshots
        snapshots += 1
        return await fetch(*args, **kwargs)

    # Counting only: ccxt's own method does the work.
    exchange.fetch_rest_order_book_safe = counted
    compared = updates = 0
    try:
        for _ in range(400):
            book = await exchange.watch_order_book(SYMBOL)
            updates += 1
            assert book["bids"][0][0] < book["asks"][0][0], f"crossed book at {book['nonce']}"
            nonce = book["nonce"]
            local = (levels(book["bids"], 100), levels(book["asks"], 100))
            snapshot = venue.depth("BTCUSDT", limit=1000)
            if snapshot["lastUpdateId"] == nonce:
                assert (levels(snapshot["bids"], 100), levels(snapshot["asks"], 100)) == local
                compared += 1
                if compared >= 3:
                    break
    finally:
        await exchange.close()
    return {"snapshots": snapshots, "compared": compared, "updates": updates}


def test_ccxt_watch_order_book_syncs_at_the_first_snapshot(usdm_capture: Path) -> None:
    # A timed replay (2x), so each try joins a live stream and needs the REST snapshot; slow
    # enough that a snapshot usually lands between two 100 ms frames (same update id).
    with start_venue(usdm_capture, speed=2) as venue:
        results = [asyncio.run(one_sync(venue)) for _ in range(5)]
    print("watch_order_book tries:", results)
    assert all(r["snapshots"] == 1 for r in results), results
    assert all(r["compared"] >= 1 for r in results), results


def test_ccxt_watch_trades_gets_the_captured_trades(usdm_capture: Path, usdm: Expected) -> None:
    captured = {
        json.loads(f)["data"]["t"]: json.loads(f)["data"] for f in usdm.frames["btcusdt@trade"]
    }

    async def watch() -> list[dict[str, Any]]:
        exchange = pointed_ccxt(venue)
        seen: list[dict[str, Any]] = []
        try:
            while len(seen) < 50:
                seen += await exchange.watch_trades(SYMBOL)
        finally:
            await exchange.close()
        return seen

    with start_venue(usdm_capture, speed=20) as venue:
        trades = asyncio.run(watch())
    ids = [int(t["id"]) for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for trade in trades:
        data = captured[int(trade["id"])]
        assert trade["price"] == float(data["p"]) and trade["amount"] == float(data["q"])
        assert trade["timestamp"] == data["T"]


def test_the_documented_local_book_procedure_keyed_by_price_strings(
    usdm_capture: Path,
) -> None:
    """Binance's "How to manage a local order book correctly", with a book keyed by the price
    string: the snapshot's strings are the diffs' strings, so the book is never crossed and
    holds no price twice."""
    with start_venue(usdm_capture, speed=5) as venue:
        url = f"{venue.url}/public/stream?streams=btcusdt@depth@100ms"
        with open_client(url, close_timeout=0.2) as client:
            buffered = [json.loads(client.recv(timeout=30)) for _ in range(3)]
            snapshot = venue.depth("BTCUSDT", limit=1000)
            events = buffered + [json.loads(client.recv(timeout=30)) for _ in range(150)]
    assert all(e["stream"] == "btcusdt@depth@100ms" for e in events)
    book: dict[str, dict[str, str]] = {
        side: {price: qty for price, qty in snapshot[key]}
        for side, key in (("b", "bids"), ("a", "asks"))
    }
    last = snapshot["lastUpdateId"]
    data = [e["data"] for e in events if e["data"]["u"] >= last]
    first = data[0]
    assert first["U"] <= last <= first["u"], (first["U"], last, first["u"])
    applied = 0
    previous_u: int | None = None
    for diff in data:
        if previous_u is not None:
            assert diff["pu"] == previous_u
        for side in ("b", "a"):
            for price, qty in diff[side]:
                if float(qty) == 0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = qty
        previous_u = diff["u"]
        applied += 1
        for side in ("b", "a"):
            numeric = [float(p) for p in book[side]]
            assert len(set(numeric)) == len(numeric), "a price under two spellings"
        assert max(map(float, book["b"])) < min(map(float, book["a"])), f"crossed at {diff['u']}"
    assert applied > 100


def test_routed_paths_serve_their_streams_only(usdm_capture: Path, usdm: Expected) -> None:
    # The capture's streams (depth, bookTicker, trade) all belong to /public.
    with start_venue(usdm_capture, speed="max") as venue:
        with open_client(
            f"{venue.url}/market/stream?streams=btcusdt@trade/btcusdt@bookTicker"
        ) as market:
            public, closed = receive_all(f"{venue.url}/public/ws/btcusdt@bookTicker")
            assert closed is not None and closed.rcvd is not None and closed.rcvd.code == 1000
            market.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
            # Nothing was sent on /market before the answer, though the replay is over.
            reply = json.loads(market.recv(timeout=30))
        combined, _ = receive_all(f"{venue.url}/public/stream?streams=btcusdt@trade")
        legacy, _ = receive_all(f"{venue.url}/stream?streams=btcusdt@trade")
    assert reply == {"result": ["btcusdt@trade", "btcusdt@bookTicker"], "id": 1}
    bare = [json.loads(f)["data"] for f in usdm.frames["btcusdt@bookTicker"]]
    assert [json.loads(m) for m in public] == bare
    # Replay position is shared: the later clients start where the replay is (the end).
    assert combined == legacy == []


def reference_book(usdm: Expected) -> dict[str, list[list[str]]]:
    """The final book by Binance's procedure, keyed by numeric price, keeping the last string:
    the snapshot, then every diff ending after its id (also those captured before it)."""
    snapshot = json.loads(usdm.snapshots[0])
    last = snapshot["lastUpdateId"]
    sides: dict[str, dict[float, list[str]]] = {
        side: {float(p): [p, q] for p, q in snapshot[key]}
        for side, key in (("b", "bids"), ("a", "asks"))
    }
    for frame in usdm.frames["btcusdt@depth@0ms"]:
        diff = json.loads(frame)["data"]
        if diff["u"] <= last:
            continue
        for side in ("b", "a"):
            for price, qty in diff[side]:
                if float(qty) == 0:
                    sides[side].pop(float(price), None)
                else:
                    sides[side][float(price)] = [price, qty]
        last = diff["u"]
    return {
        "lastUpdateId": last,  # type: ignore[dict-item]
        "bids": [sides["b"][p] for p in sorted(sides["b"], reverse=True)],
        "asks": [sides["a"][p] for p in sorted(sides["a"])],
    }


def test_a_snapshot_captured_late_takes_the_diffs_received_before_it(
    usdm_capture: Path, tmp_path: Path
) -> None:
    # In the real capture the REST snapshot (line 55) arrives after two diffs that end past
    # its lastUpdateId; the venue's book must contain them, as the local-book procedure does.
    head = tmp_path / "head.txt"
    with gzip.open(usdm_capture, "rt") as lines:
        head.write_text("".join(itertools.islice(lines, 70)))
    with start_venue(head, speed="max") as venue:
        receive_all(venue.raw_url("btcusdt@depth@0ms"))
        book = venue.depth("BTCUSDT", limit=1000)
    reference = reference_book(read_capture_text(head))
    assert book["lastUpdateId"] == reference["lastUpdateId"]
    assert book["bids"] == reference["bids"][:1000]
    assert book["asks"] == reference["asks"][:1000]


def read_capture_text(path: Path) -> Expected:
    expected = Expected()
    for line in path.read_text().splitlines():
        _, frame = line.split(" ", 1)
        if frame.startswith('{"stream":'):
            stream = json.loads(frame)["stream"]
            expected.frames.setdefault(stream, []).append(frame)
            expected.ordered.append(frame)
        elif frame.startswith('{"lastUpdateId":'):
            expected.snapshots.append(frame)
    return expected


def test_rest_depth_book_ticker_and_time_follow_the_replay(
    usdm_capture: Path, usdm: Expected
) -> None:
    first_event = json.loads(usdm.ordered[0])["data"]["E"]
    last_event = max(json.loads(f)["data"].get("E", 0) for f in usdm.ordered)
    with start_venue(usdm_capture, speed="max") as venue:
        assert venue.request("GET", "/fapi/v1/time") == {"serverTime": first_event}
        before = venue.depth("BTCUSDT", limit=5)
        messages, _ = receive_all(venue.raw_url("btcusdt@depth@0ms"))
        after_time = venue.request("GET", "/fapi/v1/time")["serverTime"]
        status = venue.status()
        started = time.perf_counter()
        first = venue.depth("BTCUSDT", limit=1000)
        first_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        repeats = [venue.depth("BTCUSDT", limit=1000) for _ in range(20)]
        repeat_ms = (time.perf_counter() - started) * 1000 / 20
        ticker = venue.request("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"})
        every = venue.request("GET", "/fapi/v1/ticker/bookTicker")
        api_time = venue.request("GET", "/api/v3/time")["serverTime"]
        with pytest.raises(VenueError, match="-1121"):
            venue.request("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "ETHUSDT"})
        with pytest.raises(VenueError, match="-1130"):
            venue.depth("BTCUSDT", limit=7)
    print(
        f"depth limit=1000 after the whole replay: first {first_ms:.2f} ms, then {repeat_ms:.2f} ms"
    )
    assert after_time == last_event == api_time == status["server_time_ms"]
    assert status["lap"] == 0 and status["time_offset_ms"] == 0
    last_diff = json.loads(messages[-1])
    assert first["lastUpdateId"] == last_diff["u"] > before["lastUpdateId"]
    assert first["T"] == last_diff["T"] and first["E"] == after_time
    assert all(r == first for r in repeats)
    # The whole book equals Binance's procedure run on the capture: the snapshot, then every
    # diff ending after its id, including those received before the snapshot line.
    reference = reference_book(usdm)
    assert first["bids"] == reference["bids"][:1000]
    assert first["asks"] == reference["asks"][:1000]
    assert ticker == {
        "lastUpdateId": first["lastUpdateId"],
        "symbol": "BTCUSDT",
        "bidPrice": first["bids"][0][0],
        "bidQty": first["bids"][0][1],
        "askPrice": first["asks"][0][0],
        "askQty": first["asks"][0][1],
        "time": last_diff["T"],
    }
    assert every == [ticker]


class Upstream:
    """A tiny websocket server standing in for the paper venue's: it greets each client with
    the request path it received."""

    def __init__(self) -> None:
        self.paths: list[str] = []

        def handler(connection: ServerConnection) -> None:
            assert connection.request is not None
            self.paths.append(connection.request.path)
            connection.send(json.dumps({"path": connection.request.path}))
            for message in connection:
                connection.send(message)

        self.server = serve(handler, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


def test_user_data_websockets_are_spliced_to_the_upstream(
    usdm_capture: Path, upstream: Upstream
) -> None:
    with start_venue(usdm_capture, user_stream_upstream=f"127.0.0.1:{upstream.port}") as venue:
        for path in ("/private/ws?listenKey=K1", "/ws/K2", "/stream?streams=K3"):
            with open_client(f"{venue.url}{path}") as client:
                assert json.loads(client.recv(timeout=30)) == {"path": path}
                client.send("ping-through")
                assert client.recv(timeout=30) == "ping-through"
    assert upstream.paths == ["/private/ws?listenKey=K1", "/ws/K2", "/stream?streams=K3"]


def test_user_stream_upstream_set_at_run_time_loopback_only(
    usdm_capture: Path, upstream: Upstream
) -> None:
    with start_venue(usdm_capture) as venue:
        with pytest.raises(InvalidStatus) as refused:
            open_client(f"{venue.url}/private/ws?listenKey=K")
        assert refused.value.response.status_code == 400
        assert json.loads(refused.value.response.body or b"{}")["code"] == -1125
        with pytest.raises(VenueError, match="HTTP 400.*loopback"):
            venue.request("POST", "/_venue/user-stream", {"upstream": "10.1.2.3:80"})
        answer = venue.request(
            "POST", "/_venue/user-stream", {"upstream": f"127.0.0.1:{upstream.port}"}
        )
        assert answer == {"upstream": f"127.0.0.1:{upstream.port}"}
        with open_client(f"{venue.url}/private/stream?listenKey=K") as client:
            assert json.loads(client.recv(timeout=30)) == {"path": "/private/stream?listenKey=K"}
