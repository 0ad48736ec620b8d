"""Hostile input on the Python side (issue 13): a ring file cut short under a reader, a signed
order re-split between query string and body, and (see test_live_config.py) wrong settings.

Real parts only: the ring is written by the real twinfeed-ingest over the bundled capture, the
orders go over HTTP to a real paper venue following a real twinfeed-venue replay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SYNTH
from twinfeed import FeatureConfig
from twinfeed.live.ingest import ring_file, start_ingest
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.live.venue import VenueProcess, start_venue
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.binance.signing import SignatureError, signed_params
from websockets.sync.client import connect

KEY, SECRET = "hostile-key", "hostile-secret"


# --- 3: a ring file truncated while mapped ------------------------------------------------


@pytest.fixture
def written_ring(tmp_path: Path) -> Iterator[Path]:
    """A ring the real ingest wrote (replay of the bundled capture, then closed cleanly)."""
    ring = str(tmp_path / "ring")  # an absolute path: a ring file of this test's own
    config = FeatureConfig.from_toml_str("[ingest]\nring_slots = 4096", "test config")
    process = start_ingest(capture_dir=tmp_path / "capture", ring=ring, config=config, replay=SYNTH)
    process.wait_for_ring()
    assert process.wait(60) == 0
    yield ring_file(ring)
    ring_file(ring).unlink(missing_ok=True)


READER = textwrap.dedent(
    """
    import os, sys
    from twinfeed import RingError
    from twinfeed.live.feed import Feed

    path, size = sys.argv[1], int(sys.argv[2])
    feed = Feed.open(path)
    first = feed.read(10, 1.0)
    assert len(first) == 10, len(first)
    os.truncate(path, size)
    try:
        for _ in range(3):
            feed.read(1 << 16, 0.2)
    except RingError as error:
        print("RingError:", error)
        sys.exit(3)
    print("no error")
    """
)


@pytest.mark.parametrize("size", [0, 4096], ids=["to-nothing", "header-only"])
def test_a_ring_truncated_under_the_reader_raises_instead_of_killing_python(
    written_ring: Path, size: int
) -> None:
    # In a subprocess: the old reader died of SIGBUS (rc -7), which must fail this test
    # rather than kill pytest.
    done = subprocess.run(
        [sys.executable, "-c", READER, str(written_ring), str(size)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    assert "shrank while mapped" in done.stdout and str(written_ring) in done.stdout
    assert f"the file is now {size} bytes" in done.stdout


# --- 13: a signed order re-split between query string and body ----------------------------


def _signature(payload: str) -> str:
    return hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


def test_signed_params_parse_exactly_the_signed_bytes() -> None:
    signed = "symbol=BTCUSDT&quantity=0.15&price=100&timestamp=1"
    signature = _signature(signed)
    whole = signed_params(f"{signed}&signature={signature}", "", SECRET)
    assert whole["quantity"] == "0.15"
    assert signed_params("", f"{signed}&signature={signature}", SECRET) == whole
    # The same signed bytes, split inside the quantity: refused, not read as 0.1.
    query, body = signed[: signed.index("5&price")], signed[signed.index("5&price") :]
    with pytest.raises(SignatureError, match="split between the query string and the body") as e:
        signed_params(f"{query}&signature={signature}", body, SECRET)
    assert e.value.code == -1022
    with pytest.raises(SignatureError) as e:
        signed_params(f"{signed}&signature={_signature(signed + 'x')}", "", SECRET)
    assert e.value.code == -1022
    twice = "quantity=0.1&quantity=0.15&timestamp=1"
    with pytest.raises(SignatureError, match="Duplicate") as e:
        signed_params(f"{twice}&signature={_signature(twice)}", "", SECRET)
    assert e.value.code == -1101


def _drain(md: VenueProcess) -> None:
    try:
        with connect(md.stream_url("btcusdt@bookTicker", "btcusdt@trade")) as client:
            while True:
                client.recv(timeout=60)
    except Exception:  # noqa: BLE001 - the venue closes at the end of the replay
        return


def _post(url: str, query: str, body: str) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{url}/fapi/v1/order?{query}", data=body.encode(), method="POST"
    )
    request.add_header("X-MBX-APIKEY", KEY)
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_resplit_signed_order_is_refused_by_the_paper_venue() -> None:
    md = start_venue(SYNTH, speed=5)
    paper = PaperVenue.start(SYNTH, md_status=md.status, keys={KEY: SECRET})
    threading.Thread(target=_drain, args=(md,), daemon=True).start()
    try:
        assert paper.wait_for_line(60)
        touch = paper.engine.touch(0)
        assert touch is not None
        price = f"{round(touch.bid_px - 500, 1):.1f}"  # rests, never fills
        signed = (
            f"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&newClientOrderId=resplit"
            f"&quantity=0.15&price={price}&recvWindow=5000&timestamp={int(time.time() * 1000)}"
        )
        signature = _signature(signed)
        cut = signed.index("5&price")
        status, answer = _post(paper.url, f"{signed[:cut]}&signature={signature}", signed[cut:])
        assert (status, answer.get("code")) == (400, -1022), answer
        gateway = OrderGateway(paper.url, KEY, SECRET)
        assert [o for o in gateway.open_orders("BTCUSDT") if o["clientOrderId"] == "resplit"] == []
        # The same bytes sent whole place exactly the signed order.
        status, answer = _post(paper.url, f"{signed}&signature={signature}", "")
        assert status == 200, answer
        assert float(str(answer["origQty"])) == 0.15
        gateway.cancel("BTCUSDT", client_order_id="resplit")
    finally:
        paper.stop()
        md.stop()


# --- 10: output files appear complete or not at all ---------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_feature_run_that_fails_midway_leaves_no_file(tmp_path: Path) -> None:
    from twinfeed.research.parquet import write_features

    out = tmp_path / "out" / "f.parquet"
    calls = 0

    def fail_after_first_batch(_done: int, _total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full (simulated after the first batch was written)")

    with pytest.raises(OSError, match="disk full"):
        write_features(
            SYNTH, FeatureConfig.default(), out, batch_rows=256, progress=fail_after_first_batch
        )
    assert calls == 2
    assert _leftovers(out.parent) == []  # neither a 0-row/partial f.parquet nor a temporary
    summary = write_features(SYNTH, FeatureConfig.default(), out, batch_rows=256)
    assert _leftovers(out.parent) == ["f.parquet"]
    import pyarrow.parquet as pq

    assert pq.read_metadata(out).num_rows == summary.rows > 0


def test_ctrl_c_of_twinfeed_features_leaves_no_partial_file(
    usdm_capture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.parquet"
    twinfeed = str(Path(sys.executable).parent / "twinfeed")
    process = subprocess.Popen(
        [twinfeed, "features", str(usdm_capture), "--out", str(out), "--batch-rows", "512"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Interrupted once Parquet bytes are on disk (under whatever name), mid-run.
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 0 for p in tmp_path.glob("*f*.parquet")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no Parquet output appeared"
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode != 0, stderr
    assert _leftovers(tmp_path) == [], stderr
