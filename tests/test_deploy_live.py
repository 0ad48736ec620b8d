"""``twinfeed live`` trades what was backtested (issue 14): the capture's symbol under its own
rules, the researched feature config, an artifact checked for drift, loud refusals.

Real processes on loopback (market-data venue, paper venue, ingest, brain) on small synthetic
captures made with ``twinfeed data synth``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from twinfeed import FeatureConfig
from twinfeed.cli import main
from twinfeed.deploy import DriftError
from twinfeed.live.brain.runner import LiveConfig
from twinfeed.live.brain.session import LiveSettings, run_session
from twinfeed.research.backtest import Backtest
from twinfeed.research.synth import SynthParams, write_synth
from twinfeed.strategies.market_maker import MarketMaker

pytestmark = pytest.mark.slow

PRECISION_OR_SYMBOL = ("-1111", "-4014", "-4023", "-1121", "-1013")


@pytest.fixture(scope="module")
def eth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eth") / "ethusdt.txt"
    write_synth(path, 11, seconds=15, symbol="ETHUSDT")
    return path


@pytest.fixture(scope="module")
def btc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("btc") / "btcusdt.txt"
    write_synth(path, 12, seconds=8, symbol="BTCUSDT")
    return path


def _settings(tmp: Path, capture: Path, **values: object) -> LiveSettings:
    return LiveSettings(
        capture=str(capture),
        speed=8,
        duration_s=40,
        db=str(tmp / "trade.duckdb"),
        settle_s=0.5,
        live=LiveConfig(drain_timeout_s=3.0),
        **values,  # type: ignore[arg-type]
    )


def test_live_trades_the_captures_symbol_under_its_rules(eth: Path, tmp_path: Path) -> None:
    """Old main subscribed BTCUSDT whatever the capture held: 0 orders on ETHUSDT."""
    notices: list[str] = []
    result = run_session(
        _settings(tmp_path, eth), work_dir=tmp_path / "work", on_status=notices.append
    )
    summary = result.summary
    assert any("trading the capture's symbols: ETHUSDT" in n for n in notices)
    assert summary.orders > 0 and summary.accepted > 0 and summary.fills > 0
    bad = {r: c for r, c in summary.refusals.items() if any(x in r for x in PRECISION_OR_SYMBOL)}
    assert bad == {}
    con = duckdb.connect(str(result.db_path), read_only=True)
    symbols = {row[0] for row in con.execute("SELECT DISTINCT symbol FROM orders").fetchall()}
    assert symbols == {"ETHUSDT"}
    prices = [r[0] for r in con.execute("SELECT price FROM orders WHERE price > 0").fetchall()]
    assert any(abs(round(p / 0.1) * 0.1 - p) > 1e-6 for p in prices)  # ETHUSDT's 0.01 tick


def _artifact(capture: Path, out: Path, config: FeatureConfig | None = None) -> Path:
    result = Backtest(MarketMaker, capture, config).run()
    return result.write_artifact(out / "artifact.json")


def test_artifact_refuses_a_changed_feature_config(btc: Path, tmp_path: Path) -> None:
    artifact = _artifact(btc, tmp_path)
    changed = tmp_path / "features.toml"
    changed.write_text(FeatureConfig.default().to_toml().replace("bar_ms = 1000", "bar_ms = 500"))
    settings = _settings(tmp_path, btc, artifact=str(artifact), feature_config=str(changed))
    with pytest.raises(DriftError, match="feature config fingerprint") as caught:
        run_session(settings, work_dir=tmp_path / "work")
    assert len(caught.value.differences) == 1


def test_artifact_refuses_a_changed_tick_size(btc: Path, tmp_path: Path) -> None:
    artifact = _artifact(btc, tmp_path)
    info = json.loads(Path(artifact).read_text())["instruments"][0]
    assert info["tick_size"] == "0.10"
    rules = tmp_path / "rules.json"
    from twinfeed.instruments import load_table

    entry = load_table().get("BTCUSDT", "binance-usdm").to_exchange_info()
    entry["filters"][0]["tickSize"] = "0.50"
    rules.write_text(json.dumps({"binance-usdm": {"symbols": [entry]}}))
    runner = CliRunner()
    outcome = runner.invoke(
        main,
        [
            "live",
            "--artifact",
            str(artifact),
            "--capture",
            str(btc),
            "--instruments",
            str(rules),
            "--db",
            str(tmp_path / "t.duckdb"),
        ],
    )
    assert outcome.exit_code != 0
    assert "BTCUSDT tick_size 0.50 (venue) != 0.10 (artifact)" in outcome.output


def test_artifact_refuses_a_changed_strategy_file(btc: Path, tmp_path: Path) -> None:
    module = tmp_path / "drifting_strategy.py"
    module.write_text(
        "from twinfeed.strategies.market_maker import MarketMaker\n\n"
        "class Drifting(MarketMaker):\n    name = 'drifting'\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from drifting_strategy import Drifting  # type: ignore[import-not-found]

        artifact = Backtest(Drifting, btc).run().write_artifact(tmp_path / "artifact.json")
        module.write_text(module.read_text() + "# edited after the backtest\n")
        settings = _settings(tmp_path, btc, artifact=str(artifact))
        with pytest.raises(DriftError, match="strategy source drifting_strategy.py sha256"):
            run_session(settings, work_dir=tmp_path / "work")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("drifting_strategy", None)


def test_artifact_with_allowed_drift_trades_and_records_it(btc: Path, tmp_path: Path) -> None:
    """--allow-drift trades the artifact anyway; the run stores the drift and the digest."""
    artifact = _artifact(btc, tmp_path)
    changed = tmp_path / "features.toml"
    changed.write_text(FeatureConfig.default().to_toml().replace("bar_ms = 1000", "bar_ms = 500"))
    settings = _settings(
        tmp_path, btc, artifact=str(artifact), feature_config=str(changed), allow_drift=True
    )
    result = run_session(settings, work_dir=tmp_path / "work")
    assert result.summary.orders > 0
    con = duckdb.connect(str(result.db_path), read_only=True)
    (config, fingerprint) = con.execute("SELECT config, fingerprint FROM runs").fetchall()[0]
    deployment = json.loads(config)["deployment"]
    from twinfeed.deploy import artifact_digest

    assert deployment["artifact"]["digest"] == artifact_digest(artifact)
    assert any("feature config fingerprint" in d for d in deployment["drift"])
    assert fingerprint == FeatureConfig.from_toml(changed).fingerprint


OFF_GRID = """
from twinfeed.strategy import Strategy

class OffGrid(Strategy):
    def on_record(self, ctx, record):
        if int(record["kind"]) == 1 and len(ctx.open_orders()) < 1 and ctx.now_ns % 7 == 0:
            ctx.submit("buy", 0.005, float(record["bid_px"]) - 10.03, tif="GTC")
"""


def test_a_session_where_every_order_is_refused_fails_loudly(btc: Path, tmp_path: Path) -> None:
    """ctl status says why while it runs, the report says why, the command exits non-zero
    (old main: "feed healthy, trading" and exit 0)."""
    (tmp_path / "off_grid_strategy.py").write_text(OFF_GRID)
    db = tmp_path / "t.duckdb"
    control = tmp_path / "control.sock"
    command = [
        sys.executable,
        "-c",
        "from twinfeed.cli import main; main()",
        "live",
        "--capture",
        str(btc),
        "--speed",
        "1",
        "--strategy",
        "off_grid_strategy:OffGrid",
        "--db",
        str(db),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    runner = CliRunner()
    status_text = ""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path
    ) as process:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if control.exists():
                answer = runner.invoke(main, ["ctl", "--socket", str(control), "--json", "status"])
                if answer.exit_code == 0 and json.loads(answer.output).get("orders", 0) >= 2:
                    shown = runner.invoke(main, ["ctl", "--socket", str(control), "status"])
                    status_text = shown.output
                    break
            time.sleep(0.2)
        output, _ = process.communicate(timeout=90)
    text = output.decode()
    assert "not trading: all" in status_text and "-4014" in status_text, status_text
    assert process.returncode != 0, text
    assert "EVERY ORDER REFUSED" in text
    # Refused by the brain before the venue, by the same rules and with the venue's code.
    assert "x rules -4014: Price not increased by tick size." in text
    assert "0 accepted" in text


def test_artifact_refuses_changed_risk_limits(btc: Path, tmp_path: Path) -> None:
    from twinfeed.live.brain.risk import RiskConfig

    result = Backtest(MarketMaker, btc, risk=RiskConfig()).run()
    artifact = result.write_artifact(tmp_path / "artifact.json")
    settings = _settings(tmp_path, btc, artifact=str(artifact), risk=RiskConfig(max_position=1.0))
    settings.risk_given = True
    with pytest.raises(DriftError, match=r"risk max_position 1.0 != artifact 0.1"):
        run_session(settings, work_dir=tmp_path / "work")


def test_coinm_paper_session_counts_pnl_in_coin(tmp_path: Path) -> None:
    """A COIN-M capture paper-traded end to end: contracts on the 1-contract grid, PnL and fees
    in BTC equal to the hand computation from the fills, the report labelled BTC."""
    import io

    from rich.console import Console
    from twinfeed.live.brain.report import load_report, print_report
    from twinfeed.live.brain.risk import RiskConfig

    capture = tmp_path / "coinm.txt"
    write_synth(capture, 3, seconds=10, symbol="BTCUSD_PERP", params=SynthParams(venue="coinm"))
    settings = _settings(
        tmp_path,
        capture,
        params={"order_qty": 5, "max_position": 50},
        risk=RiskConfig(max_order_qty=100, max_position=200, max_notional=1e9),
        taker_fee_bps=5.0,
        # A maker fee too, so every fill carries one (whether the session ends with a taker
        # unwind depends on where the market left the position).
        maker_fee_bps=2.0,
    )
    result = run_session(settings, work_dir=tmp_path / "work")
    summary = result.summary
    assert summary.fills > 0 and summary.positions == {"BTCUSD_PERP": 0.0}
    con = duckdb.connect(str(result.db_path), read_only=True)
    fills = con.execute("SELECT side, price, qty, fee, liquidity FROM fills").fetchall()
    assert all(qty == round(qty) for _, _, qty, _, _ in fills)
    coin = sum((q if s == "buy" else -q) * 100.0 / p for s, p, q, _, _ in fills)
    assert summary.pnl["realized"] == pytest.approx(coin, rel=1e-9, abs=1e-15)
    fees = sum(q * 100.0 / p * (5e-4 if liq == "taker" else 2e-4) for _, p, q, _, liq in fills)
    # The venue reports each commission to 8 decimals, as Binance does for BTC.
    assert summary.pnl["fees"] == pytest.approx(fees, abs=1e-8 * len(fills))
    assert summary.pnl["fees"] > 0
    assert abs(summary.pnl["realized"]) < 0.01  # BTC, not USD x contracts
    out = io.StringIO()
    print_report(load_report(result.db_path, summary.run_id), Console(file=out, width=160))
    assert "positions and PnL (BTC)" in out.getvalue()


def test_live_refuses_a_capture_symbol_without_rules(tmp_path: Path) -> None:
    """No silent default tick: a symbol the table lacks stops the session before it starts."""
    from twinfeed.instruments import UnknownInstrumentError

    capture = tmp_path / "doge.txt"
    write_synth(capture, 4, seconds=3, symbol="DOGEUSDT")
    with pytest.raises(UnknownInstrumentError, match="no trading rules for DOGEUSDT"):
        run_session(_settings(tmp_path, capture), work_dir=tmp_path / "work")


def test_artifact_on_a_capture_without_its_symbol_is_refused(
    btc: Path, eth: Path, tmp_path: Path
) -> None:
    artifact = _artifact(btc, tmp_path)
    with pytest.raises(ValueError, match="holds ETHUSDT; the artifact .* trades BTCUSDT"):
        run_session(_settings(tmp_path, eth, artifact=str(artifact)), work_dir=tmp_path / "w")


def _depth_update_ids(lines: list[str]) -> list[int]:
    ids = []
    for line in lines:
        _, _, frame = line.partition(" ")
        if "@depth" in frame[:60] and '"stream"' in frame[:20]:
            ids.append(json.loads(frame)["data"]["u"])
    return ids


def test_live_gets_the_captures_own_depth_diffs(usdm_capture: Path, tmp_path: Path) -> None:
    """A @depth@0ms capture (the real USD-M one) replayed to a live session: the ingest
    records every captured diff, in order (before, the venue merged them into the subscribed
    100 ms windows, so live book features differed from a backtest on the same capture)."""
    import gzip

    settings = LiveSettings(
        capture=str(usdm_capture),
        speed=40,
        duration_s=8,
        db=str(tmp_path / "trade.duckdb"),
        settle_s=0.5,
        live=LiveConfig(drain_timeout_s=3.0),
    )
    run_session(settings, work_dir=tmp_path / "work")
    recorded: list[str] = []
    for path in sorted((tmp_path / "work" / "capture").glob("capture-*.txt")):
        recorded += path.read_text().splitlines()
    live_ids = _depth_update_ids(recorded)
    with gzip.open(usdm_capture, "rt") as source:
        source_ids = _depth_update_ids(source.readlines())
    assert len(live_ids) > 50
    start = source_ids.index(live_ids[0])
    assert live_ids == source_ids[start : start + len(live_ids)]
