"""``twinfeed-venue`` as a real process on loopback, replaying the real captures.

Clients are ``websockets`` (sync) and urllib, as a user's code would be. No timing assertions:
the venue runs at ``--speed max`` unless a test is about the clock.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from twinfeed.live.venue import VenueError, VenueFaults, VenueProcess, find_binary, start_venue
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.sync.client import ClientConnection, connect

REPO = Path(__file__).resolve().parents[1]
BINARY = REPO / "target" / "release" / "twinfeed-venue"


@pytest.fixture(scope="session", autouse=True)
def venue_binary() -> Path:
    """Builds the venue once if no binary is there (``make setup`` normally has)."""
    if os.environ.get("TWINFEED_BIN_DIR") or BINARY.exists():
        return BINARY
    subprocess.run(
        ["cargo", "build", "--release", "-p", "twinfeed-venue"], cwd=REPO, check=True, timeout=900
    )
    return BINARY


@dataclass
class Expected:
    """A capture read the simple way: frames by stream, in capture order."""

    ordered: list[str] = field(default_factory=list)
    frames: dict[str, list[str]] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)
    last_local_ns: int = 0
    lines: int = 0

    def of(self, *streams: str) -> list[str]:
        """The frames of ``streams``, interleaved as captured."""
        wanted = set(streams)
        return [frame for frame in self.ordered if json.loads(frame)["stream"] in wanted]


def read_capture(path: Path) -> Expected:
    expected = Expected()
    with gzip.open(path, "rt") as lines:
        for line in lines:
            stamp, frame = line.rstrip("\n").split(" ", 1)
            expected.lines += 1
            expected.last_local_ns = int(stamp)
            if frame.startswith('{"stream":'):
                stream = json.loads(frame)["stream"]
                expected.frames.setdefault(stream, []).append(frame)
                expected.ordered.append(frame)
            elif frame.startswith('{"lastUpdateId":'):
                expected.snapshots.append(frame)
    return expected


def bare_data(frame: str) -> str:
    """The captured ``data`` member, byte for byte (envelopes are ``{"stream":..,"data":..}``)."""
    return frame[frame.index(',"data":') + len(',"data":') : -1]


@pytest.fixture(scope="session")
def usdm(usdm_capture: Path) -> Expected:
    return read_capture(usdm_capture)


@pytest.fixture(scope="session")
def spot(spot_capture: Path) -> Expected:
    return read_capture(spot_capture)


@pytest.fixture
def venue(usdm_capture: Path) -> Iterator[VenueProcess]:
    with start_venue(usdm_capture, speed="max") as process:
        yield process


def open_client(url: str, close_timeout: float = 10) -> ClientConnection:
    """A websockets client. Leaving it mid-stream waits ``close_timeout``: websockets stops
    reading when its queue is full, so it never sees the venue's answer to its close."""
    return connect(
        url,
        max_size=None,
        compression=None,
        proxy=None,
        open_timeout=30,
        close_timeout=close_timeout,
    )


def receive_all(url: str, limit: int | None = None) -> tuple[list[str], ConnectionClosed | None]:
    """Messages until the venue closes (or ``limit``), and how it closed."""
    messages: list[str] = []
    with open_client(url, close_timeout=0.2 if limit else 10) as client:
        try:
            while limit is None or len(messages) < limit:
                message = client.recv(timeout=60)
                assert isinstance(message, str)
                messages.append(message)
        except ConnectionClosed as closed:
            return messages, closed
    return messages, None


def test_combined_streams_are_the_captured_frames_in_order(
    venue: VenueProcess, usdm: Expected
) -> None:
    streams = ("btcusdt@bookTicker", "btcusdt@trade")
    messages, closed = receive_all(venue.stream_url(*streams))
    assert isinstance(closed, ConnectionClosedOK)
    assert closed.rcvd is not None and closed.rcvd.code == 1000
    expected = usdm.of(*streams)
    assert len(expected) == 66_089 + 21_313
    assert messages == expected


def merged_depth(frames: list[str], window_ms: int, name: str) -> list[dict[str, object]]:
    """Binance's slower diff-depth stream from a finer one, computed the simple way: per window
    of event time, first ``U`` and ``pu``, last ``u``/``E``/``T``, the last quantity per price."""
    out: list[dict[str, object]] = []
    group: list[dict[str, object]] = []

    def flush() -> None:
        first, last = group[0], group[-1]
        data = dict(last)
        data["U"], data["pu"] = first["U"], first["pu"]
        for side in ("b", "a"):
            levels: dict[float, list[str]] = {}
            for diff in group:
                for price, quantity in diff[side]:  # type: ignore[attr-defined]
                    levels[float(price)] = [price, quantity]
            data[side] = [levels[p] for p in sorted(levels)]
        out.append({"stream": name, "data": data})

    for frame in frames:
        data = json.loads(frame)["data"]
        if group and data["E"] // window_ms != group[0]["E"] // window_ms:  # type: ignore[operator]
            flush()
            group = []
        group.append(data)
    if group:
        flush()
    return out


@pytest.mark.parametrize(
    ("name", "window_ms"), [("btcusdt@depth@100ms", 100), ("btcusdt@depth", 250)]
)
def test_slower_depth_is_merged_from_the_captured_stream_and_named_as_subscribed(
    venue: VenueProcess, usdm: Expected, name: str, window_ms: int
) -> None:
    # The capture has btcusdt@depth@0ms: @100ms and @depth (250 ms) merge its diffs per window.
    messages, _ = receive_all(venue.stream_url(name))
    expected = merged_depth(usdm.frames["btcusdt@depth@0ms"], window_ms, name)
    assert 0 < len(expected) < len(usdm.frames["btcusdt@depth@0ms"])
    assert [json.loads(m) for m in messages] == expected
    # Each merged diff continues the previous one, as Binance's procedure checks.
    for previous, current in zip(expected, expected[1:], strict=False):
        assert current["data"]["pu"] == previous["data"]["u"]  # type: ignore[index]


def test_depth_at_the_captured_speed_is_the_captured_stream(
    venue: VenueProcess, usdm: Expected
) -> None:
    messages, _ = receive_all(venue.stream_url("btcusdt@depth@0ms"))
    assert messages == usdm.frames["btcusdt@depth@0ms"]


def test_depth_as_captured_serves_the_captured_diffs_at_any_speed(
    usdm_capture: Path, usdm: Expected
) -> None:
    with start_venue(usdm_capture, speed="max", depth_as_captured=True) as venue:
        messages, _ = receive_all(venue.stream_url("btcusdt@depth@100ms"))
    captured = usdm.frames["btcusdt@depth@0ms"]
    assert [json.loads(m) for m in messages] == [
        {"stream": "btcusdt@depth@100ms", "data": json.loads(f)["data"]} for f in captured
    ]


def test_raw_stream_sends_bare_data_objects(venue: VenueProcess, usdm: Expected) -> None:
    messages, closed = receive_all(venue.raw_url("btcusdt@trade"))
    assert isinstance(closed, ConnectionClosedOK)
    assert messages == [bare_data(frame) for frame in usdm.frames["btcusdt@trade"]]
    assert json.loads(messages[0])["e"] == "trade"


def test_live_subscribe_method(venue: VenueProcess, usdm: Expected) -> None:
    with open_client(venue.raw_url(), close_timeout=0.2) as client:
        request = {"method": "SUBSCRIBE", "params": ["btcusdt@depth@0ms"], "id": 7}
        client.send(json.dumps(request))
        assert json.loads(client.recv(timeout=30)) == {"result": None, "id": 7}
        first = [client.recv(timeout=30) for _ in range(50)]
        client.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "x"}))
        reply = None
        for _ in range(10_000):
            message = json.loads(client.recv(timeout=30))
            if message.get("id") == "x":
                reply = message
                break
    assert first == [bare_data(f) for f in usdm.frames["btcusdt@depth@0ms"][:50]]
    assert reply == {"result": ["btcusdt@depth@0ms"], "id": "x"}


def test_rest_depth_returns_the_snapshot(venue: VenueProcess, usdm: Expected) -> None:
    snapshot = json.loads(usdm.snapshots[0])
    # Before the replay starts the book is the captured snapshot (the venue's E is its clock).
    assert {k: v for k, v in venue.depth("BTCUSDT", limit=1000).items() if k != "E"} == {
        k: v for k, v in snapshot.items() if k != "E"
    }
    with pytest.raises(VenueError, match="-1130"):
        venue.depth("BTCUSDT", limit=5000)
    five = venue.depth("btcusdt", limit=5)
    assert five["lastUpdateId"] == snapshot["lastUpdateId"]
    assert five["bids"] == snapshot["bids"][:5]
    assert five["asks"] == snapshot["asks"][:5]
    assert len(venue.depth("BTCUSDT")["bids"]) == min(500, len(snapshot["bids"]))
    assert venue.request("GET", "/fapi/v1/ping") == {}
    assert "serverTime" in venue.request("GET", "/fapi/v1/time")
    with pytest.raises(VenueError, match="-1121"):
        venue.depth("ETHUSDT")


def test_drop_after_resets_and_a_reconnect_resumes(usdm_capture: Path, usdm: Expected) -> None:
    stream = "btcusdt@bookTicker"
    expected = usdm.of(stream)
    with start_venue(usdm_capture, speed="max", faults=VenueFaults(drop_after=100)) as venue:
        messages, closed = receive_all(venue.stream_url(stream))
        assert messages == expected[:100]
        assert isinstance(closed, ConnectionClosedError)
        assert closed.rcvd is None, "an abrupt drop, no close frame"
        # The fault was one-shot; the next connection resumes at the shared replay position.
        resumed, closed = receive_all(venue.stream_url(stream))
        assert isinstance(closed, ConnectionClosedOK)
        assert resumed == expected[100:]


def test_skip_depth_creates_a_sequence_gap(usdm_capture: Path, usdm: Expected) -> None:
    expected = usdm.frames["btcusdt@depth@0ms"]
    with start_venue(usdm_capture, speed="max", faults={"skip_depth": 10}) as venue:
        messages, _ = receive_all(venue.stream_url("btcusdt@depth@0ms"))
    assert messages == expected[:9] + expected[10:]
    updates = [json.loads(m)["data"] for m in messages]
    gaps = [i for i in range(1, len(updates)) if updates[i]["pu"] != updates[i - 1]["u"]]
    assert gaps == [9]


def test_malformed_and_stall_faults(usdm_capture: Path, usdm: Expected) -> None:
    expected = usdm.frames["btcusdt@trade"]
    faults = VenueFaults(malformed_every=1000, stall_after=5, stall_ms=200)
    with start_venue(usdm_capture, speed="max", faults=faults) as venue:
        messages, _ = receive_all(venue.stream_url("btcusdt@trade"))
    valid, malformed = [], []
    for message in messages:
        try:
            json.loads(message)
            valid.append(message)
        except json.JSONDecodeError:
            malformed.append(message)
    assert valid == expected
    assert len(malformed) == (len(expected) - 1) // 1000
    assert messages[1000] == malformed[0]


def test_control_endpoint_arms_faults_and_disconnects(usdm_capture: Path) -> None:
    with start_venue(usdm_capture, speed="max") as venue:
        assert venue.set_faults({"drop_after": 3})["drop_after"] == 3
        messages, closed = receive_all(venue.raw_url("btcusdt@trade"))
        assert len(messages) == 3 and isinstance(closed, ConnectionClosedError)
        with pytest.raises(VenueError, match="unknown fault"):
            venue.request("POST", "/_venue/fault", {"explode": "1"})
        venue.set_faults(None)
    with (
        start_venue(usdm_capture, speed=1) as venue,
        open_client(venue.raw_url("btcusdt@trade")) as client,
    ):
        client.recv(timeout=30)
        venue.disconnect_all()
        with pytest.raises(ConnectionClosedError):
            while True:
                client.recv(timeout=30)


def test_loop_starts_again(usdm_capture: Path, usdm: Expected) -> None:
    expected = [bare_data(f) for f in usdm.frames["btcusdt@depth@0ms"]]
    with start_venue(usdm_capture, speed="max", loop=True) as venue:
        messages, closed = receive_all(venue.raw_url("btcusdt@depth@0ms"), limit=len(expected) + 20)
        status = venue.status()
    assert closed is None
    assert messages[: len(expected)] == expected
    # Lap 2 repeats the capture with E and T moved forward by one lap, so time never goes back.
    lap_ms = status["lap_ms"]
    assert lap_ms > json.loads(expected[-1])["E"] - json.loads(expected[0])["E"]
    second = [json.loads(m) for m in messages[len(expected) :]]
    shifted = [json.loads(m) for m in expected[:20]]
    for data in shifted:
        data["E"] += lap_ms
        data["T"] += lap_ms
    assert second == shifted
    assert status["lap"] >= 1 and status["time_offset_ms"] == status["lap"] * lap_ms


def test_status_file_tracks_the_replay_position(
    usdm_capture: Path, usdm: Expected, tmp_path: Path
) -> None:
    status_file = tmp_path / "status.json"
    with start_venue(usdm_capture, speed="max", status_file=status_file) as venue:
        before = venue.read_status_file()
        assert before is not None and before["started"] is False
        assert before["line_index"] is None and before["lines"] == usdm.lines
        receive_all(venue.stream_url("btcusdt@trade"))
        deadline = time.monotonic() + 30
        while venue.status()["clients"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert venue.status()["clients"] == 0
        status = venue.read_status_file()
        while not (status and status["finished"]) and time.monotonic() < deadline:
            time.sleep(0.05)
            status = venue.read_status_file()
        assert status is not None and status["finished"] is True
        assert status["line_index"] == usdm.lines - 1
        assert status["local_ns"] == usdm.last_local_ns
        assert venue.status()["position"] == usdm.lines
        process = venue.process
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_timed_replay_sends_the_same_frames(usdm_capture: Path, usdm: Expected) -> None:
    with start_venue(usdm_capture, speed=10) as venue:
        messages, _ = receive_all(venue.stream_url("btcusdt@bookTicker"), limit=20)
        status = venue.status()
    assert messages == usdm.of("btcusdt@bookTicker")[:20]
    assert status["started"] is True and status["speed"] == "10"


def test_fixed_rate_paces_each_client_evenly_in_capture_order(
    usdm_capture: Path, usdm: Expected
) -> None:
    # 200 messages at 2,000/s: message k is due k/2000 s after the client subscribes, so the
    # last cannot arrive sooner than 99.5 ms after connecting (at max they take ~1 ms). Only a
    # lower bound: a slow machine makes it later, never earlier.
    with start_venue(usdm_capture, rate=2000) as venue:
        url = venue.stream_url("btcusdt@bookTicker")
        began = time.monotonic()
        messages, _ = receive_all(url, limit=200)
        took = time.monotonic() - began
        status = venue.status()
    assert messages == usdm.of("btcusdt@bookTicker")[:200]
    assert took >= 199 / 2000
    assert status["speed"] == "2000/s"
    both = subprocess.run(
        [str(find_binary()), "--capture", str(usdm_capture), "--speed", "2", "--rate", "10"],
        capture_output=True,
        text=True,
    )
    assert both.returncode == 2 and "--rate" in both.stderr
    from click.testing import CliRunner
    from twinfeed.cli import venue_cmd  # noqa: F401  (attaches `venue` to the root group)
    from twinfeed.cli._app import main

    cli = CliRunner().invoke(main, ["venue", "--speed", "2", "--rate", "10"])
    assert cli.exit_code == 2 and "--speed or --rate, not both" in cli.output


def test_spot_capture(spot_capture: Path, spot: Expected) -> None:
    streams = ("btcusdt@bookTicker", "btcusdt@trade", "btcusdt@depth@100ms")
    with start_venue(spot_capture, speed="max") as venue:
        snapshot = json.loads(spot.snapshots[0])
        depth = venue.depth("BTCUSDT", api="spot")
        assert depth["lastUpdateId"] == snapshot["lastUpdateId"]
        assert depth["bids"] == snapshot["bids"][:100]
        messages, closed = receive_all(venue.stream_url(*streams))
    assert isinstance(closed, ConnectionClosedOK)
    assert messages == spot.of(*streams)
    assert len(messages) == 28_040 + 9_757 + 3_451


def test_missing_capture_and_bad_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        start_venue(tmp_path / "nope.gz")
    empty = tmp_path / "empty.txt"
    empty.write_text("1 not json\n")
    with pytest.raises(VenueError, match="no replayable lines"):
        start_venue(empty)


def test_throughput_benchmark_runs(usdm_capture: Path, tmp_path: Path) -> None:
    """Smoke test of benchmarks/venue_throughput.py (it runs and prints; no timing checks)."""
    out = tmp_path / "venue.json"
    script = REPO / "benchmarks" / "venue_throughput.py"
    result = subprocess.run(
        [sys.executable, str(script), "--seconds", "0.3", "--capture", str(usdm_capture)]
        + ["--python-client", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "| case | reader | messages |" in result.stdout
    rows = json.loads(out.read_text())["results"]
    assert len(rows) == 6 and all(row["messages"] > 0 for row in rows)


def test_cli_command_serves_the_bundled_capture_and_stops_on_sigint(tmp_path: Path) -> None:
    """``twinfeed venue`` (bundled capture by default) prints its address, serves, and on
    SIGINT closes clients with 1001 and exits 0."""
    command = "import twinfeed.cli.venue_cmd; from twinfeed.cli import main; main()"
    stderr = tmp_path / "stderr.txt"
    with (
        stderr.open("w") as errors,
        subprocess.Popen(
            [sys.executable, "-c", command, "venue", "--port", "0", "--speed", "10"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        ) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            assert line.startswith("listening on 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            with open_client(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@trade") as client:
                assert json.loads(client.recv(timeout=30))["stream"] == "btcusdt@trade"
                process.send_signal(signal.SIGINT)
                with pytest.raises(ConnectionClosedOK) as closed:
                    while True:
                        client.recv(timeout=30)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert process.wait(30) == 0, stderr.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
