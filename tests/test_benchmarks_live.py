"""Smoke test for benchmarks/live_feed.py: it runs end to end and prints its table (no timing
checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import twinfeed

REPO = Path(__file__).resolve().parents[1]


def test_live_feed_quick(tmp_path: Path, usdm_capture: Path) -> None:
    out = tmp_path / "live.json"
    script = REPO / "benchmarks" / "live_feed.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--quick",
            "--capture",
            str(usdm_capture),
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if twinfeed.BUILD_PROFILE != "release":
        # A debug build must never be measured silently: the script refuses.
        assert result.returncode == 2
        assert "refusing" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "| venue speed | client | messages | seconds | msg/s | vs fastest python |" in (
        result.stdout
    )
    assert "| records | p50 | p99 | p99.9 | max |" in result.stdout
    payload = json.loads(out.read_text())
    clients = {row["client"] for row in payload["throughput"]}
    ingest = "twinfeed ingest -> ring -> Feed.read"
    assert {f"{ingest} (plain capture)", f"{ingest} (zstd capture)"} <= clients
    assert {"python websockets + json", "python websockets + orjson"} <= clients
    # The machine floor is measured in the same run and reported with the latency.
    assert payload["cpu_stalls"]["seconds"] > 0.5
    assert "Machine floor" in result.stdout
    # The whole capture with depth subscribed: every record joins its line's stage stamps.
    depth = payload["depth"]
    assert depth["throughput"]["lost_to_overrun"] == 0
    # Quotes and trades flowed; whether the book is valid at --speed max depends on how far the
    # venue runs ahead of the ingest (docs/benchmarks.md), so book records are not required.
    assert depth["throughput"]["by_kind"].get("quote", 0) > 0
    assert depth["throughput"]["by_kind"].get("trade", 0) > 0
    for reader in ("busy-poll", "spin-then-sleep (50 us)"):
        latency = depth["latency"][reader]
        assert latency["records"] > 0
        assert latency["stage_records_unmatched"] == 0
        assert [s["stage"] for s in latency["stages"]][2:4] == ["decode", "book + features"]
    assert "Where it went (busy-poll" in result.stdout
