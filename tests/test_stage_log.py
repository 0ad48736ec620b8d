"""The ingest's per-stage timestamps (TWINFEED_STAGE_LOG): the live benchmark's breakdown of
receive-to-Python rests on them, so they must join every record to the line that made it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from twinfeed.live.feed import Feed
from twinfeed.live.ingest import read_stage_log, start_ingest
from twinfeed.live.venue import start_venue

CONFIG = """
[filter]
symbols = ["BTCUSDT"]
streams = ["bookTicker", "trade", "depth"]

[ingest]
depth_speed_ms = 0
"""


def test_stage_log_joins_every_record_to_its_line(tmp_path: Path, usdm_capture: Path) -> None:
    config = tmp_path / "features.toml"
    config.write_text(CONFIG)
    log = tmp_path / "stages.bin"
    ring = f"stages-{tmp_path.name}"
    records = []
    with start_venue(usdm_capture, speed="max", depth_as_captured=True) as venue:
        ingest = start_ingest(
            capture_dir=tmp_path / "capture",
            ring=ring,
            config=config,
            url=venue.url,
            symbols=["BTCUSDT"],
            stage_log=log,
        )
        try:
            ingest.wait_for_ring(timeout=30)
            feed = Feed.open(ring, wait=10)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and feed.records_read < 20_000:
                batch = feed.read(65536, timeout=0.2)
                if len(batch):
                    records.append(batch.copy())
        finally:
            ingest.stop()
            ingest.remove_ring()
    assert not ingest.process.returncode, "the ingest must stop cleanly on SIGTERM"
    stages = read_stage_log(log)
    read = np.concatenate(records)
    assert len(read) >= 20_000
    seq = stages["seq"]
    assert (np.diff(seq) > 0).all()
    # Records were read from ring sequence 0 on, none lost: record i came from the first row
    # whose sequence is past i, and carries that line's receive stamp.
    assert feed.overruns == 0
    rows = np.searchsorted(seq, np.arange(len(read)), side="right")
    assert (rows < len(seq)).all()
    assert (stages["received"][rows] == read["local_ns"]).all()
    # Each line's stamps in the order the ingest takes the steps.
    order = ("received", "started", "captured", "decoded", "booked", "published")
    for earlier, later in zip(order, order[1:], strict=False):
        assert (stages[later] >= stages[earlier]).all(), (earlier, later)
