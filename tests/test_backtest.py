"""Backtester, Strategy API, portfolio and sizing; the example market maker on real captures."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import twinfeed
from click.testing import CliRunner
from twinfeed.orders import Fill, OrderUpdate
from twinfeed.portfolio import Portfolio, Position
from twinfeed.research.backtest import Backtest, BacktestResult, default_out_dir, load_strategy
from twinfeed.sizing import (
    fixed_notional,
    inventory_aware,
    passive_price,
    round_price,
    round_qty,
    volatility_scaled,
)
from twinfeed.strategies import MarketMaker
from twinfeed.strategy import Context, FeedStatus, Strategy

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
USDM = REAL / "binance-usdm" / "btcusdt_20240808.gz"
SPOT = REAL / "binance-spot" / "btcusdt_20240808.gz"
SYNTH = ROOT / "data" / "synth-btcusdt.txt"
SPOT_PARAMS = {"tick_size": 0.01, "lot_size": 0.00001}
FLOAT_FIELDS = [name for name, kind, _ in twinfeed.record_fields() if kind == "<f8"]
K = twinfeed.KIND


def need(path: Path) -> Path:
    """Skips when a shared capture is missing, unless TWINFEED_REQUIRE_SHARED=1 (then fails)."""
    if not path.exists():
        message = f"shared capture {path} is missing (../shared/data/real not mounted)"
        if os.environ.get("TWINFEED_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and TWINFEED_REQUIRE_SHARED=1")
        pytest.skip(message)
    return path


def records(*rows: dict[str, Any]) -> np.ndarray[Any, Any]:
    array = np.zeros(len(rows), dtype=twinfeed.record_dtype())
    for name in FLOAT_FIELDS:
        array[name] = np.nan
    for index, row in enumerate(rows):
        for name, value in row.items():
            array[index][name] = value
    return array


def quote(ts: int, bid: float, ask: float, size: float = 1.0, kind: str = "quote") -> dict:
    mid = (bid + ask) / 2
    return {
        "kind": K[kind],
        "local_ns": ts,
        "bid_px": bid,
        "bid_qty": size,
        "ask_px": ask,
        "ask_qty": size,
        "mid": mid,
        "microprice": mid,
    }


# ---- the example market maker on real captures -------------------------------------------


@pytest.fixture(scope="module")
def usdm_run() -> BacktestResult:
    return Backtest(MarketMaker, need(USDM)).run()


@pytest.mark.parametrize(
    ("capture", "params"), [(USDM, {}), (SPOT, SPOT_PARAMS)], ids=["usdm", "spot"]
)
def test_market_maker_is_deterministic_across_runs_and_batch_sizes(
    capture: Path, params: dict, request: pytest.FixtureRequest
) -> None:
    need(capture)
    if capture == USDM:
        first = request.getfixturevalue("usdm_run")
    else:
        first = Backtest(MarketMaker, capture, params=params).run()
    again = Backtest(MarketMaker, capture, params=params).run()
    small = Backtest(MarketMaker, capture, params=params, batch_rows=4_096).run()
    assert first.digest() == again.digest() == small.digest()
    assert first.artifact_json() == small.artifact_json()
    metrics = first.metrics
    assert metrics["records"] > 40_000
    assert metrics["fills"] > 50
    assert metrics["maker_fills"] == metrics["fills"]  # post-only quotes never take
    assert 0 < metrics["fill_ratio"] <= 1
    assert metrics["inventory_max_abs"] <= MarketMaker.default_params["max_position"] + 1e-9
    # Fills and the portfolio agree.
    signed = np.where(first.fills["side"].to_numpy() == "buy", 1, -1) * first.fills["qty"]
    assert metrics["inventory_final"] == pytest.approx(float(signed.sum()), abs=1e-9)
    assert first.orders["state"].is_in(["filled", "cancelled", "expired"]).all()


def test_per_row_mode_is_deterministic_across_batch_sizes() -> None:
    need(SPOT)
    first = Backtest(MarketMaker, SPOT, params=SPOT_PARAMS, mode="rows").run()
    small = Backtest(MarketMaker, SPOT, params=SPOT_PARAMS, mode="rows", batch_rows=3_000).run()
    assert first.digest() == small.digest()
    assert first.settings["mode"] == "rows"
    assert first.metrics["fills"] > 0


def test_artifact_and_plots(tmp_path: Path, usdm_run: BacktestResult) -> None:
    capture = need(USDM)
    result = usdm_run
    path = result.write_artifact(tmp_path / "run" / "artifact.json")
    artifact = json.loads(path.read_text())
    assert artifact["artifact_version"] == 2
    assert artifact["strategy"]["name"] == "twinfeed.strategies.market_maker:MarketMaker"
    assert artifact["strategy"]["params"] == MarketMaker.default_params
    config = twinfeed.FeatureConfig.default()
    assert artifact["feature_fingerprint"] == config.fingerprint
    assert artifact["build"] == twinfeed.build_info(config)
    [digest] = artifact["captures"]
    assert digest["name"] == capture.name
    assert digest["sha256"] == hashlib.sha256(capture.read_bytes()).hexdigest()
    assert digest["bytes"] == capture.stat().st_size
    assert artifact["symbols"] == ["BTCUSDT"]
    assert artifact["backtest"]["latency_ns"] == 1_000_000
    assert "batch_rows" not in artifact["backtest"]
    assert "one-minute samples, fewer than 30" in artifact["metric_notes"]["sharpe"]
    for name in ("pnl_total", "sharpe", "max_drawdown", "turnover", "fill_ratio", "avg_queue_ms"):
        assert name in artifact["metrics"]
    assert artifact["metrics"]["pnl_total"] == pytest.approx(result.metrics["pnl_total"])
    # The equity curve ends at the final PnL.
    assert result.equity["equity"][-1] == pytest.approx(result.metrics["pnl_total"])
    paths = result.plot(tmp_path / "run")
    assert [p.name for p in paths] == ["equity.png", "inventory.png", "quotes.png"]
    for plot in paths:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_backtest_on_bundled_capture(tmp_path: Path) -> None:
    if not SYNTH.exists():
        pytest.skip("data/synth-btcusdt.txt not generated yet")
    from twinfeed.cli import (
        backtest_cmd,  # noqa: F401  (attaches the command)
        main,
    )

    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["backtest", "--capture", str(SYNTH), "--out", str(out), "--params", '{"skew_bps": 1}'],
    )
    assert result.exit_code == 0, result.output
    assert "pnl_total" in result.output
    artifact = json.loads((out / "artifact.json").read_text())
    assert artifact["strategy"]["params"]["skew_bps"] == 1
    assert {p.name for p in out.iterdir()} == {
        "artifact.json",
        "equity.png",
        "inventory.png",
        "quotes.png",
    }
    bad = CliRunner().invoke(main, ["backtest", "--capture", str(SYNTH), "--params", "[1]"])
    assert bad.exit_code != 0 and "JSON object" in bad.output


def test_default_out_dir_and_load_strategy() -> None:
    assert default_out_dir("/x/btcusdt_20240808.gz") == Path("runs/backtest-btcusdt_20240808")
    assert default_out_dir("data/synth-btcusdt.txt") == Path("runs/backtest-synth-btcusdt")
    assert load_strategy("twinfeed.strategies.market_maker:MarketMaker") is MarketMaker
    with pytest.raises(ValueError, match="module:Class"):
        load_strategy("MarketMaker")
    with pytest.raises(ValueError, match="not a twinfeed.strategy.Strategy"):
        load_strategy("twinfeed.orders:Order")


# ---- Strategy API semantics on hand-made records -----------------------------------------


class Recording(Strategy):
    """Buys once at market on the first quote, records every callback."""

    default_params = {"qty": 0.5}

    def __init__(self, params: dict | None = None) -> None:
        super().__init__(params)
        self.log: list[tuple[Any, ...]] = []

    def on_start(self, ctx: Context) -> None:
        self.log.append(("start", ctx.now_ns))

    def on_record(self, ctx: Context, record: np.void) -> None:
        self.log.append(("record", ctx.now_ns, int(record["kind"])))
        if int(record["kind"]) == K["quote"] and not any(e[0] == "submit" for e in self.log):
            client_id = ctx.submit("buy", ctx.params["qty"], type="market")
            self.log.append(("submit", ctx.now_ns, client_id))

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.log.append(("fill", fill.ts_ns, fill.price, ctx.position()))

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        self.log.append(("update", update.ts_ns, update.state))

    def on_feed_status(self, ctx: Context, status: FeedStatus) -> None:
        self.log.append(("status", ctx.now_ns, status))

    def on_stop(self, ctx: Context) -> None:
        self.log.append(("stop", ctx.now_ns, ctx.pnl().total))


def test_callbacks_latency_and_accounting() -> None:
    data = records(
        quote(100, 100.0, 101.0),
        quote(105, 100.0, 102.0),  # the order arrives at 110: not yet
        quote(110, 103.0, 104.0),  # arrives now, takes the ask of 104 (state before the row)
        {"kind": K["gap"], "local_ns": 120},
        quote(130, 104.0, 106.0),
        quote(140, 105.0, 107.0, kind="book"),
    )
    strategy = Recording()
    result = Backtest(strategy, data, latency_ns=10, md_latency_ns=0, taker_fee_bps=10.0).run()
    log = strategy.log
    assert log[0] == ("start", 0)
    assert ("submit", 100, "o1") in log
    fill_at = log.index(next(e for e in log if e[0] == "fill"))
    # Fill, then its updates, then the record that revealed them.
    assert log[fill_at - 1] == ("update", 110, "acked")
    assert log[fill_at] == ("fill", 110, 102.0, 0.5)  # the touch before the 110 record
    assert log[fill_at + 1] == ("update", 110, "filled")
    assert log[fill_at + 2] == ("record", 110, K["quote"])
    assert ("status", 120, "degraded") in log
    assert ("status", 140, "healthy") in log
    assert log[-1][0] == "stop"
    # Bought 0.5 at 102, marked at the last mid 106, fee 10 bps of 51.
    assert log[-1][2] == pytest.approx(0.5 * (106.0 - 102.0) - 0.051)
    assert result.metrics["pnl_total"] == pytest.approx(0.5 * 4.0 - 0.051)
    assert result.metrics["taker_fills"] == 1
    assert result.fills["position"].to_list() == [0.5]
    assert result.orders["state"].to_list() == ["filled"]


def test_market_data_latency_shifts_the_strategy_clock() -> None:
    data = records(quote(100, 100.0, 101.0), quote(105, 100.0, 102.0), quote(200, 99.0, 103.0))
    strategy = Recording()
    Backtest(strategy, data, latency_ns=10, md_latency_ns=50).run()
    assert ("submit", 150, "o1") in strategy.log
    # Sent at 100 + 50, arrives at 160 (before the 200 record), takes the 102 ask.
    assert next(e for e in strategy.log if e[0] == "fill")[1:3] == (160, 102.0)


def test_strategy_params_are_validated() -> None:
    assert Recording({"qty": 2.0}).params == {"qty": 2.0}
    with pytest.raises(ValueError, match="unknown parameter"):
        Recording({"qtty": 2.0})
    with pytest.raises(ValueError, match="only accepted with a strategy class"):
        Backtest(Recording(), records(quote(0, 1.0, 2.0)), params={"qty": 1.0})


def test_batch_mode_gets_intervals_on_the_event_time_grid() -> None:
    class Batches(Strategy):
        wants_batches = True

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[int, int]] = []

        def on_batch(self, ctx: Context, batch: np.ndarray[Any, Any]) -> None:
            self.calls.append((ctx.now_ns, len(batch)))

    data = records(*(quote(ts, 100.0, 101.0) for ts in (0, 5, 9, 10, 31, 39, 40)))
    for rows in (1, 2, 7):
        strategy = Batches()
        Backtest(
            strategy, data, decision_interval_ns=10, equity_interval_ns=20, batch_rows=rows
        ).run()
        assert strategy.calls == [(9, 3), (10, 1), (39, 2), (40, 1)]


# ---- portfolio and sizing ----------------------------------------------------------------


def test_position_average_cost_and_flip() -> None:
    position = Position(0)
    position.apply(1, 100.0, 1.0, 0.1)
    position.apply(1, 102.0, 1.0, 0.0)
    assert position.qty == 2.0 and position.avg_price == 101.0
    position.apply(-1, 105.0, 3.0, 0.0)  # closes 2 at +4 each, opens 1 short at 105
    assert position.qty == -1.0 and position.avg_price == 105.0 and position.realized == 8.0
    position.mark = 104.0
    assert position.unrealized == 1.0 and position.total == pytest.approx(8.9)
    position.apply(1, 104.0, 1.0, 0.0)
    assert position.qty == 0.0 and np.isnan(position.avg_price) and position.realized == 9.0


def test_portfolio_totals_and_dust() -> None:
    portfolio = Portfolio()
    for _ in range(10):
        portfolio.apply(Fill("a", 0, "buy", 100.0, 0.001, 0.0, "maker", 0, 1))
    portfolio.apply(Fill("b", 0, "sell", 101.0, 0.01, -0.001, "maker", 0, 2))
    assert portfolio.position(0).units == 0  # exact: no float dust left over
    assert portfolio.pnl().realized == pytest.approx(0.01)
    assert portfolio.pnl().total == pytest.approx(0.011)


def test_sizing_helpers() -> None:
    assert round_price(61800.25, 0.1, "down") == 61800.2
    assert round_price(61800.2, 0.1, "down") == 61800.2  # on the grid stays
    assert passive_price(61800.21, 0.1, "sell") == 61800.3
    assert round_qty(0.0129, 0.001) == 0.012 and round_qty(-1.0, 0.001) == 0.0
    assert fixed_notional(1_000.0, 61_800.0, 0.001) == 0.016
    assert volatility_scaled(5.0, 61_800.0, 4e-5, 0.001) == 2.022
    assert volatility_scaled(5.0, 61_800.0, float("nan"), 0.001, vol_floor=1e-3) == 0.08
    assert inventory_aware(0.01, 0.03, 0.05, "buy", 0.001) == 0.004
    assert inventory_aware(0.01, 0.03, 0.05, "sell", 0.001) == 0.01
    assert inventory_aware(0.01, 0.05, 0.05, "buy", 0.001) == 0.0
    assert inventory_aware(0.01, -0.045, 0.05, "sell", 0.001) == 0.001


def test_sharpe_is_not_annualised_from_a_few_minutes() -> None:
    """A 5-minute run used to report an annualised Sharpe (e.g. -856) from 5 samples; now it
    says why there is none, and a run of 40 minutes gets one."""
    from twinfeed.research.backtest_report import (
        MIN_SHARPE_SAMPLES,
        _minute_increments,
        _sharpe,
        sharpe_note,
    )

    def equity(minutes: int) -> pl.DataFrame:
        steps = np.random.default_rng(7).normal(0.0, 1.0, minutes * 60)
        ts = 1_723_161_600_000_000_000 + np.arange(minutes * 60, dtype=np.int64) * 1_000_000_000
        return pl.DataFrame({"ts_ns": ts, "equity": np.cumsum(steps)})

    short = _minute_increments(equity(5))
    assert len(short) == 5 < MIN_SHARPE_SAMPLES
    assert math.isnan(_sharpe(short))
    note = sharpe_note({"sharpe": math.nan, "sharpe_samples": 5.0})
    assert note.startswith("not computed: 5 one-minute samples, fewer than 30")
    long = _minute_increments(equity(40))
    assert len(long) == 40 and math.isfinite(_sharpe(long))
    assert sharpe_note({"sharpe": _sharpe(long), "sharpe_samples": 40.0}).endswith("40 samples")
