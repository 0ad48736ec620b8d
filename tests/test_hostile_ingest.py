"""The real ``twinfeed-ingest`` against a hostile venue (tests/hostile_server.py), issue 13.

Each case sends well-formed frames around a hostile one and checks that the ingest keeps
heartbeating, counts the error, reconnects or retries where it should, stops on SIGTERM with
exit 0, and loses no well-formed frame: the ring's records equal a batch run over the ingest's
own capture, and every good frame sent is in that capture.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import twinfeed
from hostile_server import (
    HostileServer,
    Market,
    frame,
    frame_header,
    good_snapshot,
    http_response,
    snapshot_body,
)
from twinfeed import KIND, FeatureConfig
from twinfeed.live.feed import Feed
from twinfeed.live.ingest import IngestProcess, start_ingest
from twinfeed.research.features import compute_records

REPO = Path(__file__).resolve().parents[1]
BINARY = REPO / "target" / "release" / "twinfeed-ingest"


#: Ingests started by the running test, killed after it if a failed assertion left them running.
STARTED: list[IngestProcess] = []


@pytest.fixture(autouse=True)
def kill_leftover_ingests() -> Iterator[None]:
    yield
    while STARTED:
        process = STARTED.pop()
        if process.running():
            process.kill()
        process.wait()


@pytest.fixture
def ring_name(request: pytest.FixtureRequest) -> Iterator[str]:
    tag = f"pytest-{os.getpid()}-{request.node.name}"[:120]
    path = Path("/dev/shm") / f"twinfeed-{tag}"
    yield tag if Path("/dev/shm").is_dir() else str(path)
    path.unlink(missing_ok=True)


def live_config() -> FeatureConfig:
    return FeatureConfig.from_toml_str(
        "[ingest]\nheartbeat_ms = 20\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n"
        "ring_slots = 262144\nwrite_stall_ms = 1000\n",
        "hostile test config",
    )


class Run:
    """A running ingest and everything it put in its ring so far."""

    def __init__(self, server: HostileServer, ring: str, tmp_path: Path) -> None:
        if not BINARY.exists():
            pytest.fail(f"{BINARY} is missing: run make setup")
        self.tmp_path = tmp_path
        self.log = tmp_path / "ingest.log"
        with self.log.open("wb") as log:
            self.process: IngestProcess = start_ingest(
                binary=BINARY,
                ring=ring,
                capture_dir=tmp_path / "capture",
                config=live_config(),
                url=server.url,
                symbols=["btcusdt"],
                stats_file=tmp_path / "stats.json",
                stderr=log,
            )
        STARTED.append(self.process)
        self.process.wait_for_ring()
        self.feed = Feed.open(ring)
        self.chunks: list[bytes] = []
        self.lost = 0

    def poll(self) -> dict[str, int]:
        batch = self.feed.read_batch(1 << 16, 0.02)
        self.lost += batch.lost
        if len(batch.records):
            self.chunks.append(batch.records.tobytes())
        return self.feed.counters()

    def wait_for(self, what: str, condition: Callable[[dict[str, int]], bool]) -> dict[str, int]:
        """Polls the ring until ``condition(counters)``; fails (with the log) after 30 s."""
        deadline = time.monotonic() + 30
        while True:
            counters = self.poll()
            if condition(counters):
                return counters
            assert self.process.running(), f"ingest exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, (
                f"{what}: {counters}\n{self.log.read_text()[-2000:]}"
            )

    def records(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(b"".join(self.chunks), dtype=twinfeed.record_dtype())

    def wait_for_last_trade(self, market: Market, what: str = "the last good frame") -> None:
        """Waits for the record of the last trade ``market`` made (sent after everything else),
        so no good frame is still on its way when the ingest is stopped."""

        def seen(_counters: dict[str, int]) -> bool:
            if market.last_ms is None:
                return False
            stamp = market.last_ms * 1_000_000
            records = self.records()
            trades = records[records["kind"] == KIND["trade"]]
            return bool(np.any(trades["exchange_ns"] == stamp))

        self.wait_for(what, seen)

    def heartbeats_while(self, busy: Callable[[], bool]) -> int:
        """Heartbeats the ingest published while ``busy()`` held."""
        start = self.poll()["heartbeats"]
        deadline = time.monotonic() + 30
        while busy():
            self.poll()
            assert self.process.running(), self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the hostile phase did not end"
        return self.poll()["heartbeats"] - start

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def finish(self, market: Market | None = None) -> np.ndarray[Any, Any]:
        """SIGTERM (exit 0 expected), drain, and compare with a batch run of the capture."""
        assert self.process.stop(timeout=10) == 0, self.log.read_text()[-2000:]
        while True:
            batch = self.feed.read_batch(1 << 16, 0.2)
            self.lost += batch.lost
            if len(batch.records):
                self.chunks.append(batch.records.tobytes())
            elif self.feed.closed:
                break
        assert self.lost == 0
        live = b"".join(self.chunks)
        batch_bytes, _stats = compute_records(self.tmp_path / "capture")
        assert live == batch_bytes, "ring records differ from a batch run of the capture"
        if market is not None:
            captured = set()
            for path in sorted((self.tmp_path / "capture").iterdir()):
                for line in path.read_text().splitlines():
                    captured.add(line.split(" ", 1)[1])
            missing = [text for text in market.sent if text not in captured]
            assert not missing, f"{len(missing)} good frames lost, first {missing[0][:200]}"
        return np.frombuffer(live, dtype=twinfeed.record_dtype())

    def stats(self) -> dict[str, Any]:
        return dict(json.loads((self.tmp_path / "stats.json").read_text()))


def count(records: np.ndarray[Any, Any], kind: str) -> int:
    return int(np.count_nonzero(records["kind"] == KIND[kind]))


async def send_all(writer: asyncio.StreamWriter, texts: list[str]) -> None:
    for text in texts:
        writer.write(frame(text))
    await writer.drain()


async def wait_until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def read_and_drop(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(1 << 16):
            pass
    except ConnectionError:
        pass


def book_after_snapshot_case(
    rest_answers: list[bytes | None], tls: ssl.SSLContext | None = None
) -> tuple[HostileServer, Market]:
    """A venue whose REST answers are ``rest_answers`` in turn (None: a good snapshot, which
    is also the answer after the list); the websocket sends quotes and trades, and depth diffs
    once a good snapshot has gone out."""
    market = Market()
    served_good = asyncio.Event()
    state = {"good": False}

    async def rest(number: int, path: str, writer: asyncio.StreamWriter) -> None:
        answer = rest_answers[number - 1] if number <= len(rest_answers) else None
        if answer is None:
            await good_snapshot(number, path, writer)
            state["good"] = True
            served_good.set()
        else:
            writer.write(answer)
            await writer.drain()

    async def ws(_conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reading = asyncio.ensure_future(read_and_drop(reader))
        await send_all(writer, [market.quote(), market.trade()])
        await wait_until(lambda: state["good"])
        await asyncio.sleep(0.1)  # the snapshot line reaches the pipeline first
        await send_all(writer, market.mixed(60) + [market.last()])
        await reading

    return HostileServer(ws=ws, rest=rest, tls=tls), market


def test_chunk_size_overflow_is_counted_and_the_snapshot_retried(
    ring_name: str, tmp_path: Path
) -> None:
    """Finding 2: chunk size fffffffffffffffe panicked the snapshot task, never retried."""
    overflow = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"fffffffffffffffe\r\n" + snapshot_body() + b"\r\n0\r\n\r\n"
    )
    server, market = book_after_snapshot_case([overflow])
    with server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for_last_trade(market)
        counters = run.poll()
        assert counters["snapshot_errors"] >= 1 and counters["snapshots"] == 1
        assert counters["snapshot_requests"] >= 2
        records = run.finish(market)
    assert count(records, "book") > 0
    assert "failed (1 in a row" in run.log.read_text()


def test_wrong_shape_snapshots_are_retried_until_a_good_one(ring_name: str, tmp_path: Path) -> None:
    """Finding 8 (REST part): a snapshot of the wrong shape was passed on and never retried."""
    server, market = book_after_snapshot_case(
        [
            http_response(b'{"foo":1}'),
            http_response(b'{"lastUpdateId":"x","bids":[],"asks":[]}'),
            http_response(b'{"code":-1121,"msg":"Invalid symbol."}', "400 Bad Request"),
            http_response(b"[" * 50_000),
        ]
    )
    with server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for_last_trade(market)
        counters = run.poll()
        assert counters["snapshot_errors"] == 4 and counters["snapshots"] == 1
        records = run.finish(market)
    assert count(records, "book") > 0
    assert run.stats()["counters"]["decode_errors"] == 0  # refused before the pipeline
    assert len(server.rest_requests) == 5


def test_slow_30mb_chunked_snapshot_is_capped_and_heartbeats_continue(
    ring_name: str, tmp_path: Path
) -> None:
    """Finding 7 (REST part): 30 MB in 4 KB chunks took 567 MB and stalled heartbeats."""
    market = Market()
    state = {"downloading": False, "good": False}

    async def rest(number: int, path: str, writer: asyncio.StreamWriter) -> None:
        if number > 1:
            await good_snapshot(number, path, writer)
            state["good"] = True
            return
        state["downloading"] = True
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            head = b'{"lastUpdateId":1000,"bids":['
            writer.write(b"%x\r\n%s\r\n" % (len(head), head))
            level = b'["100.0","1.000"],' * 227  # ~4 KB
            for i in range((30 << 20) // len(level)):
                writer.write(b"%x\r\n%s\r\n" % (len(level), level))
                if i % 20 == 0:
                    await writer.drain()
                    await asyncio.sleep(0.01)
        finally:
            state["downloading"] = False

    async def ws(_conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reading = asyncio.ensure_future(read_and_drop(reader))
        await wait_until(lambda: state["good"])
        await asyncio.sleep(0.1)
        await send_all(writer, market.mixed(30) + [market.last()])
        await reading

    with HostileServer(ws=ws, rest=rest) as server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for("the download", lambda _c: state["downloading"])
        heartbeats = run.heartbeats_while(lambda: bool(state["downloading"]))
        run.wait_for_last_trade(market)
        counters = run.poll()
        assert counters["snapshot_errors"] >= 1 and counters["snapshots"] == 1
        # The body is refused at 8 MiB, i.e. after ~80 pauses of 10 ms: heartbeats every 20 ms
        # keep coming meanwhile (a stalled loop would publish none).
        assert heartbeats >= 10
        assert run.peak_rss_mb() < 200
        records = run.finish(market)
    assert count(records, "book") > 0
    assert "body larger than" in run.log.read_text()


def test_ping_flood_without_reading_neither_blocks_nor_ignores_sigterm(
    ring_name: str, tmp_path: Path
) -> None:
    """Finding 6: a server flooding pings and never reading blocked the ingest on a pong."""
    market = Market()
    state = {"flooding": 0}

    async def ws(conn: int, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Never reads (and a small receive buffer makes the pongs back up quickly).
        state["flooding"] = conn
        ping = frame(b"p" * 125, opcode=0x9)
        while True:
            writer.write(ping * 50 + frame(market.quote()))
            await writer.drain()
            await asyncio.sleep(0)

    with HostileServer(ws=ws, rcvbuf=4096) as server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for("the flood", lambda _c: state["flooding"] == 1)
        heartbeats = run.heartbeats_while(lambda: server.ws_connections < 2)
        # The connection that cannot be written to is dropped and reconnected ...
        assert heartbeats >= 10
        counters = run.wait_for("the reconnect", lambda c: c["reconnects"] >= 1)
        assert counters["disconnects"] >= 1
        # ... and SIGTERM is honoured in the middle of the second flood.
        run.wait_for("quotes of the second flood", lambda c: c["records"] > 0)
        records = run.finish()
    assert count(records, "heartbeat") > 0
    assert "has not read for" in run.log.read_text()
    assert (
        "shutdown (SIGTERM)"
        in (tmp_path / "capture").joinpath(sorted(os.listdir(tmp_path / "capture"))[-1]).read_text()
    )


def test_two_gib_frame_header_is_refused_without_allocating_it(
    ring_name: str, tmp_path: Path
) -> None:
    market = Market()

    async def ws(conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reading = asyncio.ensure_future(read_and_drop(reader))
        await send_all(writer, [market.quote(), market.trade() if conn == 1 else market.last()])
        if conn == 1:
            writer.write(frame_header(2 << 30) + b"x" * 65536)
            await writer.drain()
        await reading

    with HostileServer(ws=ws) as server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for_last_trade(market, "the trade of the second connection")
        assert run.poll()["reconnects"] == 1
        assert run.peak_rss_mb() < 200
        run.finish(market)
    assert "frame of 2147483648 bytes" in run.log.read_text()


def test_junk_symbol_flood_keeps_heartbeats_and_per_symbol_state_bounded(
    ring_name: str, tmp_path: Path
) -> None:
    """Finding 7 (live part): a flood of distinct symbols must not starve heartbeats, nor make
    the ingest fetch snapshots (or keep state) for symbols it did not subscribe to."""
    market = Market()
    state = {"flooding": False, "good": False}

    def junk(i: int, kind: str) -> str:
        symbol = f"J{i:06d}USDT"
        if kind == "depth":
            data: dict[str, Any] = {
                "e": "depthUpdate",
                "E": 1_700_000_000_000,
                "T": 1_700_000_000_000,
                "s": symbol,
                "U": 5,
                "u": 9,
                "pu": 1,
                "b": [["1.0", "1.0"]],
                "a": [],
            }
        else:
            data = {
                "e": "bookTicker",
                "u": 1,
                "s": symbol,
                "b": "1.0",
                "B": "1.0",
                "a": "2.0",
                "A": "1.0",
                "T": 1_700_000_000_000,
                "E": 1_700_000_000_000,
            }
        return json.dumps(
            {"stream": f"{symbol.lower()}@{kind}", "data": data}, separators=(",", ":")
        )

    async def rest(number: int, path: str, writer: asyncio.StreamWriter) -> None:
        await good_snapshot(number, path, writer)
        state["good"] = True

    async def ws(_conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reading = asyncio.ensure_future(read_and_drop(reader))
        await wait_until(lambda: state["good"])
        await asyncio.sleep(0.1)
        state["flooding"] = True
        for i in range(30_000):
            writer.write(frame(junk(i, "depth" if i % 2 else "bookTicker")))
            if i % 100 == 0:
                writer.write(frame(market.mixed(1)[0]))
                await writer.drain()
                await asyncio.sleep(0.002)
        await send_all(writer, market.mixed(30) + [market.last()])
        state["flooding"] = False
        await reading

    with HostileServer(ws=ws, rest=rest) as server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for("the flood", lambda _c: bool(state["flooding"]))
        heartbeats = run.heartbeats_while(lambda: bool(state["flooding"]))
        assert heartbeats >= 10
        run.wait_for_last_trade(market)
        run.finish(market)
    assert server.rest_requests
    assert all("symbol=BTCUSDT&" in path for path in server.rest_requests)


# The next cases depend on the core's fixes for findings 1, 8 and 9 (bounded JSON recursion,
# range checks at decode time); they fail until that branch is merged.


def hostile_frames_case(hostile: list[str]) -> tuple[HostileServer, Market]:
    """After a good snapshot: good frames, the hostile ones, more good frames."""
    market = Market()
    state = {"good": False}

    async def rest(number: int, path: str, writer: asyncio.StreamWriter) -> None:
        await good_snapshot(number, path, writer)
        state["good"] = True

    async def ws(_conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reading = asyncio.ensure_future(read_and_drop(reader))
        await wait_until(lambda: state["good"])
        await asyncio.sleep(0.1)
        await send_all(writer, market.mixed(30))
        for text in hostile:
            await send_all(writer, [text])
            await send_all(writer, market.mixed(3))
        await send_all(writer, market.mixed(30) + [market.last()])
        await reading

    return HostileServer(ws=ws, rest=rest), market


def test_deeply_nested_frames_are_counted_not_fatal(ring_name: str, tmp_path: Path) -> None:
    """Finding 1, live: 37,500 levels of nesting overflowed the ingest's stack."""
    deep = "[" * 40_000 + "]" * 40_000
    trade = Market().trade()
    hostile = [
        trade[:-2] + ',"x":' + deep + "}}",  # an extra key in the payload
        '{"stream":"btcusdt@trade","data":' + "[" * 40_000 + "}",  # unbalanced
        "[" * 40_000,
    ]
    server, market = hostile_frames_case(hostile)
    with server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for_last_trade(market)
        assert run.poll()["decode_errors"] >= len(hostile)
        records = run.finish(market)
    assert count(records, "heartbeat") > 0


def test_absurd_values_are_counted_and_the_book_keeps_going(ring_name: str, tmp_path: Path) -> None:
    """Findings 8 and 9, live: u = 2^63 froze the book; E = i64::MAX made bars vanish; a
    negative quantity corrupted volume. Each must be a counted decode error, never a record."""
    ms = 1_700_000_000_000

    def depth(u: int) -> str:
        return json.dumps(
            {
                "stream": "btcusdt@depth@100ms",
                "data": {
                    "e": "depthUpdate",
                    "E": ms,
                    "T": ms,
                    "s": "BTCUSDT",
                    "U": u - 1,
                    "u": u,
                    "pu": u - 2,
                    "b": [["99.0", "1.0"]],
                    "a": [],
                },
            },
            separators=(",", ":"),
        )

    def trade(price: str, qty: str, event_ms: int) -> str:
        return json.dumps(
            {
                "stream": "btcusdt@trade",
                "data": {
                    "e": "trade",
                    "E": event_ms,
                    "T": event_ms,
                    "s": "BTCUSDT",
                    "t": 1,
                    "p": price,
                    "q": qty,
                    "X": "MARKET",
                    "m": False,
                },
            },
            separators=(",", ":"),
        )

    hostile = [
        depth(2**63),
        trade("100.0", "0.010", 2**63 - 1),
        trade("100.0", "-5.000", ms),
    ]
    server, market = hostile_frames_case(hostile)
    with server:
        run = Run(server, ring_name, tmp_path)
        run.wait_for_last_trade(market)
        assert run.poll()["decode_errors"] >= len(hostile)
        records = run.finish(market)
    # Depth diffs after the hostile ones still apply: the book did not freeze.
    books = records[records["kind"] == KIND["book"]]
    assert len(books) >= 20
    # No record carries the absurd stamp.
    assert int(records["exchange_ns"].max()) < 2 * ms * 1_000_000


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[ingest]\nring_slots = 134217728\n", "ingest.ring_slots"),
        ("[ingest]\nheartbeat_ms = 9223372036854775807\n", "ingest.heartbeat_ms"),
        ("[ingest]\nrotate_bytes = 0\n", "ingest.rotate_bytes"),
        ("[ingest]\nsnapshot_limit = 0\n", "ingest.snapshot_limit"),
        ("[ingest]\nsnapshot_limit = 7\n", "ingest.snapshot_limit"),
        ("[ingest]\ndepth_speed_ms = 1000\n", "ingest.depth_speed_ms"),
        ('[ingest]\nmarket = "spot"\ndepth_speed_ms = 0\n', "ingest.depth_speed_ms"),
        ("[filter]\nstreams = []\n", "filter.streams"),
        ("[downsample]\nbar_ms = 9300000000000\n", "downsample.bar_ms"),
        ("[features]\nflow_window_ms = 0\n", "features.flow_window_ms"),
        ("[ingest]\nbackoff_initial_ms = 900\nbackoff_max_ms = 100\n", "ingest.backoff_max_ms"),
    ],
)
def test_absurd_config_values_are_refused_naming_file_and_field(
    toml: str, field: str, tmp_path: Path
) -> None:
    """Finding 12: these were accepted (a 2^27-slot ring filled 13 GB of /dev/shm)."""
    path = tmp_path / "hostile.toml"
    path.write_text(toml)
    with pytest.raises(twinfeed.ConfigError) as error:
        FeatureConfig.from_toml(path)
    assert str(path) in str(error.value) and field in str(error.value)


def test_the_ingest_refuses_an_absurd_config_before_touching_shm(
    ring_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text("[ingest]\nring_slots = 134217728\n")
    process = start_ingest(
        binary=BINARY,
        ring=ring_name,
        capture_dir=tmp_path / "capture",
        config=path,
        url="ws://127.0.0.1:9",
        symbols=["btcusdt"],
        stderr=subprocess.PIPE,
    )
    STARTED.append(process)
    _, stderr = process.process.communicate(timeout=30)
    assert process.wait() != 0
    message = stderr.decode()
    assert str(path) in message and "ingest.ring_slots" in message
    assert not (Path("/dev/shm") / f"twinfeed-{ring_name}").exists()


def test_sigterm_while_a_large_ring_is_created_is_an_orderly_stop(
    ring_name: str, tmp_path: Path
) -> None:
    """Finding 12: SIGTERM while a huge ring was being populated left its temporary file
    (26.8 GB) behind. Signals are now caught before the ring is created."""
    path = tmp_path / "big.toml"
    path.write_text("[ingest]\nring_slots = 2097152\n")  # 400 MB, populated up front
    process = start_ingest(
        binary=BINARY,
        ring=ring_name,
        capture_dir=tmp_path / "capture",
        config=path,
        url="ws://127.0.0.1:9",
        symbols=["btcusdt"],
        stderr=subprocess.DEVNULL,
    )
    STARTED.append(process)
    ring = Path("/dev/shm") / f"twinfeed-{ring_name}"
    temporary = ring.with_name(f"{ring.name}.tmp-{process.pid}")
    while not temporary.exists() and not ring.exists():
        assert process.running()
        time.sleep(0.001)
    assert process.stop(timeout=30) == 0
    assert not temporary.exists()
