"""The venue's trading rules travel with the data (issue 14): the live ingest fetches
exchangeInfo and writes it into the capture as an ``instruments`` line; the replay venue serves
it again; research reads it and prefers it over the shipped table. Real processes on loopback."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import twinfeed
from paper_stack import wait_for
from twinfeed import FeatureConfig
from twinfeed.capture import capture_files
from twinfeed.instruments import BUNDLED_TABLE, instruments_from_capture, load_table
from twinfeed.live.feed import Feed
from twinfeed.live.ingest import ring_file, start_ingest
from twinfeed.live.venue import BUNDLED_CAPTURE, start_venue, venue_command
from twinfeed.records import KIND
from twinfeed.research import compute_records
from twinfeed.research.backtest import Backtest
from twinfeed.strategies.market_maker import MarketMaker

PREFIX = '{"twinfeed":"instruments"'


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def coarse_table(tmp_path: Path, tick: str = "1.0") -> Path:
    """An ``--instruments`` file giving BTCUSDT (USD-M) another tick than the shipped 0.10."""
    shipped = json.loads(BUNDLED_TABLE.read_text())
    entry = next(s for s in shipped["binance-usdm"]["symbols"] if s["symbol"] == "BTCUSDT")
    price_filter = next(f for f in entry["filters"] if f["filterType"] == "PRICE_FILTER")
    price_filter["tickSize"] = tick
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps({"binance-usdm": {"timezone": "UTC", "symbols": [entry]}}))
    return path


def instruments_lines(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for path in capture_files(folder):
        for line in path.read_text().splitlines():
            stamp, _, frame = line.partition(" ")
            if frame.startswith(PREFIX):
                out.append((int(stamp), json.loads(frame)))
    return out


def test_venue_serves_exchange_info_in_binances_shape(tmp_path: Path) -> None:
    """A capture without an instruments line: the shipped table's section per market path,
    without the table's provenance notes; a market the file lacks is Binance's error body."""
    with start_venue(BUNDLED_CAPTURE, speed=1) as venue:
        status, usdm = get(f"{venue.http_url}/fapi/v1/exchangeInfo")
        assert status == 200
        btc = next(s for s in usdm["symbols"] if s["symbol"] == "BTCUSDT")
        assert btc["contractType"] == "PERPETUAL" and btc["marginAsset"] == "USDT"
        filters = {f["filterType"]: f for f in btc["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == "0.10"  # strings, as Binance sends them
        assert filters["LOT_SIZE"]["stepSize"] == "0.001"
        assert "_source" not in json.dumps(usdm)
        status, coinm = get(f"{venue.http_url}/dapi/v1/exchangeInfo")
        assert status == 200 and any("contractSize" in s for s in coinm["symbols"])
    # Only a spot section given: the USD-M path answers 404 with {"code", "msg"}.
    spot_only = tmp_path / "spot.json"
    spot_only.write_text(json.dumps({"binance-spot": load_table().to_json()["binance-spot"]}))
    ready = tmp_path / "ready"
    args = venue_command(BUNDLED_CAPTURE, speed=1, ready_file=ready, instruments=spot_only)
    with (tmp_path / "venue.log").open("wb") as log:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for("the venue", ready.exists, 30)
        base = f"http://127.0.0.1:{ready.read_text().strip()}"
        status, body = get(f"{base}/fapi/v1/exchangeInfo")
        assert status == 404 and set(body) == {"code", "msg"} and "usdm" in body["msg"]
        status, body = get(f"{base}/api/v3/exchangeInfo")
        assert status == 200 and body["symbols"]
    finally:
        process.terminate()
        process.wait()


def test_live_capture_carries_the_venues_rules_and_research_follows_them(
    tmp_path: Path,
) -> None:
    """The venue states BTCUSDT with tick 1.0 (not the shipped 0.10): the ingest's capture holds
    that instruments line cut to the subscribed symbol, once per connection; the ring equals the batch run over the
    capture (the line makes no record); the replay venue serves it back; instruments_from_capture
    and a backtest on the capture use tick 1.0."""
    ring = f"pytest-instr-{time.monotonic_ns() % 10**9}"
    capture = tmp_path / "capture"
    with start_venue(BUNDLED_CAPTURE, speed=5, instruments=coarse_table(tmp_path)) as venue:
        with (
            (tmp_path / "ingest.log").open("wb") as log,
            start_ingest(
                capture_dir=capture,
                ring=ring,
                config=FeatureConfig.default(),
                url=venue.url,
                symbols=["BTCUSDT"],
                stats_file=tmp_path / "stats.json",
                stderr=log,
            ) as ingest,
        ):
            ingest.wait_for_ring(timeout=30)
            feed = Feed.open(ring)
            chunks: list[bytes] = []

            def enough() -> bool:
                records = feed.read(1 << 16, 0.05)
                if len(records):
                    chunks.append(records.tobytes())
                got = np.frombuffer(b"".join(chunks), dtype=twinfeed.record_dtype())
                quotes = int(np.count_nonzero(got["kind"] == KIND["quote"]))
                return (
                    quotes > 300
                    and (tmp_path / "stats.json").exists()
                    and json.loads((tmp_path / "stats.json").read_text())["counters"][
                        "instruments_requests"
                    ]
                    >= 1
                    and bool(instruments_lines(capture))
                )

            wait_for("quotes and the instruments line", enough, 60)
            # A reconnect fetches the rules again.
            venue.disconnect_all()
            wait_for("a second instruments line", lambda: len(instruments_lines(capture)) == 2, 30)
            assert ingest.stop() == 0
            while True:
                batch_read = feed.read_batch(1 << 16, 0.2)
                if len(batch_read.records):
                    chunks.append(batch_read.records.tobytes())
                elif feed.health().producer_closed:
                    break
        ring_file(ring).unlink(missing_ok=True)
    stats = json.loads((tmp_path / "stats.json").read_text())["counters"]
    assert stats["instruments_errors"] == 0

    lines = instruments_lines(capture)
    assert len(lines) == 2 and lines[0][1] == lines[1][1]
    _, line = lines[-1]
    assert line["market"] == "usdm"
    assert [s["symbol"] for s in line["data"]["symbols"]] == ["BTCUSDT"]
    filters = {f["filterType"]: f for f in line["data"]["symbols"][0]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "1.0"

    # Parity: the ring's records are the batch run's over the capture, and no error.
    batch, batch_stats = compute_records(capture)
    assert b"".join(chunks) == batch
    assert batch_stats["decode_errors"] == 0

    # Research reads the capture's rules, over the shipped table.
    table = instruments_from_capture(capture)
    assert table is not None
    btc = table.get("BTCUSDT", "binance-usdm")
    assert btc.tick_size == Decimal("1.0") and btc.step_size == Decimal("0.001")
    assert "instruments line" in btc.source
    assert load_table().get("BTCUSDT", "binance-usdm").tick_size == Decimal("0.10")
    result = Backtest(MarketMaker, capture).run()
    prices = result.orders["price"].drop_nulls().to_numpy()
    assert len(prices) >= 1
    assert np.allclose(np.round(prices), prices), "quotes off the captured 1.0 grid"
    (described,) = result.artifact()["instruments"]
    assert Decimal(described["tick_size"]) == Decimal("1.0")
    assert "instruments line" in described["source"]

    # The replay venue serves the captured exchangeInfo (not its shipped table).
    with tempfile.TemporaryDirectory() as folder:
        whole = Path(folder) / "whole.txt"
        whole.write_bytes(b"".join(p.read_bytes() for p in capture_files(capture)))
        with start_venue(whole, speed=1) as replay:
            status, info = get(f"{replay.http_url}/fapi/v1/exchangeInfo")
    assert status == 200 and info == line["data"]


def test_captures_without_the_line_keep_the_shipped_table(tmp_path: Path) -> None:
    assert instruments_from_capture(BUNDLED_CAPTURE) is None
    bad = tmp_path / "bad.txt"
    bad.write_text('1 {"twinfeed":"instruments","market":"moon","data":{"symbols":[]}}\n')
    with pytest.raises(ValueError, match=r"bad.txt: line 1: field `market`"):
        instruments_from_capture(bad)
