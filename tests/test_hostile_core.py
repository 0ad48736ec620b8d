"""Hostile capture lines against the feature crate, built from real Binance USD-M lines.

Each hostile line must be counted as skipped with a message naming the field, never crash the
process, and leave every well-formed line around it producing exactly the records it produces
without it. Forged ids must cost a gap and a resync, never a frozen book.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import subprocess
import zlib
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO, USDM, require_real
from twinfeed import KIND, FeatureConfig, Flag
from twinfeed.research import compute_features, compute_records

FLAG_BOOK_VALID = int(Flag.BOOK_VALID)
INGEST = REPO / "target" / "release" / "twinfeed-ingest"
TWINFEED = REPO / ".venv" / "bin" / "twinfeed"
#: Deeper than any stack survives when parsed recursively (the reported crash needed ~37,500).
DEEP = 40_000


@pytest.fixture(scope="module")
def real_lines() -> list[bytes]:
    """The first 300 lines of the real USD-M capture (the REST snapshot is line 55)."""
    with gzip.open(require_real(USDM), "rb") as f:
        return list(itertools.islice(f, 300))


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def first(lines: list[bytes], marker: bytes, after: int = 60) -> int:
    """Index of the first line at or after ``after`` whose frame contains ``marker``."""
    return next(i for i in range(after, len(lines)) if marker in lines[i])


def records_and_stats(path: Path) -> tuple[pl.DataFrame, dict]:
    df = compute_features(path)
    _, stats = compute_records(path)
    return df, stats


def assert_skipped_without_side_effects(
    tmp_path: Path, lines: list[bytes], at: int, hostile: bytes, field: str
) -> dict:
    """Inserts ``hostile`` before ``lines[at]``; checks the skip and the untouched records."""
    clean, clean_stats = records_and_stats(write(tmp_path / "clean.txt", lines))
    assert clean_stats["decode_errors"] == clean_stats["malformed_lines"] == 0
    hostile_lines = [*lines[:at], hostile, *lines[at:]]
    got, stats = records_and_stats(write(tmp_path / "hostile.txt", hostile_lines))
    skipped = stats["decode_errors"] + stats["malformed_lines"]
    assert skipped == 1, stats["errors"]
    (line, message), *_ = stats["errors"]
    assert line == at + 1
    assert field in message, message
    assert (got["line"] != at + 1).all(), "the hostile line produced a record"
    renumbered = got.with_columns(
        pl.when(pl.col("line") > at + 1)
        .then(pl.col("line") - 1)
        .otherwise(pl.col("line"))
        .alias("line")
    )
    assert renumbered.equals(clean, null_equal=True)
    return stats


def with_member(line: bytes, value: bytes) -> bytes:
    """``line`` with an extra member ``"x": value`` before its ``"s"`` member."""
    stamp, frame = line.split(b" ", 1)
    assert b'"s":"BTCUSDT"' in frame
    return stamp + b" " + frame.replace(b'"s":"BTCUSDT"', b'"x":' + value + b',"s":"BTCUSDT"', 1)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


NESTING_CASES = {
    "depth payload": (b"@depth", lambda line: with_member(line, nested(DEEP)), "data.x"),
    "bookTicker payload": (
        b"@bookTicker",
        lambda line: with_member(line, b'{"k":' * DEEP + b"1" + b"}" * DEEP),
        "data.x.k.k",
    ),
    "trade payload, unbalanced": (
        b"@trade",
        lambda line: with_member(line, b"[" * DEEP),
        "data.x",
    ),
    "envelope": (
        b"@trade",
        lambda line: line.replace(b'{"stream"', b'{"y":' + nested(DEEP) + b',"stream"', 1),
        "field `y`",
    ),
    "value of b": (
        b"@bookTicker",
        lambda line: re.sub(rb'"b":"[0-9.]+"', b'"b":' + nested(DEEP), line, count=1),
        "data.b",
    ),
    "snapshot line": (
        b'"lastUpdateId"',
        lambda line: line.replace(b'"bids"', b'"z":' + nested(DEEP) + b',"bids"', 1),
        "field `z`",
    ),
}


@pytest.mark.parametrize("case", list(NESTING_CASES))
def test_deep_nesting_is_a_counted_decode_error_not_a_crash(real_lines, tmp_path, case):
    marker, make, field = NESTING_CASES[case]
    source = first(real_lines, marker, after=0)
    hostile = make(real_lines[source])
    assert len(hostile) > DEEP
    stats = assert_skipped_without_side_effects(tmp_path, real_lines, 100, hostile, field)
    assert "nested deeper than 128 levels" in stats["errors"][0][1]


def test_deep_nesting_through_the_cli_and_the_ingest_replay(real_lines, tmp_path):
    """The reported crashes were in these processes (rc 139, stack overflow abort)."""
    at = 100
    hostile = with_member(real_lines[first(real_lines, b"@depth")], nested(DEEP))
    capture = write(tmp_path / "deep.txt", [*real_lines[:at], hostile, *real_lines[at:]])
    cli = subprocess.run(
        [str(TWINFEED), "features", str(capture), "--out", str(tmp_path / "f.parquet")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    output = re.sub(r"\s+", " ", cli.stdout + cli.stderr)
    assert "decode_errors 1" in output and "field `data.x`" in output, output
    assert f"line {at + 1}" in output
    assert pl.read_parquet(tmp_path / "f.parquet").height == compute_features(capture).height
    stats_file = tmp_path / "stats.json"
    replay = subprocess.run(
        [
            str(INGEST),
            "--replay",
            str(capture),
            "--capture-dir",
            str(tmp_path / "replayed"),
            "--stats-file",
            str(stats_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    stats = json.loads(stats_file.read_text())
    assert stats["counters"]["decode_errors"] == 1
    assert stats["counters"]["lines"] == len(real_lines) + 1
    (error,) = stats["last_errors"]
    assert error["line"] == at + 1 and "field `data.x`" in error["message"], error


def edit(line: bytes, pattern: bytes, replacement: bytes) -> bytes:
    changed = re.sub(pattern, replacement, line, count=1)
    assert changed != line, pattern
    return changed


#: (stream marker, pattern, replacement, field named in the message)
ABSURD_VALUES = {
    "trade E 9e12 ms": (b"@trade", rb'"E":\d+', b'"E":9000000000000', "field `E`"),
    "quote E i64::MAX": (b"@bookTicker", rb'"E":\d+', b'"E":9223372036854775807', "field `E`"),
    "negative trade quantity": (b"@trade", rb'"q":"', b'"q":"-', "field `q`"),
    "negative bid": (b"@bookTicker", rb'"b":"', b'"b":"-', "field `b`"),
    "zero ask": (b"@bookTicker", rb'"a":"[0-9.]+"', b'"a":"0.00"', "field `a`"),
    "crossed quote": (b"@bookTicker", rb'"a":"[0-9.]+"', b'"a":"100.00"', "crossed"),
    "depth u 2^63": (b"@depth", rb'"u":\d+', b'"u":9223372036854775808', "field `u`"),
    "snapshot lastUpdateId u64::MAX": (
        b'"lastUpdateId"',
        rb'"lastUpdateId":\d+',
        b'"lastUpdateId":18446744073709551615',
        "field `lastUpdateId`",
    ),
    "19-digit receive stamp": (
        b"@bookTicker",
        rb"^\d+ ",
        b"9999999999999999999 ",
        "local_receive_ns",
    ),
}


@pytest.mark.parametrize("case", list(ABSURD_VALUES))
def test_values_the_venue_cannot_send_are_counted_skips(real_lines, tmp_path, case):
    marker, pattern, replacement, field = ABSURD_VALUES[case]
    source = first(real_lines, marker, after=0)
    hostile = edit(real_lines[source], pattern, replacement)
    assert_skipped_without_side_effects(tmp_path, real_lines, 120, hostile, field)


def test_huge_trade_quantities_neither_wrap_volume_nor_vwap(real_lines, tmp_path):
    """Two trades of the largest size the decimals can hold: volume and VWAP stay exact."""
    at = first(real_lines, b"@trade", after=120)
    huge = edit(real_lines[at], rb'"q":"[0-9.]+"', b'"q":"92233720368.54775807"')
    lines = [*real_lines[:at], huge, huge, *real_lines[at:]]
    df, stats = records_and_stats(write(tmp_path / "huge.txt", lines))
    assert stats["decode_errors"] == 0
    bars = df.filter(pl.col("kind") == KIND["bar"])
    trades = df.filter(pl.col("kind") == KIND["trade"])
    assert (bars["volume"] >= 0).all()
    assert bars["volume"].max() >= 2 * 92233720368.0
    low, high = trades["trade_px"].min(), trades["trade_px"].max()
    vwap = bars["vwap"].drop_nans()
    assert ((vwap >= low) & (vwap <= high)).all(), vwap


def test_a_forged_update_id_costs_a_gap_and_a_resync_not_a_frozen_book(real_lines, tmp_path):
    """A diff chained to the book (`pu` = last `u`) but jumping to `u` = 2^62."""
    depth = [i for i, line in enumerate(real_lines) if b"@depth" in line[:60] and i > 60]
    victim, resync_before = depth[3], depth[-3]
    real_next = json.loads(real_lines[victim].split(b" ", 1)[1])["data"]
    forged = edit(real_lines[victim], rb'"u":\d+', b'"u":4611686018427387904')
    # A fresh snapshot straddled by the first diff buffered after the gap (the forged
    # diff's successor), as the ingest would fetch it after the gap.
    snapshot_at = first(real_lines, b'"lastUpdateId"', after=0)
    snapshot = edit(
        real_lines[snapshot_at],
        rb'"lastUpdateId":\d+',
        b'"lastUpdateId":%d' % real_next["U"],
    )
    lines = [
        *real_lines[:victim],
        forged,
        *real_lines[victim:resync_before],
        snapshot,
        *real_lines[resync_before:],
    ]
    df, stats = records_and_stats(write(tmp_path / "forged.txt", lines))
    assert stats["decode_errors"] == 0 and stats["gaps"] == 1
    gap_line = df.filter(pl.col("kind") == KIND["gap"])["line"][0]
    assert gap_line == victim + 2, "the real diff after the forged one reports the gap"
    resync_line = resync_before + 2
    between = df.filter((pl.col("line") > gap_line) & (pl.col("line") < resync_line))
    assert (between["kind"] != KIND["book"]).all()
    quotes = between.filter(pl.col("kind") == KIND["quote"])
    assert len(quotes) > 0 and (quotes["flags"] & FLAG_BOOK_VALID == 0).all()
    books_after = df.filter((pl.col("kind") == KIND["book"]) & (pl.col("line") >= resync_line))
    assert len(books_after) >= 2
    assert (books_after["flags"] & FLAG_BOOK_VALID != 0).all()


def test_symbols_past_the_cap_are_counted_skips_with_a_message(real_lines, tmp_path):
    config = FeatureConfig.from_toml_str("[filter]\nmax_symbols = 2\n", "cap.toml")
    ticker = real_lines[first(real_lines, b"@bookTicker")]
    junk = [ticker.replace(b'"s":"BTCUSDT"', b'"s":"JUNK%d"' % i) for i in range(5)]
    lines = [*real_lines[:100], *junk, *real_lines[100:]]
    path = write(tmp_path / "junk.txt", lines)
    _, stats = compute_records(path, config)
    assert stats["over_symbol_cap"] == 4 and stats["filtered"] == 0
    assert stats["symbols"] == ["BTCUSDT", "JUNK0"]
    line, message = stats["errors"][0]
    assert line == 102 and '"JUNK1"' in message and "filter.max_symbols = 2" in message
    assert any("max_symbols" in warning for warning in stats["warnings"])
    btc = compute_features(path, config).filter(pl.col("symbol") == "BTCUSDT")
    clean = compute_features(write(tmp_path / "clean.txt", real_lines), config)
    assert btc.drop("line").equals(clean.drop("line"), null_equal=True)


def gzip_member(lines: list[bytes]) -> bytes:
    return gzip.compress(b"".join(lines), compresslevel=1)


def test_garbage_after_a_compressed_capture_keeps_every_line(real_lines, tmp_path):
    clean = compute_features(write(tmp_path / "clean.txt", real_lines))
    garbage = b"\x00\x01 not a gzip member \xff\xfe"
    path = tmp_path / "garbage.gz"
    path.write_bytes(gzip_member(real_lines) + garbage)
    df, stats = records_and_stats(path)
    assert df.equals(clean, null_equal=True)
    (line, message), *_ = stats["errors"]
    assert line == len(real_lines) + 1
    assert "garbage.gz" in message and "cannot be decoded after byte" in message, message


def test_a_corrupt_gzip_member_keeps_the_lines_before_it(real_lines, tmp_path):
    half = len(real_lines) // 2
    first_member = gzip_member(real_lines[:half])
    second = bytearray(gzip_member(real_lines[half:]))
    second[40:80] = b"\xff" * 40  # inside the deflate data
    path = tmp_path / "corrupt.gz"
    path.write_bytes(first_member + bytes(second))
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(path.read_bytes())
    df, stats = records_and_stats(path)
    before = compute_features(write(tmp_path / "before.txt", real_lines[:half]))
    assert df.head(before.height).equals(before, null_equal=True)
    message = stats["errors"][-1][1]
    assert "corrupt.gz" in message and "cannot be decoded" in message, message
