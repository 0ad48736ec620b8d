"""OKX and Hyperliquid captures through the importer, the binding and the CLI."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from conftest import SHARED_REAL, require_real
from twinfeed import GapReason
from twinfeed.instruments import Instrument
from twinfeed.research import compute_features
from twinfeed.research.features import open_run
from twinfeed.research.importers import import_capture

OKX = SHARED_REAL / "cryptofeed" / "OKX.ws.1.0"
HYPERLIQUID = SHARED_REAL / "hyperliquid" / "btcusd_20250126.gz"


def run_stats(capture: Path) -> tuple[dict[str, object], list[str]]:
    run = open_run(capture)
    while run.next_arrow(1 << 20) is not None:
        pass
    return run.stats(), run.symbols()


def test_okx_cryptofeed_import_keeps_frames_and_every_book_checksum_passes(tmp_path: Path) -> None:
    source = require_real(OKX)
    out = tmp_path / "okx.txt"
    report = import_capture(source, "cryptofeed", out)
    assert report.unknown_total == 0
    assert report.kinds == {"frame": 410, "subscribed": 3, "connected": 1}
    # Frames are copied byte for byte.
    frames = {line.split(" ", 1)[1] for line in out.read_text().splitlines()}
    received = [line.split(": ", 1)[1] for line in source.read_text().splitlines()[4:]]
    assert all(frame in frames for frame in received)

    stats, symbols = run_stats(out)
    assert stats["decode_errors"] == 0
    assert stats["checksums_verified"] == 290
    assert stats["gaps"] == 0
    assert symbols == ["okx:BTC-USD-220527", "okx:UNI-USD-SWAP", "okx:BTC-USDT"]
    df = compute_features(out)
    books = df.filter(pl.col("kind") == "book")
    assert books.height == 290
    assert (books["ask_px"] > books["bid_px"]).all()
    assert df.filter(pl.col("kind") == "status").height == 4  # connected + 3 subscribed


def test_okx_corrupted_copy_is_a_checksum_gap_on_that_line(tmp_path: Path) -> None:
    out = tmp_path / "okx.txt"
    import_capture(require_real(OKX), "cryptofeed", out)
    lines = out.read_text().splitlines()
    target = next(
        i
        for i, line in enumerate(lines)
        if '"instId":"UNI-USD-SWAP"},"action":"update"' in line and '"asks":[["' in line
    )
    # The first ask's size, one more contract.
    head, rest = lines[target].split('"asks":[["', 1)
    price, rest = rest.split('","', 1)
    size, rest = rest.split('"', 1)
    lines[target] = f'{head}"asks":[["{price}","{int(size) + 1}"{rest}'
    corrupted = tmp_path / "corrupted.txt"
    corrupted.write_text("\n".join(lines) + "\n")
    df = compute_features(corrupted)
    gaps = df.filter(pl.col("kind") == "gap")
    assert gaps.height == 1
    assert gaps["line"][0] == target + 1
    assert gaps["flags"][0] == GapReason.CHECKSUM


def test_hyperliquid_capture_through_features_cli(tmp_path: Path) -> None:
    import twinfeed.cli.features_cmd  # noqa: F401  registers the command
    from twinfeed.cli import main

    source = require_real(HYPERLIQUID)
    stats, symbols = run_stats(source)
    assert stats["decode_errors"] == 0
    assert stats["snapshots"] == 46
    assert symbols == ["hyperliquid:BTC"]
    out = tmp_path / "hl.parquet"
    result = CliRunner().invoke(main, ["features", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    df = pl.read_parquet(out)
    assert df.filter(pl.col("kind") == "book").height == 46
    assert df.filter(pl.col("kind") == "trade").height == 64


def test_instruments_from_okx_and_hyperliquid_answers() -> None:
    # Shapes of OKX's /api/v5/public/instruments data and Hyperliquid's meta universe.
    spot = Instrument.from_okx(
        {"instType": "SPOT", "instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT",
         "tickSz": "0.1", "lotSz": "0.00000001", "minSz": "0.00001", "maxLmtSz": "9999999999"}
    )  # fmt: skip
    assert (spot.market, spot.base, spot.settlement, str(spot.tick_size)) == (
        "spot",
        "BTC",
        "USDT",
        "0.1",
    )
    swap = Instrument.from_okx(
        {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "uly": "BTC-USDT", "settleCcy": "USDT",
         "ctVal": "0.01", "ctMult": "1", "ctValCcy": "BTC", "ctType": "linear", "tickSz": "0.1",
         "lotSz": "0.01", "minSz": "0.01"}
    )  # fmt: skip
    assert (swap.market, swap.qty_unit, str(swap.multiplier)) == ("linear", "BTC", "0.01")
    inverse = Instrument.from_okx(
        {"instType": "FUTURES", "instId": "BTC-USD-220527", "uly": "BTC-USD", "settleCcy": "BTC",
         "ctVal": "100", "ctMult": "1", "ctValCcy": "USD", "ctType": "inverse",
         "tickSz": "0.1", "lotSz": "1", "minSz": "1"}
    )  # fmt: skip
    assert (inverse.market, inverse.settlement, inverse.contract_size) == ("inverse", "BTC", 100)
    assert inverse.qty_unit == "contracts"
    btc = Instrument.from_hyperliquid({"name": "BTC", "szDecimals": 5, "maxLeverage": 50})
    assert (str(btc.step_size), str(btc.tick_size), btc.settlement) == ("0.00001", "0.1", "USDC")
    assert btc.on_qty_grid("0.00219") and not btc.on_qty_grid("0.000001")
    with pytest.raises(ValueError, match="tickSz"):
        Instrument.from_okx({"instType": "SPOT", "instId": "X-Y", "lotSz": "1", "minSz": "1"})
    with pytest.raises(ValueError, match="szDecimals"):
        Instrument.from_hyperliquid({"name": "BTC"})


def test_catalog_files_okx_and_hyperliquid_captures(tmp_path: Path) -> None:
    from twinfeed.research.catalog import Catalog

    okx = tmp_path / "okx-20220513.txt"
    import_capture(require_real(OKX), "cryptofeed", okx)
    store = Catalog(tmp_path / "catalog")
    store.add_capture(okx, "okx")
    store.add_capture(require_real(HYPERLIQUID), "hyperliquid")
    books = store.sql(
        "SELECT symbol, count(*) AS n FROM features WHERE kind = 'book' GROUP BY symbol ORDER BY symbol"
    )
    assert books.rows() == [
        ("hyperliquid:BTC", 46),
        ("okx:BTC-USD-220527", books.row(1)[1]),
        ("okx:BTC-USDT", books.row(2)[1]),
        ("okx:UNI-USD-SWAP", books.row(3)[1]),
    ]
    assert sum(n for _, n in books.rows()[1:]) == 290
