"""What the REST conformance tests share: the market-data venue replaying the bundled capture
to its end (speed max), and a paper venue over it whose market has frozen at the capture's last
touch, so every order meets the same book (no race with a moving market)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paper_stack import wait_for
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.live.venue import VenueProcess, start_venue
from websockets.sync.client import connect

SYNTH = Path(__file__).resolve().parents[1] / "data" / "synth-btcusdt.txt"


def _drain(md: VenueProcess) -> None:
    """A market-data client: the replay starts when one subscribes."""
    try:
        with connect(md.stream_url("btcusdt@bookTicker")) as client:
            while True:
                client.recv(timeout=60)
    except Exception:  # noqa: BLE001 - the venue closes at the end of the replay
        return


@contextmanager
def frozen_paper(keys: dict[str, Any], **options: Any) -> Iterator[PaperVenue]:
    """A paper venue accepting ``keys`` over the whole replayed capture (market frozen)."""
    with start_venue(SYNTH, speed="max") as md:
        paper = PaperVenue.start(SYNTH, md_status=md.status, keys=keys, **options)
        try:
            threading.Thread(target=_drain, args=(md,), daemon=True).start()
            wait_for("the replay's end", lambda: paper.frozen, 60)
            yield paper
        finally:
            paper.stop()
