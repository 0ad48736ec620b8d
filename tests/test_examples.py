"""The example configs under examples/ load and run as the README says (from the repository
root, where their relative paths point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import twinfeed
from click.testing import CliRunner
from conftest import REPO, SYNTH
from twinfeed.cli import main

EXAMPLES = REPO / "examples"
TWINFEED = Path(sys.executable).parent / "twinfeed"


def test_example_feature_config_runs_features_and_has_the_default_fingerprint(
    tmp_path: Path,
) -> None:
    if not SYNTH.exists():
        pytest.skip("data/synth-btcusdt.txt not generated yet")
    config = twinfeed.FeatureConfig.from_toml(EXAMPLES / "features.toml")
    # The example spells out the defaults: goldens and artifacts made without it still match.
    assert config.fingerprint == twinfeed.FeatureConfig.default().fingerprint
    out = tmp_path / "f.parquet"
    result = CliRunner().invoke(
        main,
        ["features", str(SYNTH), "--config", str(EXAMPLES / "features.toml"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert f"fingerprint {config.fingerprint[:12]}" in result.output and out.exists()


@pytest.mark.slow
def test_example_live_settings_run_a_short_session(tmp_path: Path) -> None:
    from twinfeed.live.brain.session import load_settings

    settings = load_settings(EXAMPLES / "live.toml")
    assert settings.strategy == "twinfeed.strategies.market_maker:MarketMaker"
    assert settings.params["order_qty"] == 0.005 and settings.risk.max_position == 0.1
    db = tmp_path / "trade.duckdb"
    done = subprocess.run(
        [str(TWINFEED), "live", "--config", "examples/live.toml", "--duration", "4"]
        + ["--db", str(db), "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replaying synth-btcusdt.txt at 4" in done.stdout
    assert (tmp_path / "pnl_inventory.png").exists()
    report = CliRunner().invoke(main, ["report", "--db", str(db), "--out", str(tmp_path)])
    assert report.exit_code == 0 and "positions and PnL" in report.output


def test_example_strategy_backtests_from_its_path(tmp_path: Path) -> None:
    if not SYNTH.exists():
        pytest.skip("data/synth-btcusdt.txt not generated yet")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["backtest", "--capture", str(SYNTH), "--strategy", f"{EXAMPLES / 'momentum.py'}:Momentum"]
        + ["--out", str(out), "--no-plots"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "artifact.json").read_text())["metrics"]
    assert metrics["taker_fills"] > 0 and metrics["orders_rejected"] == 0


def test_taker_fills_are_marked_on_the_quotes_plot() -> None:
    """quotes.png drew only own resting quotes: a taker strategy's trades were invisible."""
    if not SYNTH.exists():
        pytest.skip("data/synth-btcusdt.txt not generated yet")
    from twinfeed.research.backtest import Backtest, load_strategy
    from twinfeed.research.backtest_plots import result_figures

    result = Backtest(load_strategy(f"{EXAMPLES / 'momentum.py'}:Momentum"), SYNTH).run()
    top = result_figures(result)["quotes.png"].axes[0]
    marked = {line.get_label(): len(line.get_xdata()) for line in top.get_lines()}
    buys = int((result.fills["side"] == "buy").sum())
    sells = int((result.fills["side"] == "sell").sum())
    assert buys and sells
    assert marked[f"buy fills ({buys:,})"] == buys and marked[f"sell fills ({sells:,})"] == sells
    for figure in result_figures(result).values():
        for axes in figure.axes:
            assert axes.get_ylabel(), figure
