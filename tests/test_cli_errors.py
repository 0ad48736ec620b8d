"""The CLI as a user meets it: each mistake is one line naming the file and the fix, with a
non-zero exit code; `--debug` shows the traceback. Commands run through click's CliRunner (the
same entry point as the console script) or as a real `twinfeed` process where the current
folder or a second process matters."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import REPO, SYNTH
from twinfeed.cli import main

TWINFEED = Path(sys.executable).parent / "twinfeed"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Result) -> str:
    """The result's error: exactly one `Error: ...` line and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture(scope="module")
def small_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3,000 lines of the bundled synthetic capture (a few seconds of BTCUSDT)."""
    if not SYNTH.exists():
        pytest.skip("data/synth-btcusdt.txt not generated yet")
    path = tmp_path_factory.mktemp("capture") / "small-btcusdt.txt"
    with SYNTH.open() as source:
        path.write_text("".join(line for _, line in zip(range(3000), source, strict=False)))
    return path


def write_strategy(folder: Path, body: str, name: str = "mystrat.py") -> Path:
    path = folder / name
    path.write_text(
        "from twinfeed.strategy import Strategy\n\n" + textwrap.dedent(body).lstrip("\n")
    )
    return path


# ---- captures that are not captures ------------------------------------------------------


def test_folder_without_capture_files_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    error = one_line_error(run("features", str(tmp_path)))
    assert str(tmp_path) in error and "without capture files" in error
    assert one_line_error(run("backtest", "--capture", str(tmp_path)))


def test_json_file_and_empty_gzip_as_capture_exit_non_zero(tmp_path: Path) -> None:
    as_json = tmp_path / "x.json"
    as_json.write_text(json.dumps({"not": "a capture"}, indent=2) + "\n")
    out = tmp_path / "f.parquet"
    error = one_line_error(run("features", str(as_json), "--out", str(out)))
    assert "x.json: 0 records from 3 lines, 3 malformed lines; first problem at line 1: " in error
    assert "expected a capture: lines `<local_receive_ns> <venue websocket frame>`" in error
    assert not out.exists()  # nothing written, not a 0-row file
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    error = one_line_error(run("features", str(empty)))
    assert "empty.gz: 0 records from no lines" in error


def test_failed_features_run_keeps_the_previous_output(tmp_path: Path, small_capture: Path) -> None:
    out = tmp_path / "f.parquet"
    assert run("features", str(small_capture), "--out", str(out)).exit_code == 0
    before = out.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_text("not a capture line\n")
    one_line_error(run("features", str(bad), "--out", str(out)))
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_backtest_on_a_non_capture_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("time,price\n1,100\n")
    out = tmp_path / "out"
    error = one_line_error(run("backtest", "--capture", str(bad), "--out", str(out)))
    assert "prices.csv: 0 records from 2 lines" in error
    assert not out.exists()


def test_out_into_a_missing_folder_is_an_error(tmp_path: Path, small_capture: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    error = one_line_error(run("features", str(small_capture), "--out", str(missing / "f.parquet")))
    assert f"folder {missing} does not exist" in error and "mkdir -p" in error
    error = one_line_error(
        run("backtest", "--capture", str(small_capture), "--out", str(missing / "run"))
    )
    assert f"folder {missing} does not exist" in error
    assert not missing.parent.exists()


# ---- strategies --------------------------------------------------------------------------


def test_params_file_missing_or_not_an_object(tmp_path: Path, small_capture: Path) -> None:
    missing = tmp_path / "missing.json"
    error = one_line_error(
        run("backtest", "--capture", str(small_capture), "--params", f"@{missing}")
    )
    assert f"--params @{missing}: cannot read {missing}" in error
    assert "No such file" in error
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]\n")
    error = one_line_error(
        run("backtest", "--capture", str(small_capture), "--params", f"@{listed}")
    )
    assert f"{listed} must be a JSON object" in error
    error = one_line_error(run("live", "--params", "{oops"))
    assert "--params: the value is not JSON" in error and "line 1 column 2" in error


def test_strategy_from_a_file_path_and_from_the_current_folder(
    tmp_path: Path, small_capture: Path
) -> None:
    write_strategy(
        tmp_path,
        """
        class Quiet(Strategy):
            '''Never trades.'''
        """,
        name="quiet_strat.py",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, spec in (
        (elsewhere, str(tmp_path / "quiet_strat.py") + ":Quiet"),
        (tmp_path, "quiet_strat:Quiet"),
        (tmp_path, "./quiet_strat.py:Quiet"),
    ):
        out = elsewhere / f"run-{abs(hash(spec))}"
        done = subprocess.run(
            [str(TWINFEED), "backtest", "--capture", str(small_capture), "--strategy", spec]
            + ["--out", str(out), "--no-plots"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "100"},
        )
        assert done.returncode == 0, (spec, done.stdout, done.stderr)
        artifact = json.loads((out / "artifact.json").read_text())
        assert artifact["deployment"]["strategy_class"] == "quiet_strat:Quiet"


def test_class_name_typo_lists_the_modules_strategies(tmp_path: Path, small_capture: Path) -> None:
    path = write_strategy(
        tmp_path,
        """
        class MicroMomentum(Strategy):
            pass

        class MeanRevert(Strategy):
            pass
        """,
        name="typo_strat.py",
    )
    error = one_line_error(
        run("backtest", "--capture", str(small_capture), "--strategy", f"{path}:MicroMomentun")
    )
    assert "class 'MicroMomentun' not found in" in error and str(path) in error
    assert "its Strategy subclasses: MeanRevert, MicroMomentum" in error


def test_strategy_exception_names_the_record(tmp_path: Path, small_capture: Path) -> None:
    path = write_strategy(
        tmp_path,
        """
        class Boom(Strategy):
            def on_record(self, ctx, record):
                if int(record["line"]) >= 100:
                    raise ZeroDivisionError("my bug")
        """,
        name="boom_strat.py",
    )
    args = ["backtest", "--capture", str(small_capture), "--strategy", f"{path}:Boom"]
    args += ["--mode", "rows", "--out", str(tmp_path / "out")]
    error = one_line_error(run(*args))
    # The first record at or after line 100: a quote or trade of the synthetic capture.
    assert "strategy Boom.on_record raised ZeroDivisionError: my bug on a " in error
    assert f"quote record at {small_capture}:100, local time 2024-08-08T23:59:59.802814Z " in error
    assert error.endswith("Z (twinfeed --debug shows the traceback)")
    debug = CliRunner().invoke(main, ["--debug", *args])
    from twinfeed.research.backtest import StrategyError

    assert isinstance(debug.exception, StrategyError)
    assert isinstance(debug.exception.__cause__, ZeroDivisionError)


def test_backtest_whose_orders_were_all_refused_exits_non_zero(
    tmp_path: Path, small_capture: Path
) -> None:
    path = write_strategy(
        tmp_path,
        """
        class Shouty(Strategy):
            def on_record(self, ctx, record):
                if record["kind"] == 1 and not ctx.open_orders():
                    ctx.submit("BUY", 0.001, float(record["bid_px"]))
        """,
        name="shouty_strat.py",
    )
    out = tmp_path / "out"
    result = run(
        "backtest", "--capture", str(small_capture), "--strategy", f"{path}:Shouty",
        "--out", str(out), "--no-plots",
    )  # fmt: skip
    error = one_line_error(result)
    assert "orders was refused (top reasons: " in error and " x " in error
    assert (out / "artifact.json").exists()  # what happened is still written down


# ---- trade DBs and the control socket ----------------------------------------------------

HOLDER = """
import sys
from twinfeed.live.brain.trade_db import TradeDB
db = TradeDB(sys.argv[1])
db.start_run(fingerprint="f" * 64, build={"version": "t", "profile": "release",
             "git_revision": "x"}, config={}, strategy="held:Held", params={}, run_id="held-run")
db.end_run("running", {"positions": {}, "pnl": {}, "orders": 0})
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held_db(tmp_path: Path) -> Any:
    """A trade DB held open by another process, as a running `twinfeed live` holds it."""
    path = tmp_path / "run" / "trade.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            yield path, holder.pid
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)


def test_report_reads_a_db_a_live_session_holds(held_db: Any, tmp_path: Path) -> None:
    path, _pid = held_db
    result = run("report", "--db", str(path), "--out", str(tmp_path / "plots"))
    assert result.exit_code == 0, result.output
    assert "run held-run running" in result.output
    assert (tmp_path / "plots" / "pnl_inventory.png").exists()


def test_second_live_on_a_held_db_is_one_line(held_db: Any, small_capture: Path) -> None:
    path, pid = held_db
    error = one_line_error(run("live", "--capture", str(small_capture), "--db", str(path)))
    assert f"{path} is in use by process {pid}" in error
    assert "give another --db" in error


def test_report_on_a_file_that_is_not_a_trade_db(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}\n")
    error = one_line_error(run("report", "--db", str(bad)))
    assert f"{bad}: not a DuckDB trade DB" in error
    import duckdb

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    error = one_line_error(run("report", "--db", str(other)))
    assert "without the trade DB tables" in error


def test_live_on_a_non_capture_exits_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"a": 1}\n')
    db = tmp_path / "trade.duckdb"
    error = one_line_error(run("live", "--capture", str(bad), "--db", str(db)))
    assert "x.json: 0 records from 1 lines" in error
    assert not db.exists()


def test_ctl_finds_the_socket_next_to_the_db_or_says_how(tmp_path: Path) -> None:
    from twinfeed.cli.ctl_cmd import find_socket
    from twinfeed.live.brain.control import ControlServer

    db = tmp_path / "elsewhere" / "trade.duckdb"
    error = one_line_error(run("ctl", "--db", str(db), "pause"))
    assert f"{db.parent / 'control.sock'}: cannot reach the brain" in error
    assert "--socket PATH" in error
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        error = one_line_error(run("ctl", "status"))
        assert "no control socket found under runs/" in error and "--socket" in error
        # Two runs' sockets: the newest is the one a bare `twinfeed ctl` talks to.
        older, newer = (tmp_path / "runs" / name / "control.sock" for name in ("a", "b"))
        sockets = []
        for path in (older, newer):
            path.parent.mkdir(parents=True)
            sockets.append(socket.socket(socket.AF_UNIX))
            sockets[-1].bind(str(path))
        os.utime(older, (1, 1))
        assert find_socket(None, None) == Path("runs/b/control.sock")
        for sock in sockets:
            sock.close()
    finally:
        os.chdir(cwd)
    server = ControlServer(db.parent / "control.sock")
    paused: list[bool] = []

    class Trader:
        def pause(self) -> None:
            paused.append(True)

    stop = threading.Event()

    def serve() -> None:
        while not stop.wait(0.01):
            server.serve_pending(Trader())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = run("ctl", "--db", str(db), "pause")
    finally:
        stop.set()
        thread.join()
        server.close()
    assert result.exit_code == 0, result.output
    assert "pause: ok" in result.output and paused == [True]


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(TWINFEED), "report", "--db", str(tmp_path / "missing.duckdb")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr  # click's own check
    bad = tmp_path / "x.json"
    bad.write_text("{}\n")
    for debug, code in (([], 1), (["--debug"], 1)):
        done = subprocess.run(
            [str(TWINFEED), *debug, "features", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == code, done.stderr
        assert ("Traceback" in done.stderr) == bool(debug), done.stderr


def test_live_strategy_exception_names_the_record(tmp_path: Path) -> None:
    """A live strategy's bug ended as "unexpected ZeroDivisionError ... report it"."""
    write_strategy(
        tmp_path,
        """
        class Boom(Strategy):
            def on_record(self, ctx, record):
                if int(record["line"]) >= 100:
                    raise ZeroDivisionError("my bug")
        """,
        name="live_boom.py",
    )
    done = subprocess.run(
        [str(TWINFEED), "live", "--capture", str(SYNTH), "--strategy", "live_boom.py:Boom"]
        + ["--db", str(tmp_path / "t.duckdb"), "--duration", "20"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert "strategy Boom.on_record raised ZeroDivisionError: my bug on a " in error
    assert "record at line 1" in error and "of the ingest's capture, local time 20" in error


def test_record_without_symbols_subscribes_what_the_local_venue_serves(tmp_path: Path) -> None:
    import signal
    import time

    from twinfeed.cli.ingest_cmd import local_venue_symbols
    from twinfeed.live.venue import start_venue

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = unused.getsockname()[1]
    assert local_venue_symbols(f"ws://127.0.0.1:{closed}", timeout_s=1) is None
    with start_venue(SYNTH, speed=20) as venue:
        assert local_venue_symbols(venue.url) == ["BTCUSDT"]
        capture = tmp_path / "capture"
        with subprocess.Popen(
            [str(TWINFEED), "record", "--url", venue.url, "--capture-dir", str(capture)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                '"s":"BTCUSDT"' in p.read_text(errors="replace") for p in capture.glob("capture-*")
            ):
                time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
    assert "subscribing what the local venue serves: BTCUSDT" in out, out + err
    frames = "".join(p.read_text() for p in capture.glob("capture-*"))
    assert "btcusdt@bookTicker" in frames


def test_every_named_output_into_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    for args in (
        ["data", "synth", "--seed", "1", "--seconds", "1", "--out", str(missing / "s.txt")],
        ["report", "--db", str(tmp_path / "x.duckdb"), "--out", str(missing)],
        ["parity", "diff", str(SYNTH), str(SYNTH), "--json", str(missing / "d.json")],
    ):
        if args[0] == "report":
            (tmp_path / "x.duckdb").write_text("")
        error = one_line_error(run(*args))
        assert f"folder {missing.parent if args[0] == 'report' else missing} does not exist" in (
            error
        ), args
    assert not (tmp_path / "no").exists()
