"""A live session on a Binance environment: ``twinfeed live --venue binance-usdm(-testnet)``.

::

    Binance market streams --ws--> twinfeed-ingest --ring--> LiveTrader --venue port-->
    Binance order entry (WebSocket API with an Ed25519 key, else REST)
              <--user-data stream (listen key, ORDER_TRADE_UPDATE)--

Endpoints come from the table (:mod:`twinfeed.venues.binance.endpoints`), each field
overridable from the environment (``TWINFEED_BINANCE_REST``, ``..._WS_API``, ``..._STREAMS``,
``..._MARKET_REST``: that is how the tests rehearse a whole session against the local venue,
``twinfeed venue``). Credentials from the environment or a 0600 file, never logged. The ingest
reads the market streams at ``streams`` and asks ``market_rest`` for depth snapshots; the
brain trades through :func:`twinfeed.venues.binance.connect.connect_binance` after the
preflight (clock, rules versus the deployment, permissions, position mode, balances, orders
left from an earlier run). With ``shadow`` nothing is sent: orders are matched inside the
brain (:class:`twinfeed.live.brain.shadow.ShadowEntry`) and no credentials are needed.

The session runs for ``duration_s`` (or until ``twinfeed ctl stop`` or Ctrl-C), then cancels,
drains and reconciles with the venue like the local session. The ingest reads Binance's
``wss://`` streams and ``https://`` snapshots over TLS (the system's trust anchors).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from twinfeed.live.brain.entry import OrderEntry, PortEntry
from twinfeed.live.brain.session import (
    LiveSettings,
    SessionResult,
    assemble_trader,
    running_runs,
    shadow_entry,
    work_folder,
)
from twinfeed.live.brain.trade_db import TradeDB

__all__ = ["run_venue_session"]


def run_venue_session(
    settings: LiveSettings,
    venue: str,
    credentials: str | os.PathLike[str] | None = None,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> SessionResult:
    """Runs one session on ``venue`` (a name of the endpoint table; see the module docstring).
    Raises PreflightError when the preflight fails (nothing was sent)."""
    from twinfeed.live.brain.deployment import prepare, verify
    from twinfeed.live.brain.preflight import PreflightError, preflight
    from twinfeed.live.feed import Feed
    from twinfeed.live.ingest import start_ingest
    from twinfeed.live.leftovers import clean_dead_leftovers
    from twinfeed.live.venue import BUNDLED_CAPTURE
    from twinfeed.research.backtest import load_strategy
    from twinfeed.venues.binance.adapter import BinanceVenue
    from twinfeed.venues.binance.connect import connect_binance
    from twinfeed.venues.binance.endpoints import endpoints

    say = on_status or (lambda _message: None)
    where = endpoints(venue)
    # The capture only supplies defaults (symbols) when neither an artifact nor [live] does.
    capture = Path(settings.capture) if settings.capture else BUNDLED_CAPTURE
    deployment = prepare(settings, capture)
    for notice in deployment.notices:
        say(f"notice: {notice}")
    config = deployment.config
    live_config = replace(settings.live, symbols=deployment.symbols)
    strategy = load_strategy(deployment.strategy)(deployment.params)
    expected = {instrument.symbol: instrument for instrument in deployment.instruments}
    # Credentials first: without them nothing is created or sent.
    port: BinanceVenue | None = None
    if not settings.shadow:
        port = connect_binance(venue, credentials, stream=True, instruments=expected)
    removed = clean_dead_leftovers()
    if removed:
        say(f"removed {len(removed)} leftovers of dead sessions: {', '.join(map(str, removed))}")
    work, owned_tmp = work_folder(work_dir)
    capture_dir = work / "capture"
    db = TradeDB(settings.db)
    left_running = running_runs(db)
    ingests: list[Any] = []
    try:
        if port is None:
            say(f"{venue} market data; shadow: orders are matched inside the brain, none is sent")
        else:
            say(
                f"{venue}: orders to {where.rest} (over "
                f"{'the WebSocket API' if port.ws_api is not None else 'REST'}), "
                f"user data from {where.streams}"
            )
            drift = verify(deployment, port.instruments, settings.allow_drift)
            for difference in drift:
                say(f"drift (allowed): {difference}")
            checked = preflight(
                port, list(live_config.symbols), expected, recovering=bool(left_running)
            )
            for line in checked.lines:
                say(f"preflight: {line}")
            if not checked.ok:
                raise PreflightError(checked.problems)
        say(f"market data from {where.streams} (depth snapshots from {where.depth_rest})")
        with open(work / "ingest.log", "ab") as ingest_log:

            def start(ring: str) -> Feed:
                ingest = start_ingest(
                    capture_dir=capture_dir,
                    ring=ring,
                    config=config,
                    url=where.streams,
                    rest_url=where.depth_rest,
                    symbols=list(live_config.symbols),
                    stderr=ingest_log,
                )
                ingests.append(ingest)
                ingest.wait_for_ring(timeout=30)
                return Feed.open(ring, expected_fingerprint=config.fingerprint, wait=10)

            def restart_ingest() -> Feed:
                ingests[-1].kill()
                return start(f"live-{os.getpid()}-{uuid.uuid4().hex[:8]}")

            feed = start(f"live-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            entry: OrderEntry = (
                shadow_entry(settings, deployment) if port is None else PortEntry(port)
            )
            trader, control_path = assemble_trader(
                settings,
                deployment,
                strategy,
                entry,
                feed,
                db,
                {"venue": venue, "endpoints": {"rest": where.rest, "streams": where.streams}},
                restart_ingest=restart_ingest,
                recover=bool(left_running) and port is not None,
            )
            say(f"control socket {control_path}; trading")
            summary = trader.run(duration_s=settings.duration_s)
    finally:
        for ingest in ingests:
            ingest.stop()
            ingest.remove_ring()
        stream_gaps = 0
        if port is not None:
            stream_gaps = port.stream_gaps
            port.close()
        db.close()
        if owned_tmp is not None:
            owned_tmp.cleanup()
    return SessionResult(summary, Path(settings.db), capture_dir, 0, stream_gaps, None)
