"""The Arrow/polars view of feature records on the real captures: UTC datetimes, nulls where
a field does not apply (never NaN), ``kind`` as a polars Enum, no padding column, and exactly
the binary records behind it (``records_from_arrow`` inverts the view byte for byte)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import twinfeed
from twinfeed import FeatureConfig
from twinfeed.parity.diff import diff_parquet
from twinfeed.records import ARROW_VIEW, KIND_NAMES, Kind, records_from_arrow
from twinfeed.research import compute_features, compute_records
from twinfeed.research.backfills import BackfillJob, build_one
from twinfeed.research.parquet import read_arrow_view, write_features

UTC_NS = pl.Datetime("ns", "UTC")
FLOATS = [name for name, (dtype, _) in twinfeed.record_dtype().fields.items() if dtype.kind == "f"]


@pytest.fixture(scope="module", params=["usdm", "spot"])
def real(request, usdm_capture, spot_capture):
    path = usdm_capture if request.param == "usdm" else spot_capture
    raw, stats = compute_records(path)
    records = np.frombuffer(raw, twinfeed.record_dtype())
    return path, compute_features(path), records, raw


def test_dtypes_are_what_polars_users_expect(real) -> None:
    _, df, _, _ = real
    schema = df.schema
    assert schema["kind"] == pl.Enum(list(KIND_NAMES))
    assert KIND_NAMES == ("quote", "book", "trade", "bar", "gap", "heartbeat", "status")
    assert schema["local_ns"] == UTC_NS and schema["exchange_ns"] == UTC_NS
    assert "reserved" not in schema
    assert all(schema[name] == pl.Float64 for name in FLOATS)
    assert schema["symbol"] == pl.String
    # Times are the capture's 2024 clock, not 1970 and not the replay's wall clock.
    assert df["local_ns"].min().year == 2024 and df["exchange_ns"].min().year == 2024


def test_fields_that_do_not_apply_are_null_never_nan(real) -> None:
    _, df, records, _ = real
    kinds = df["kind"]
    trades = int((kinds == "trade").sum())
    bars = int((kinds == "bar").sum())
    assert trades > 1000 and bars > 100
    # trade_px: trades only; trade_qty: trades and bars (signed bar volume); vwap: bars with
    # a trade only.
    assert df["trade_px"].null_count() == df.height - trades
    assert df["trade_qty"].null_count() == df.height - trades - bars
    traded_bars = df.filter((pl.col("kind") == "bar") & (pl.col("count") > 0)).height
    assert df["vwap"].null_count() == df.height - traded_bars
    assert df.select(pl.col(FLOATS).is_nan().sum()).sum_horizontal().item() == 0
    # Every NaN of the binary record is a null of the view, and nothing else is.
    for name in FLOATS:
        assert df[name].null_count() == int(np.isnan(records[name]).sum()), name
    # Means are numbers now (they were NaN: 60,917 of 74,993 trade_px were NaN).
    means = df.select(pl.col("imbalance", "vwap", "trade_px", "spread").mean()).row(0)
    assert all(np.isfinite(means)), means
    # Integer fields with an in-band "none": update_id on quote/book/trade only, count on
    # bar/gap only.
    market = kinds.is_in(["quote", "book", "trade"])
    assert df["update_id"].is_null().to_list() == (~market).to_list()
    assert df["count"].null_count() == df.height - bars - int((kinds == "gap").sum())
    assert df.filter(pl.col("kind") == "bar")["count"].min() >= 0


def test_kind_enum_filters_by_name_and_counts_match_the_codes(real) -> None:
    _, df, records, _ = real
    for kind in Kind:
        assert df.filter(pl.col("kind") == kind.label).height == int(
            (records["kind"] == kind).sum()
        ), kind


def test_the_view_inverts_to_the_records_byte_for_byte(real, tmp_path: Path) -> None:
    path, df, _, raw = real
    assert records_from_arrow(df).tobytes() == raw
    # Through Parquet too: dtypes survive, and `parity diff` compares the same records.
    out = tmp_path / "f.parquet"
    write_features(path, FeatureConfig.default(), out)
    back = pl.read_parquet(out)
    assert back.schema == df.schema and back.equals(df, null_equal=True)
    assert read_arrow_view(out) == ARROW_VIEW
    assert records_from_arrow(pq.read_table(out)).tobytes() == raw
    assert diff_parquet(out, out).equal


def test_first_spot_quote_without_an_exchange_time_is_null(spot_capture, tmp_path: Path) -> None:
    """Spot bookTicker carries no event time: a quote before any depth or trade frame had
    ``exchange_ns = 0`` (shown as 1970); it is null now."""
    with gzip.open(spot_capture, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    first_ticker = next(i for i, line in enumerate(lines) if b"@bookTicker" in line[:80])
    capture = tmp_path / "spot-from-ticker.txt"
    capture.write_bytes(b"".join(lines[first_ticker : first_ticker + 2000]))
    df = compute_features(capture)
    raw, _ = compute_records(capture)
    records = np.frombuffer(raw, twinfeed.record_dtype())
    assert df["kind"][0] == "quote" and records["exchange_ns"][0] == 0
    assert df["exchange_ns"][0] is None
    assert df["exchange_ns"].null_count() == int((records["exchange_ns"] == 0).sum()) >= 1
    assert df["exchange_ns"].drop_nulls().min().year == 2024
    assert records_from_arrow(df).tobytes() == raw


def test_heartbeats_and_status_records_have_no_symbol(tmp_path: Path) -> None:
    """Records of no symbol (``symbol_id`` 65535 in the record) are null in both symbol
    columns."""
    capture = tmp_path / "c.txt"
    capture.write_text(
        '1723161256000000000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256000,'
        '"s":"BTCUSDT","t":1,"p":"1.0","q":"2","m":true}}\n'
        '1723161257000000000 {"twinfeed":"heartbeat"}\n'
    )
    df = compute_features(capture)
    raw, _ = compute_records(capture)
    heartbeats = df.filter(pl.col("kind") == "heartbeat")
    assert heartbeats.height == 1
    assert heartbeats["symbol_id"].is_null().all() and heartbeats["symbol"].is_null().all()
    assert records_from_arrow(df).tobytes() == raw


def test_a_backfill_rebuilds_a_file_of_the_old_view(spot_capture, tmp_path: Path) -> None:
    """A feature file of the same fingerprint written before the view changed (Int64 times,
    NaN) is rebuilt, not reused: scanning it with new files would mix schemas."""
    config = FeatureConfig.default()
    out = tmp_path / "spot.parquet"
    write_features(spot_capture, config, out)
    table = pq.read_table(out)
    metadata = dict(table.schema.metadata)
    del metadata[b"twinfeed.arrow_view"]
    old = table.cast(
        pa.schema(
            [
                pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f
                for f in table.schema
            ]
        )
    ).replace_schema_metadata(metadata)
    pq.write_table(old, out)
    assert read_arrow_view(out) is None
    job = BackfillJob(sources=(str(spot_capture),), out=str(out))
    result = build_one(job, config.to_toml())
    assert result.computed
    assert read_arrow_view(out) == ARROW_VIEW
    assert pl.read_parquet(out).schema["local_ns"] == UTC_NS
    # And a current file is reused.
    assert not build_one(job, config.to_toml()).computed


def test_a_capture_of_no_record_gives_an_empty_frame_of_the_same_dtypes(
    tmp_path: Path,
) -> None:
    """``compute_features`` over lines that make no record returned a TypeError (polars does
    not take the binding's schema object); it is a 0-row frame of the usual dtypes."""
    capture = tmp_path / "none.txt"
    capture.write_text('1723161256000000000 {"stream":"btcusdt@kline_1m","data":{}}\n')
    df = compute_features(capture)
    assert df.height == 0
    assert (
        df.schema == compute_features(Path(__file__).parents[1] / "data/synth-btcusdt.txt").schema
    )
