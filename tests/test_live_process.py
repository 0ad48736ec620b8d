"""``twinfeed live`` and ``twinfeed ingest`` as real processes under hostile endings (issue 13,
findings 5 and 11): the venue killed mid-session, the brain killed with -9, SIGTERM to the
ingest command. Each test runs the real CLI in a subprocess with its real children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest
from paper_stack import wait_for
from twinfeed.live.feed import process_alive

TWINFEED = str(Path(sys.executable).parent / "twinfeed")


def children(pid: int) -> dict[int, str]:
    """Live child processes of ``pid``: {pid: command name}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found[int(entry.name)] = name
    return found


def _live(tmp_path: Path, db: Path, *extra: str) -> subprocess.Popen[str]:
    config = tmp_path / "live.toml"
    config.write_text("[session]\nspeed = 3\nsettle_s = 0.5\n")
    return subprocess.Popen(
        [TWINFEED, "live", "--config", str(config), "--db", str(db), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )


def _ledger_trades(db: Path) -> dict[int, dict[str, object]]:
    path = db.with_name(f"{db.stem}.paper-ledger.jsonl")
    if not path.exists():
        return {}
    trades = {}
    for line in path.read_text().splitlines():
        try:
            trade = json.loads(line)["trade"]
        except ValueError:
            continue  # a line being written
        trades[int(trade["id"])] = trade
    return trades


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()  # waits and closes the pipes


@pytest.mark.slow
def test_kill_9_of_live_takes_its_children_and_the_next_live_recovers_every_fill(
    tmp_path: Path,
) -> None:
    db = tmp_path / "trade.duckdb"
    first = _live(tmp_path, db)
    try:
        kids = wait_for(
            "venue and ingest started",
            lambda: (
                (k := children(first.pid))
                and {"twinfeed-venue", "twinfeed-ingest"} <= set(k.values())
                and k
            ),
            60,
        )
        wait_for("a venue fill", lambda: len(_ledger_trades(db)) >= 2, 90)
        rings = list(Path("/dev/shm").glob(f"twinfeed-live-{first.pid}-*"))
        assert rings, "the session's ring"
        tmp = Path(tempfile.gettempdir())
        folders = [
            *tmp.glob(f"twinfeed-live-{first.pid}-*"),
            *tmp.glob(f"twinfeed-venue-{first.pid}-*"),
        ]
        assert len(folders) == 2, folders  # the session's work folder and the venue's
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        wait_for(
            "the children to die with their parent",
            lambda: not any(process_alive(pid) for pid in kids),
            10,
        )
    finally:
        _stop(first)
    traded = _ledger_trades(db)  # everything the dead session's venue executed
    assert traded
    con = duckdb.connect(str(db), read_only=True)
    (left,) = con.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchone() or (None,)
    con.close()
    assert left is not None, "the killed run stays running until someone recovers it"

    second = _live(tmp_path, db, "--duration", "4")
    try:
        out, err = second.communicate(timeout=120)
    finally:
        _stop(second)
    assert second.returncode == 0, (out, err)
    assert f"recovering runs left running by a dead session: {left}" in out, out
    assert "reconciled with venue: yes" in out, out  # the venue carried the dead run over
    left_behind = [path for path in [*rings, *folders] if path.exists()]
    assert not left_behind, "the dead session's ring and temporary folders are removed"
    con = duckdb.connect(str(db), read_only=True)
    try:
        status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
        assert status[left] == "crashed" and "running" not in status.values(), status
        recovery = con.execute(
            "SELECT detail FROM risk_events WHERE \"check\" = 'recovery'"
        ).fetchall()
        assert len(recovery) == 1 and left in json.loads(recovery[0][0])["crashed_runs"]
        in_db = {int(row[0]) for row in con.execute("SELECT trade_id FROM fills").fetchall()}
    finally:
        con.close()
    missing = sorted(set(traded) - in_db)
    assert not missing, f"venue trades of the killed run missing from the DB: {missing}"


@pytest.mark.slow
def test_venue_killed_during_live_ends_with_a_report_and_an_abnormal_exit_code(
    tmp_path: Path,
) -> None:
    db = tmp_path / "trade.duckdb"
    process = _live(tmp_path, db, "--duration", "90")
    try:
        kids = wait_for(
            "venue and ingest started",
            lambda: (
                (k := children(process.pid))
                and {"twinfeed-venue", "twinfeed-ingest"} <= set(k.values())
                and k
            ),
            60,
        )
        wait_for("a venue fill", lambda: len(_ledger_trades(db)) >= 1, 90)
        venue = next(pid for pid, name in kids.items() if name == "twinfeed-venue")
        os.kill(venue, signal.SIGKILL)
        out, err = process.communicate(timeout=120)
    finally:
        _stop(process)
    assert process.returncode == 3, (process.returncode, out, err)
    assert "Traceback" not in out + err, err
    assert "session ended abnormally" in err and "became unreachable" in err, err
    assert "killed by signal 9" in err
    assert "plot:" in out, out  # the report was written
    con = duckdb.connect(str(db), read_only=True)
    try:
        ((status,),) = con.execute("SELECT status FROM runs").fetchall()
        events = con.execute(
            "SELECT reason FROM risk_events WHERE \"check\" = 'venue_unreachable'"
        ).fetchall()
    finally:
        con.close()
    assert status != "running" and len(events) == 1


def test_sigterm_to_twinfeed_ingest_stops_its_child(tmp_path: Path) -> None:
    # A venue that is not there: the ingest reconnects forever until told to stop.
    process = subprocess.Popen(
        [
            TWINFEED,
            "ingest",
            "--ring",
            str(tmp_path / "ring"),
            "--url",
            "ws://127.0.0.1:9",
            "--symbols",
            "BTCUSDT",
            "--capture-dir",
            str(tmp_path / "capture"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    kids: dict[int, str] = {}
    try:
        kids = wait_for("the ingest child", lambda: children(process.pid), 30)
        assert set(kids.values()) == {"twinfeed-ingest"}
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        wait_for("the child to stop", lambda: not any(process_alive(pid) for pid in kids), 15)
    finally:
        _stop(process)
        for pid in kids:  # an orphan of the old code
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
