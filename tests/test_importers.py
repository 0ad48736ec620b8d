"""Importers: third-party raw captures into the twinfeed capture format."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SHARED_REAL, require_real
from twinfeed.research.features import open_run
from twinfeed.research.importers import (
    CaptureImportError,
    import_capture,
    iso_to_ns,
    seconds_to_ns,
)

CRYPTOFEED_BINANCE = SHARED_REAL / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"


def run_stats(capture: Path) -> tuple[dict[str, object], list[str]]:
    run = open_run(capture)
    while run.next_arrow(1 << 20) is not None:
        pass
    return run.stats(), run.symbols()


def test_seconds_to_ns_is_exact() -> None:
    assert seconds_to_ns("1626992741.06217") == 1_626_992_741_062_170_000
    assert seconds_to_ns("1626992741.3105128") == 1_626_992_741_310_512_800
    assert seconds_to_ns("1626992741") == 1_626_992_741_000_000_000
    assert seconds_to_ns("1.1234567891") == 1_123_456_789
    with pytest.raises(ValueError, match="decimal epoch seconds"):
        seconds_to_ns("1e9")


def test_iso_to_ns_is_exact() -> None:
    assert iso_to_ns("1970-01-01T00:00:01.0000001Z") == 1_000_000_100
    expected = int(datetime(2024, 8, 8, 12, 0, 5, tzinfo=UTC).timestamp()) * 10**9 + 123_456_700
    assert iso_to_ns("2024-08-08T12:00:05.1234567Z") == expected


def test_cryptofeed_binance_futures_imports_cleanly(tmp_path: Path) -> None:
    source = require_real(CRYPTOFEED_BINANCE)
    out = tmp_path / "binance.txt"
    report = import_capture(source, "cryptofeed", out)
    assert report.unknown_total == 0
    assert report.kinds["snapshot"] == 4  # one per symbol from the sibling .http file
    assert report.kinds["frame"] == 1535
    assert report.out_of_order == 0
    lines = out.read_text().splitlines()
    assert all(line.split(" ", 1)[0].isdigit() for line in lines)
    # Frames are kept byte for byte; times are exact integer ns.
    raw = source.read_text().splitlines()[1]
    stamp, frame = raw.split(": ", 1)
    assert f"{seconds_to_ns(stamp)} {frame}" in lines
    stats, symbols = run_stats(out)
    assert stats["decode_errors"] == 0
    assert stats["malformed_lines"] == 0
    assert stats["snapshots"] == 4
    assert stats["gaps"] == 0
    assert stats["unknown_frames"] == 67  # the kline_1m frames, which twinfeed does not decode
    assert sorted(symbols) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]


def test_hftbacktest_is_identity(tmp_path: Path) -> None:
    source = tmp_path / "hft.gz"
    body = b'1 {"a":1}\n2 {"b":2}\n'
    source.write_bytes(gzip.compress(body))
    out = tmp_path / "out.txt"
    report = import_capture(source, "hftbacktest", out)
    assert out.read_bytes() == body
    assert report.lines_written == 2 and report.unknown_total == 0


def test_tardis_ndjson_round_trip(tmp_path: Path) -> None:
    trade = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","p":"1.10"}}'
    snapshot_body = '{"lastUpdateId":7,"bids":[["1.0","2"]],"asks":[["1.2","3"]]}'
    snapshot = '{"stream":"btcusdt@depthSnapshot","generated":true,"data":' + snapshot_body + "}"
    source = tmp_path / "binance-futures.json.gz"
    lines = [
        '{"localTimestamp":"2024-08-08T00:00:00.0000001Z","message":' + snapshot + "}",
        '{"localTimestamp":"2024-08-08T00:00:00.5Z","message":' + trade + "}",
        "not json at all",
        "2024-08-08T00:00:01.0000000Z " + trade,
    ]
    source.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "out.txt"
    report = import_capture(source, "tardis", out)
    base = iso_to_ns("2024-08-08T00:00:00Z")
    assert out.read_text().splitlines() == [
        f'{base + 100} {{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{snapshot_body}}}',
        f"{base + 500_000_000} {trade}",
        f"{base + 1_000_000_000} {trade}",
    ]
    assert report.unknown_total == 1
    assert report.unknown[0][1] == 3


def test_unknown_lines_reported_with_numbers(tmp_path: Path) -> None:
    source = tmp_path / "X.ws.1.0"
    source.write_text('1.5: {}\ngarbage here\n\nwss://x <- 2.0: {"sub":1}\nwss://x <- 2.5: [1]\n')
    report = import_capture(source, "cryptofeed", tmp_path / "o.txt")
    assert [(n, line) for n, line, _ in report.unknown] == [("X.ws.1.0", 2)]
    assert report.skipped == {"blank": 1, "subscribe_request": 1}
    assert (tmp_path / "o.txt").read_text() == (
        '1500000000 {}\n2000000000 {"twinfeed":"subscribed","url":"wss://x","request":{"sub":1}}\n'
    )


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureImportError, match="no such file"):
        import_capture(tmp_path / "nope", "tardis", tmp_path / "o.txt")


def test_cli_import(tmp_path: Path) -> None:
    import twinfeed.cli.data_import  # noqa: F401  registers the command
    from twinfeed.cli import main

    source = tmp_path / "X.ws.1.0"
    source.write_text("1.5: {}\ngarbage\n")
    out = tmp_path / "o.txt"
    result = CliRunner().invoke(
        main, ["data", "import", str(source), "--format", "cryptofeed", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "X.ws.1.0:2" in result.output
    assert json.loads(out.read_text().split(" ", 1)[1]) == {}
    strict = CliRunner().invoke(
        main,
        ["data", "import", str(source), "--format", "cryptofeed", "--out", str(out), "--strict"],
    )
    assert strict.exit_code == 1
