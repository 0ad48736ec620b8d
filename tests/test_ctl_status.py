"""``twinfeed ctl status`` shows the session time and the local replay's progress."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from twinfeed.cli import main
from twinfeed.cli.ctl_cmd import _session_lines
from twinfeed.live.brain.runner import replay_progress


def test_replay_progress_and_the_status_line() -> None:
    assert replay_progress(None) is None
    assert replay_progress({"lines": 0, "line_index": None}) is None
    start = replay_progress({"lines": 93954, "line_index": None, "lap": 0})
    assert start == {
        "line": 0,
        "lines": 93954,
        "local_ns": 0,
        "percent": 0.0,
        "lap": 0,
        "finished": False,
    }
    status = {"lines": 93954, "line_index": 46976, "lap": 1, "local_ns": 1723161256123456789}
    middle = replay_progress(status)
    assert middle is not None and middle["line"] == 46977 and middle["percent"] == 50.0
    lines = _session_lines({"session_ns": 1796645842999977987, "replay": middle})
    assert lines == [
        "time 2026-12-07T12:17:22.999977Z",
        "replay 2024-08-08T23:54:16.123456Z line 46,977/93,954 (50.0 %) lap 2",
    ]
    assert all(len(line) <= 80 for line in lines)
    assert _session_lines({"session_ns": 0, "replay": None}) == ["time -"]


def _status(control: Path) -> dict[str, Any] | None:
    answer = CliRunner().invoke(main, ["ctl", "--socket", str(control), "--json", "status"])
    return json.loads(answer.output) if answer.exit_code == 0 else None


def test_status_of_a_running_session_shows_its_time_and_replay_progress(
    usdm_capture: Path, tmp_path: Path
) -> None:
    """A real `twinfeed live` session on the real USD-M capture (93,954 lines): while it runs,
    `ctl status` names the session time (UTC ISO), the capture time replayed up to (2024) and
    the replayed line out of the capture's lines, and the line moves on (old main: none of
    them was shown)."""
    db = tmp_path / "t.duckdb"
    control = tmp_path / "control.sock"
    command = [
        sys.executable,
        "-c",
        "from twinfeed.cli import main; main()",
        "live",
        "--capture",
        str(usdm_capture),
        "--speed",
        "5",
        "--duration",
        "90",
        "--db",
        str(db),
    ]
    seen: list[dict[str, Any]] = []
    text = ""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, env=os.environ
    ) as process:
        try:
            deadline = time.monotonic() + 80
            while process.poll() is None and time.monotonic() < deadline and len(seen) < 2:
                answer = _status(control) if control.exists() else None
                replay = (answer or {}).get("replay") or {}
                moved = replay.get("line", 0) > (seen[-1]["replay"]["line"] if seen else 0)
                if answer and moved and answer["session_ns"] > 0:
                    seen.append(answer)
                    if len(seen) == 1:
                        shown = CliRunner().invoke(
                            main, ["ctl", "--socket", str(control), "status"]
                        )
                        text = shown.output
                time.sleep(0.3)
            if process.poll() is None:
                CliRunner().invoke(main, ["ctl", "--socket", str(control), "stop"])
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert len(seen) == 2, output.decode()[-3000:]
    first, second = seen
    assert first["replay"]["lines"] == 93954
    assert 0 < first["replay"]["line"] < second["replay"]["line"] <= 93954
    assert second["session_ns"] >= first["session_ns"]
    assert re.search(r"^time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", text, re.M), text
    match = re.search(
        r"^replay 2024-08-0[89]T\d\d:\d\d:\d\d\.\d{6}Z line ([\d,]+)/93,954 \((\d+\.\d) %\)",
        text,
        re.M,
    )
    assert match, text
    line = int(match.group(1).replace(",", ""))
    assert float(match.group(2)) == round(100 * line / 93954, 1)
