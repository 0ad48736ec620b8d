"""Backtests under the instruments' rules: the symbol's own tick, inverse contracts in coin,
unknown symbols refused, the live brain's pre-trade risk (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from twinfeed.instruments import UnknownInstrumentError, load_table
from twinfeed.live.brain.risk import RiskConfig
from twinfeed.research.backtest import Backtest
from twinfeed.research.synth import SynthParams, write_synth
from twinfeed.strategies.market_maker import MarketMaker
from twinfeed.strategy import Context, Strategy


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("captures")
    out = {}
    for name, symbol, params in [
        ("eth", "ETHUSDT", SynthParams()),
        ("doge", "DOGEUSDT", SynthParams()),
        ("coinm", "BTCUSD_PERP", SynthParams(venue="coinm")),
    ]:
        path = folder / f"{name}.txt"
        write_synth(path, 7, seconds=30, symbol=symbol, params=params)
        out[name] = path
    return out


def test_market_maker_quotes_on_the_symbols_own_tick(captures: dict[str, Path]) -> None:
    """ETHUSDT's tick is 0.01: the default MarketMaker used to keep BTCUSDT's 0.1 silently."""
    result = Backtest(MarketMaker, captures["eth"]).run()
    prices = result.orders["price"].drop_nulls().to_numpy()
    assert len(prices) > 20
    ticks = np.round(prices / 0.01)
    assert np.allclose(ticks * 0.01, prices)
    assert np.any(np.abs(np.round(prices / 0.1) * 0.1 - prices) > 1e-6), "quotes on 0.1 only"
    assert result.metrics["rule_refusals"] == 0
    (eth,) = result.artifact()["instruments"]
    assert eth["symbol"] == "ETHUSDT" and eth["tick_size"] == "0.01"
    assert result.currency == "USDT"


def test_a_symbol_without_rules_is_an_error(captures: dict[str, Path]) -> None:
    with pytest.raises(UnknownInstrumentError, match="no trading rules for DOGEUSDT"):
        Backtest(MarketMaker, captures["doge"]).run()


class RoundTrip(Strategy):
    """Buys ``contracts`` at market at the first touch, sells them at market 10 s later."""

    default_params: ClassVar[dict[str, Any]] = {"contracts": 65}

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self.opened_ns = 0
        self.closed = False

    def on_record(self, ctx: Context, record: np.void) -> None:
        if int(record["kind"]) not in (1, 2) or self.closed:
            return
        if not self.opened_ns:
            ctx.submit("buy", self.params["contracts"], type="market")
            self.opened_ns = ctx.now_ns
        elif ctx.now_ns - self.opened_ns > 10_000_000_000:
            ctx.submit("sell", self.params["contracts"], type="market")
            self.closed = True


def test_inverse_contracts_pnl_and_fees_in_coin(captures: dict[str, Path]) -> None:
    """65 BTCUSD_PERP contracts (100 USD each) round trip: PnL and fees in BTC, by hand."""
    taker_bps = 5.0
    result = Backtest(RoundTrip, captures["coinm"], taker_fee_bps=taker_bps, mode="rows").run()
    fills = result.fills
    buys = fills.filter(fills["side"] == "buy")
    sells = fills.filter(fills["side"] == "sell")
    assert buys["qty"].sum() == 65 and sells["qty"].sum() == 65
    size = 100.0
    # Long 65 contracts: worth sum(q * 100 / p) BTC at entry, sum(q * 100 / p) at exit.
    coin_in = sum(q * size / p for q, p in zip(buys["qty"], buys["price"], strict=True))
    coin_out = sum(q * size / p for q, p in zip(sells["qty"], sells["price"], strict=True))
    fees = (coin_in + coin_out) * taker_bps * 1e-4
    metrics = result.metrics
    assert metrics["pnl_realized"] == pytest.approx(coin_in - coin_out, rel=1e-9, abs=1e-15)
    assert metrics["fees"] == pytest.approx(fees, rel=1e-9)
    assert metrics["pnl_total"] == pytest.approx(coin_in - coin_out - fees, rel=1e-9)
    assert metrics["turnover"] == pytest.approx(2 * 65 * size)  # USD face value, not BTC x price
    assert metrics["fees"] < 0.001  # ~6,500 USD x 2 x 5 bps ~ 6.5 USD ~ 1e-4 BTC
    assert result.currency == "BTC"
    assert json.loads(result.artifact_json())["metric_notes"]["currency"] == "BTC"


def test_backtest_applies_the_live_brains_risk(captures: dict[str, Path]) -> None:
    """Orders live risk would refuse are refused in the backtest too, and counted."""
    free = Backtest(MarketMaker, captures["eth"]).run()
    limited = Backtest(
        MarketMaker, captures["eth"], risk=RiskConfig(orders_per_second=1, burst=1)
    ).run()
    assert free.metrics["risk_refusals"] == 0
    assert limited.metrics["risk_refusals"] > 0
    assert limited.metrics["risk_refusals_rate"] == limited.metrics["risk_refusals"]
    reasons = limited.orders.filter(limited.orders["state"] == "rejected")["reason"].to_list()
    assert reasons and all(r.startswith("risk: order rate") for r in reasons)
    assert limited.artifact()["deployment"]["risk"]["orders_per_second"] == 1


def test_artifact_holds_what_deploying_needs(captures: dict[str, Path]) -> None:
    result = Backtest(MarketMaker, captures["eth"], risk=RiskConfig()).run()
    deployment = result.artifact()["deployment"]
    assert deployment["strategy_class"] == "twinfeed.strategies.market_maker:MarketMaker"
    source = Path(__file__).parents[1] / "python/twinfeed/strategies/market_maker.py"
    import hashlib

    assert (
        deployment["strategy_source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert "[downsample]" in deployment["feature_config_toml"]
    assert deployment["venue"] == "binance-usdm"
    assert deployment["risk"]["max_position"] == RiskConfig().max_position
    assert (
        load_table().get("ETHUSDT", "binance-usdm").describe() in result.artifact()["instruments"]
    )


@pytest.mark.slow
def test_fills_come_in_whole_lots_on_the_real_captures(
    usdm_capture: Path, spot_capture: Path
) -> None:
    """The queue model's share of a trade used to fill e.g. 0.00065973 BTC: a position the
    venue's step (0.001) cannot close; live unwinds were then refused with -1111."""
    for capture, step in ((usdm_capture, 0.001), (spot_capture, 0.00001)):
        result = Backtest(MarketMaker, capture).run()
        qty = result.fills["qty"].to_numpy()
        assert len(qty) > 100
        lots = qty / step
        assert np.allclose(lots, np.round(lots), atol=1e-6), capture
        assert result.metrics["rule_refusals"] == 0


def test_cli_synth_coinm_and_backtest_rules(tmp_path: Path) -> None:
    """`data synth --venue coinm` writes COIN-M shapes; `backtest` says which symbol lacks
    rules, and `--instruments` supplies them."""
    from click.testing import CliRunner
    from twinfeed.cli import main

    runner = CliRunner()
    coinm = tmp_path / "coinm.txt"
    made = runner.invoke(
        main,
        ["data", "synth", "--seed", "5", "--seconds", "5", "--venue", "coinm", "--out", str(coinm)],
    )
    assert made.exit_code == 0, made.output
    first = coinm.read_text().splitlines()[1]
    assert '"s":"BTCUSD_PERP","ps":"BTCUSD"' in first or "btcusd_perp@" in first
    doge = tmp_path / "doge.txt"
    write_synth(doge, 5, seconds=5, symbol="DOGEUSDT")
    out = tmp_path / "bt"
    refused = runner.invoke(
        main, ["backtest", "--capture", str(doge), "--out", str(out), "--no-plots"]
    )
    assert refused.exit_code != 0
    assert "no trading rules for DOGEUSDT on binance-usdm" in refused.output
    entry = load_table().get("BTCUSDT", "binance-usdm").to_exchange_info()
    entry["symbol"] = "DOGEUSDT"
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"binance-usdm": {"symbols": [entry]}}))
    done = runner.invoke(
        main,
        [
            "backtest",
            "--capture",
            str(doge),
            "--out",
            str(out),
            "--no-plots",
            "--instruments",
            str(rules),
        ],
    )
    assert done.exit_code == 0, done.output
    artifact = json.loads((out / "artifact.json").read_text())
    assert artifact["instruments"][0]["symbol"] == "DOGEUSDT"
    assert artifact["deployment"]["risk"] is not None  # the live brain's limits by default
