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


def binanceusdm(
    public: str | None = None,
    private: str | None = None,
    ws: str | None = None,
    ws_api: str | None = None,
    *,
    pro: bool = False,
    key: str | None = None,
    secret: str | None = None,
) -> Any:
    """An unmodified ccxt ``binanceusdm`` pointed at local venues through its own ``urls``:
    ``public`` / ``private`` REST bases (``http://127.0.0.1:P``), the websocket base ``ws``
    (``ws://127.0.0.1:P``; ccxt rewrites ``/ws`` to ``/public``, ``/market``, ``/private``) and
    the WebSocket API ``ws_api`` (``ws://127.0.0.1:W/ws-fapi/v1``)."""
    import ccxt
    import ccxt.pro

    api: dict[str, Any] = {}
    for base, kind in ((public, "Public"), (private, "Private")):
        if base is not None:
            for suffix, version in (("", "v1"), ("V2", "v2"), ("V3", "v3")):
                api[f"fapi{kind}{suffix}"] = f"{base}/fapi/{version}"
    if ws is not None or ws_api is not None:
        api["ws"] = {}
        if ws is not None:
            api["ws"]["linear"] = f"{ws}/ws"
        if ws_api is not None:
            api["ws"]["ws-api"] = {"linear": ws_api}
    options: dict[str, Any] = {
        "urls": {"api": api},
        # Currencies come from the wallet API (/sapi, spot), which a futures venue lacks.
        "options": {"fetchCurrencies": False},
    }
    if key is not None:
        options.update(apiKey=key, secret=secret)
    return (ccxt.pro if pro else ccxt).binanceusdm(options)


def drain(md: VenueProcess) -> None:
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
            threading.Thread(target=drain, args=(md,), daemon=True).start()
            wait_for("the replay's end", lambda: paper.frozen, 60)
            yield paper
        finally:
            paper.stop()


@contextmanager
def looping_paper(keys: dict[str, Any], speed: int = 200, **options: Any) -> Iterator[PaperVenue]:
    """A paper venue over the bundled capture replayed with ``--loop`` at ``speed``: the
    venue clock runs ``speed`` times faster than the wall clock, lap after lap (the market
    moves; a 120 s capture at 200x passes 600 s of venue time in about 3 s)."""
    with start_venue(SYNTH, speed=speed, loop=True) as md:
        paper = PaperVenue.start(SYNTH, md_status=md.status, keys=keys, **options)
        try:
            threading.Thread(target=drain, args=(md,), daemon=True).start()
            wait_for("the first touch", lambda: paper.engine.touch(0) is not None, 60)
            yield paper
        finally:
            paper.stop()
