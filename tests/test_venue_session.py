"""A whole ``twinfeed live --venue binance-usdm-testnet`` session, rehearsed against the local
venue (``twinfeed venue`` in its own process: the Rust market-data replay and the paper
order entry), with the endpoint table overridden from the environment: market data through
the ingest, orders through the Binance adapter, the user stream over the listen-key websocket,
reconciliation at the end. Real Binance cannot be reached from here."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from paper_stack import wait_for
from twinfeed.live.brain import LiveConfig
from twinfeed.live.brain.session import LiveSettings
from twinfeed.live.brain.venue_session import run_venue_session
from twinfeed.venues.binance.connect import connect_binance
from twinfeed.venues.binance.endpoints import ENDPOINTS, OVERRIDES, endpoints

pytestmark = pytest.mark.slow


def test_endpoints_are_overridable_from_the_environment() -> None:
    table = ENDPOINTS["binance-usdm-testnet"]
    assert endpoints("binance-usdm-testnet", {}) == table
    moved = endpoints("binance-usdm-testnet", {OVERRIDES["streams"]: "ws://127.0.0.1:9"})
    assert moved.streams == "ws://127.0.0.1:9" and moved.rest == table.rest
    assert moved.depth_rest == table.rest  # depth snapshots from the REST base by default
    with pytest.raises(KeyError, match="binance-coinm"):
        endpoints("binance-coinm", {})


@pytest.fixture(scope="module")
def local_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``twinfeed venue`` on free ports; the environment that points the table at it."""
    tmp = tmp_path_factory.mktemp("rehearsal")
    ready, log, keys = tmp / "ready", tmp / "venue.log", tmp / "keys"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "twinfeed"),
                "venue",
                "--port",
                "0",
                "--ready-file",
                str(ready),
                "--credentials-file",
                str(keys),
                "--speed",
                "1",
                "--loop",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        pattern = re.compile(
            r"paper orders on (\S+) \(user-data websocket and WebSocket API on (\S+)\)"
        )
        found = wait_for(
            "the local venue's order entry", lambda: pattern.search(log.read_text()), 30
        )
        md_port = int(ready.read_text().strip())
        yield {
            "keys": str(keys),
            "db_dir": str(tmp),
            OVERRIDES["rest"]: found.group(1),
            OVERRIDES["ws_api"]: found.group(2),
            OVERRIDES["streams"]: f"ws://127.0.0.1:{md_port}",
            OVERRIDES["market_rest"]: f"http://127.0.0.1:{md_port}",
        }
    finally:
        process.terminate()
        process.wait(20)


def test_a_testnet_session_rehearsed_on_the_local_venue(
    local_venue: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in OVERRIDES.values():
        monkeypatch.setenv(name, local_venue[name])
    for name in ("TWINFEED_API_KEY", "TWINFEED_API_SECRET", "TWINFEED_API_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    db = Path(local_venue["db_dir"]) / "trade.duckdb"
    said: list[str] = []
    settings = LiveSettings(
        duration_s=20, db=str(db), live=LiveConfig(drain_timeout_s=4.0), speed=1
    )
    result = run_venue_session(
        settings, "binance-usdm-testnet", local_venue["keys"], on_status=said.append
    )
    summary = result.summary
    assert any(line.startswith("preflight: ") for line in said), said
    assert any(local_venue[OVERRIDES["streams"]] in line for line in said)
    assert summary.status == "completed" and summary.records > 0
    assert summary.orders > 0 and summary.accepted > 0 and summary.fills > 0
    # The venue is the truth: its positions (positionRisk) equal the brain's and the DB's.
    assert summary.reconciled is True
    con = duckdb.connect(str(db), read_only=True)
    signed = dict(
        con.execute(
            "SELECT symbol, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) FROM fills "
            "GROUP BY 1"
        ).fetchall()
    )
    venue = connect_binance("binance-usdm-testnet", local_venue["keys"])
    try:
        positions = venue.positions()
        assert venue.open_orders("BTCUSDT") == []  # cancelled at the end of the session
        trades = venue.fills_since("BTCUSDT")
    finally:
        venue.close()
    assert len(trades) == summary.fills == con.execute("SELECT count(*) FROM fills").fetchone()[0]  # type: ignore[index]
    for symbol, qty in signed.items():
        assert qty == pytest.approx(positions.get(symbol, 0.0), abs=1e-9)
    config = con.execute("SELECT config FROM runs").fetchone()[0]  # type: ignore[index]
    assert "binance-usdm-testnet" in config


def test_the_cli_runs_a_venue_session_and_reports(
    local_venue: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``twinfeed live --venue binance-usdm-testnet --shadow``: the venue's market data, no
    credentials needed, nothing sent."""
    from twinfeed.cli import main

    for name in OVERRIDES.values():
        monkeypatch.setenv(name, local_venue[name])
    result = CliRunner().invoke(
        main,
        [
            "live",
            "--venue",
            "binance-usdm-testnet",
            "--shadow",
            "--duration",
            "8",
            "--db",
            str(tmp_path / "shadow.duckdb"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "shadow: orders are matched inside the brain" in result.output
    assert "completed" in result.output
