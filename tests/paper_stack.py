"""What the fault tests share: a market venue replaying the bundled capture, the paper order
venue on it, and a real ingest writing a ring, all on loopback; plus a polling wait."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def wait_for(what: str, condition: Callable[[], Any], timeout: float) -> Any:
    """``condition()``'s first truthy value, polled every 50 ms; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class PaperStack:
    paper: Any  # twinfeed.live.paper_venue.PaperVenue
    venue: Any  # twinfeed.venues.binance.rest.OrderGateway, the brain's view of the paper venue
    ring: str
    # The environment a brain process gets: API key and secret, and TWINFEED_STREAM_URL (the
    # paper venue's websocket server, for OrderGateway's stream_url).
    env: dict[str, str]


@contextmanager
def paper_stack(tmp: Path, ring_prefix: str, api_key: str, secret: str) -> Iterator[PaperStack]:
    """Venue at speed 3, paper venue accepting ``api_key``, ingest on ring
    ``<ring_prefix>-<pid>-<n>`` (log and capture under ``tmp``); all stopped on exit."""
    from twinfeed import FeatureConfig
    from twinfeed.live.ingest import ring_file, start_ingest
    from twinfeed.live.paper_venue import PaperVenue
    from twinfeed.live.venue import BUNDLED_CAPTURE, start_venue
    from twinfeed.venues.binance.rest import OrderGateway

    env = {**os.environ, "TWINFEED_API_KEY": api_key, "TWINFEED_API_SECRET": secret}
    ring = f"{ring_prefix}-{os.getpid()}-{time.monotonic_ns() % 10**8}"
    with start_venue(BUNDLED_CAPTURE, speed=3) as market:
        paper = PaperVenue.start(BUNDLED_CAPTURE, market.status, keys={api_key: secret})
        env["TWINFEED_STREAM_URL"] = paper.ws_url
        try:
            with (
                open(tmp / "ingest.log", "wb") as log,
                start_ingest(
                    capture_dir=tmp / "capture",
                    ring=ring,
                    config=FeatureConfig.default(),
                    url=market.url,
                    symbols=["BTCUSDT"],
                    stderr=log,
                ) as ingest,
            ):
                ingest.wait_for_ring(timeout=30)
                yield PaperStack(
                    paper,
                    OrderGateway(paper.url, api_key, secret, stream_url=paper.ws_url),
                    ring,
                    env,
                )
        finally:
            paper.stop()
            # The ingest has stopped (the `with` above); its ring is this stack's to remove.
            ring_file(ring).unlink(missing_ok=True)
