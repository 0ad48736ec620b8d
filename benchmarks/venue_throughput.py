"""How fast ``twinfeed-venue --speed max`` pushes websocket messages to one client.

The venue replays the capture in a loop (default: the real Binance USD-M recording in
../shared/data/real) and one client at a time reads for ``--seconds``:

- ``twinfeed-ws-count`` (Rust, the measured figure): reads with 8 MiB ``read`` calls and walks
  frame headers, skipping payloads unread. This measures what the venue pushes through
  loopback TCP to a reader that costs almost nothing, not what a decoding client could take.
- ``--python-client`` adds the same header walk in pure Python over large ``recv_into``
  buffers, for scale: it is the reader that limits that row, not the venue.

Both processes share this machine's cores (2 here, with whatever else runs: the load average
before and after is printed). Counts are messages received; bytes are wire bytes (headers
included). No warm-up beyond the venue's own first framing of a subscription set.

    .venv/bin/python benchmarks/venue_throughput.py [--seconds 5] [--json OUT] [--python-client]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from machine import cpu_model, load_average  # benchmarks/machine.py (this script's folder)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

from twinfeed.live.venue import VenueProcess, find_binary, start_venue  # noqa: E402

DEFAULT_CAPTURE = REPO.parent / "shared" / "data" / "real" / "binance-usdm" / "btcusdt_20240808.gz"
CASES = (
    ("combined bookTicker", "/stream?streams=btcusdt@bookTicker"),
    (
        "combined bookTicker+trade+depth",
        "/stream?streams=btcusdt@bookTicker/btcusdt@trade/btcusdt@depth@0ms",
    ),
    ("raw bookTicker", "/ws/btcusdt@bookTicker"),
)


@dataclass
class Row:
    case: str
    reader: str
    messages: int
    bytes: int
    seconds: float

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6


def rust_reader(venue: VenueProcess, path: str, seconds: float) -> tuple[int, int, float]:
    counter = find_binary("twinfeed-ws-count")
    result = subprocess.run(
        [str(counter), "--url", f"{venue.url}{path}", "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    stats = json.loads(result.stdout)
    return int(stats["messages"]), int(stats["bytes"]), float(stats["seconds"])


def python_reader(venue: VenueProcess, path: str, seconds: float) -> tuple[int, int, float]:
    """The same header walk in pure Python: handshake, then count frames in big recv buffers."""
    with socket.create_connection(("127.0.0.1", venue.port)) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, data = data.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {head[:80]!r}")
        buffer = bytearray(8 << 20)
        view = memoryview(buffer)
        carry = bytes(data)
        skip = messages = total = 0
        total = len(carry)
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            n = sock.recv_into(view[len(carry) :]) if carry else sock.recv_into(view)
            if n == 0:
                break
            if carry:
                buffer[: len(carry)] = carry
            end = len(carry) + n
            total += n
            at = min(skip, end)
            skip -= at
            while True:
                if end - at < 2:
                    break
                length = buffer[at + 1] & 0x7F
                header = 2
                if length == 126:
                    if end - at < 4:
                        break
                    length = int.from_bytes(buffer[at + 2 : at + 4], "big")
                    header = 4
                elif length == 127:
                    if end - at < 10:
                        break
                    length = int.from_bytes(buffer[at + 2 : at + 10], "big")
                    header = 10
                messages += 1
                at += header + length
                if at > end:
                    skip = at - end
                    at = end
                    break
            carry = bytes(buffer[at:end])
        return messages, total, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--python-client", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.capture.exists():
        print(f"capture {args.capture} not found", file=sys.stderr)
        return 2
    version = subprocess.run(
        [str(find_binary()), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if "release build" not in version:
        print(f"refusing to benchmark {version!r}: build with `make setup`", file=sys.stderr)
        return 2

    load_before = load_average()
    rows: list[Row] = []
    readers: list[tuple[str, Any]] = [("rust twinfeed-ws-count", rust_reader)]
    if args.python_client:
        readers.append(("python header walk", python_reader))
    with start_venue(args.capture, speed="max", loop=True) as venue:
        for case, path in CASES:
            for reader_name, reader in readers:
                messages, wire_bytes, seconds = reader(venue, path, args.seconds)
                rows.append(Row(case, reader_name, messages, wire_bytes, seconds))
    load_after = load_average()

    print(f"{version}; capture {args.capture.name}; --speed max --loop")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average before {load_before}, "
        f"after {load_after}; python {platform.python_version()}"
    )
    print()
    print("| case | reader | messages | seconds | msg/s | MB/s | bytes/msg |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.case} | {row.reader} | {row.messages:,} | {row.seconds:.2f} | "
            f"{row.messages_per_second / 1e6:.2f} M | {row.megabytes_per_second:,.0f} | "
            f"{row.bytes / max(row.messages, 1):.0f} |"
        )
    if args.json:
        payload = {
            "version": version,
            "capture": str(args.capture),
            "load_before": load_before,
            "load_after": load_after,
            "results": [
                asdict(row)
                | {
                    "messages_per_second": row.messages_per_second,
                    "megabytes_per_second": row.megabytes_per_second,
                }
                for row in rows
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
