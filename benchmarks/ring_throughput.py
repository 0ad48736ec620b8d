"""Live transport throughput: records per second from a Rust writer into Python numpy batches.

Cases (each a separate writer process and this process reading with ``Feed.read``):

- ``flood @ R``: the ``ring_flood`` example writes synthetic records at R records/s (``max``:
  as fast as it can), ``--batch`` records per publish; measures the ring alone (slot writes,
  stamps, futex wake-ups, the binding's copy, ``np.frombuffer`` and the Feed's bookkeeping).
  The highest rate with nothing lost is what Python can take.
- ``ingest replay``: ``twinfeed-ingest --replay`` over the real USD-M capture repeated
  ``--repeat`` times (decompressed first, not timed): decode, features, capture writes and the
  ring together, i.e. what the ingest can sustain into Python.

Reported: records received, records lost to overrun (the writer never waits; a reader that
keeps up loses none), wall time, and rate. The machine is shared: the load average is printed.

    cargo build --release -p twinfeed-ingest -p twinfeed-ring --example ring_flood
    .venv/bin/python benchmarks/ring_throughput.py [--count N] [--batch B] [--repeat R]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from twinfeed.live.feed import Feed
from twinfeed.live.ingest import ring_file, start_ingest
from twinfeed.records import warn_if_debug

REPO = Path(__file__).resolve().parents[1]
FLOOD = REPO / "target" / "release" / "examples" / "ring_flood"
USDM = REPO.parent / "shared" / "data" / "real" / "binance-usdm" / "btcusdt_20240808.gz"


def read_all(feed: Feed, max_rows: int) -> tuple[int, int, float, float]:
    """Reads until the ring is closed and drained: (records, lost, first_ts, last_ts)."""
    received = lost = 0
    first = last = 0.0
    while True:
        batch = feed.read_batch(max_rows, 0.5)
        if len(batch.records):
            if not received:
                first = time.perf_counter()
            received += len(batch.records)
            lost += batch.lost
            last = time.perf_counter()
        elif feed.closed:
            return received, lost, first, last


def report(name: str, received: int, lost: int, seconds: float) -> None:
    rate = (received + lost) / seconds / 1e6 if seconds > 0 else float("nan")
    print(
        f"{name:<16} {received:>10,} received {lost:>9,} lost "
        f"{seconds:8.3f} s  {rate:6.2f} M records/s"
    )


def flood(count: int, batch: int, slots: int, max_rows: int, rate: float) -> None:
    name = f"bench-{os.getpid()}"
    args = [str(FLOOD), name, str(count), str(batch), str(slots), str(rate)]
    writer = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        feed = Feed.open(name, wait=10)
        received, lost, first, last = read_all(feed, max_rows)
    finally:
        writer.wait()
        ring_file(name).unlink(missing_ok=True)
    label = "max" if rate <= 0 else f"{rate / 1e6:g}M/s"
    report(f"flood @ {label}", received, lost, last - first)


def replay(repeat: int, max_rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "input.txt"
        with gzip.open(USDM, "rb") as raw, open(source, "wb") as out:
            data = raw.read()
            for _ in range(repeat):
                out.write(data)
        name = f"bench-replay-{os.getpid()}"
        config = Path(tmp) / "config.toml"
        config.write_text("[ingest]\nring_slots = 262144\n")
        process = start_ingest(
            ring=name, capture_dir=Path(tmp) / "capture", config=config, replay=source
        )
        try:
            process.wait_for_ring()
            feed = Feed.open(name)
            started = time.perf_counter()
            received, lost, _, last = read_all(feed, max_rows)
        finally:
            process.wait()
            process.remove_ring()
            shutil.rmtree(Path(tmp) / "capture", ignore_errors=True)
    report("ingest replay", received, lost, last - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument(
        "--rates", default="2e6,4e6,8e6,0", help="writer rates in records/s (0: unlimited)"
    )
    parser.add_argument("--batch", type=int, default=64, help="records per writer publish")
    parser.add_argument("--slots", type=int, default=1 << 16)
    parser.add_argument("--max-rows", type=int, default=65536, help="records per Feed.read")
    parser.add_argument("--repeat", type=int, default=4, help="copies of the capture replayed")
    args = parser.parse_args()
    warn_if_debug()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for rate in (float(r) for r in args.rates.split(",")):
        flood(args.count, args.batch, args.slots, args.max_rows, rate)
    if USDM.exists():
        replay(args.repeat, args.max_rows)
    else:
        print(f"ingest replay    skipped: {USDM} not found")


if __name__ == "__main__":
    main()
