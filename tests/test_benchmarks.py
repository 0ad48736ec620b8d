"""Smoke tests for the benchmark scripts: they run and print their table (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import twinfeed

REPO = Path(__file__).resolve().parents[1]
SYNTH = REPO / "data" / "synth-btcusdt.txt"


def run_batch_features(*args: str) -> subprocess.CompletedProcess[str]:
    script = REPO / "benchmarks" / "batch_features.py"
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_batch_features_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_batch_features("--quick", "--capture", str(SYNTH), "--json", str(out))
    if twinfeed.BUILD_PROFILE != "release":
        # A debug build must never be measured silently: the script refuses.
        assert result.returncode == 2
        assert "refusing" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "| variant | input | messages |" in result.stdout
    assert "build_profile=release" in result.stdout
    payload = json.loads(out.read_text())
    variants = {row["variant"] for row in payload["results"]}
    assert {"twinfeed compute_features", "orjson", "msgspec typed Struct"} <= variants
    assert {"json.loads", "polars read_ndjson"} <= variants
    # Every variant computed the same top-of-book features.
    assert {row["matches_orjson"] for row in payload["results"]} <= {"ok", "-"}


def test_paper_roundtrip_runs_and_prints_its_table(tmp_path: Path) -> None:
    """benchmarks/paper_roundtrip.py: a few pairs through both clients (no timing checks)."""
    out = tmp_path / "roundtrip.json"
    script = REPO / "benchmarks" / "paper_roundtrip.py"
    result = subprocess.run(
        [sys.executable, str(script), "--pairs", "5", "--warmup", "1", "--per-request",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| client | p50 µs | p99 µs | max µs |" in result.stdout
    rows = json.loads(out.read_text())["results"]
    assert [row["pairs"] for row in rows] == [5, 5, 5]


def test_backfill_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    """`benchmarks/backfill.py --quick`: builds, checks the pool's outputs against the
    sequential build byte for byte, and prints the table (times are not asserted)."""
    out = tmp_path / "backfill.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "backfill.py"), "--quick", "--no-dask", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| sequential |" in run.stdout and "| pool (" in run.stdout
    rows = json.loads(out.read_text())
    assert [row["files"] for row in rows] == [6, 6] and rows[1]["workers"] >= 1


def test_order_entry_runs_and_prints_its_table(tmp_path: Path) -> None:
    """benchmarks/order_entry.py: a few pairs through the three clients (no timing checks)."""
    out = tmp_path / "order_entry.json"
    script = REPO / "benchmarks" / "order_entry.py"
    result = subprocess.run(
        [sys.executable, str(script), "--pairs", "3", "--warmup", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| client | p50 µs | p99 µs | max µs |" in result.stdout
    rows = json.loads(out.read_text())["results"]
    assert [row["pairs"] for row in rows] == [3, 3, 3]
    assert "WebSocket API" in rows[0]["client"] and "connector" in rows[2]["client"]
