"""The feature crate through the batch binding, on the real Binance captures."""

from __future__ import annotations

import functools
import gzip
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import twinfeed
from click.testing import CliRunner
from conftest import USDM, require_real
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.recfunctions import repack_fields
from twinfeed import KIND, FeatureConfig
from twinfeed.cli import main
from twinfeed.research import compute_features, compute_records, iter_feature_batches
from twinfeed.research.features import open_run

FLAG_BOOK_VALID = int(twinfeed.Flag.BOOK_VALID)


def capture_lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


@pytest.fixture(scope="module", params=["usdm", "spot"])
def real(request: pytest.FixtureRequest) -> tuple[Path, pl.DataFrame]:
    path = request.getfixturevalue(f"{request.param}_capture")
    return path, compute_features(path)


def test_every_book_ticker_is_a_record_with_its_exact_decimals(real):
    path, df = real
    tickers = []
    for line in capture_lines(path):
        frame = json.loads(line.split(b" ", 1)[1])
        if frame.get("stream", "").endswith("@bookTicker"):
            tickers.append(frame["data"])
    quotes = df.filter(pl.col("kind") == KIND["quote"])
    assert len(tickers) > 10_000
    assert len(quotes) == len(tickers)
    for message, row in zip(tickers, quotes.iter_rows(named=True), strict=True):
        assert row["update_id"] == message["u"]
        for field, key in (("bid_px", "b"), ("bid_qty", "B"), ("ask_px", "a"), ("ask_qty", "A")):
            # repr() is the shortest decimal that round-trips: equal as decimals means exact.
            assert Decimal(repr(row[field])) == Decimal(message[key]), (field, message)


def test_rebuilt_book_agrees_with_book_ticker_at_the_same_update_id(real):
    _, df = real
    columns = ["update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"]
    quotes = df.filter(pl.col("kind") == KIND["quote"]).select(columns)
    books = df.filter(pl.col("kind") == KIND["book"]).select(columns)
    joined = quotes.join(books, on="update_id", suffix="_book")
    assert len(joined) > 100, "too few shared update ids to compare"
    for column in columns[1:]:
        assert (joined[column] == joined[f"{column}_book"]).all(), column


def test_real_captures_are_gap_free_and_decode_cleanly(real):
    path, df = real
    _, stats = compute_records(path)
    assert stats["gaps"] == 0
    assert stats["decode_errors"] == 0 and stats["malformed_lines"] == 0
    assert stats["snapshots"] == 1
    assert (df["kind"] == KIND["gap"]).sum() == 0
    assert set(df["symbol"].unique().to_list()) == {"BTCUSDT"}
    book = df.filter(pl.col("kind") == KIND["book"])
    assert book["imbalance"].is_between(-1, 1).all()


def write_plain(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def test_deleting_a_depth_line_reports_a_gap_and_stops_book_features(usdm_capture, tmp_path):
    lines = capture_lines(usdm_capture)
    depth = [i for i, line in enumerate(lines) if b"@depth" in line[:80]]
    victim = depth[len(depth) // 2]
    copy = write_plain(tmp_path / "gap.txt", lines[:victim] + lines[victim + 1 :])
    df = compute_features(copy)
    gaps = df.filter(pl.col("kind") == KIND["gap"])
    assert len(gaps) == 1
    after = df.filter(pl.col("line") > gaps["line"][0])
    # No snapshot follows in this capture: no book record and no book feature after the gap.
    assert (after["kind"] == KIND["book"]).sum() == 0
    quotes_after = after.filter(pl.col("kind") == KIND["quote"])
    assert len(quotes_after) > 0
    assert quotes_after["imbalance"].is_nan().all()
    assert (quotes_after["flags"] & FLAG_BOOK_VALID == 0).all()


def test_capture_without_snapshot_has_no_book_features_and_says_so(spot_capture, tmp_path):
    lines = [line for line in capture_lines(spot_capture) if b"lastUpdateId" not in line]
    run = open_run(write_plain(tmp_path / "nosnap.txt", lines))
    kinds = []
    while (table := run.next_arrow(1 << 20)) is not None:
        kinds.extend(pa.table(table).column("kind").to_pylist())
    assert KIND["book"] not in kinds and KIND["quote"] in kinds
    warnings = run.stats()["warnings"]
    assert any("no depth snapshot" in w and "BTCUSDT" in w for w in warnings), warnings


@pytest.fixture(scope="module")
def usdm_whole(usdm_capture) -> pl.DataFrame:
    return compute_features(usdm_capture)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch_rows=st.integers(min_value=700, max_value=50_000))
def test_batches_concatenate_to_the_whole(usdm_capture, usdm_whole, batch_rows):
    whole = usdm_whole
    parts = pl.concat(list(iter_feature_batches(usdm_capture, batch_rows=batch_rows)))
    assert parts.equals(whole, null_equal=True)


@functools.cache
def _head_lines() -> list[bytes]:
    # A plain function, not a fixture: hypothesis would repr a fixture argument on every example.
    return capture_lines(require_real(USDM))[:4000]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_arbitrary_push_splits_give_identical_bytes(data):
    head_lines = _head_lines()
    blob = b"".join(head_lines)
    reference = twinfeed._features.Pipeline().push_lines(blob)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(head_lines)), max_size=20)))
    pipeline = twinfeed._features.Pipeline()
    out, start = [], 0
    for cut in [*cuts, len(head_lines)]:
        out.append(pipeline.push_lines(b"".join(head_lines[start:cut])))
        start = cut
    assert b"".join(out) == reference


def garbage(kind: int, size: int, real_line: bytes) -> bytes:
    """A line that is never valid: no space, bad stamp, broken JSON, truncated frame, bad number."""
    options = [
        b"no-space-here",
        b"12x34 {}",
        b"1723161255000000000 {" + b"z" * size,
        real_line[: 5 + size % 100].rstrip(b"\n"),
        b'1723161255088169167 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker",'
        b'"u":1,"s":"BTCUSDT","b":"6x","B":"1","a":"2","A":"1","T":1,"E":1}}',
    ]
    return options[kind % len(options)] + b"\n"


INSERTS = st.lists(
    st.tuples(st.integers(0, 4000), st.integers(0, 4), st.integers(0, 200)), max_size=12
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(inserts=INSERTS)
def test_garbage_lines_are_counted_and_change_nothing_else(inserts):
    head_lines = _head_lines()
    dtype = twinfeed.record_dtype()
    clean = np.frombuffer(twinfeed._features.Pipeline().push_lines(b"".join(head_lines)), dtype)
    dirty: list[bytes] = list(head_lines)
    original_line = list(range(1, len(head_lines) + 1))
    for position, kind, size in sorted(inserts, key=lambda item: -item[0]):
        dirty.insert(position, garbage(kind, size, head_lines[position % len(head_lines)]))
        original_line.insert(position, 0)
    pipeline = twinfeed._features.Pipeline()
    noisy = np.frombuffer(pipeline.push_lines(b"".join(dirty)), dtype)
    stats = pipeline.stats()
    assert stats["malformed_lines"] + stats["decode_errors"] == len(inserts)
    assert len(noisy) == len(clean)
    fields = [name for name in dtype.names if name != "line"]
    # repack: a multi-field view still carries the skipped field's bytes.
    assert repack_fields(noisy[fields]).tobytes() == repack_fields(clean[fields]).tobytes()
    assert [original_line[i - 1] for i in noisy["line"]] == clean["line"].tolist()


def test_records_are_deterministic_and_typed(usdm_capture):
    first, _ = compute_records(usdm_capture)
    second, _ = compute_records(usdm_capture)
    assert first == second
    dtype = twinfeed.record_dtype()
    assert dtype.itemsize == twinfeed.RECORD_SIZE == 192
    schema = pa.schema(twinfeed.arrow_schema())
    assert schema.names[: len(dtype.names)] == list(dtype.names)
    records = np.frombuffer(first, dtype)
    df = compute_features(usdm_capture)
    assert np.array_equal(records["mid"], df["mid"].to_numpy(), equal_nan=True)
    assert (np.diff(records["line"].astype(np.int64)) >= 0).all()


def test_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[features]\nbook_levels = 0\n")
    with pytest.raises(twinfeed.ConfigError, match=r"bad\.toml.*features\.book_levels"):
        FeatureConfig.from_toml(str(bad))
    bad.write_text('[filter]\nstreams = ["kline"]\n')
    with pytest.raises(twinfeed.TwinfeedError, match=r"filter\.streams.*kline"):
        FeatureConfig.from_toml(str(bad))
    with pytest.raises(twinfeed.CaptureError, match="missing.txt"):
        compute_features(tmp_path / "missing.txt")


def test_decode_errors_name_line_and_field(tmp_path):
    capture = tmp_path / "c.txt"
    capture.write_bytes(
        b'1 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256000,"s":"BTCUSDT","t":1,"p":"1.0","q":"2","m":true}}\n'
        b'2 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256000,"s":"BTCUSDT","t":2,"p":"oops","q":"2","m":true}}\n'
        b'3 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256000,"s":"BTCUSDT","t":3,"p":"1.0","q":"2","m":true}}\n'
        b'4 {"stream":"btcusdt@trade","data":{"e":"tr'
    )
    run = open_run(capture)
    rows = 0
    while (table := run.next_arrow()) is not None:
        rows += pa.table(table).num_rows
    stats = run.stats()
    assert rows == 2
    assert stats["decode_errors"] == 1 and stats["malformed_lines"] == 1
    (line2, message2), (line4, message4) = stats["errors"]
    assert line2 == 2 and "field `p`" in message2
    assert line4 == 4 and "torn" in message4


def test_fingerprint_follows_feature_config_only():
    default = FeatureConfig.default()
    same = FeatureConfig.from_toml_str("[ingest]\nheartbeat_ms = 5\n")
    other = FeatureConfig.from_toml_str("[downsample]\nbar_ms = 500\n")
    assert default.fingerprint == same.fingerprint != other.fingerprint
    assert len(default.fingerprint) == 64


def test_cli_features_writes_parquet_with_fingerprint(usdm_capture, tmp_path):
    out = tmp_path / "f.parquet"
    config = tmp_path / "c.toml"
    config.write_text("[downsample]\nbar_ms = 5000\n")
    result = CliRunner().invoke(
        main, ["features", str(usdm_capture), "--config", str(config), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "quote" in result.output
    metadata = pq.read_schema(out).metadata
    expected = FeatureConfig.from_toml(str(config))
    assert metadata[b"twinfeed.fingerprint"].decode() == expected.fingerprint
    assert b"bar_ms = 5000" in metadata[b"twinfeed.config"]
    table = pl.read_parquet(out)
    assert table.equals(compute_features(usdm_capture, expected), null_equal=True)


@pytest.mark.parametrize("batch_rows", [1_000, 30_000, 1 << 20])
def test_arrow_columns_equal_the_records_whatever_the_batch_storage(usdm_capture, batch_rows):
    # 1,000-row batches live on the heap; 30,000-row ones in a 2 MiB-page arena (the last, short
    # one copied out of it); one 1M-row batch is mostly empty arena, so it is copied too.
    raw, _ = compute_records(usdm_capture)
    records = np.frombuffer(raw, twinfeed.record_dtype())
    assert len(records) > 2 * 30_000
    # The second pass reuses the first one's freed arenas (stale bytes must never show).
    for _ in range(2):
        run = open_run(usdm_capture)
        tables = []
        while (table := run.next_arrow(batch_rows)) is not None:
            tables.append(pa.table(table))
        assert max(t.num_rows for t in tables) == min(batch_rows, len(records))
        whole = pa.concat_tables(tables)
        del tables
        for name in records.dtype.names:
            assert np.array_equal(whole[name].to_numpy(), records[name], equal_nan=True), name
        symbols = run.symbols()
        assert whole["symbol"].to_pylist() == [symbols[i] for i in records["symbol_id"]]
        del whole


def test_parquet_metadata_names_the_capture_and_its_venue(
    tmp_path: Path, spot_capture: Path
) -> None:
    """The metadata said only the config's `[ingest] market = "futures"` for a spot capture, and
    not which capture the file came from."""
    import hashlib

    out = tmp_path / "spot.parquet"
    result = CliRunner().invoke(main, ["features", str(spot_capture), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metadata = pq.read_schema(out).metadata
    assert metadata[b"twinfeed.venue"] == b"binance-spot"
    [capture] = json.loads(metadata[b"twinfeed.captures"])
    assert capture["path"] == str(spot_capture.resolve())
    assert capture["name"] == spot_capture.name
    assert capture["sha256"] == hashlib.sha256(spot_capture.read_bytes()).hexdigest()
