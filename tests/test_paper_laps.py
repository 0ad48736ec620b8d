"""Paper matching follows ``--loop`` laps on the venue's one clock.

``twinfeed-venue --loop`` replays the bundled capture again and again, moving every time of lap
k forward by ``k * lap_ms`` (its status says ``lap`` and ``time_offset_ms``). The paper venue
follows: on lap 2 its engine is fed the capture again from line 1 with the same shift, so its
clock keeps going forward and orders keep matching the replayed market (before, the paper market
froze at the end of lap 1 while market data went on).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from twinfeed.live.paper_venue import PaperVenue
from twinfeed.live.venue import VenueProcess, start_venue
from twinfeed.venues.binance.rest import OrderGateway
from websockets.sync.client import connect

SYNTH = Path(__file__).resolve().parents[1] / "data" / "synth-btcusdt.txt"
KEY, SECRET = "laps-key", "laps-secret-0123456789abcdef0123456789ab"


def _drain(md: VenueProcess, stop: threading.Event) -> None:
    try:
        with connect(md.stream_url("btcusdt@bookTicker")) as client:
            while not stop.is_set():
                client.recv(timeout=30)
    except Exception:  # noqa: BLE001 - the venue closes when the test ends
        return


def test_paper_matching_follows_the_second_lap() -> None:
    text = SYNTH.read_text().splitlines()
    lines, last_local_ns = len(text), int(text[-1].split(" ", 1)[0])
    stop = threading.Event()
    md = start_venue(SYNTH, speed=40, loop=True)
    paper = PaperVenue.start(SYNTH, md_status=md.status, keys={KEY: SECRET})
    threading.Thread(target=_drain, args=(md, stop), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        while not (paper.lap >= 1 and paper.line > lines + 200):
            assert not paper.frozen, "the paper market froze at the end of the first lap"
            assert time.monotonic() < deadline, f"lap {paper.lap}, line {paper.line}"
            time.sleep(0.02)
        status = md.status()
        assert int(status["time_offset_ms"]) > 0
        assert paper.now_ns > last_local_ns  # the clock went on, it did not start again
        gateway = OrderGateway(paper.url, KEY, SECRET)
        order = gateway.new_order("BTCUSDT", "BUY", "0.002", type="MARKET")
        assert order["status"] == "FILLED"
        trades = gateway.request("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
        assert len(trades) == 1 and trades[0]["time"] > last_local_ns // 1_000_000
        assert not paper.frozen
    finally:
        stop.set()
        paper.stop()
        md.stop()
