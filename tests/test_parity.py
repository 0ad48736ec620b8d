"""Parity harness: the live path against the batch binding, and the checks that must fail."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SYNTH
from twinfeed import KIND, FeatureConfig, Flag, RingError, record_dtype
from twinfeed.cli import main
from twinfeed.live.feed import Feed
from twinfeed.parity import compare_streams, parity_check, verify_records
from twinfeed.parity.check import ParityMismatch, check_builds
from twinfeed.parity.gate import check_artifact
from twinfeed.parity.golden import REPO
from twinfeed.parity.lines import capture_locator
from twinfeed.parity.live import run_live_path
from twinfeed.research.features import compute_records


@pytest.fixture(scope="module")
def synth_report(tmp_path_factory):
    # A finite speed, so the ingest's snapshot lands early and many book records are compared
    # (at full speed the venue can be done before the REST snapshot arrives).
    work = tmp_path_factory.mktemp("synth")
    return parity_check(SYNTH, FeatureConfig.default(), work, speed=40)


def test_synth_capture_is_byte_identical_live_and_batch(synth_report):
    strict, market = synth_report.comparisons
    assert strict.equal and strict.first is None
    assert strict.count_a == strict.count_b > 9_000  # book records vary with snapshot timing
    assert strict.digest_a == strict.digest_b
    assert market.equal and market.extra["book_records_compared"] > 10
    assert synth_report.ok
    # The live stream carries what only the transport has, and the capture reproduces it.
    assert synth_report.live["kinds"]["heartbeat"] >= 1
    assert synth_report.live["kinds"]["status"] >= 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["usdm", "spot"])
def test_real_captures_pass_the_check(name, request, tmp_path):
    capture = request.getfixturevalue(f"{name}_capture")
    report = parity_check(capture, FeatureConfig.default(), tmp_path)
    assert report.ok, json.dumps(report.to_json(), indent=1)[:3000]
    assert report.comparisons[0].count_a > 30_000


@pytest.mark.slow
def test_faults_reconnects_and_gaps_still_compare_equal(usdm_capture, tmp_path):
    # At a finite speed the ingest's snapshot lands early, so both faults hit a live book and
    # the resyncs (from the venue's current-book snapshots) happen while frames still flow.
    faults = {"drop_after": 40_000, "skip_depth": 1_500}
    report = parity_check(usdm_capture, FeatureConfig.default(), tmp_path, faults=faults, speed=100)
    strict, market = report.comparisons
    assert strict.equal, strict.to_json()
    live = report.live["kinds"]
    assert live["gap"] >= 2  # the skipped diff and the dropped connection
    assert live["status"] >= 4  # connected/subscribed twice at least
    raw, _ = compute_records(report.live["ingest_capture"])
    records = np.frombuffer(raw, dtype=record_dtype())
    resyncs = records[
        (records["kind"] == KIND["book"]) & (records["flags"] & Flag.FROM_SNAPSHOT != 0)
    ]
    assert len(resyncs) >= 3, "the book should resync after each gap"
    assert not market.gating


def test_live_only_arithmetic_change_is_caught_with_a_useful_report(tmp_path):
    def skew_mid(records):
        quotes = records["kind"] == KIND["quote"]
        records["mid"][quotes] *= 1 + 1e-12
        return records

    report = parity_check(SYNTH, FeatureConfig.default(), tmp_path, transform=skew_mid)
    strict = report.comparisons[0]
    assert not strict.equal and not report.ok
    first = strict.first
    assert first is not None
    assert [name for name, _, _ in first.fields] == ["mid"]
    assert first.record_a["kind_name"] == "quote"
    assert first.line_a is not None and "bookTicker" in first.line_a.text
    report.write(tmp_path / "report.json")
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["ok"] is False
    assert written["comparisons"][0]["first_divergence"]["differing_fields"][0]["field"] == "mid"


def test_an_altered_capture_line_is_caught_at_that_record(tmp_path):
    config = FeatureConfig.default()
    live = run_live_path(SYNTH, config, tmp_path, ["BTCUSDT"])
    capture = live.capture_files[0]
    lines = capture.read_bytes().splitlines(keepends=True)
    target = next(i for i, line in enumerate(lines) if b"@bookTicker" in line and i > 500)
    frame = json.loads(lines[target].split(b" ", 1)[1])
    old = frame["data"]["b"]
    lines[target] = lines[target].replace(f'"b":"{old}"'.encode(), b'"b":"1.00"')
    capture.write_bytes(b"".join(lines))
    replay, _ = compute_records(live.capture_files, config)
    comparison = compare_streams(
        live.records,
        replay,
        label="live vs altered capture",
        locate_b=capture_locator(live.capture_files),
    )
    assert not comparison.equal
    first = comparison.first
    assert first is not None
    assert first.record_b["line"] == target + 1
    assert {"bid_px", "mid"} <= {name for name, _, _ in first.fields}
    assert first.line_b is not None and '"b":"1.00"' in first.line_b.text


def test_differing_fingerprints_and_builds_are_refused(tmp_path):
    other = FeatureConfig.from_toml_str("[features]\nbook_levels = 3\n")
    version = f"twinfeed-ingest 0.1.0 release fingerprint {FeatureConfig.default().fingerprint}"
    with pytest.raises(ParityMismatch, match="fingerprint"):
        check_builds(other, version)
    with pytest.raises(ParityMismatch, match="profile|version"):
        check_builds(
            FeatureConfig.default(), version.replace("release", "debug").replace("0.1.0", "9.9.9")
        )
    artifact = tmp_path / "artifact.json"
    artifact.write_text(
        json.dumps({"feature_fingerprint": other.fingerprint, "build": {"version": "0.1.0"}})
    )
    reasons = check_artifact(artifact, FeatureConfig.default())
    assert reasons and "fingerprint" in reasons[0]


def test_ring_with_another_fingerprint_is_refused(tmp_path):
    from twinfeed.live.ingest import start_ingest

    ring = f"parity-test-{tmp_path.name}"
    ingest = start_ingest(
        capture_dir=tmp_path / "cap", ring=ring, replay=SYNTH, config=FeatureConfig.default()
    )
    try:
        ingest.wait_for_ring(timeout=30)
        other = FeatureConfig.from_toml_str("[features]\nbook_levels = 3\n")
        with pytest.raises(RingError, match="fingerprint"):
            Feed.open(ring, expected_fingerprint=other.fingerprint)
    finally:
        ingest.wait(timeout=30)
        (Path("/dev/shm") / f"twinfeed-{ring}").unlink(missing_ok=True)


def test_golden_catches_a_changed_feature_with_an_unchanged_fingerprint():
    config = FeatureConfig.default()
    records, _ = compute_records(SYNTH, config)
    name = str(SYNTH.relative_to(REPO))
    assert verify_records(name, records, config).ok
    altered = np.frombuffer(records, dtype=record_dtype()).copy()
    book = np.flatnonzero(altered["kind"] == KIND["book"])[10]
    altered["imbalance"][book] += 1e-9
    result = verify_records(name, altered.tobytes(), config)
    assert result.status == "mismatch"
    assert "without a fingerprint change" in result.describe()


def test_parquet_diff_reports_first_divergence(tmp_path):
    runner = CliRunner()
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        assert runner.invoke(main, ["features", str(SYNTH), "--out", str(out)]).exit_code == 0
    same = runner.invoke(main, ["parity", "diff", str(a), str(b)])
    assert same.exit_code == 0 and "EQUAL" in same.output
    import polars as pl
    import pyarrow.parquet as pq

    table = pq.read_table(b)
    df = pl.from_arrow(table)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) == 1234)
        .then(pl.col("spread") * 2)
        .otherwise(pl.col("spread"))
        .alias("spread")
    )
    pq.write_table(df.to_arrow().replace_schema_metadata(table.schema.metadata), b)
    report = tmp_path / "diff.json"
    changed = runner.invoke(main, ["parity", "diff", str(a), str(b), "--json", str(report)])
    assert changed.exit_code == 1
    first = json.loads(report.read_text())["first_divergence"]
    assert first["index"] == 1234
    assert [d["field"] for d in first["differing_fields"]] == ["spread"]


def test_the_locator_reads_zstd_captures_line_for_line_like_plain_ones(tmp_path: Path) -> None:
    # The ingest replaying the bundled capture twice: a plain capture and a zstd one.
    from twinfeed.capture import capture_files
    from twinfeed.live.ingest import find_binary

    written = {}
    for compression in ("none", "zstd"):
        config = tmp_path / f"{compression}.toml"
        config.write_text(f'[ingest]\ncapture_compression = "{compression}"\n')
        folder = tmp_path / compression
        subprocess.run(
            [find_binary(), "--config", config, "--replay", SYNTH, "--capture-dir", folder],
            check=True,
            capture_output=True,
        )
        written[compression] = capture_files(folder)
    lines = b"".join(p.read_bytes() for p in written["none"]).splitlines()
    plain, packed = capture_locator(written["none"]), capture_locator(written["zstd"])
    for number in (1, 2, len(lines) // 2, len(lines)):
        from_plain, from_zstd = plain(number), packed(number)
        assert from_plain is not None and from_zstd is not None
        text = lines[number - 1].decode()
        if len(text) > 400:
            text = text[:400] + f"... ({len(text)} chars)"
        assert from_plain.text == from_zstd.text == text
        assert from_zstd.path.endswith(".txt.zst") and from_zstd.line == number
    assert plain(len(lines) + 1) is None and packed(len(lines) + 1) is None
