"""Batch top-of-book features: the twinfeed binding against pure-Python decoders and polars.

One run, same inputs for every variant:

(a) a capture (default: the real Binance USD-M recording in ../shared/data/real), decompressed
    once to a plain temporary file (not timed);
(b) "bookTicker-heavy data": only its bookTicker lines, repeated to >= 1M lines (quick: 50k)
    with strictly increasing local receive times.

Every variant reads the plain file from disk (page cache) itself and produces bid, ask, sizes,
mid, spread, spread_bps and microprice for each bookTicker; other lines are decoded and skipped.
twinfeed runs its whole pipeline (it also keeps the L2 book and emits trade, book and bar
records), so it does strictly more work than the Python variants. Each variant gets one warm-up
run, then the best of ``--repeats`` runs is reported.

A second table (issue #18) splits real captures by stream: the whole capture, its bookTicker
lines only, its trade lines only, and its depth diffs plus snapshots, on both real USD-M
captures in ../shared (hftbacktest's BTCUSDT, and cryptofeed's four-symbol BINANCE_FUTURES
imported with ``twinfeed.research.importers``) and the spot one, side by side in one run.
Each input against an orjson loop that parses and converts every price and size to float (no
book), and an orjson loop that also keeps dict books (snapshot + diffs, no sequence checks,
no features: the least a Python book costs).

    .venv/bin/python benchmarks/batch_features.py [--quick] [--json OUT] [--capture PATH]
        [--per-stream-only] [--limit LINES]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import io
import json
import math
import os
import platform
import re
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from machine import cpu_model  # benchmarks/machine.py (this script's folder)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CAPTURE = REPO.parent / "shared" / "data" / "real" / "binance-usdm" / "btcusdt_20240808.gz"
COLUMNS = ("bid", "ask", "bid_qty", "ask_qty", "mid", "spread", "spread_bps", "microprice")

Columns = list[array]  # one array('d') per name in COLUMNS


# -- machine and build ----------------------------------------------------------------------


def pin_to_one_core() -> int | None:
    """Pins this process (and its threads) to one core of those it may use; None if it can't."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        return None
    return core


# -- inputs (prepared once, not timed) ------------------------------------------------------


def decompress(capture: Path, out: Path, max_lines: int | None) -> None:
    opener = gzip.open if capture.suffix == ".gz" else open
    with opener(capture, "rb") as source, out.open("wb") as sink:
        for count, line in enumerate(source):
            if max_lines is not None and count >= max_lines:
                break
            sink.write(line)


def book_ticker_extract(plain: Path, out: Path, min_lines: int) -> None:
    """The bookTicker lines of ``plain``, repeated to ``min_lines``; stamps strictly increase."""
    lines: list[tuple[int, bytes]] = []
    with plain.open("rb") as source:
        for line in source:
            if b'"bookTicker"' in line:
                prefix, frame = line.split(b" ", 1)
                lines.append((int(prefix), frame))
    if not lines:
        raise SystemExit(f"{plain}: no bookTicker lines")
    span = lines[-1][0] - lines[0][0] + 1_000_000
    last = 0
    written = 0
    with out.open("wb") as sink:
        copy = 0
        while written < min_lines:
            for stamp, frame in lines:
                last = max(stamp + copy * span, last + 1)
                sink.write(b"%d %s" % (last, frame))
                written += 1
                if written >= min_lines:
                    break
            copy += 1


def strip_prefixes(data: bytes) -> bytes:
    """NDJSON from a capture: drops each line's ``<local_receive_ns> `` prefix."""
    return re.sub(rb"(?m)^\d+ ", b"", data)


# -- variants --------------------------------------------------------------------------------


def new_columns() -> Columns:
    return [array("d") for _ in COLUMNS]


def top_of_book(columns: Columns, bid: float, bid_qty: float, ask: float, ask_qty: float) -> None:
    mid = (bid + ask) / 2.0
    spread = ask - bid
    depth = bid_qty + ask_qty
    microprice = (bid * ask_qty + ask * bid_qty) / depth if depth > 0 else mid
    values = (bid, ask, bid_qty, ask_qty, mid, spread, spread / mid * 10_000.0, microprice)
    for column, value in zip(columns, values, strict=True):
        column.append(value)


def run_json(path: Path) -> tuple[int, Columns]:
    columns = new_columns()
    messages = 0
    loads = json.loads
    with path.open("r", encoding="utf-8") as source:
        for line in source:
            messages += 1
            body = loads(line[line.index(" ") + 1 :])
            data = body.get("data")
            if data is None or data.get("e") != "bookTicker":
                continue
            top_of_book(
                columns, float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"])
            )
    return messages, columns


def run_orjson(path: Path) -> tuple[int, Columns]:
    import orjson

    columns = new_columns()
    messages = 0
    loads = orjson.loads
    with path.open("rb") as source:
        for line in source:
            messages += 1
            body = loads(line[line.index(b" ") + 1 :])
            data = body.get("data")
            if data is None or data.get("e") != "bookTicker":
                continue
            top_of_book(
                columns, float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"])
            )
    return messages, columns


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker"):
    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    T: int
    E: int


class Trade(msgspec.Struct, tag_field="e", tag="trade"):
    E: int
    T: int
    s: str
    t: int
    p: str
    q: str
    X: str
    m: bool


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: int
    T: int
    s: str
    U: int
    u: int
    pu: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class Envelope(msgspec.Struct):
    """A combined-stream frame; ``data`` is a union tagged by its ``e`` field."""

    stream: str
    data: BookTicker | Trade | DepthUpdate


class Snapshot(msgspec.Struct):
    """The bare REST depth body."""

    lastUpdateId: int  # noqa: N815  (the venue's field name)
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


def run_msgspec(path: Path) -> tuple[int, Columns]:
    # strict=False parses the decimal strings straight into the float fields.
    decode = msgspec.json.Decoder(Envelope, strict=False).decode
    snapshot = msgspec.json.Decoder(Snapshot)
    columns = new_columns()
    messages = 0
    with path.open("rb") as source:
        for line in source:
            messages += 1
            frame = memoryview(line)[line.index(b" ") + 1 :]
            try:
                data = decode(frame).data
            except msgspec.ValidationError:
                snapshot.decode(frame)  # the bare REST depth body
                continue
            if type(data) is BookTicker:
                top_of_book(columns, data.b, data.B, data.a, data.A)
    return messages, columns


def polars_schema() -> Any:
    import polars as pl

    body = pl.Struct(
        {
            "e": pl.String,
            "u": pl.Int64,
            "s": pl.String,
            "b": pl.String,
            "B": pl.String,
            "a": pl.String,
            "A": pl.String,
            "T": pl.Int64,
            "E": pl.Int64,
        }
    )
    return {"stream": pl.String, "data": body}


def polars_features(source: Any) -> tuple[int, Any]:
    import polars as pl

    frame = pl.read_ndjson(source, schema=polars_schema())
    bid, ask = pl.col("b").cast(pl.Float64), pl.col("a").cast(pl.Float64)
    bid_qty, ask_qty = pl.col("B").cast(pl.Float64), pl.col("A").cast(pl.Float64)
    top = (
        frame.lazy()
        .select(pl.col("data").struct.field("e", "b", "B", "a", "A"))
        .filter(pl.col("e") == "bookTicker")
        .select(bid=bid, ask=ask, bid_qty=bid_qty, ask_qty=ask_qty)
        .with_columns(
            mid=(pl.col("bid") + pl.col("ask")) / 2.0, spread=pl.col("ask") - pl.col("bid")
        )
        .with_columns(
            spread_bps=pl.col("spread") / pl.col("mid") * 10_000.0,
            microprice=pl.when(pl.col("bid_qty") + pl.col("ask_qty") > 0)
            .then(
                (pl.col("bid") * pl.col("ask_qty") + pl.col("ask") * pl.col("bid_qty"))
                / (pl.col("bid_qty") + pl.col("ask_qty"))
            )
            .otherwise(pl.col("mid")),
        )
        .collect()
    )
    return frame.height, top


def run_polars_with_prep(path: Path) -> tuple[int, Any]:
    return polars_features(io.BytesIO(strip_prefixes(path.read_bytes())))


def run_twinfeed_arrow(path: Path) -> tuple[int, Any]:
    """The binding alone: FeatureRun.next_arrow batches (every record kind), no DataFrame."""
    from twinfeed.research.features import open_run

    run = open_run(path)
    batches = []
    while (table := run.next_arrow(1 << 16)) is not None:
        batches.append(table)
    return int(run.stats()["lines"]), None


def run_twinfeed(path: Path) -> tuple[int, Any]:
    import polars as pl
    from twinfeed.research.features import open_run

    # compute_features' loop, keeping the stats for the message count.
    run = open_run(path)
    frames = []
    while (table := run.next_arrow(1 << 20)) is not None:
        frames.append(pl.DataFrame(table))
    records = pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]
    quotes = records.filter(pl.col("kind") == "quote")
    return int(run.stats()["lines"]), quotes


# -- per-stream inputs and the orjson loops with and without books ----------------------------

REAL = REPO.parent / "shared" / "data" / "real"
PER_STREAM_CAPTURES = (
    ("usdm btcusdt (hftbacktest)", REAL / "binance-usdm" / "btcusdt_20240808.gz", "hftbacktest"),
    ("usdm 4 symbols (cryptofeed)", REAL / "cryptofeed" / "BINANCE_FUTURES.ws.1.0", "cryptofeed"),
    ("spot btcusdt (hftbacktest)", REAL / "binance-spot" / "btcusdt_20240808.gz", "hftbacktest"),
    # Issue 20: one row set per venue. These captures are small (410 and 55 lines), so each is
    # replayed in laps up to VENUE_MIN_LINES lines (a lap starts with the books' snapshots
    # again, so every OKX checksum still holds).
    ("okx 3 instruments (cryptofeed)", REAL / "cryptofeed" / "OKX.ws.1.0", "cryptofeed"),
    ("hyperliquid btc (hftbacktest)", REAL / "hyperliquid" / "btcusd_20250126.gz", "hftbacktest"),
)
#: Lines the small venue captures are repeated up to (quick or --limit runs: that limit).
VENUE_MIN_LINES = 200_000
#: (label, predicate on a frame) for each per-stream input; the whole capture keeps every line.
STREAMS: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("whole capture", lambda frame: True),
    (
        "bookTicker only",
        lambda frame: (
            b'@bookTicker"' in frame[:60]
            or frame.startswith((b'{"arg":{"channel":"tickers"', b'{"arg":{"channel":"bbo-tbt"'))
            or frame.startswith(b'{"channel":"bbo"')
        ),
    ),
    (
        "trade only",
        lambda frame: (
            b'@trade"' in frame[:60]
            or b'@aggTrade"' in frame[:60]
            or frame.startswith((b'{"arg":{"channel":"trades"', b'{"channel":"trades"'))
        ),
    ),
    (
        "depth diffs + snapshot",
        lambda frame: (
            b'@depth"' in frame[:60]
            or b"@depth@" in frame[:60]
            or frame.startswith((b'{"lastUpdateId"', b'{"twinfeed":"snapshot"'))
            or frame.startswith((b'{"arg":{"channel":"books', b'{"channel":"l2Book"'))
        ),
    ),
)


def plain_capture(label: str, source: Path, kind: str, out: Path, limit: int | None) -> None:
    """The capture as a plain twinfeed capture (cryptofeed imported first; not timed)."""
    if kind == "cryptofeed":
        from twinfeed.research.importers import import_capture

        imported = out.with_suffix(".imported")
        import_capture(source, "cryptofeed", imported)
        decompress(imported, out, limit)
        imported.unlink()
    else:
        decompress(source, out, limit)
    if "okx" in label or "hyperliquid" in label:
        repeat_laps(out, limit or VENUE_MIN_LINES)


def repeat_laps(path: Path, min_lines: int) -> None:
    """``path`` repeated whole until it has at least ``min_lines`` lines (receive times are
    left as they are: the pipeline takes time from the venue's frames)."""
    lap = path.read_bytes()
    lines = lap.count(b"\n")
    if lines == 0:
        return
    laps = max(1, -(-min_lines // lines))
    path.write_bytes(lap * laps)


def stream_extract(plain: Path, out: Path, keep: Callable[[bytes], bool]) -> int:
    count = 0
    with plain.open("rb") as source, out.open("wb") as sink:
        for line in source:
            if keep(line[line.index(b" ") + 1 :]):
                sink.write(line)
                count += 1
    return count


def _levels_to_float(levels: list[list[str]]) -> list[tuple[float, float]]:
    return [(float(price), float(size)) for price, size in levels]


def run_orjson_floats(path: Path, books: bool) -> tuple[int, None]:
    """Every line parsed with orjson, every price and size made a float; with ``books``, depth
    snapshots and diffs also kept in one dict per side and symbol."""
    import orjson

    loads = orjson.loads
    messages = 0
    sides: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    with path.open("rb") as source:
        for line in source:
            messages += 1
            body = loads(line[line.index(b" ") + 1 :])
            if "arg" in body or "channel" in body:
                _venue_floats(body, sides if books else None)
                continue
            data = body.get("data", body)
            if "lastUpdateId" in data:  # REST snapshot, bare or in a twinfeed snapshot line
                bids, asks = _levels_to_float(data["bids"]), _levels_to_float(data["asks"])
                if books:
                    symbol = body.get("symbol", "")
                    sides[symbol] = (dict(bids), dict(asks))
                continue
            event = data.get("e")
            if event == "bookTicker":
                float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"])
            elif event in ("trade", "aggTrade"):
                float(data["p"]), float(data["q"])
            elif event == "depthUpdate":
                bids, asks = _levels_to_float(data["b"]), _levels_to_float(data["a"])
                if books:
                    book = sides.get(data["s"]) or sides.get("")
                    if book is None:
                        continue
                    for side, levels in zip(book, (bids, asks), strict=True):
                        for price, size in levels:
                            if size == 0.0:
                                side.pop(price, None)
                            else:
                                side[price] = size
    return messages, None


def _venue_floats(
    body: dict[str, Any], sides: dict[str, tuple[dict[float, float], dict[float, float]]] | None
) -> None:
    """The OKX and Hyperliquid frames of :func:`run_orjson_floats`: every price and size made a
    float; with ``sides``, OKX ``books`` (snapshot + update, no checksum) and Hyperliquid
    ``l2Book`` (whole books) kept in dicts."""
    channel = body["arg"]["channel"] if "arg" in body else body["channel"]
    data = body.get("data")
    if data is None:
        return
    if channel == "tickers":
        for t in data:
            float(t["bidPx"]), float(t["bidSz"]), float(t["askPx"]), float(t["askSz"])
    elif channel == "trades":
        for t in data:
            float(t["px"]), float(t["sz"])
    elif channel in ("books", "books5", "bbo-tbt"):
        book = data[0]
        bids = [(float(level[0]), float(level[1])) for level in book["bids"]]
        asks = [(float(level[0]), float(level[1])) for level in book["asks"]]
        if sides is not None and channel == "books":
            symbol = body["arg"]["instId"]
            if body.get("action") == "snapshot" or symbol not in sides:
                sides[symbol] = (dict(bids), dict(asks))
                return
            for side, levels in zip(sides[symbol], (bids, asks), strict=True):
                for price, size in levels:
                    if size == 0.0:
                        side.pop(price, None)
                    else:
                        side[price] = size
    elif channel == "l2Book":
        levels = data["levels"]
        bids = [(float(level["px"]), float(level["sz"])) for level in levels[0]]
        asks = [(float(level["px"]), float(level["sz"])) for level in levels[1]]
        if sides is not None:
            sides[data["coin"]] = (dict(bids), dict(asks))
    elif channel == "bbo":
        for level in data["bbo"]:
            if level is not None:
                float(level["px"]), float(level["sz"])


@dataclass
class StreamResult:
    capture: str
    input: str
    messages: int
    size_mb: float
    twinfeed_s: float
    orjson_s: float
    orjson_books_s: float


def bench_streams(work: Path, repeats: int, warmup: bool, limit: int | None) -> list[StreamResult]:
    results = []
    for label, source, kind in PER_STREAM_CAPTURES:
        if not source.exists():
            print(f"  per-stream: {source} not found, skipped", file=sys.stderr)
            continue
        plain = work / "per_stream_capture.txt"
        plain_capture(label, source, kind, plain, limit)
        for stream, keep in STREAMS:
            path = work / "per_stream_input.txt"
            messages = stream_extract(plain, path, keep)
            if messages == 0:
                continue
            times = []
            variants: tuple[Callable[[], tuple[int, Any]], ...] = (
                partial(run_twinfeed_arrow, path),
                partial(run_orjson_floats, path, books=False),
                partial(run_orjson_floats, path, books=True),
            )
            for function in variants:
                seconds, (counted, _) = best_of(function, repeats, warmup)
                assert counted == messages, (label, stream, counted, messages)
                times.append(seconds)
            size_mb = path.stat().st_size / 1e6
            results.append(StreamResult(label, stream, messages, size_mb, *times))
            print(f"  per-stream: {label}: {stream} done", file=sys.stderr, flush=True)
            path.unlink()
        plain.unlink()
    return results


def stream_table(results: list[StreamResult]) -> str:
    lines = [
        "| capture | input | messages | MB | twinfeed msg/s | twinfeed MB/s | orjson + float msg/s "
        "| x orjson | orjson + dict books msg/s | x orjson + books |",
        "|" + "---|" * 10,
    ]
    for r in results:
        lines.append(
            f"| {r.capture} | {r.input} | {r.messages:,} | {r.size_mb:.1f} "
            f"| {r.messages / r.twinfeed_s / 1e3:,.0f} k | {r.size_mb / r.twinfeed_s:,.0f} "
            f"| {r.messages / r.orjson_s / 1e3:,.0f} k | {r.orjson_s / r.twinfeed_s:.1f} "
            f"| {r.messages / r.orjson_books_s / 1e3:,.0f} k "
            f"| {r.orjson_books_s / r.twinfeed_s:.1f} |"
        )
    return "\n".join(lines)


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Result:
    variant: str
    input: str
    messages: int
    capture_mb: float
    best_s: float
    rows: int
    prep_in_time: str
    matches_orjson: str = ""
    msg_per_s: float = 0.0
    mb_per_s: float = 0.0
    vs_orjson: float = math.nan
    vs_msgspec: float = math.nan


def best_of(function: Callable[[], Any], repeats: int, warmup: bool) -> tuple[float, Any]:
    if warmup:
        function()
    best = math.inf
    output = None
    for _ in range(repeats):
        output = None
        gc.collect()
        start = time.perf_counter()
        output = function()
        best = min(best, time.perf_counter() - start)
    return best, output


def top_columns(output: Any) -> dict[str, np.ndarray]:
    """Output columns by name, from either a Columns list or a polars frame."""
    if isinstance(output, list):
        return {name: np.asarray(column) for name, column in zip(COLUMNS, output, strict=True)}
    renamed = {"bid": "bid_px", "ask": "ask_px"} if "bid_px" in output.columns else {}
    return {name: output[renamed.get(name, name)].to_numpy() for name in COLUMNS}


def check_agreement(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> str:
    """Whether two variants computed the same features (untimed)."""
    if len(reference["mid"]) != len(other["mid"]):
        return f"rows differ: {len(other['mid'])} vs {len(reference['mid'])}"
    worst = 0.0
    for name in COLUMNS:
        a, b = reference[name], other[name]
        if len(a):
            worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))))
    return "ok" if worst < 1e-9 else f"max relative difference {worst:.2e}"


def bench_input(label: str, path: Path, stripped: Path, repeats: int, warmup: bool) -> list[Result]:
    size_mb = path.stat().st_size / 1e6
    variants: list[tuple[str, Callable[[], tuple[int, Any]], str]] = [
        ("twinfeed compute_features", lambda: run_twinfeed(path), "n/a"),
        ("twinfeed FeatureRun.next_arrow", lambda: run_twinfeed_arrow(path), "n/a"),
        ("json.loads", lambda: run_json(path), "n/a"),
        ("orjson", lambda: run_orjson(path), "n/a"),
        ("msgspec typed Struct", lambda: run_msgspec(path), "n/a"),
        ("polars read_ndjson", lambda: run_polars_with_prep(path), "yes"),
        ("polars read_ndjson", lambda: polars_features(str(stripped)), "no"),
    ]
    results = []
    outputs: list[dict[str, np.ndarray] | None] = []
    for name, function, prep in variants:
        seconds, (messages, output) = best_of(function, repeats, warmup)
        columns = None if output is None else top_columns(output)
        outputs.append(columns)
        rows = -1 if columns is None else len(columns["mid"])
        results.append(Result(name, label, messages, size_mb, seconds, rows, prep))
        print(f"  {label}: {name} (prep {prep}) {seconds:.3f} s", file=sys.stderr, flush=True)
        del output
    reference = outputs[[r.variant for r in results].index("orjson")]
    assert reference is not None
    for result, columns in zip(results, outputs, strict=True):
        result.matches_orjson = "-" if columns is None else check_agreement(reference, columns)
    by_name = {r.variant: r for r in results}
    for r in results:
        r.msg_per_s = r.messages / r.best_s
        r.mb_per_s = r.capture_mb / r.best_s
        r.vs_orjson = r.msg_per_s / (by_name["orjson"].messages / by_name["orjson"].best_s)
        r.vs_msgspec = r.msg_per_s / (
            by_name["msgspec typed Struct"].messages / by_name["msgspec typed Struct"].best_s
        )
    return results


def table(results: list[Result]) -> str:
    header = (
        "| variant | input | messages | MB | best s | msg/s | MB/s | x orjson | x msgspec "
        "| prefix strip in time | top-of-book rows | same as orjson |"
    )
    lines = [header, "|" + "---|" * 12]
    for r in results:
        lines.append(
            f"| {r.variant} | {r.input} | {r.messages:,} | {r.capture_mb:.1f} | {r.best_s:.3f} "
            f"| {r.msg_per_s / 1e6:.3f} M | {r.mb_per_s:.0f} | {r.vs_orjson:.2f} "
            f"| {r.vs_msgspec:.2f} | {r.prep_in_time} | {'-' if r.rows < 0 else f'{r.rows:,}'} "
            f"| {r.matches_orjson} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, one run (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE, help="input capture")
    parser.add_argument("--repeats", type=int, help="timed runs per variant (default 3; quick 1)")
    parser.add_argument("--workdir", type=Path, help="where the plain inputs go (default: /tmp)")
    parser.add_argument(
        "--per-stream-only", action="store_true", help="only the per-stream table (issue #18)"
    )
    parser.add_argument(
        "--limit", type=int, help="per-stream table: at most this many lines of each capture"
    )
    args = parser.parse_args(argv)

    from twinfeed import _features

    if _features.BUILD_PROFILE != "release":
        print(
            f"refusing to benchmark a {_features.BUILD_PROFILE} build of twinfeed._features: "
            "rebuild with `maturin develop --release` (make setup)",
            file=sys.stderr,
        )
        return 2
    if not args.capture.exists():
        print(f"capture not found: {args.capture}", file=sys.stderr)
        return 2

    core = pin_to_one_core()
    if core is not None:
        os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars is first imported
    repeats = args.repeats or (1 if args.quick else 3)
    warmup = not args.quick
    ticker_lines = 50_000 if args.quick else 1_000_000
    capture_lines = 20_000 if args.quick else None

    import orjson
    import polars as pl

    load_before = os.getloadavg()[0]
    machine: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores_online": os.cpu_count(),
        "pinned_to_core": core,
        "python": platform.python_version(),
        "twinfeed": _features.__version__,
        "build_profile": _features.BUILD_PROFILE,
        "git_revision": _features.GIT_REVISION,
        "orjson": orjson.__version__,
        "msgspec": msgspec.__version__,
        "polars": pl.__version__,
        "polars_threads": pl.thread_pool_size(),
        "load_average_1m": round(load_before, 2),
    }
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    print(
        f"repeats: best of {repeats}{' after one warm-up run' if warmup else ''}; "
        "every variant reads its plain input file from the page cache",
        flush=True,
    )

    stream_limit = args.limit if args.limit is not None else (capture_lines if args.quick else None)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        stream_results = bench_streams(work, repeats, warmup, stream_limit)
        if args.per_stream_only:
            print()
            print(per_stream_text(stream_results, stream_limit))
            if args.json:
                payload = {"machine": machine, "per_stream": [asdict(r) for r in stream_results]}
                args.json.write_text(json.dumps(payload, indent=2) + "\n")
            return 0
        plain = work / "capture.txt"
        decompress(args.capture, plain, capture_lines)
        tickers = work / "book_ticker.txt"
        book_ticker_extract(plain, tickers, ticker_lines)
        inputs = [("capture", plain), ("bookTicker-heavy", tickers)]
        results: list[Result] = []
        for label, path in inputs:
            stripped = path.with_suffix(".ndjson")
            stripped.write_bytes(strip_prefixes(path.read_bytes()))
            results.extend(bench_input(label, path, stripped, repeats, warmup))
            stripped.unlink()

    load_after = os.getloadavg()[0]
    machine["load_average_1m_after"] = round(load_after, 2)
    cores = os.cpu_count() or 1
    if max(load_before, load_after) > cores - 0.5:
        print(
            f"WARNING: load average {load_before:.2f} -> {load_after:.2f} on {cores} "
            "cores: other processes competed for the CPU, timings are pessimistic and noisy"
        )
    print()
    quick_note = f" (quick: at most {capture_lines:,} lines)" if capture_lines else ""
    print(f"capture: {args.capture}{quick_note}; bookTicker-heavy: its bookTicker lines repeated")
    print(table(results))
    print()
    print(
        "msg/s counts every input line; MB/s is the plain capture size (with the ns prefixes) "
        "over the time. 'prefix strip in time': polars needs NDJSON, so the `<ns> ` prefixes "
        "are stripped (a regex over the bytes) inside the timed run (yes) or beforehand (no). "
        "twinfeed also maintains the L2 book and emits trade/book/bar records; its "
        "compute_features row includes building the polars DataFrame and selecting the quote "
        "records, its next_arrow row is the binding alone."
    )
    print()
    print(per_stream_text(stream_results, stream_limit))
    if args.json:
        payload = {
            "machine": machine,
            "results": [asdict(r) for r in results],
            "per_stream": [asdict(r) for r in stream_results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def per_stream_text(results: list[StreamResult], limit: int | None) -> str:
    scope = f"the first {limit:,} lines of each capture" if limit else "whole captures"
    return "\n".join(
        [
            f"Per stream ({scope}; twinfeed = FeatureRun.next_arrow, the binding alone):",
            stream_table(results),
            "",
            "x orjson = twinfeed's speed over the orjson loop's (parse + float of every price and "
            "size); x orjson + books = the same against the loop that also keeps dict books.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
