"""Terminal tables of `twinfeed report` (and the shared table fitting): human UTC times, 80
columns, operator pauses named as such, and no blank axes for an empty run. The trade DB is a
real DuckDB file written by the brain's own writer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console
from twinfeed._tables import fitted_table, table_width
from twinfeed._time import utc_iso
from twinfeed.cli import main
from twinfeed.live.brain.report import load_report, print_report, report_figure
from twinfeed.live.brain.trade_db import TradeDB
from twinfeed.orders import Fill, Order
from twinfeed.portfolio import Position

T0 = 1_796_645_842_999_977_987  # 2026-12-07T...: a replay stamped with the wall clock


def make_db(path: Path, *, trades: bool = True) -> Path:
    with TradeDB(path) as db:
        db.start_run(
            fingerprint="ab" * 32,
            build={"version": "0.1.0", "profile": "release", "git_revision": "abc"},
            config={},
            strategy="twinfeed.strategies.market_maker:MarketMaker",
            params={},
            run_id="run-1",
        )
        if trades:
            order = Order("a-very-long-client-order-id-0001", 0, "buy", 0.123, 61_800.1)
            order.submit_ns = T0
            db.order(order, symbol="BTCUSDT", strategy_id="mm", submit_wall_ns=T0, mid=61_800.05)
            fill = Fill(order.client_id, 0, "buy", 61_800.1, 0.123, 0.01, "maker", T0 + 1_500, 1)
            db.fill(
                fill,
                symbol="BTCUSDT",
                strategy_id="mm",
                order=order,
                submit_wall_ns=T0,
                mid_at_submit=61_800.05,
            )
            position = Position(0)
            db.positions(T0 + 2_000, [("BTCUSDT", position)])
            db.positions(T0 + 1_000_002_000, [("BTCUSDT", position)])
            for reason in ("paused by the operator", "paused by the operator"):
                db.risk_event(T0, "o2", "kill_switch", f"opening risk blocked: {reason}", {})
            db.risk_event(T0, "o3", "kill_switch", "opening risk blocked: feed stale: silent", {})
            db.risk_event(T0, "o4", "price_band", "limit 70000 is 1300 bps from mid 61800", {})
            db.feed_event(T0 + 5_000, "stale", "healthy", {"reason": "no heartbeat for 2000 ms"})
        db.end_run(
            "done",
            {
                "positions": {"BTCUSDT": 0.123} if trades else {},
                "venue_positions": {"BTCUSDT": 0.123},
                "pnl": {"realized": -12345.6789, "unrealized": 23456.789, "fees": 0.01},
                "orders": 1 if trades else 0,
            },
        )
    return path


def render(path: Path, width: int = 80) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    print_report(load_report(path), console)
    return buffer.getvalue()


def test_report_tables_fit_80_columns_with_human_times(tmp_path: Path) -> None:
    text = render(make_db(tmp_path / "trade.duckdb"))
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text  # no header or number cut short
    assert str(T0) not in text  # feed events and fills: no raw nanoseconds
    assert utc_iso(T0 + 5_000) in text  # the feed event's time
    assert utc_iso(T0 + 1_500) in text  # "last fills" has a time column
    assert utc_iso(T0 + 1_500).startswith("2026-12-07T") and utc_iso(T0).endswith("Z")
    assert "maker_share" in text and "slippage_bps_mean" in text  # one row per figure
    # Operator pauses and feed blocks are named as such, not as the kill switch.
    assert "operator pause" in text and "feed block" in text and "price_band" in text
    assert "kill_switch" not in text


def test_narrow_terminal_drops_columns_in_the_documented_order(tmp_path: Path) -> None:
    text = render(make_db(tmp_path / "trade.duckdb"), width=60)
    assert max(len(line) for line in text.splitlines()) <= 60, text
    assert "left out to fit 60 columns: client_id" in text
    assert "left out to fit 60 columns: venue qty" in text


def test_fitted_table_keeps_every_column_when_they_fit() -> None:
    rows = [["x" * 10, "y" * 10]]
    table = fitted_table("t" * 70, [("a", "left"), ("b", "left")], rows, width=80)
    assert [c.header for c in table.columns] == ["a", "b"] and table.caption is None
    assert table.min_width == 70  # the title does not wrap
    narrow = fitted_table("t", [("a", "left"), ("b", "left")], rows, width=20, drop_order=["a"])
    assert [c.header for c in narrow.columns] == ["b"]
    assert table_width([10]) <= 20 < table_width([10, 10])


def test_empty_run_draws_no_blank_axes(tmp_path: Path) -> None:
    report = load_report(make_db(tmp_path / "trade.duckdb", trades=False))
    figure = report_figure(report)
    assert figure.axes == []
    assert "no position snapshots" in figure.texts[0].get_text()
    full = report_figure(load_report(make_db(tmp_path / "full.duckdb")))
    assert [bool(axis.get_ylabel()) for axis in full.axes] == [True, True]
    assert full.axes[1].get_xlabel().startswith("event time since 2026-12-07T")
    assert full.get_suptitle() == "run run-1: PnL and position"


def test_report_command_on_an_empty_run(tmp_path: Path) -> None:
    db = make_db(tmp_path / "trade.duckdb", trades=False)
    result = CliRunner().invoke(main, ["report", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "orders by state: -" in result.output
    assert (tmp_path / "pnl_inventory.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1_723_161_598_739_515_492, "2024-08-08T23:59:58.739515Z"),
        (1_000, "1970-01-01T00:00:00.000001Z"),
        (0, "-"),
        (None, "-"),
    ],
)
def test_utc_iso(ns: int | None, text: str) -> None:
    assert utc_iso(ns) == text


def test_features_and_backtest_output_fit_80_columns(tmp_path: Path) -> None:
    from conftest import SYNTH

    if not SYNTH.exists():
        pytest.skip("data/synth-btcusdt.txt not generated yet")
    runner = CliRunner(env={"COLUMNS": "80"})
    features = runner.invoke(main, ["features", str(SYNTH)])
    assert features.exit_code == 0, features.output
    # The headline is one line, not a title wrapped over the narrow kind/records table.
    assert features.output.splitlines()[0].startswith("features: ")
    assert "records, fingerprint " in features.output.splitlines()[0]
    backtest = runner.invoke(
        main, ["backtest", "--capture", str(SYNTH), "--out", str(tmp_path), "--no-plots"]
    )
    assert backtest.exit_code == 0, backtest.output
    lines = backtest.output.splitlines()
    assert any(line.strip().startswith("backtest metrics (PnL and fees in ") for line in lines)
    assert max(len(line) for line in lines) <= 80, backtest.output


def test_parity_divergence_table_shows_times_as_utc_iso_to_the_nanosecond() -> None:
    """The first-divergence table printed `local_ns 1723161256123456789`; it shows UTC ISO
    with every nanosecond (exact, as the comparison is) and fits 80 columns."""
    import numpy as np
    import twinfeed
    from conftest import SYNTH
    from twinfeed._time import utc_iso_ns
    from twinfeed.parity.compare import compare_streams
    from twinfeed.parity.report import print_comparison
    from twinfeed.research import compute_records

    raw, _ = compute_records(SYNTH)
    records = np.frombuffer(raw, twinfeed.record_dtype())
    altered = records.copy()
    altered["local_ns"][100] += 1
    comparison = compare_streams(records, altered, label="t", a_name="a", b_name="b")
    out = io.StringIO()
    print_comparison(comparison, Console(file=out, width=80, color_system=None))
    text = out.getvalue()
    before = int(records["local_ns"][100])
    assert utc_iso_ns(before) in text and utc_iso_ns(before + 1) in text
    assert utc_iso_ns(before).startswith("20") and len(utc_iso_ns(before)) == 30
    assert str(before) not in text
    assert max(len(line) for line in text.splitlines()) <= 80
