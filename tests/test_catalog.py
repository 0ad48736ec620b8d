"""The data catalog: partitioning, fingerprint-keyed feature cache, lazy scans, SQL, CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from conftest import SYNTH
from twinfeed import FeatureConfig
from twinfeed.research import compute_features
from twinfeed.research.catalog import Catalog, CatalogError
from twinfeed.research.parquet import read_fingerprint

DATE = "2024-08-08"  # UTC date of the bundled capture's first line (1723161598...)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    store = Catalog(tmp_path / "catalog")
    store.add_capture(SYNTH, "binance-usdm")
    return store


def other_config() -> FeatureConfig:
    text = FeatureConfig.default().to_toml().replace("bar_ms = 1000", "bar_ms = 500")
    config = FeatureConfig.from_toml_str(text)
    assert config.fingerprint != FeatureConfig.default().fingerprint
    return config


def test_capture_partition_path(catalog: Catalog) -> None:
    expected = catalog.root / "captures" / "venue=binance-usdm" / "symbol=BTCUSDT" / f"date={DATE}"
    assert (expected / SYNTH.name).read_bytes() == SYNTH.read_bytes()
    # Adding the same file again is a no-op.
    assert catalog.add_capture(SYNTH, "binance-usdm") == expected / SYNTH.name


def test_feature_partition_path_and_fingerprint(catalog: Catalog) -> None:
    config = FeatureConfig.default()
    catalog.features(config).collect()
    fp16 = config.fingerprint[:16]
    path = (
        catalog.root
        / "features"
        / f"fingerprint={fp16}"
        / "venue=binance-usdm"
        / "symbol=BTCUSDT"
        / f"date={DATE}"
        / "part.parquet"
    )
    assert path.is_file()
    assert read_fingerprint(path) == config.fingerprint


def test_lazy_scan_equals_compute_features(catalog: Catalog) -> None:
    lazy = catalog.features(venue="binance-usdm", symbol="BTCUSDT", date=DATE)
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().equals(compute_features(SYNTH))


def test_recompute_only_on_fingerprint_change(catalog: Catalog) -> None:
    ((path, computed),) = catalog.build()
    assert computed
    before = path.stat()
    ((again, computed),) = catalog.build()
    assert again == path and not computed
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    catalog.features().collect()
    assert path.stat().st_mtime_ns == before.st_mtime_ns

    config = other_config()
    ((changed, computed),) = catalog.build(config)
    assert computed and changed != path
    assert read_fingerprint(changed) == config.fingerprint
    assert path.stat().st_mtime_ns == before.st_mtime_ns  # the old fingerprint's file stays
    assert catalog.features(config).collect().equals(compute_features(SYNTH, config))


def test_list(catalog: Catalog) -> None:
    catalog.build()
    listing = catalog.list()
    assert listing.get_column("kind").to_list() == ["capture", "features"]
    assert listing.get_column("symbol").to_list() == ["BTCUSDT", "BTCUSDT"]
    assert listing.get_column("date").to_list() == [DATE, DATE]
    assert listing.get_column("fingerprint").to_list() == [
        None,
        FeatureConfig.default().fingerprint,
    ]


def test_sql(catalog: Catalog) -> None:
    expected = compute_features(SYNTH)
    result = catalog.sql(
        "SELECT venue, date, symbol, count(*) AS n, max(spread) AS widest "
        "FROM features GROUP BY ALL"
    )
    assert result.rows() == [
        (
            "binance-usdm",
            pl.Series([DATE]).str.to_date().item(),
            "BTCUSDT",
            expected.height,
            expected.get_column("spread").max(),
        )
    ]


def test_bad_inputs(tmp_path: Path) -> None:
    store = Catalog(tmp_path)
    with pytest.raises(CatalogError, match="no such capture"):
        store.add_capture(tmp_path / "missing.txt", "binance-usdm")
    with pytest.raises(CatalogError, match="cannot name a partition"):
        store.add_capture(SYNTH, "a/b")
    bad = tmp_path / "bad.txt"
    bad.write_text("not-a-time {}\n")
    with pytest.raises(CatalogError, match="bad.txt:1"):
        store.add_capture(bad, "x", symbol="X")
    with pytest.raises(CatalogError, match="no captures"):
        store.features()


def test_cli(tmp_path: Path) -> None:
    import twinfeed.cli.data_catalog  # noqa: F401  registers the command group
    from twinfeed.cli import main

    root = str(tmp_path / "catalog")
    runner = CliRunner()
    added = runner.invoke(
        main, ["data", "catalog", "add", str(SYNTH), "--venue", "binance-usdm", "--root", root]
    )
    assert added.exit_code == 0, added.output
    built = runner.invoke(main, ["data", "catalog", "build", "--root", root])
    assert built.exit_code == 0, built.output
    assert "1 computed" in built.output
    rebuilt = runner.invoke(main, ["data", "catalog", "build", "--root", root])
    assert "0 computed" in rebuilt.output
    listed = runner.invoke(main, ["data", "catalog", "list", "--root", root])
    assert listed.exit_code == 0 and "features" in listed.output
    queried = runner.invoke(
        main, ["data", "catalog", "sql", "SELECT count(*) AS n FROM features", "--root", root]
    )
    assert queried.exit_code == 0 and str(compute_features(SYNTH).height) in queried.output


def test_adding_to_a_partition_drops_its_cached_features(catalog: Catalog, tmp_path: Path) -> None:
    ((path, _),) = catalog.build()
    # The capture starts at 23:59:58 UTC, so the second file must start before midnight too.
    first_ns = int(SYNTH.read_text().split(" ", 1)[0])
    later = tmp_path / "synth-later.txt"
    later.write_text(f"{first_ns + 1} " + '{"twinfeed":"heartbeat"}\n')
    catalog.add_capture(later, "binance-usdm", symbol="BTCUSDT")
    assert not path.exists()
    ((rebuilt, computed),) = catalog.build()
    assert rebuilt == path and computed
    partition = catalog.partitions()[0]
    assert [p.name for p in catalog.capture_files(partition)] == [SYNTH.name, later.name]


def test_imported_multi_symbol_capture(tmp_path: Path) -> None:
    from conftest import SHARED_REAL, require_real
    from twinfeed.research.importers import import_capture

    source = require_real(SHARED_REAL / "cryptofeed" / "BINANCE_FUTURES.ws.1.0")
    capture = tmp_path / "binance-futures-20210722.txt"
    import_capture(source, "cryptofeed", capture)
    store = Catalog(tmp_path / "catalog")
    target = store.add_capture(capture, "binance-usdm")
    assert target.parent.relative_to(store.root).as_posix() == (
        "captures/venue=binance-usdm/symbol=ALL/date=2021-07-22"
    )
    per_symbol = store.sql(
        "SELECT symbol, count(*) AS n FROM features WHERE symbol IS NOT NULL "
        "GROUP BY symbol ORDER BY symbol"
    )
    assert per_symbol.get_column("symbol").to_list() == [
        "AKROUSDT",
        "CTKUSDT",
        "KEEPUSDT",
        "SUSHIUSDT",
    ]
    assert store.features(symbol="ALL").collect().equals(compute_features(capture))


def test_zstd_captures_from_the_ingest_are_catalogued(tmp_path: Path) -> None:
    # A real compressed capture: the ingest replaying the bundled one with
    # `capture_compression = "zstd"` (several zstd frames, as live).
    from twinfeed.capture import capture_files
    from twinfeed.live.ingest import find_binary

    config = tmp_path / "zstd.toml"
    config.write_text('[ingest]\ncapture_compression = "zstd"\n')
    written = tmp_path / "written"
    subprocess.run(
        [find_binary(), "--config", config, "--replay", SYNTH, "--capture-dir", written],
        check=True,
        capture_output=True,
    )
    (capture,) = capture_files(written)
    assert capture.name.endswith(".txt.zst")
    store = Catalog(tmp_path / "catalog")
    added = store.add_capture(capture, "binance-usdm")
    assert added.parent.name == f"date={DATE}" and added.parent.parent.name == "symbol=BTCUSDT"
    assert store.features().collect().equals(compute_features(capture))
