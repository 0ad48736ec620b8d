"""Running a capture through the real live path: venue process -> ingest process -> ring ->
collector. Nothing here is simulated: the venue and the ingest are the release binaries."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinfeed import FeatureConfig, TwinfeedError
from twinfeed.capture import capture_files
from twinfeed.live.feed import Feed
from twinfeed.live.ingest import start_ingest
from twinfeed.live.venue import VenueFaults, start_venue
from twinfeed.records import KIND

#: A test-only hook applied to each batch the collector reads (e.g. to change one feature's
#: arithmetic on the live side only and prove that the check then fails).
CollectorTransform = Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]


MARKET_KINDS = [KIND[name] for name in ("quote", "book", "trade", "bar")]


class LivePathError(TwinfeedError):
    """The live path could not be run to completion."""


@dataclass
class LiveRun:
    """What the collector received and what the ingest wrote."""

    records: np.ndarray[Any, Any]
    capture_files: list[Path]
    lost: int
    ingest_version: str
    venue_messages: int
    faults: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _ingest_version(config_path: Path) -> str:
    import subprocess

    from twinfeed.live.ingest import find_binary

    result = subprocess.run(
        [str(find_binary()), "--version", "--config", str(config_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def run_live_path(
    capture: str | Path,
    config: FeatureConfig,
    work_dir: str | Path,
    symbols: Sequence[str],
    faults: VenueFaults | dict[str, Any] | None = None,
    transform: CollectorTransform | None = None,
    settle_s: float = 0.5,
    speed: float | str = "max",
    timeout_s: float = 600.0,
) -> LiveRun:
    """Replays ``capture`` (at ``speed``) through venue -> ingest -> ring and collects records.

    The run ends when the venue has sent the whole capture and the ingest has been quiet for
    ``settle_s``; the ingest is then stopped with SIGTERM (it writes a ``disconnected`` line and
    closes the ring) and the ring is drained.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    capture_dir = work / "ingest-capture"
    config_path = work / "features.toml"
    config_path.write_text(config.to_toml())
    ring = f"parity-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    version = _ingest_version(config_path)
    started = time.monotonic()
    batches: list[np.ndarray[Any, Any]] = []
    lost = 0
    with (
        # The live path must see the capture's own diffs, whatever depth speed the ingest asks
        # for (a @depth@0ms capture merged to the 250 ms of a plain `@depth` would be other data).
        start_venue(
            capture, speed=speed, loop=False, faults=faults, depth_as_captured=True
        ) as venue,
        open(work / "ingest.log", "wb") as ingest_log,
    ):
        ingest = start_ingest(
            capture_dir=capture_dir,
            ring=ring,
            config=config_path,
            url=venue.url,
            symbols=symbols,
            stderr=ingest_log,
        )
        try:
            ingest.wait_for_ring(timeout=30)
            feed = Feed.open(ring, expected_fingerprint=config.fingerprint, wait=10)
            finished_at: float | None = None
            last_data = time.monotonic()
            while True:
                batch = feed.read_batch(65536, timeout=0.05)
                lost += batch.lost
                if len(batch.records):
                    batches.append(batch.records.copy())
                    # Heartbeats and reconnect events keep coming after the venue is done.
                    if np.isin(batch.records["kind"], MARKET_KINDS).any():
                        last_data = time.monotonic()
                if not ingest.running():
                    raise LivePathError(
                        f"twinfeed-ingest exited early with {ingest.returncode}; "
                        f"see {work / 'ingest.log'}"
                    )
                now = time.monotonic()
                if finished_at is None and venue.status().get("finished"):
                    finished_at = now
                if finished_at is not None and now - max(finished_at, last_data) > settle_s:
                    break
                if now - started > timeout_s:
                    raise LivePathError(f"live path did not finish within {timeout_s} s")
            venue_messages = int(venue.status().get("messages_sent", 0))
            ingest.stop()
            while True:
                batch = feed.read_batch(65536, timeout=0.2)
                lost += batch.lost
                if len(batch.records):
                    batches.append(batch.records.copy())
                elif feed.closed:
                    break
        finally:
            if ingest.running():
                ingest.kill()
            ingest.remove_ring()
    records = np.concatenate(batches) if batches else np.empty(0, dtype=_dtype())
    if transform is not None:
        records = transform(records.copy())
    return LiveRun(
        records=records,
        capture_files=capture_files(capture_dir),
        lost=lost,
        ingest_version=version,
        venue_messages=venue_messages,
        faults=VenueFaults.coerce(faults).to_params() if faults else {},
        seconds=time.monotonic() - started,
    )


def _dtype() -> Any:
    from twinfeed import record_dtype

    return record_dtype()
