"""The local replay venue (``twinfeed-venue``) as a subprocess.

``start_venue`` runs the Rust binary on loopback and returns once it listens::

    with start_venue(capture, speed="max") as venue:
        url = venue.stream_url("btcusdt@bookTicker", "btcusdt@trade")
        ...  # websocket clients, venue.depth("BTCUSDT"), venue.set_faults(...)

The binary is found, in order, in ``$TWINFEED_BIN_DIR``, in ``target/release`` of the
repository this package lives in, and on ``PATH``. What the venue serves, how its clock works
and the status-file format are documented in ``features-rs/venue/src/lib.rs``; in short, the
replay clock starts when the first websocket client subscribes and all clients share one
replay position, and ``--status-file`` holds ``{"position", "line_index", "local_ns", ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from twinfeed.instruments import BUNDLED_TABLE, load_table
from twinfeed.live import binaries
from twinfeed.live.children import die_with_parent

BINARY = "twinfeed-venue"
REPO = Path(__file__).resolve().parents[3]
BUNDLED_CAPTURE = REPO / "data" / "synth-btcusdt.txt"


class VenueError(RuntimeError):
    """The venue could not be started or answered an error."""


@dataclass(frozen=True)
class VenueFaults:
    """Faults on demand (see ``features-rs/venue/src/faults.rs``).

    Message counts are per connection. ``drop_after``, ``stall_*`` and ``skip_depth`` go to the
    first websocket connection only (a reconnecting client recovers) unless
    ``every_connection``; ``malformed_every`` applies to every connection.
    """

    drop_after: int | None = None
    stall_ms: int | None = None
    stall_after: int | None = None
    malformed_every: int | None = None
    skip_depth: int | None = None
    every_connection: bool = False

    @classmethod
    def coerce(cls, faults: VenueFaults | Mapping[str, Any] | None) -> VenueFaults:
        if faults is None:
            return cls()
        if isinstance(faults, VenueFaults):
            return faults
        unknown = set(faults) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown venue faults: {sorted(unknown)}")
        return cls(**faults)

    def _values(self) -> dict[str, int | bool | None]:
        return {
            "drop_after": self.drop_after,
            "stall_ms": self.stall_ms,
            "stall_after": self.stall_after,
            "malformed_every": self.malformed_every,
            "skip_depth": self.skip_depth,
        }

    def to_args(self) -> list[str]:
        """Command-line flags of the binary."""
        args: list[str] = []
        for name, value in self._values().items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        if self.every_connection:
            args.append("--fault-every-connection")
        return args

    def to_params(self) -> dict[str, str]:
        """Parameters of ``POST /_venue/fault``."""
        params = {name: str(value) for name, value in self._values().items() if value is not None}
        if self.every_connection:
            params["every_connection"] = "1"
        return params


def find_binary(name: str = BINARY) -> Path:
    """The path of a twinfeed binary (see :func:`twinfeed.live.binaries.find_binary`)."""
    return binaries.find_binary(name)


def venue_command(
    capture: str | Path,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    speed: float | str = "max",
    loop: bool = False,
    faults: VenueFaults | Mapping[str, Any] | None = None,
    status_file: str | Path | None = None,
    ready_file: str | Path | None = None,
    rate: float | None = None,
    instruments: str | Path | None = BUNDLED_TABLE,
    user_stream_upstream: str | None = None,
    depth_as_captured: bool = False,
) -> list[str]:
    """The ``twinfeed-venue`` command line for these options. ``rate`` (messages per second
    per client, evenly spaced) replaces ``speed``. ``instruments`` (an exchangeInfo answer or
    the shipped table's shape) is what ``GET .../exchangeInfo`` answers when the capture has
    no ``instruments`` line. ``user_stream_upstream`` (loopback ``HOST:PORT``) is where
    user-data websockets (``/private/...``, ``/ws/<listenKey>``) are spliced.
    ``depth_as_captured`` serves diff-depth at any requested speed with the captured diffs
    unmerged (parity checks); by default a finer capture is merged per window as Binance does."""
    args = [
        str(find_binary()),
        "--capture",
        str(capture),
        "--port",
        str(port),
        "--host",
        host,
        *(["--rate", str(rate)] if rate is not None else ["--speed", str(speed)]),
    ]
    if loop:
        args.append("--loop")
    if status_file is not None:
        args += ["--status-file", str(status_file)]
    if ready_file is not None:
        args += ["--ready-file", str(ready_file)]
    if instruments is not None:
        args += ["--instruments", str(instruments)]
    if user_stream_upstream is not None:
        args += ["--user-stream-upstream", user_stream_upstream]
    if depth_as_captured:
        args.append("--depth-as-captured")
    return args + VenueFaults.coerce(faults).to_args()


class VenueProcess:
    """A running ``twinfeed-venue``; a context manager that stops it on exit."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        host: str,
        capture: Path,
        status_file: Path | None,
        workdir: tempfile.TemporaryDirectory[str],
    ) -> None:
        self.process = process
        self.port = port
        self.host = host
        self.capture = capture
        self.status_file = status_file
        self._workdir = workdir

    @property
    def url(self) -> str:
        """The websocket base URL, ``ws://127.0.0.1:PORT``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """The REST base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The venue's stderr."""
        return Path(self._workdir.name) / "venue.log"

    def stream_url(self, *streams: str) -> str:
        """A combined-stream URL (frames are the captured ``{"stream":..,"data":..}``)."""
        return f"{self.url}/stream?streams={'/'.join(streams)}"

    def raw_url(self, stream: str | None = None) -> str:
        """A raw-stream URL (frames are the bare ``data`` objects); ``/ws`` when ``stream`` is
        None, for live SUBSCRIBE."""
        return f"{self.url}/ws/{stream}" if stream else f"{self.url}/ws"

    def running(self) -> bool:
        return self.process.poll() is None

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        """One REST call; returns the decoded JSON body, raises VenueError on an HTTP error."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.http_url}{path}{query}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            raise VenueError(f"{method} {path}: HTTP {error.code}: {body}") from error

    def depth(self, symbol: str = "BTCUSDT", limit: int | None = None, api: str = "fapi") -> Any:
        """The REST depth snapshot at the current replay position (``api``: fapi or spot)."""
        path = "/fapi/v1/depth" if api == "fapi" else "/api/v3/depth"
        params = {"symbol": symbol}
        if limit is not None:
            params["limit"] = str(limit)
        return self.request("GET", path, params)

    def status(self) -> dict[str, Any]:
        """The replay status (``GET /_venue/status``)."""
        return dict(self.request("GET", "/_venue/status"))

    def read_status_file(self) -> dict[str, Any] | None:
        """The status file's content (None without ``status_file`` or before the first write)."""
        if self.status_file is None:
            return None
        try:
            return dict(json.loads(self.status_file.read_text()))
        except FileNotFoundError:
            return None

    def set_faults(self, faults: VenueFaults | Mapping[str, Any] | None) -> dict[str, Any]:
        """Replaces and re-arms the faults for connections opened from now on."""
        params = VenueFaults.coerce(faults).to_params() or {"clear": "1"}
        return dict(self.request("POST", "/_venue/fault", params))

    def disconnect_all(self) -> None:
        """Resets every websocket connection now (clients see an abrupt drop)."""
        self.request("POST", "/_venue/disconnect")

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._workdir.cleanup()
        return int(self.process.returncode)

    def __enter__(self) -> VenueProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VenueProcess(pid={self.process.pid}, url={self.url!r}, capture={self.capture})"


def start_venue(
    capture: str | Path | None = None,
    port: int = 0,
    speed: float | str = "max",
    loop: bool = False,
    faults: VenueFaults | Mapping[str, Any] | None = None,
    status_file: str | Path | None = None,
    host: str = "127.0.0.1",
    timeout: float = 60.0,
    rate: float | None = None,
    instruments: str | Path | None = None,
    user_stream_upstream: str | None = None,
    depth_as_captured: bool = False,
) -> VenueProcess:
    """Starts ``twinfeed-venue`` on ``capture`` (default: the bundled synthetic capture) and
    returns once it listens. ``port=0`` picks a free port (``.port`` tells which).
    ``instruments`` (an ``--instruments`` file, over the shipped table) is the exchangeInfo the
    venue serves when the capture has no ``instruments`` line."""
    capture_path = Path(capture) if capture is not None else BUNDLED_CAPTURE
    if not capture_path.exists():
        raise FileNotFoundError(f"capture {capture_path} not found")
    # Tagged with our pid: a session killed with -9 leaves it, the next one removes it.
    workdir = tempfile.TemporaryDirectory(prefix=f"twinfeed-venue-{os.getpid()}-")
    ready_file = Path(workdir.name) / "ready"
    table_file = BUNDLED_TABLE
    if instruments is not None:
        table_file = Path(workdir.name) / "instruments.json"
        table_file.write_text(json.dumps(load_table(instruments).to_json()))
    args = venue_command(
        capture_path,
        port=port,
        host=host,
        speed=speed,
        loop=loop,
        faults=faults,
        status_file=status_file,
        ready_file=ready_file,
        rate=rate,
        instruments=table_file,
        user_stream_upstream=user_stream_upstream,
        depth_as_captured=depth_as_captured,
    )
    log_path = Path(workdir.name) / "venue.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=die_with_parent()
        )
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None:
            message = log_path.read_text(errors="replace").strip()
            workdir.cleanup()
            raise VenueError(f"twinfeed-venue exited with {process.returncode}: {message}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            workdir.cleanup()
            raise VenueError(f"twinfeed-venue did not listen within {timeout} s")
        time.sleep(0.01)
    bound_port = int(ready_file.read_text().strip())
    return VenueProcess(
        process,
        bound_port,
        host,
        capture_path,
        Path(status_file) if status_file is not None else None,
        workdir,
    )


def run_venue(
    capture: str | Path,
    *,
    port: int = 9443,
    host: str = "127.0.0.1",
    speed: float | str = 1,
    loop: bool = False,
    faults: VenueFaults | Mapping[str, Any] | None = None,
    status_file: str | Path | None = None,
    ready_file: str | Path | None = None,
    rate: float | None = None,
) -> int:
    """Runs the venue in the foreground until it exits or Ctrl-C; returns its exit code."""
    args = venue_command(
        capture,
        port=port,
        host=host,
        speed=speed,
        loop=loop,
        faults=faults,
        status_file=status_file,
        ready_file=ready_file,
        rate=rate,
    )
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not started:
            pending.append(signum)  # before the venue exists: sent once it does
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    # The venue shuts down cleanly on SIGINT/SIGTERM; pass ours on (a terminal's Ctrl-C
    # reaches both processes, a `kill` of this one only this one). Installed before the
    # venue starts, so a signal that arrives while it starts is not a KeyboardInterrupt.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process = subprocess.Popen(args, preexec_fn=die_with_parent())
    except BaseException:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise
    started.append(process)
    for signum in pending:
        process.send_signal(signum)
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            process.kill()
            process.wait()
