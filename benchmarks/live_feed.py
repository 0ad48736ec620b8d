"""Live path: pure-Python websocket clients against venue -> twinfeed-ingest -> ring -> Python.

One run starts ``twinfeed-venue --loop`` on the real Binance USD-M capture (default
../shared/data/real/binance-usdm/btcusdt_20240808.gz), first at ``--speed max`` and then paced
at ``--rate`` bookTicker messages per second. With ``--pacing fixed`` (the default) the paced
venue runs with ``--rate``: each client gets its messages evenly spaced, one every 1/rate s
(timed by a timerfd in the venue, so not in bursts per millisecond tick). With
``--pacing capture`` it keeps the capture's own timing sped up to that rate on average
(``--speed N`` with ``N = rate / (bookTicker messages / capture span)``), quiet gaps and bursts
included. Against each venue, one client at a time subscribes to ``btcusdt@bookTicker``
(combined stream) and runs for ``--seconds`` after ``--warmup``:

- ``python websockets + json`` / ``+ orjson``: ``websockets`` asyncio client, ``recv()``, decode,
  and keep bid/ask/sizes/mid/spread/microprice per symbol. Counted: messages handled.
- ``twinfeed ingest -> ring -> Feed.read``: ``twinfeed-ingest`` (config: BTCUSDT, bookTicker
  only, unchanged quotes kept, so one quote record per message) writes the capture and the ring,
  once with a plain-text capture and once with a zstd one (``[ingest] capture_compression``);
  this process reads numpy batches with ``Feed.read`` and keeps the last quote row. Counted:
  quote records delivered into Python (heartbeats excluded). The ingest's own frame counter over
  the same window is reported too, and records lost to ring overrun.

Latency (paced venue): a reader on ``Feed.read(timeout=1 ms)``, opened with
``spin_us=--spin-us`` (it polls that long before sleeping on the futex), stamps
``time.time_ns()`` when a batch returns; every quote record in it gets
``that stamp - record.local_ns``. ``local_ns`` is the ingest's CLOCK_REALTIME stamp taken when
the socket read that completed the frame returned, so this is ingest receive -> Python: waiting
behind the frames before it in the same read, decode, features, ring publish (per frame; the
capture is written by another thread), the reader noticing and the binding's copy. It excludes
the venue, the kernel's loopback path and websocket framing before the stamp.

By default (``--pin``) the reader has the last core to itself and the venue and ingest share
the others, as a latency-sensitive deployment would pin it, and the venue runs at nice 19: it
is test equipment that would be on another machine, and at normal priority its wake-ups (one
per 50 us) preempt the ingest it shares a core with. ``--no-pin`` leaves placement and
priorities to the scheduler.

All processes (venue, ingest, this one) share the machine's cores; the load average before and
after is printed with the table, and so is the machine's own floor (a clock-reading thread's
stalls, before and after the runs) with the percentiles an ideal reader would see because of it.
Depth (``--depth``, the default): the same again on the whole capture, with every stream it
holds subscribed (bookTicker, trade and the diff-depth stream at ``[ingest] depth_speed_ms = 0``,
the capture's own ``@depth@0ms``; the venue serves the capture's own diffs and snapshot):

- throughput at ``--speed max``: records into Python per second (every kind but heartbeats),
  frames per second through the ingest and records lost to ring overrun;
- latency with the capture's own timing sped up to about ``--rate`` frames per second (bursts
  included), receive-to-Python for every market record, with the reader busy-polling on its own
  core and with the default spin-then-sleep reader (``Feed.open`` default: 50 us of polling);
- where that latency goes, from the ingest's per-stage timestamps (``TWINFEED_STAGE_LOG``, see
  ``twinfeed_ingest::sink::StageLog``) joined to each record by its ring sequence: queued behind
  the frames before it in the same socket read, capture hand-off, decode, book and features,
  ring publish, and the reader noticing and copying.

Debug builds are refused.

    .venv/bin/python benchmarks/live_feed.py [--seconds 5] [--rate 50000] [--json OUT] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import websockets.asyncio.client
from machine import cpu_model, load_average  # benchmarks/machine.py (this script's folder)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

import twinfeed  # noqa: E402
from twinfeed.live.feed import Feed  # noqa: E402
from twinfeed.live.ingest import (  # noqa: E402
    STAGE_COLUMNS,
    read_stage_log,
    start_ingest,  # noqa: E402
)
from twinfeed.live.ingest import find_binary as find_ingest  # noqa: E402
from twinfeed.live.venue import VenueProcess, start_venue  # noqa: E402
from twinfeed.live.venue import find_binary as find_venue  # noqa: E402

DEFAULT_CAPTURE = REPO.parent / "shared" / "data" / "real" / "binance-usdm" / "btcusdt_20240808.gz"
STREAM = "btcusdt@bookTicker"
SYMBOL = "BTCUSDT"
QUOTE = twinfeed.KIND["quote"]
HEADER = "| venue speed | client | messages | seconds | msg/s | vs fastest python |"
CONFIG = f"""
[filter]
symbols = ["{SYMBOL}"]
streams = ["bookTicker"]
drop_unchanged_quotes = false

[ingest]
ring_slots = 262144
"""
# The same with the capture stored as zstd (level 1, one frame per 1 MiB handed to the capture
# thread): at millions of frames a second the plain capture's copy into fresh page-cache pages is
# the capture thread's whole core on a VM (the host backs each new page on first touch), while
# zstd writes ~15x fewer bytes for ~1 ns of compression per byte (zstd -1 ran at 0.9 GB/s here).
ZSTD_CONFIG = CONFIG + 'capture_compression = "zstd"\n'
INGEST = "twinfeed ingest -> ring -> Feed.read"
# Every stream of the real capture, depth at the speed it was recorded at (@depth@0ms).
DEPTH_CONFIG = f"""
[filter]
symbols = ["{SYMBOL}"]
streams = ["bookTicker", "trade", "depth"]
drop_unchanged_quotes = false

[ingest]
ring_slots = 1048576
depth_speed_ms = 0
capture_compression = "zstd"
"""
HEARTBEAT = twinfeed.KIND["heartbeat"]
# The spans between the stage log's stamps (twinfeed.live.ingest.read_stage_log).
STAGES = (
    ("queued behind earlier frames of the read", "received", "started"),
    ("capture hand-off", "started", "captured"),
    ("decode", "captured", "decoded"),
    ("book + features", "decoded", "booked"),
    ("ring publish + wake", "booked", "published"),
    ("reader notices + copies", "published", "python"),
)


@dataclass
class Row:
    speed: str
    client: str
    messages: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def book_ticker_rate(capture: Path) -> float:
    """bookTicker lines per second of capture time (the paced venue's rate at speed 1)."""
    opener = gzip.open if capture.suffix == ".gz" else open
    first = last = count = 0
    marker = f'"stream":"{STREAM}"'.encode()
    with opener(capture, "rb") as lines:
        for line in lines:
            stamp = line.split(b" ", 1)[0]
            if not stamp.isdigit():
                continue
            last = int(stamp)
            first = first or last
            count += marker in line
    span = (last - first) / 1e9
    if span <= 0 or count == 0:
        raise SystemExit(f"capture {capture}: no {STREAM} lines over a positive time span")
    return count / span


def frame_rate(capture: Path) -> float:
    """Venue frames (combined-stream lines) per second of capture time."""
    opener = gzip.open if capture.suffix == ".gz" else open
    first = last = count = 0
    with opener(capture, "rb") as lines:
        for line in lines:
            stamp, _, frame = line.partition(b" ")
            if not stamp.isdigit() or not frame.startswith(b'{"stream":'):
                continue
            last = int(stamp)
            first = first or last
            count += 1
    span = (last - first) / 1e9
    if span <= 0 or count == 0:
        raise SystemExit(f"capture {capture}: no stream frames over a positive time span")
    return count / span


# -- pure-Python clients -----------------------------------------------------------------------


def top_of_book(books: dict[str, tuple[float, ...]], data: dict[str, Any]) -> None:
    bid = float(data["b"])
    ask = float(data["a"])
    bid_qty = float(data["B"])
    ask_qty = float(data["A"])
    mid = (bid + ask) * 0.5
    depth = bid_qty + ask_qty
    microprice = (bid * ask_qty + ask * bid_qty) / depth if depth > 0 else mid
    books[data["s"]] = (bid, ask, bid_qty, ask_qty, mid, ask - bid, microprice)


async def python_client(
    url: str, loads: Callable[[str | bytes], Any], warmup: float, seconds: float
) -> tuple[int, float]:
    books: dict[str, tuple[float, ...]] = {}
    # close_timeout: after the window the venue keeps streaming; the closing handshake is not
    # measured and need not wait for the flood to drain.
    async with websockets.asyncio.client.connect(
        url, max_size=None, compression=None, close_timeout=0.1
    ) as ws:
        start = time.perf_counter() + warmup
        end = start + seconds
        counted = 0
        counting = False
        while True:
            message = await ws.recv()
            top_of_book(books, loads(message)["data"])
            if counting:
                counted += 1
                now = time.perf_counter()
                if now >= end:
                    return counted, now - start
            elif time.perf_counter() >= start:
                counting = True
                start = time.perf_counter()
                end = start + seconds


def run_python_client(
    url: str, loads: Callable[[str | bytes], Any], warmup: float, seconds: float
) -> tuple[int, float]:
    return asyncio.run(python_client(url, loads, warmup, seconds))


# -- venue -> ingest -> ring -> Feed -----------------------------------------------------------


class IngestRun:
    """An ingest subscribed to the venue and a Feed on its ring."""

    def __init__(
        self,
        venue: VenueProcess,
        config: Path,
        work: Path,
        spin_us: float = 50.0,
        stage_log: Path | None = None,
    ) -> None:
        self.ring = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.capture_dir = work / f"capture-{self.ring}"
        self.log = open(work / f"{self.ring}.log", "wb")  # noqa: SIM115
        self.ingest = start_ingest(
            capture_dir=self.capture_dir,
            ring=self.ring,
            config=config,
            url=venue.url,
            symbols=[SYMBOL],
            stderr=self.log,
            stage_log=stage_log,
        )
        self.ingest.wait_for_ring(timeout=30)
        self.feed = Feed.open(self.ring, wait=10, spin_us=spin_us)

    def frames(self) -> int:
        return int(self.feed.counters().get("frames", 0))

    def cpu_seconds(self) -> float:
        """User + system CPU time the ingest process has used so far."""
        fields = Path(f"/proc/{self.ingest.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.ingest.stop()
        self.log.close()
        shutil.rmtree(self.capture_dir, ignore_errors=True)
        self.ingest.remove_ring()


def warm_up(feed: Feed, seconds: float) -> None:
    """Reads (and drops) for ``seconds`` before a throughput window."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        feed.read(65536, timeout=0.01)


def ingest_throughput(run: IngestRun, warmup: float, seconds: float) -> Row:
    feed = run.feed
    books: dict[int, np.void] = {}
    warm_up(feed, warmup)
    frames_before = run.frames()
    cpu_before = run.cpu_seconds()
    lost_before = feed.overruns
    start = time.perf_counter()
    end = start + seconds
    delivered = 0
    while (now := time.perf_counter()) < end:
        batch = feed.read(65536, timeout=0.01)
        # The top-of-book work: count the quotes, keep the newest (no copy of the others).
        is_quote = batch["kind"] == QUOTE
        quotes = int(np.count_nonzero(is_quote))
        if quotes:
            delivered += quotes
            last = batch[len(batch) - 1 - int(np.argmax(is_quote[::-1]))]
            books[int(last["symbol_id"])] = last
    elapsed = now - start
    frames = run.frames() - frames_before
    cpu = run.cpu_seconds() - cpu_before
    return Row(
        "",
        INGEST,
        delivered,
        elapsed,
        {
            "ingest_frames": frames,
            "ingest_frames_per_second": frames / elapsed,
            "lost_to_overrun": feed.overruns - lost_before,
            "ingest_cpu_seconds": cpu,
            "ingest_cpu_us_per_frame": cpu / frames * 1e6 if frames else 0.0,
        },
    )


def cpu_stall_probe(seconds: float) -> dict[str, Any]:
    """The machine's own floor: a thread doing nothing but reading the clock, alone on one
    core, and how often (and for how long) it loses that core anyway: hypervisor steal,
    interrupts, kernel work. A reader stalled like this cannot see a record until it is back,
    so these stalls bound what any receive-to-Python percentile can be: a record published
    at a random moment waits for the rest of the stall it falls into, and ``floor_p99_us`` is
    the p99 of that wait (the p99 an ideal reader, doing no work at all, would measure)."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(allowed)})
    gaps: list[int] = []
    clock = time.perf_counter_ns
    try:
        last = start = clock()
        end = start + int(seconds * 1e9)
        while last < end:
            now = clock()
            if now - last > 2_000:
                gaps.append(now - last)
            last = now
    finally:
        os.sched_setaffinity(0, allowed)
    total = last - start
    waits = np.array(gaps, dtype=np.float64)

    def share_waiting_longer(x: float) -> float:
        return float(np.maximum(waits - x, 0.0).sum() / total)

    def floor_percentile(share: float) -> float:
        low, high = 0.0, float(waits.max()) if len(waits) else 0.0
        for _ in range(50):
            middle = (low + high) / 2
            low, high = (middle, high) if share_waiting_longer(middle) > share else (low, middle)
        return high / 1e3

    stalls = sorted(g for g in gaps if g > 20_000)
    return {
        "seconds": total / 1e9,
        "stalls_over_20us": len(stalls),
        "stalls_per_second": len(stalls) / (total / 1e9),
        "stalled_fraction": sum(stalls) / total,
        "median_stall_us": stalls[len(stalls) // 2] / 1e3 if stalls else 0.0,
        "p90_stall_us": stalls[int(len(stalls) * 0.9)] / 1e3 if stalls else 0.0,
        "max_stall_us": stalls[-1] / 1e3 if stalls else 0.0,
        "floor_p99_us": floor_percentile(0.01),
        "floor_p99_9_us": floor_percentile(0.001),
        "floor_share_over_50us": share_waiting_longer(50_000),
    }


def pin_all_threads(pid: int, cpus: set[int]) -> None:
    """Pins every thread of process ``pid`` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def renice_all_threads(pid: int, niceness: int) -> None:
    """Sets the niceness of every thread of process ``pid`` (raising it needs no privilege)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


@contextlib.contextmanager
def pinned_reader(venue: VenueProcess, run: IngestRun, pin: bool) -> Iterator[None]:
    """With ``pin``: this reader alone on the last core, venue (nice 19) and ingest on the
    others. Restores this process's placement, and closes ``run``, on the way out."""
    allowed = os.sched_getaffinity(0)
    try:
        if pin and len(allowed) > 1:
            reader_core = max(allowed)
            pin_all_threads(venue.process.pid, allowed - {reader_core})
            pin_all_threads(run.ingest.pid, allowed - {reader_core})
            renice_all_threads(venue.process.pid, 19)
            os.sched_setaffinity(0, {reader_core})
        yield
    finally:
        os.sched_setaffinity(0, allowed)
        run.close()


def collect_arrivals(
    run: IngestRun, warmup: float, seconds: float
) -> tuple[list[tuple[int, int, np.ndarray[Any, Any]]], float]:
    """Reads for ``seconds`` after ``warmup``, keeping each batch with the time it arrived and
    the reader's ring cursor after it; returns them and the time read."""
    feed = run.feed
    reader = feed._reader  # the cursor: which ring sequences each batch held
    # The loop only keeps each batch and the time it arrived; the arithmetic happens after it,
    # so the measuring does not delay the next read.
    # The cyclic garbage collector is off meanwhile: the batches kept here are the benchmark's
    # own garbage, and its full collections would show up as the benchmark's tail. The last
    # collection happens before the warm-up, whose reads then drain what piled up during it
    # (a collection takes milliseconds; the records behind it are not the feed's latency).
    arrivals: list[tuple[int, int, np.ndarray[Any, Any]]] = []
    gc.collect()
    gc.disable()
    try:
        deadline = time.perf_counter() + warmup
        while time.perf_counter() < deadline:
            feed.read(65536, timeout=0.001)
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            batch = feed.read(65536, timeout=0.001)
            received = time.time_ns()
            if len(batch):
                arrivals.append((received, reader.cursor, batch))
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return arrivals, elapsed


def ingest_latency(run: IngestRun, warmup: float, seconds: float) -> dict[str, Any]:
    feed = run.feed
    arrivals, elapsed = collect_arrivals(run, warmup, seconds)
    chunks: list[np.ndarray[Any, Any]] = []
    # The newest record of each batch was stamped just before the ingest published it, so its
    # latency approximates publish -> Python; the rest adds the wait for the batch to fill.
    newest: list[int] = []
    for received, _, batch in arrivals:
        stamps = batch["local_ns"][batch["kind"] == QUOTE]
        if len(stamps):
            chunks.append(received - stamps)
            newest.append(received - int(stamps[-1]))
    batches = len(arrivals)
    latencies = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    result: dict[str, Any] = {
        "records": int(len(latencies)),
        "batches": batches,
        "seconds": elapsed,
        "records_per_second": len(latencies) / elapsed,
        "lost_to_overrun": feed.overruns,
    }
    if len(latencies):
        p50, p99, p999 = np.percentile(latencies, [50, 99, 99.9])
        result |= {
            "p50_us": p50 / 1e3,
            "p99_us": p99 / 1e3,
            "p99_9_us": p999 / 1e3,
            "max_us": float(latencies.max()) / 1e3,
            "records_per_batch": len(latencies) / len(newest),
        }
        p50, p99, p999 = np.percentile(np.array(newest), [50, 99, 99.9])
        result |= {"newest_p50_us": p50 / 1e3, "newest_p99_us": p99 / 1e3}
    return result


def depth_throughput(run: IngestRun, warmup: float, seconds: float) -> dict[str, Any]:
    """Every record but heartbeats into Python, and the ingest's frames, over ``seconds``."""
    feed = run.feed
    warm_up(feed, warmup)
    frames_before = run.frames()
    cpu_before = run.cpu_seconds()
    lost_before = feed.overruns
    kinds = np.zeros(8, dtype=np.int64)
    start = time.perf_counter()
    end = start + seconds
    while (now := time.perf_counter()) < end:
        batch = feed.read(65536, timeout=0.01)
        if len(batch):
            kinds += np.bincount(batch["kind"], minlength=8)[:8]
    elapsed = now - start
    frames = run.frames() - frames_before
    cpu = run.cpu_seconds() - cpu_before
    records = int(kinds.sum() - kinds[HEARTBEAT])
    names = {value: name for name, value in twinfeed.KIND.items()}
    return {
        "records": records,
        "seconds": elapsed,
        "records_per_second": records / elapsed,
        "by_kind": {names[k]: int(n) for k, n in enumerate(kinds) if n and k in names},
        "ingest_frames": frames,
        "ingest_frames_per_second": frames / elapsed,
        "ingest_cpu_us_per_frame": cpu / frames * 1e6 if frames else 0.0,
        "lost_to_overrun": feed.overruns - lost_before,
    }


def depth_latency(run: IngestRun, warmup: float, seconds: float) -> dict[str, Any]:
    """The batches read and their arrival times and ring cursors, for :func:`latency_summary`
    (which needs the stage log the ingest writes when :meth:`IngestRun.close` stops it)."""
    arrivals, elapsed = collect_arrivals(run, warmup, seconds)
    feed = run.feed
    return {"arrivals": arrivals, "seconds": elapsed, "lost_to_overrun": feed.overruns}


def latency_summary(measured: dict[str, Any], stages: Path | None) -> dict[str, Any]:
    """Percentiles of receive-to-Python and, with a stage log, of each stage per record."""
    python_ns: list[np.ndarray[Any, Any]] = []
    local_ns: list[np.ndarray[Any, Any]] = []
    seqs: list[np.ndarray[Any, Any]] = []
    for received, cursor, batch in measured["arrivals"]:
        market = batch["kind"] != HEARTBEAT
        count = int(np.count_nonzero(market))
        if not count:
            continue
        seq = np.arange(cursor - len(batch), cursor, dtype=np.int64)[market]
        python_ns.append(np.full(count, received, dtype=np.int64))
        local_ns.append(batch["local_ns"][market].astype(np.int64))
        seqs.append(seq)
    if not python_ns:
        return {"records": 0, "seconds": measured["seconds"]}
    python = np.concatenate(python_ns)
    local = np.concatenate(local_ns)
    seq = np.concatenate(seqs)
    total = python - local
    p50, p99, p999 = np.percentile(total, [50, 99, 99.9])
    result: dict[str, Any] = {
        "records": int(len(total)),
        "seconds": measured["seconds"],
        "records_per_second": len(total) / measured["seconds"],
        "lost_to_overrun": measured["lost_to_overrun"],
        "p50_us": p50 / 1e3,
        "p99_us": p99 / 1e3,
        "p99_9_us": p999 / 1e3,
        "max_us": float(total.max()) / 1e3,
    }
    if stages is None or not stages.exists():
        return result
    log = read_stage_log(stages)
    row = np.searchsorted(log["seq"], seq, side="right")
    covered = row < len(log["seq"])
    row, python, local = row[covered], python[covered], local[covered]
    # A record's row is the line that published it: its received stamp is the record's own.
    matched = log["received"][row] == local
    columns = {name: log[name][row[matched]] for name in STAGE_COLUMNS[1:]}
    columns["python"] = python[matched]
    breakdown = []
    for label, begin, finish in STAGES:
        span = columns[finish] - columns[begin]
        q50, q99 = np.percentile(span, [50, 99])
        breakdown.append(
            {"stage": label, "p50_us": q50 / 1e3, "p99_us": q99 / 1e3, "mean_us": span.mean() / 1e3}
        )
    result["stages"] = breakdown
    result["stage_records_matched"] = int(matched.sum())
    result["stage_records_unmatched"] = int(len(matched) - matched.sum())
    return result


def depth_phase(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The whole capture with depth: throughput at max, then latency at ~--rate frames/s."""
    config = work / "features-depth.toml"
    config.write_text(DEPTH_CONFIG)
    result: dict[str, Any] = {}
    with start_venue(args.capture, speed="max", loop=True, depth_as_captured=True) as venue:
        run = IngestRun(venue, config, work)
        try:
            result["throughput"] = depth_throughput(run, args.warmup, args.seconds)
        finally:
            run.close()
    speed = args.rate / frame_rate(args.capture)
    result["paced_speed"] = speed
    readers = (("busy-poll", 1e7), ("spin-then-sleep (50 us)", 50.0))
    result["latency"] = {}
    with start_venue(
        args.capture, speed=f"{speed:.3f}", loop=True, depth_as_captured=True
    ) as venue:
        for name, spin_us in readers:
            stage_log = work / f"stages-{len(result['latency'])}.bin"
            run = IngestRun(venue, config, work, spin_us=spin_us, stage_log=stage_log)
            with pinned_reader(venue, run, args.pin):
                measured = depth_latency(run, args.warmup, args.latency_seconds)
            result["latency"][name] = latency_summary(measured, stage_log)
    return result


def print_depth(result: dict[str, Any], args: argparse.Namespace) -> None:
    t = result["throughput"]
    print(
        f"Whole capture with depth ({args.capture.name}: bookTicker + trade + depth@0ms, "
        "venue `--speed max --loop`, zstd capture):"
    )
    print("| records into Python/s | ingest frames/s | lost | ingest CPU per frame | records |")
    print("|---:|---:|---:|---:|---|")
    kinds = ", ".join(f"{name} {n:,}" for name, n in t["by_kind"].items() if name != "heartbeat")
    print(
        f"| {t['records_per_second']:,.0f} | {t['ingest_frames_per_second']:,.0f} "
        f"| {t['lost_to_overrun']:,} | {t['ingest_cpu_us_per_frame']:.2f} us | {kinds} |"
    )
    print()
    print(
        "Receive-to-Python with depth, the capture's own timing sped up "
        f"{result['paced_speed']:.0f}x "
        f"(about {args.rate:,.0f} frames/s on average, bursts included), every market record"
        + (
            "; reader pinned to its own core, venue (nice 19) and ingest to the rest"
            if args.pin
            else ""
        )
        + ":"
    )
    print("| reader | records/s | lost | p50 | p99 | p99.9 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in result["latency"].items():
        if not r["records"]:
            print(f"| {name} | 0 | - | - | - | - | - |")
            continue
        print(
            f"| {name} | {r['records_per_second']:,.0f} | {r['lost_to_overrun']} "
            f"| {r['p50_us']:.1f} us | {r['p99_us']:.1f} us | {r['p99_9_us']:.1f} us "
            f"| {r['max_us']:.0f} us |"
        )
    for name, r in result["latency"].items():
        if "stages" not in r:
            continue
        print()
        print(
            f"Where it went ({name}; ingest stage stamps joined by ring sequence, "
            f"{r['stage_records_matched']:,} records):"
        )
        print("| stage | p50 | p99 | mean |")
        print("|---|---:|---:|---:|")
        for stage in r["stages"]:
            print(
                f"| {stage['stage']} | {stage['p50_us']:.2f} us | {stage['p99_us']:.2f} us "
                f"| {stage['mean_us']:.2f} us |"
            )


def measure(
    venue: VenueProcess,
    label: str,
    configs: dict[str, Path],
    work: Path,
    warmup: float,
    seconds: float,
) -> list[Row]:
    """The Python clients, then the ingest with each config (by capture kind) on ``venue``."""
    url = venue.stream_url(STREAM)
    rows: list[Row] = []
    clients: list[tuple[str, Callable[[str | bytes], Any]]] = [
        ("python websockets + json", json.loads),
        ("python websockets + orjson", orjson.loads),
    ]
    for name, loads in clients:
        messages, elapsed = run_python_client(url, loads, warmup, seconds)
        rows.append(Row(label, name, messages, elapsed))
    for capture, config in configs.items():
        run = IngestRun(venue, config, work)
        try:
            row = ingest_throughput(run, warmup, seconds)
        finally:
            run.close()
        row.speed = label
        row.client = f"{INGEST} ({capture} capture)"
        rows.append(row)
    return rows


def release_versions() -> tuple[str, str] | str:
    """The two binaries' version lines, or why they must not be benchmarked."""
    venue = subprocess.run(
        [str(find_venue()), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    ingest = subprocess.run(
        [str(find_ingest()), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if "release build" not in venue:
        return f"refusing to benchmark {venue!r}: build it with `make setup`"
    if "release build" not in ingest:
        return f"refusing to benchmark {ingest.splitlines()[0]!r}: build it with `make setup`"
    if twinfeed.BUILD_PROFILE != "release":
        return f"refusing to benchmark a {twinfeed.BUILD_PROFILE} build of twinfeed._features"
    return venue, ingest.splitlines()[0]


def print_table(rows: list[Row]) -> None:
    print(HEADER)
    print("|---|---|---:|---:|---:|---:|")
    for speed in dict.fromkeys(row.speed for row in rows):
        group = [row for row in rows if row.speed == speed]
        python = max((r.rate for r in group if r.client.startswith("python")), default=0.0)
        for row in group:
            ratio = f"{row.rate / python:.1f}x" if python else "-"
            print(
                f"| {row.speed} | {row.client} | {row.messages:,} | {row.seconds:.2f} | "
                f"{row.rate:,.0f} | {ratio} |"
            )
    for row in rows:
        if row.extra:
            print(
                f"- {row.speed}, {row.client.removeprefix(INGEST).strip(' ()')}: ingest took "
                f"{row.extra['ingest_frames_per_second']:,.0f} "
                f"frames/s over the same window, using {row.extra['ingest_cpu_seconds']:.2f} s "
                f"of CPU ({row.extra['ingest_cpu_us_per_frame']:.2f} us per frame); "
                f"{row.extra['lost_to_overrun']:,} records lost to ring overrun"
            )


def quote_phase(
    args: argparse.Namespace, work: Path, speed: float
) -> tuple[list[Row], dict[str, Any]]:
    """bookTicker only: the Python clients and the ingest at max and paced, then latency."""
    rows: list[Row] = []
    config = work / "features.toml"
    config.write_text(CONFIG)
    zstd_config = work / "features-zstd.toml"
    zstd_config.write_text(ZSTD_CONFIG)
    both = {"plain": config, "zstd": zstd_config}
    with start_venue(args.capture, speed="max", loop=True) as venue:
        rows += measure(venue, "max", both, work, args.warmup, args.seconds)
    if args.pacing == "fixed":
        label = f"--rate {args.rate:,.0f}"
        paced = start_venue(args.capture, rate=args.rate, loop=True)
    else:
        label = f"{speed:.0f} (~{args.rate:,.0f}/s)"
        paced = start_venue(args.capture, speed=f"{speed:.3f}", loop=True)
    with paced as venue:
        rows += measure(venue, label, both, work, args.warmup, args.seconds)
        run = IngestRun(venue, config, work, spin_us=args.spin_us)
        with pinned_reader(venue, run, args.pin):
            latency = ingest_latency(run, args.warmup, args.latency_seconds)
    return rows, latency


def print_quote(
    args: argparse.Namespace, rows: list[Row], latency: dict[str, Any], speed: float
) -> None:
    print_table(rows)
    print()
    pacing = (
        f"venue --rate {args.rate:,.0f} (evenly spaced)"
        if args.pacing == "fixed"
        else f"venue speed {speed:.1f} (the capture's timing)"
    )
    print(
        f"Receive-to-Python latency at {pacing} "
        f"({latency['records_per_second']:,.0f} quote records/s over "
        f"{latency['seconds']:.1f} s, {latency['batches']:,} batches, "
        f"{latency['lost_to_overrun']} lost): ingest CLOCK_REALTIME receive stamp -> "
        f"time.time_ns() when Feed.read returns (polling {args.spin_us:g} us before sleeping, "
        "1 ms timeout"
        + (
            "; reader pinned to its own core, venue (nice 19) and ingest to the rest)"
            if args.pin
            else ")"
        )
    )
    print("| records | p50 | p99 | p99.9 | max | records/batch | newest of batch p50 / p99 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    if latency["records"]:
        print(
            f"| {latency['records']:,} | {latency['p50_us']:.1f} us | {latency['p99_us']:.1f} us "
            f"| {latency['p99_9_us']:.1f} us | {latency['max_us']:.1f} us "
            f"| {latency['records_per_batch']:.0f} "
            f"| {latency['newest_p50_us']:.1f} / {latency['newest_p99_us']:.1f} us |"
        )
    else:
        print("| 0 | - | - | - | - | - | - |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput case")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=50_000.0, help="paced bookTicker msg/s")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--spin-us",
        type=float,
        default=5000.0,
        help="latency reader: how long Feed.read polls before sleeping (Feed.open spin_us)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="latency phase: this reader alone on the last core, venue and ingest on the others",
    )
    parser.add_argument(
        "--pacing",
        choices=["fixed", "capture"],
        default="fixed",
        help="paced venue: fixed = --rate messages/s evenly spaced (venue --rate); capture = "
        "the capture's own timing sped up to --rate on average (venue --speed)",
    )
    parser.add_argument(
        "--depth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the whole capture with depth subscribed (throughput, latency, stages)",
    )
    parser.add_argument("--only-depth", action="store_true", help="skip the bookTicker-only cases")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds in all")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.latency_seconds = 0.5, 0.2, 1.0
    if not args.capture.exists():
        print(f"capture {args.capture} not found", file=sys.stderr)
        return 2
    try:
        versions = release_versions()
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    if isinstance(versions, str):
        print(versions, file=sys.stderr)
        return 2
    venue_version, ingest_version = versions
    speed = args.rate / book_ticker_rate(args.capture) if args.pacing == "capture" else 0.0

    load_before = load_average()
    stalls = cpu_stall_probe(1.0 if args.quick else 5.0)
    rows: list[Row] = []
    latency: dict[str, Any] = {}
    depth: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="twinfeed-live-bench-") as tmp:
        work = Path(tmp)
        if not args.only_depth:
            rows, latency = quote_phase(args, work, speed)
        if args.depth or args.only_depth:
            depth = depth_phase(args, work)
    stalls_after = cpu_stall_probe(1.0 if args.quick else 5.0)
    load_after = load_average()

    print(f"{venue_version}; {ingest_version}; capture {args.capture.name}; --loop")
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores; load average before {load_before}, "
        f"after {load_after}; python {platform.python_version()}, "
        f"websockets {websockets.__version__}, orjson {orjson.__version__}"
    )
    print(f"stream {STREAM} (combined); {args.seconds:g} s per case after {args.warmup:g} s")
    print()
    if rows:
        print_quote(args, rows, latency, speed)
    if depth:
        print_depth(depth, args)
        print()
    for when, probe in (("before", stalls), ("after", stalls_after)):
        print(
            f"Machine floor ({when} the runs, nothing else of ours running): a thread spinning "
            f"on the clock alone on one core lost it {probe['stalls_per_second']:,.0f} times a "
            f"second for more than 20 us, {probe['stalled_fraction'] * 100:.2f} % of the time "
            f"(stalls: median {probe['median_stall_us']:.0f} us, p90 {probe['p90_stall_us']:.0f}"
            f" us, max {probe['max_stall_us']:.0f} us). A record published at a random moment "
            f"waits for the rest of the stall it falls into: p99 {probe['floor_p99_us']:.1f} us,"
            f" p99.9 {probe['floor_p99_9_us']:.1f} us, "
            f"{probe['floor_share_over_50us'] * 100:.2f} % over 50 us, for a reader that does "
            "nothing at all."
        )
    if args.json:
        payload = {
            "venue_version": venue_version,
            "ingest_version": ingest_version,
            "capture": str(args.capture),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores",
            "load_before": load_before,
            "load_after": load_after,
            "pacing": args.pacing,
            "paced_rate": args.rate,
            "paced_speed": speed,
            "latency_spin_us": args.spin_us,
            "latency_pinned": args.pin,
            "quick": args.quick,
            "throughput": [asdict(row) | {"per_second": row.rate} for row in rows],
            "latency": latency,
            "depth": depth,
            "cpu_stalls": stalls,
            "cpu_stalls_after": stalls_after,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
