"""The live path with real processes: twinfeed-ingest → shared-memory ring → Feed.

Parity: the records read from the ring equal a batch run over the capture that same ingest
wrote, byte for byte (replay mode over the real USD-M capture, and live mode against a small
websocket venue in this file that serves real frames). Overrun: a reader that stops reading
loses exactly ``written - capacity`` records, and is told so. Liveness: a killed ingest shows
as a dead producer.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import twinfeed
from twinfeed import FeatureConfig, RingError
from twinfeed.capture import capture_files
from twinfeed.live.feed import Feed, FeedOverrun
from twinfeed.live.ingest import IngestProcess, start_ingest
from twinfeed.records import KIND
from twinfeed.research import compute_records

REPO = Path(__file__).resolve().parents[1]
BINARY = REPO / "target" / "release" / "twinfeed-ingest"
RECORD_SIZE = twinfeed.RECORD_SIZE


@pytest.fixture(scope="session")
def ingest_binary() -> Path:
    """The release binary; built once if missing (never rebuilt if present)."""
    if not BINARY.exists():
        if shutil.which("cargo") is None:
            pytest.fail(f"{BINARY} is missing and cargo is not on PATH to build it")
        subprocess.run(
            ["cargo", "build", "--release", "-p", "twinfeed-ingest"], cwd=REPO, check=True
        )
    return BINARY


@pytest.fixture
def ring_name(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A unique ring under /dev/shm (an absolute temp path where there is none), removed after."""
    tag = f"pytest-{os.getpid()}-{request.node.name}"[:120]
    if Path("/dev/shm").is_dir():
        path = Path("/dev/shm") / f"twinfeed-{tag}"
        yield tag
    else:
        path = tmp_path / "ring"
        yield str(path)
    path.unlink(missing_ok=True)


def config(**ingest: Any) -> FeatureConfig:
    lines = ["[ingest]"] + [f"{key} = {value!r}" for key, value in ingest.items()]
    return FeatureConfig.from_toml_str("\n".join(lines).replace("'", '"'), "test config")


def drain(feed: Feed, timeout: float = 60.0) -> tuple[bytes, int]:
    """Every record until the ingest closes the ring; returns (bytes, records lost)."""
    chunks = []
    lost = 0
    deadline = time.monotonic() + timeout
    while True:
        batch = feed.read_batch(1 << 16, 0.2)
        lost += batch.lost
        # A read-only array of the record dtype, whatever its length.
        assert batch.records.dtype == twinfeed.record_dtype()
        assert not batch.records.flags.writeable
        if len(batch.records):
            chunks.append(batch.records.tobytes())
        elif feed.closed:
            return b"".join(chunks), lost
        assert time.monotonic() < deadline, "the ingest did not close the ring in time"


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_replay_ring_equals_batch_run_over_the_capture_it_wrote(
    usdm_capture: Path, ingest_binary: Path, ring_name: str, tmp_path: Path, compression: str
) -> None:
    capture_dir = tmp_path / "capture"
    stats_file = tmp_path / "stats.json"
    # zstd: rotated every 512 KiB on disk, so the batch run reads several compressed files.
    rotate = {"zstd": {"rotate_bytes": 512 << 10}}.get(compression, {})
    process = start_ingest(
        binary=ingest_binary,
        ring=ring_name,
        capture_dir=capture_dir,
        config=config(ring_slots=1 << 18, capture_compression=compression, **rotate),
        replay=usdm_capture,
        stats_file=stats_file,
    )
    process.wait_for_ring()
    feed = Feed.open(ring_name, FeatureConfig.default().fingerprint)
    live, lost = drain(feed)
    assert process.wait(60) == 0
    assert lost == 0 and feed.overruns == 0

    files = capture_files(capture_dir)
    if compression == "zstd":
        assert len(files) > 1 and all(f.name.endswith(".txt.zst") for f in files), files
        assert all(f.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" for f in files)
        # The USD-M capture is 27.8 MB of plain text.
        assert sum(f.stat().st_size for f in files) < 5_000_000
    else:
        assert [f.name for f in files] == ["capture-000000.txt"]
    batch, stats = compute_records(capture_dir)
    assert len(live) == len(batch) > 90_000 * RECORD_SIZE
    assert live == batch, "ring records differ from the batch run over the ingest's capture"
    assert stats["lines"] == 93_954 and stats["decode_errors"] == 0
    records = np.frombuffer(live, dtype=twinfeed.record_dtype())
    assert {int(k) for k in np.unique(records["kind"])} >= {KIND["quote"], KIND["trade"]}

    counters = feed.counters()
    assert counters["lines"] == 93_954
    assert counters["records"] == len(records)
    assert counters["capture_lines"] == 93_954
    written = process.stats()
    assert written is not None and written["counters"]["records"] == len(records)
    health = feed.health()
    assert health.producer_closed and not health.producer_alive
    assert health.records_read == len(records) and health.overruns == 0


def test_a_reader_that_stops_reading_loses_exactly_the_overrun(
    usdm_capture: Path, ingest_binary: Path, ring_name: str, tmp_path: Path
) -> None:
    # The replay reads a FIFO, so the reader can open the ring before any record exists.
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    capture_dir = tmp_path / "capture"
    process = start_ingest(
        binary=ingest_binary,
        ring=ring_name,
        capture_dir=capture_dir,
        config=config(ring_slots=1000),  # rounded up to 1024
        replay=fifo,
    )
    process.wait_for_ring()
    feed = Feed.open(ring_name, on_overrun="raise")
    assert feed.capacity == 1024 and feed.header()["cursor"] == 0
    with open(fifo, "wb") as sink, gzip.open(usdm_capture, "rb") as source:
        shutil.copyfileobj(source, sink)
    assert process.wait(60) == 0

    batch, _ = compute_records(capture_dir)
    total = len(batch) // RECORD_SIZE
    assert total > 10 * feed.capacity
    with pytest.raises(FeedOverrun) as raised:
        feed.read()
    assert raised.value.lost == total - 1024
    kept = feed.read(1 << 16, 0)  # the batch held back by the raise comes next
    rest, lost = drain(feed)
    assert lost == 0
    assert kept.tobytes() + rest == batch[-1024 * RECORD_SIZE :]
    assert feed.overruns == total - 1024 and feed.overrun_events == 1
    assert feed.health().overruns == total - 1024


def test_fingerprint_mismatch_names_both_values(
    usdm_capture: Path, ingest_binary: Path, ring_name: str, tmp_path: Path
) -> None:
    process = start_ingest(
        binary=ingest_binary,
        ring=ring_name,
        capture_dir=tmp_path / "capture",
        config=config(ring_slots=64),
        replay=usdm_capture,
    )
    process.wait_for_ring()
    assert process.wait(60) == 0
    wrong = "0" * 64
    with pytest.raises(RingError, match="fingerprint") as raised:
        Feed.open(ring_name, wrong)
    assert wrong in str(raised.value)
    assert FeatureConfig.default().fingerprint in str(raised.value)
    with pytest.raises(RingError, match="no such ring"):
        Feed.open(ring_name + "-absent")


def test_version_prints_profile_and_fingerprint(ingest_binary: Path, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[features]\nbook_levels = 3\n")
    out = subprocess.run(
        [str(ingest_binary), "--version", "--config", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "release build" in out
    assert FeatureConfig.from_toml(str(path)).fingerprint in out


# -- live mode against a small websocket venue ----------------------------------------------


class Venue:
    """A loopback Binance lookalike: serves real capture frames on /stream and the capture's
    REST snapshot on /fapi/v1/depth. Each connection gets the next slice of frames; with
    ``drop_first``, the first connection is closed after its slice (to exercise reconnects),
    once ``may_drop`` is set (the test sets it when the ingest has applied the snapshot, so the
    book is valid when the connection drops and the disconnect gap is deterministic)."""

    def __init__(self, capture: Path, frames: int, drop_first: bool = False) -> None:
        from websockets.sync.server import serve

        self.frames: list[str] = []
        self.snapshot = ""
        with gzip.open(capture, "rt") as lines:
            for line in lines:
                frame = line.rstrip("\n").split(" ", 1)[1]
                if frame.startswith('{"lastUpdateId"'):
                    self.snapshot = frame
                elif len(self.frames) < frames:
                    self.frames.append(frame)
                if self.snapshot and len(self.frames) >= frames:
                    break
        self.drop_first = drop_first
        self.may_drop = threading.Event()
        if not drop_first:
            self.may_drop.set()
        self.paths: list[str] = []
        self.rest_requests: list[str] = []
        self.stop = threading.Event()
        self.server = serve(self._handle, "127.0.0.1", 0, process_request=self._rest)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _rest(self, connection: Any, request: Any) -> Any:
        if request.path.startswith("/fapi/v1/depth"):
            self.rest_requests.append(request.path)
            return connection.respond(200, self.snapshot)
        return None

    def _handle(self, connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        index = len(self.paths)
        self.paths.append(connection.request.path)
        half = len(self.frames) // 2
        if not self.drop_first:
            frames = self.frames
        elif index == 0:
            frames = self.frames[:half]
        else:
            frames = self.frames[half:]
        try:
            for frame in frames:
                connection.send(frame)
            if self.drop_first and index == 0:
                while not self.may_drop.wait(0.01) and not self.stop.is_set():
                    pass
                connection.close()
                return
            while not self.stop.wait(0.05):
                pass
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def venue(usdm_capture: Path) -> Iterator[Venue]:
    server = Venue(usdm_capture, frames=2000)
    yield server
    server.close()


def read_until(feed: Feed, predicate: Any, timeout: float = 20.0) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        records = feed.read(1 << 16, 0.1)
        if len(records):
            chunks.append(records.tobytes())
        data = b"".join(chunks)
        if predicate(np.frombuffer(data, dtype=twinfeed.record_dtype())):
            return data
        assert time.monotonic() < deadline, "condition not reached in time"


def live_config(**ingest: Any) -> FeatureConfig:
    base: dict[str, Any] = {
        "heartbeat_ms": 20,
        "backoff_initial_ms": 50,
        "backoff_max_ms": 200,
        "ring_slots": 1 << 16,
    }
    base.update(ingest)
    return config(**base)


def start_live(
    venue: Venue, ingest_binary: Path, ring_name: str, tmp_path: Path, **ingest: Any
) -> IngestProcess:
    with (tmp_path / "ingest.log").open("wb") as log:
        process = start_ingest(
            binary=ingest_binary,
            ring=ring_name,
            capture_dir=tmp_path / "capture",
            config=live_config(**ingest),
            url=venue.url,
            symbols=["btcusdt"],
            stats_file=tmp_path / "stats.json",
            stderr=log,
        )
    process.wait_for_ring()
    return process


def test_live_ingest_parity_heartbeats_and_clean_stop(
    venue: Venue, ingest_binary: Path, ring_name: str, tmp_path: Path
) -> None:
    process = start_live(venue, ingest_binary, ring_name, tmp_path)
    feed = Feed.open(ring_name)
    kinds = KIND

    def ready(records: np.ndarray[Any, Any]) -> bool:
        return (
            int(np.count_nonzero(records["kind"] == kinds["quote"])) > 100
            and int(np.count_nonzero(records["kind"] == kinds["book"])) > 0
            and int(np.count_nonzero(records["kind"] == kinds["heartbeat"])) >= 3
        )

    first = read_until(feed, ready)
    health = feed.health()
    assert health.producer_alive and health.connected and not health.producer_closed
    assert health.heartbeat_age_s is not None and health.heartbeat_age_s < 5
    assert not health.is_stale(max_heartbeat_age_s=5)
    assert venue.paths[0].startswith("/stream?streams=btcusdt@bookTicker/btcusdt@trade/")
    # No ingest.depth_speed_ms: the venue's documented default diff-depth stream.
    assert "btcusdt@depth" in venue.paths[0].split("streams=", 1)[1].split("/")
    assert venue.rest_requests[0] == "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"

    assert process.stop() == 0
    rest, lost = drain(feed)
    assert lost == 0
    batch, stats = compute_records(tmp_path / "capture")
    assert first + rest == batch
    assert stats["decode_errors"] == 0 and stats["snapshots"] == 1
    records = np.frombuffer(batch, dtype=twinfeed.record_dtype())
    status = records[records["kind"] == kinds["status"]]
    # connected, subscribed, then disconnected on SIGTERM
    events = twinfeed.StatusEvent
    assert list(status["flags"]) == [events.CONNECTED, events.SUBSCRIBED, events.DISCONNECTED]
    capture_text = "".join(p.read_text() for p in sorted((tmp_path / "capture").iterdir()))
    assert (
        capture_text.rstrip("\n")
        .rsplit("\n", 1)[1]
        .split(" ", 1)[1]
        .startswith('{"twinfeed":"disconnected","reason":"shutdown (SIGTERM)"')
    )
    assert '{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{"lastUpdateId"' in capture_text
    assert feed.health().producer_closed


@pytest.mark.parametrize(
    ("speed_ms", "stream"), [(0, "btcusdt@depth@0ms"), (500, "btcusdt@depth@500ms")]
)
def test_the_ingest_subscribes_the_configured_depth_speed(
    venue: Venue, ingest_binary: Path, ring_name: str, tmp_path: Path, speed_ms: int, stream: str
) -> None:
    """Issue #18: `@depth@100ms` was hard-coded, so a venue's `@depth@0ms` could not be had."""
    process = start_live(venue, ingest_binary, ring_name, tmp_path, depth_speed_ms=speed_ms)
    feed = Feed.open(ring_name)
    read_until(feed, lambda records: int(np.count_nonzero(records["kind"] == KIND["book"])) > 0)
    assert process.stop() == 0
    assert stream in venue.paths[0].split("streams=", 1)[1].split("/")


def test_reconnects_after_the_venue_drops_the_connection(
    usdm_capture: Path, ingest_binary: Path, ring_name: str, tmp_path: Path
) -> None:
    venue = Venue(usdm_capture, frames=2000, drop_first=True)
    try:
        process = start_live(venue, ingest_binary, ring_name, tmp_path)
        feed = Feed.open(ring_name)
        deadline = time.monotonic() + 20
        while feed.counters()["reconnects"] < 1 or feed.counters()["snapshots"] < 2:
            assert time.monotonic() < deadline, feed.counters()
            feed.read(1 << 16, 0.05)
            if feed.counters()["snapshots"] >= 1:
                venue.may_drop.set()
        assert process.stop() == 0
    finally:
        venue.close()
    data, lost = drain(feed)
    assert lost == 0
    batch, _ = compute_records(tmp_path / "capture")
    records = np.frombuffer(batch, dtype=twinfeed.record_dtype())
    assert len(venue.paths) >= 2 and len(venue.rest_requests) >= 2
    status = list(records[records["kind"] == KIND["status"]]["flags"])
    events = twinfeed.StatusEvent
    assert status[:4] == [
        events.CONNECTED,
        events.SUBSCRIBED,
        events.DISCONNECTED,
        events.CONNECTED,
    ]
    gaps = records[records["kind"] == KIND["gap"]]
    assert len(gaps) >= 1 and twinfeed.GapReason.DISCONNECT in set(gaps["flags"].tolist())
    assert feed.records_read == len(records)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_a_killed_ingest_shows_as_a_dead_producer(
    venue: Venue, ingest_binary: Path, ring_name: str, tmp_path: Path, compression: str
) -> None:
    process = start_live(venue, ingest_binary, ring_name, tmp_path, capture_compression=compression)
    feed = Feed.open(ring_name)
    first = read_until(feed, lambda r: int(np.count_nonzero(r["kind"] == KIND["heartbeat"])) >= 2)
    assert feed.health().producer_alive
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    health = feed.health()
    assert not health.producer_alive and not health.producer_closed
    assert health.is_stale(max_heartbeat_age_s=60)
    # Records are published as each frame arrives and lines reach the file from the capture
    # thread, so at a kill the ring and the capture agree up to where the shorter one ends:
    # lines still in memory were published but not written, never the other way round beyond
    # them.
    data = first
    while len(batch := feed.read_batch(1 << 16, 0.05).records):
        data += batch.tobytes()
    with pytest.raises(RingError, match="died"):
        list(feed)
    assert feed.overruns == 0
    # Compressed, every chunk handed to the disk is a whole zstd frame: what was written before
    # the kill reads back in full.
    captured, stats = compute_records(tmp_path / "capture")
    common = min(len(captured), len(data))
    assert len(data) > 0 and common > 0 and captured[:common] == data[:common]
    assert stats["decode_errors"] == 0
