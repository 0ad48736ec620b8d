"""Instruments: rules from Binance's exchangeInfo shapes, exact grids, Binance's refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import twinfeed
from twinfeed.instruments import (
    BUNDLED_TABLE,
    Instrument,
    InstrumentTable,
    UnknownInstrumentError,
    detect_venue,
    load_table,
)

# One element of GET /fapi/v1/exchangeInfo "symbols", as Binance sends it (abridged).
FAPI_ETHUSDT = {
    "symbol": "ETHUSDT",
    "pair": "ETHUSDT",
    "contractType": "PERPETUAL",
    "baseAsset": "ETH",
    "quoteAsset": "USDT",
    "marginAsset": "USDT",
    "pricePrecision": 2,
    "quantityPrecision": 3,
    "filters": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "39.86",
            "maxPrice": "306177",
            "tickSize": "0.01",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "2000", "stepSize": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "20"},
    ],
}


def test_instrument_is_exported_and_frozen() -> None:
    instrument = Instrument.from_exchange_info("binance-usdm", FAPI_ETHUSDT)
    assert twinfeed.Instrument is Instrument
    assert instrument.tick_size == Decimal("0.01") and instrument.step_size == Decimal("0.001")
    assert instrument.min_notional == Decimal(20) and instrument.market == "linear"
    assert (instrument.base, instrument.quote, instrument.settlement) == ("ETH", "USDT", "USDT")
    with pytest.raises(AttributeError):
        instrument.tick_size = Decimal("0.1")  # type: ignore[misc]


def test_round_trip_through_exchange_info_shape() -> None:
    table = load_table()
    for instrument in table:
        again = Instrument.from_exchange_info(instrument.venue, instrument.to_exchange_info())
        assert again == instrument, instrument.symbol


def test_rounding_is_exact_on_the_grid() -> None:
    eth = Instrument.from_exchange_info("binance-usdm", FAPI_ETHUSDT)
    assert eth.round_price(2612.345, "down") == 2612.34
    assert eth.round_price(2612.341, "up") == 2612.35
    assert eth.round_price("2612.345") == 2612.34  # half-even on the exact decimal
    assert eth.round_qty(0.0129) == 0.012
    assert eth.on_price_grid(0.1 + 0.2) is False  # 0.30000000000000004 is not on any grid
    assert eth.on_price_grid(2612.34) and not eth.on_price_grid(2612.345)


def test_refusals_use_binance_codes() -> None:
    table = load_table()
    usdm = table.get("BTCUSDT", "binance-usdm")
    assert usdm.check_order(0.005, 61800.1) is None
    refusal = usdm.check_order(0.005, 61800.15)
    assert refusal is not None and refusal.code == -4014  # 2 decimals allowed, not on 0.1 grid
    refusal = usdm.check_order(0.005, 61800.123)
    assert refusal is not None and refusal.code == -1111
    refusal = usdm.check_order(0.001, 61800.1)  # 61.8 USDT < 100
    assert refusal is not None and refusal.code == -4164 and "100" in refusal.msg
    spot = table.get("BTCUSDT", "binance-spot")
    assert spot.check_order(0.00012, 61800.01) is None
    refusal = spot.check_order(0.000125, 61800.01)
    assert refusal is not None and (refusal.code, refusal.msg) == (
        -1013,
        "Filter failure: LOT_SIZE",
    )
    coinm = table.get("BTCUSD_PERP", "binance-coinm")
    assert coinm.check_order(1, 61800.1) is None
    assert coinm.check_order(1.5, 61800.1) is not None


def test_unknown_symbol_is_an_error_not_a_default() -> None:
    table = load_table()
    with pytest.raises(UnknownInstrumentError, match="no trading rules for DOGEUSDT"):
        table.get("DOGEUSDT", "binance-usdm")
    with pytest.raises(UnknownInstrumentError, match="several venues"):
        table.get("BTCUSDT")


def test_instruments_file_overrides_the_shipped_table(tmp_path: Path) -> None:
    entry = dict(FAPI_ETHUSDT, filters=[dict(f) for f in FAPI_ETHUSDT["filters"]])  # type: ignore[call-overload]
    entry["filters"][0]["tickSize"] = "0.05"
    entry["symbol"] = "ETHUSDT"
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"binance-usdm": {"symbols": [entry]}}))
    table = load_table(path)
    assert table.get("ETHUSDT", "binance-usdm").tick_size == Decimal("0.05")
    assert table.get("BTCUSDT", "binance-usdm").tick_size == Decimal("0.1")
    bad = tmp_path / "bad.json"
    bad.write_text('{"binance-usdm": {"symbols": [{"symbol": "X", "filters": []}]}}')
    with pytest.raises(ValueError, match="bad.json: binance-usdm X: PRICE_FILTER"):
        load_table(bad)


def test_shipped_table_has_provenance_for_every_symbol() -> None:
    data = json.loads(BUNDLED_TABLE.read_text())
    table = InstrumentTable.from_json(data, "t")
    symbols = {(i.venue, i.symbol) for i in table}
    for needed in [
        ("binance-usdm", "BTCUSDT"),
        ("binance-usdm", "ETHUSDT"),
        ("binance-spot", "BTCUSDT"),
        ("binance-coinm", "BTCUSD_PERP"),
        ("binance-usdm", "SUSHIUSDT"),
    ]:
        assert needed in symbols
    assert all(i.source for i in table)


def test_inverse_value_and_pnl_in_coin() -> None:
    coinm = load_table().get("BTCUSD_PERP", "binance-coinm")
    assert coinm.notional(65, 60_000.0) == 6_500.0
    assert coinm.settlement_value(65, 65_000.0) == pytest.approx(0.1)
    # 10 contracts long from 50,000 to 62,500: 10 * 100 * (1/50000 - 1/62500) = 0.004 BTC.
    assert coinm.pnl(10, 50_000.0, 62_500.0) == pytest.approx(0.004)


def test_detect_venue_from_frames() -> None:
    usdm = '{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":1,"u":2,"pu":0}}'
    spot = '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","U":1,"u":2}}'
    coinm = '{"stream":"btcusd_perp@bookTicker","data":{"e":"bookTicker","s":"BTCUSD_PERP","ps":"BTCUSD"}}'
    assert detect_venue([usdm]) == "binance-usdm"
    assert detect_venue([spot]) == "binance-spot"
    assert detect_venue([coinm]) == "binance-coinm"
    assert detect_venue(['{"lastUpdateId":1}']) is None
