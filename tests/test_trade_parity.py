"""Trade parity (README, "Trade parity"): real `twinfeed live` sessions (venue, paper venue,
ingest, brain on loopback) journal what their strategy saw and did; the decision replay
rebuilds the records from the ingest's capture and must reproduce every request; the
execution comparison must give the live fate to at least 90% of the orders on the paper venue.

Three deliberately broken things must be caught: a strategy reading the wall clock (or an
unseeded random generator), a runner that drops or reorders an order update
(``TWINFEED_TEST_RUNNER_FAULT`` in the session's own process), and a record batch the runner
altered.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from twinfeed.cli import main
from twinfeed.live.brain import LiveConfig
from twinfeed.live.brain.journal import RUNNER_FAULT_ENV
from twinfeed.live.brain.session import LiveSettings, SessionResult, run_session
from twinfeed.parity.execution import compare_execution
from twinfeed.parity.trades import JournalError, load_journal, replay_decisions

pytestmark = pytest.mark.slow

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
USDM = REAL / "binance-usdm" / "btcusdt_20240808.gz"
SPOT = REAL / "binance-spot" / "btcusdt_20240808.gz"
STRATEGIES = Path(__file__).resolve().parent / "parity_strategies.py"
DIGEST_MAKER = f"{STRATEGIES}:UpdateDigestMaker"
MARKET_MAKER = "twinfeed.strategies.market_maker:MarketMaker"


def _session(
    work: Path,
    capture: Path | None = None,
    strategy: str = MARKET_MAKER,
    duration_s: float = 10.0,
) -> SessionResult:
    # Replay speed 5: short sessions; the paper venue's replay clock then moves 5 ms of
    # market per ms of wall time, which the comparison measures rather than assumes.
    settings = LiveSettings(
        capture=None if capture is None else str(capture),
        speed=5,
        duration_s=duration_s,
        settle_s=0.5,
        db=str(work / "trade.duckdb"),
        strategy=strategy,
        live=LiveConfig(drain_timeout_s=2.0),
    )
    return run_session(settings, work_dir=work / "session")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> SessionResult:
    return _session(tmp_path_factory.mktemp("bundled"), strategy=DIGEST_MAKER)


@pytest.fixture(scope="module")
def usdm(tmp_path_factory: pytest.TempPathFactory) -> SessionResult:
    if not USDM.exists():
        pytest.fail(f"real USD-M capture missing: {USDM}")
    return _session(tmp_path_factory.mktemp("usdm"), USDM)


@pytest.fixture(scope="module")
def spot(tmp_path_factory: pytest.TempPathFactory) -> SessionResult:
    if not SPOT.exists():
        pytest.fail(f"real spot capture missing: {SPOT}")
    return _session(tmp_path_factory.mktemp("spot"), SPOT)


@pytest.fixture(params=["bundled", "usdm", "spot"])
def session(request: pytest.FixtureRequest) -> SessionResult:
    result: SessionResult = request.getfixturevalue(request.param)
    return result


# ---- the journal ----------------------------------------------------------------------------


def test_the_journal_records_inputs_and_requests_in_order(bundled: SessionResult) -> None:
    run, entries = load_journal(bundled.db_path)
    assert run == bundled.summary.run_id
    kinds = [entry.kind for entry in entries]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.index("stop") < len(kinds) - 1
    setup = entries[0].data
    assert setup["strategy"] == DIGEST_MAKER
    assert Path(setup["capture_dir"]).is_dir()
    batches = [entry for entry in entries if entry.kind == "batch"]
    assert len(batches) == bundled.summary.batches
    # Ring ranges follow each other (nothing was lost) and name their capture lines.
    for before, after in zip(batches, batches[1:], strict=False):
        assert after.data["first_seq"] == before.data["last_seq"] + 1
        assert after.data["first_line"] >= before.data["last_line"]
    assert sum(b.data["last_seq"] - b.data["first_seq"] + 1 for b in batches) == (
        bundled.summary.records
    )
    requests = [entry for entry in entries if entry.kind == "request"]
    submits = [entry for entry in requests if entry.data["op"] == "submit"]
    assert submits and all({"side", "qty", "price", "tif"} <= set(e.data) for e in submits)
    # Every fill the trade DB holds was journaled (same durability), in the same order.
    with duckdb.connect(str(bundled.db_path), read_only=True) as con:
        fills = con.execute(
            "SELECT trade_id FROM fills WHERE run_id = ? ORDER BY wall_ns", [run]
        ).fetchall()
    journaled = [e.data["fill_id"] for e in entries if e.kind == "fill"]
    assert fills and [row[0] for row in fills] == journaled
    assert any(entry.kind == "deliver" for entry in entries)


def test_a_journal_cut_short_by_a_crash_says_so(bundled: SessionResult, tmp_path: Path) -> None:
    copy = tmp_path / "trade.duckdb"
    shutil.copy(bundled.db_path, copy)
    run, entries = load_journal(copy)
    cut = next(e.entry for e in entries if e.kind == "request" and e.entry > 50)
    with duckdb.connect(str(copy)) as con:
        con.execute("DELETE FROM journal WHERE run_id = ? AND entry >= ?", [run, cut])
    result = replay_decisions(copy)
    assert result.truncated is not None and f"entry {cut - 1}" in result.truncated
    assert result.identical  # what is there replays
    assert 0 < result.requests_replayed < sum(1 for e in entries if e.kind == "request")


def test_a_gone_capture_is_an_error_naming_it(bundled: SessionResult, tmp_path: Path) -> None:
    copy = tmp_path / "trade.duckdb"
    shutil.copy(bundled.db_path, copy)
    run, entries = load_journal(copy)
    setup = dict(entries[0].data, capture_dir=str(tmp_path / "nowhere"))
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "UPDATE journal SET data = ? WHERE run_id = ? AND entry = 0", [json.dumps(setup), run]
        )
    with pytest.raises(JournalError, match="nowhere"):
        replay_decisions(copy)


# ---- decision replay and execution on the bundled and the real captures -----------------


def test_decision_replay_is_identical(session: SessionResult) -> None:
    result = replay_decisions(session.db_path)
    assert result.divergence is None, result.to_json()
    assert result.truncated is None
    assert result.requests > 10
    assert result.requests_replayed == result.requests
    assert result.records == session.summary.records


def test_execution_comparison_gives_the_live_fate_to_90_percent(
    session: SessionResult, tmp_path: Path
) -> None:
    result = compare_execution(session.db_path, out_dir=tmp_path)
    assert len(result.orders) >= 20
    assert result.share >= 0.9, (result.share, result.causes())
    assert all(order["cause"] for order in result.orders if not order["same_fate"])
    assert result.latency_ns["orders_measured"] > 0
    saved = json.loads((tmp_path / f"execution-{result.run_id}.json").read_text())
    assert saved["equal_fate_share"] == result.share
    assert (tmp_path / f"execution-{result.run_id}.png").read_bytes()[:4] == b"\x89PNG"
    print(f"{session.db_path.parent.name}: equal fate {result.share:.1%} of {len(result.orders)}")


def test_cli_parity_trades_passes_and_writes_json(bundled: SessionResult, tmp_path: Path) -> None:
    outcome = CliRunner().invoke(
        main, ["parity", "trades", "--db", str(bundled.db_path), "--out", str(tmp_path)]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "identical" in outcome.output and "execution:" in outcome.output
    report = json.loads((tmp_path / f"trade-parity-{bundled.summary.run_id}.json").read_text())
    assert report["identical"] is True and report["divergence"] is None


def test_gate_includes_the_decision_replay(bundled: SessionResult, tmp_path: Path) -> None:
    from twinfeed import FeatureConfig
    from twinfeed.parity.gate import parity_gate
    from twinfeed.records import build_info

    config = FeatureConfig.default()
    artifact = tmp_path / "artifact.json"
    artifact.write_text(
        json.dumps(
            {
                "feature_fingerprint": config.fingerprint,
                "build": {"version": build_info()["version"]},
            }
        )
    )
    broken = tmp_path / "broken.duckdb"
    shutil.copy(bundled.db_path, broken)
    run, entries = load_journal(broken)
    request = next(e for e in entries if e.kind == "request" and e.data["op"] == "submit")
    with duckdb.connect(str(broken)) as con:
        data = dict(request.data, qty=request.data["qty"] * 2)
        con.execute(
            "UPDATE journal SET data = ? WHERE run_id = ? AND entry = ?",
            [json.dumps(data), run, request.entry],
        )
    passed = parity_gate(artifact, config, captures=[], live_dbs=[bundled.db_path])
    assert [r.identical for r in passed.replays] == [True]
    assert not [f for f in passed.failures if f.startswith("decision replay")]
    failed = parity_gate(artifact, config, captures=[], live_dbs=[broken])
    assert any(f.startswith(f"decision replay: {broken}") for f in failed.failures)


# ---- what the replay must catch ---------------------------------------------------------


def _broken_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, fault: str = ""
) -> SessionResult:
    if fault:
        monkeypatch.setenv(RUNNER_FAULT_ENV, fault)
    return _session(tmp_path, strategy=strategy, duration_s=6.0)


@pytest.mark.parametrize("broken", ["WallClockMaker", "UnseededRandomMaker"])
def test_a_strategy_reading_the_wall_clock_or_an_unseeded_rng_is_caught(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _broken_session(tmp_path, monkeypatch, f"{STRATEGIES}:{broken}")
    result = replay_decisions(session.db_path)
    divergence = result.divergence
    assert divergence is not None
    if divergence.reason == "the request differs":
        assert divergence.fields and set(divergence.fields) <= {
            "price",
            "qty",
            "op",
            "side",
            "client_id",
            "type",
            "tif",
            "symbol",
            "reduce_only",
            "good_till_ms",
            "refusal",
        }
    assert divergence.input_before is not None and divergence.capture_line is not None
    assert "capture-000000" in divergence.capture_line
    out = tmp_path / "report"
    outcome = CliRunner().invoke(
        main, ["parity", "trades", "--db", str(session.db_path), "--out", str(out)]
    )
    assert outcome.exit_code == 1
    report = json.loads((out / f"trade-parity-{result.run_id}.json").read_text())
    # A second replay of a strategy that reads the wall clock or an unseeded generator may
    # diverge elsewhere: the report must name a divergence, not necessarily the same one.
    assert report["divergence"]["request"] is not None
    assert report["divergence"]["reason"]


@pytest.mark.parametrize("fault", ["drop-update:3", "swap-updates:3"])
def test_a_runner_that_drops_or_reorders_an_update_is_caught(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _broken_session(tmp_path, monkeypatch, DIGEST_MAKER, fault)
    result = replay_decisions(session.db_path)
    assert result.divergence is not None, result.to_json()
    assert result.requests_replayed < result.requests


def test_a_record_batch_the_runner_altered_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _broken_session(tmp_path, monkeypatch, MARKET_MAKER, "alter-batch:5")
    result = replay_decisions(session.db_path)
    divergence = result.divergence
    assert divergence is not None
    assert divergence.input_before is not None and divergence.input_before["kind"] == "batch"
    assert result.batches >= 5


# ---- the queue fit --------------------------------------------------------------------------


@pytest.mark.parametrize("per_row", [False, True])
def test_the_engine_queue_fraction_places_a_new_order_in_its_level(per_row: bool) -> None:
    import numpy as np
    import twinfeed
    from twinfeed.matching import MatchingEngine
    from twinfeed.orders import Fill, Order

    def run(fraction: float) -> float:
        rows = np.zeros(3, dtype=twinfeed.record_dtype())
        for name, kind, _ in twinfeed.record_fields():
            if kind == "<f8":
                rows[name] = np.nan
        quote = twinfeed.KIND["quote"]
        for row, values in enumerate(
            [
                {
                    "kind": quote,
                    "local_ns": 1,
                    "bid_px": 100.0,
                    "bid_qty": 4.0,
                    "ask_px": 101.0,
                    "ask_qty": 4.0,
                },
                {
                    "kind": twinfeed.KIND["trade"],
                    "local_ns": 2,
                    "trade_px": 100.0,
                    "trade_qty": -1.0,
                },
                {
                    "kind": quote,
                    "local_ns": 3,
                    "bid_px": 100.0,
                    "bid_qty": 3.0,
                    "ask_px": 101.0,
                    "ask_qty": 4.0,
                },
            ]
        ):
            for name, value in values.items():
                rows[row][name] = value
        engine = MatchingEngine(queue_fraction=fraction)
        engine.on_batch(rows[:1])
        engine.submit(Order("b", 0, "buy", 1.0, 100.0), 1)
        events = (
            [engine.on_record(row) for row in rows[1:]] if per_row else [engine.on_batch(rows[1:])]
        )
        return sum(e.qty for batch in events for e in batch if isinstance(e, Fill))

    assert run(1.0) == 0.0  # behind the 4 shown: the print of 1 only shortens the queue
    assert run(0.0) == 1.0  # at the front: the print fills it
    with pytest.raises(ValueError, match="queue_fraction"):
        MatchingEngine(queue_fraction=1.5)


def test_the_queue_fit_recovers_the_paper_venues_own_queue_model(bundled: SessionResult) -> None:
    from twinfeed.parity.queue_fit import QUEUE_FRACTIONS, fit_queue

    result, fit = fit_queue(bundled.db_path)
    assert set(fit["shares"]) == {str(f) for f in QUEUE_FRACTIONS}
    # The paper venue matches with the engine's default queue model: the fit finds it, and a
    # queue position the venue does not use agrees less.
    assert fit["fitted_fraction"] == 1.0 and fit["improvement"] == 0.0
    assert fit["shares"]["0.0"] < fit["shares"]["1.0"]
    assert result.queue_fit is fit and result.share == fit["default_share"]
    table = fit["fill_table"]
    assert table and sum(row["orders"] for row in table) > 10
    assert all(0.0 <= row["live_fill_probability"] <= 1.0 for row in table)
