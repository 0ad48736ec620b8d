"""A complete local paper-trading session: venue, paper order entry, ingest and the brain.

:func:`run_session` is what ``twinfeed live`` runs (and what the integration tests run)::

    market-data venue (twinfeed-venue, replaying a capture) --ws--> twinfeed-ingest --ring-->
    LiveTrader --REST--> PaperVenue (matching engine following the same replay)
              <--user-data websocket (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE)--

Everything binds to loopback on free ports. The session ends when the replay has finished and
the feed has been quiet for ``settle_s`` (or after ``duration_s``); then the trader cancels,
drains, reconciles against the paper venue's ``/fapi/v2/positionRisk`` and the processes stop.

Settings come from a TOML file (all sections optional; see ``LiveSettings``)::

    [session]   capture, speed, duration_s, db, settle_s, latency_ns, maker_fee_bps, taker_fee_bps,
                feature_config (TOML path), instruments (exchangeInfo JSON path), artifact,
                allow_drift
    [strategy]  spec = "module:Class", params = {...}
    [live]      LiveConfig fields (symbols, poll_timeout_s, stale_after_s, ...)
    [risk]      RiskConfig fields (max_order_qty, max_position, ...)
    [faults]    FaultConfig fields (policy, thresholds in heartbeats, resume_after_s, ...)

Every section and field is checked at load (``settings_check``: type, range, unknown keys),
so a wrong setting fails before anything starts, naming file, line, section and field.

Hostile endings: every child process dies with this one (``twinfeed.live.children``); a run
a dead session left ``running`` in the DB is recovered by the next session (crash recovery
against a paper venue that carries the dead session's trades over from its ledger,
``<db stem>.paper-ledger.jsonl``), and the dead session's ring and temporary folders are
removed (``twinfeed.live.leftovers``); a market-data venue that dies mid-session ends the
session once the brain is flat (``SessionResult.abnormal`` says why).

The brain listens for ``twinfeed ctl`` on a 0600 Unix socket (``control_socket``, default
``control.sock`` next to the DB). A dead ingest is restarted on a fresh ring (the trader
swaps its feed); ``venue_faults`` injects venue faults (e.g. a stall) for fault drills.

What is traded (:mod:`twinfeed.live.brain.deployment`): an ``artifact`` (``twinfeed backtest``'s
artifact.json) fixes strategy, parameters, feature config, symbols, instruments and risk, and is
checked against the live side before trading (``allow_drift`` trades anyway and records the
differences in the run). Without one: ``[live] symbols`` if given, else the capture's symbols;
the ``feature_config`` TOML if given, else the default config; each with a notice.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from twinfeed.live.brain.control import ControlServer
from twinfeed.live.brain.entry import OrderEntry, PortEntry
from twinfeed.live.brain.faults import FaultConfig
from twinfeed.live.brain.risk import RiskConfig, RiskManager
from twinfeed.live.brain.runner import LiveConfig, LiveTrader, RunSummary
from twinfeed.live.brain.shadow import ShadowEntry
from twinfeed.live.brain.trade_db import TradeDB

__all__ = ["LiveSettings", "SessionResult", "load_settings", "run_session"]

DEFAULT_STRATEGY = "twinfeed.strategies.market_maker:MarketMaker"


@dataclass
class LiveSettings:
    """Everything a session needs. ``capture=None`` is the bundled synthetic capture."""

    capture: str | None = None
    speed: float | str = 2.0
    duration_s: float | None = None
    db: str = "runs/live/trade.duckdb"
    settle_s: float = 1.0
    latency_ns: int = 0
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 1.7
    strategy: str = DEFAULT_STRATEGY
    params: dict[str, Any] = field(default_factory=dict)
    live: LiveConfig = field(default_factory=LiveConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: Control socket path (None: ``control.sock`` in the DB's directory).
    control_socket: str | None = None
    #: Venue faults for drills (``twinfeed.live.venue.VenueFaults`` fields).
    venue_faults: dict[str, Any] = field(default_factory=dict)
    #: Keys for the paper venue: TWINFEED_API_KEY/_SECRET if set, else generated per session.
    api_key: str | None = None
    api_secret: str | None = None
    #: Feature config TOML the ingest runs (None: the artifact's, else the default).
    feature_config: str | None = None
    #: exchangeInfo-shaped rules over the shipped table (``--instruments FILE``).
    instruments: str | None = None
    #: A backtest artifact to deploy (``--artifact``).
    artifact: str | None = None
    #: Trade even if the live side differs from the artifact (recorded in the run).
    allow_drift: bool = False
    #: ``[live] symbols`` when given (None: the capture's, or the artifact's).
    symbols: tuple[str, ...] | None = None
    #: Whether ``[risk]`` was given (else an artifact's risk limits apply).
    risk_given: bool = False
    #: Shadow trading: orders are matched inside the brain on the live market data
    #: (:class:`twinfeed.live.brain.shadow.ShadowEntry`); none reaches a venue.
    shadow: bool = False

    def describe(self) -> dict[str, Any]:
        """The settings as stored in the run's config (credentials left out)."""
        values = asdict(self)
        values.pop("api_key")
        values.pop("api_secret")
        return values


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> LiveSettings:
    """Settings from a TOML file (optional) with keyword overrides (None values ignored)."""
    settings = LiveSettings()
    if path is not None:
        settings = _from_file(settings, path)
    for name, value in overrides.items():
        if value is not None:
            setattr(settings, name, value)
    return settings


def _from_file(settings: LiveSettings, path: str | os.PathLike[str]) -> LiveSettings:
    """``settings`` updated from the TOML at ``path``, every section and field checked first
    (type, range, unknown keys with the closest known one; see ``settings_check``)."""
    from twinfeed.live.brain import settings_check as check

    text = Path(path).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise check.SettingsError(f"{path}: not valid TOML: {error}") from None
    check.check_sections(path, text, data, ("session", "strategy", "live", "risk", "faults"))
    # Not [session] keys: their own sections, or set from them (symbols, risk_given) or from
    # the command line (artifact, instruments, feature config).
    nested = ("live", "risk", "faults", "strategy", "params", "symbols", "risk_given")
    session = check.check_section(
        path,
        text,
        "session",
        data.get("session", {}),
        LiveSettings,
        checks=check.CHECKS["session"],
        exclude=nested,
    )
    settings = replace(settings, **session)
    strategy = check.strategy_section(path, text, data.get("strategy", {}))
    if "spec" in strategy:
        settings.strategy = strategy["spec"]
    settings.params = dict(strategy.get("params", {}))
    for name, cls in (("live", LiveConfig), ("risk", RiskConfig), ("faults", FaultConfig)):
        values = check.check_section(
            path, text, name, data.get(name, {}), cls, checks=check.CHECKS[name]
        )
        try:
            setattr(settings, name, cls(**values))
        except (TypeError, ValueError) as error:  # a check across fields in __post_init__
            raise check.SettingsError(f"{path}: [{name}] {error}") from None
    if "symbols" in data.get("live", {}):
        settings.symbols = tuple(settings.live.symbols)
    settings.risk_given = "risk" in data
    return settings


@dataclass
class SessionResult:
    summary: RunSummary
    db_path: Path
    capture_dir: Path
    venue_messages: int
    stream_gaps: int
    #: Why the session ended abnormally (e.g. the market-data venue became unreachable), or
    #: None. The run itself is finished and reported either way.
    abnormal: str | None = None


def _keepalive_s(speed: float | str) -> float:
    """Listen keys live 60 minutes of venue time (the replay's): at ``speed`` x that is
    60 / speed wall minutes, so the keepalive (30 venue minutes) comes as much sooner; "max"
    replays as fast as it can: every 10 s."""
    try:
        factor = float(speed)
    except ValueError:
        return 10.0
    return 30 * 60.0 / max(factor, 1.0)


def run_session(
    settings: LiveSettings,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    on_status: Callable[[str], None] | None = None,
    strategy_factory: Callable[[], Any] | None = None,
) -> SessionResult:
    """Runs one paper-trading session (see the module docstring); returns its result."""
    from twinfeed.live.brain.deployment import prepare, verify
    from twinfeed.live.brain.preflight import PreflightError, preflight
    from twinfeed.live.feed import Feed
    from twinfeed.live.ingest import start_ingest
    from twinfeed.live.leftovers import clean_dead_leftovers
    from twinfeed.live.paper_venue import PaperVenue
    from twinfeed.live.paper_ws import register_user_stream
    from twinfeed.live.venue import BUNDLED_CAPTURE, start_venue
    from twinfeed.research.backtest import load_strategy
    from twinfeed.venues.binance.adapter import BinanceVenue
    from twinfeed.venues.binance.rest import OrderGateway
    from twinfeed.venues.binance.signing import new_ed25519_key
    from twinfeed.venues.binance.ws_api import WsApiClient

    say = on_status or (lambda _message: None)
    capture = Path(settings.capture) if settings.capture else BUNDLED_CAPTURE
    deployment = prepare(settings, capture)
    for notice in deployment.notices:
        say(f"notice: {notice}")
    config = deployment.config
    live_config = replace(settings.live, symbols=deployment.symbols)
    if strategy_factory is not None:
        strategy = strategy_factory()
    else:
        strategy = load_strategy(deployment.strategy)(deployment.params)
    key = settings.api_key or os.environ.get("TWINFEED_API_KEY") or secrets.token_hex(16)
    secret = settings.api_secret or os.environ.get("TWINFEED_API_SECRET") or secrets.token_hex(32)
    # The brain's own key for order entry: Ed25519, the only kind the WebSocket API's
    # session.logon takes (registered with the local venue next to the HMAC key).
    order_key = f"{key[:24]}-ed25519"
    private_pem, public_pem = new_ed25519_key()
    removed = clean_dead_leftovers()
    if removed:
        say(f"removed {len(removed)} leftovers of dead sessions: {', '.join(map(str, removed))}")
    work, owned_tmp = work_folder(work_dir)
    ring = f"live-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # The ingest's capture is the input of the decision replay (twinfeed parity trades): it
    # stays with the trade DB when the session's work folder is a temporary one.
    capture_dir = (
        work / "capture"
        if owned_tmp is None
        else Path(settings.db).parent / f"{Path(settings.db).stem}.captures" / ring
    )
    venue_messages = 0
    stream_gaps = 0
    abnormal: str | None = None
    db = TradeDB(settings.db)
    # Runs a dead session left `running` (a brain killed with -9): this session recovers them
    # (twinfeed.live.brain.recovery) against a paper venue that carries the dead session's
    # trades over from the ledger, so every venue trade of theirs ends up in the DB.
    left_running = running_runs(db)
    try:
        # The ingest gets the capture's own depth diffs, at whatever speed it subscribes
        # (a @depth@0ms capture is not merged into 100/250 ms windows): the records the
        # strategy sees live are the ones a backtest on this capture computes.
        with start_venue(
            capture,
            speed=settings.speed,
            faults=settings.venue_faults,
            instruments=settings.instruments,
            depth_as_captured=True,
        ) as market:
            say(f"market-data venue on {market.url} replaying {capture.name} at {settings.speed}x")
            paper = (
                None
                if settings.shadow
                else PaperVenue.start(
                    capture,
                    market.status,
                    keys={key: secret, order_key: public_pem},
                    latency_ns=settings.latency_ns,
                    maker_fee_bps=settings.maker_fee_bps,
                    taker_fee_bps=settings.taker_fee_bps,
                    config=config,
                    instruments=_venue_rules(deployment),
                    ledger=paper_ledger_path(settings.db),
                    carry_over=bool(left_running),
                )
            )
            # Binance clients find the user stream on the market-data host: ask the venue to
            # forward it (logged, not fatal: the brain reads paper.ws_url directly).
            if paper is not None and register_user_stream(market.url, paper.ws.port, say=say):
                say(f"user-data websocket on {paper.ws_url} (and through {market.url})")
            recovering = bool(left_running) and paper is not None
            if recovering:
                say(f"recovering runs left running by a dead session: {', '.join(left_running)}")
            venue: BinanceVenue | None = None
            market_name = deployment.venue or "binance-usdm"
            try:
                if paper is None:
                    say("shadow: orders are matched inside the brain; none reaches a venue")
                else:
                    say(f"paper order entry on {paper.url}")
                    order_gateway = OrderGateway(
                        paper.url, order_key, "", private_key=private_pem, stream_url=paper.ws_url
                    )
                    checker = BinanceVenue(order_gateway, stream=False, market=market_name)
                    drift = verify(deployment, checker.instruments, settings.allow_drift)
                    for difference in drift:
                        say(f"drift (allowed): {difference}")
                    checked = preflight(
                        checker,
                        list(live_config.symbols),
                        {instrument.symbol: instrument for instrument in deployment.instruments},
                        recovering=recovering,
                    )
                    for line in checked.lines:
                        say(f"preflight: {line}")
                    if not checked.ok:
                        raise PreflightError(checked.problems)
                with open(work / "ingest.log", "ab") as ingest_log:
                    ingest = start_ingest(
                        capture_dir=capture_dir,
                        ring=ring,
                        config=config,
                        url=market.url,
                        symbols=list(live_config.symbols),
                        stderr=ingest_log,
                    )

                    # Every ingest this session starts; their rings are removed at its end.
                    ingests = [ingest]

                    def restart_ingest() -> Feed:
                        # Session-level: a fresh process on a fresh ring (the dead one's ring
                        # may hold a torn state); the capture directory is shared.
                        nonlocal ingest
                        ingest.kill()
                        fresh = f"live-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                        ingest = start_ingest(
                            capture_dir=capture_dir,
                            ring=fresh,
                            config=config,
                            url=market.url,
                            symbols=list(live_config.symbols),
                            stderr=ingest_log,
                        )
                        ingests.append(ingest)
                        ingest.wait_for_ring(timeout=10)
                        say(f"ingest restarted: pid {ingest.pid} -> ring {fresh}")
                        return Feed.open(fresh, expected_fingerprint=config.fingerprint, wait=5)

                    try:
                        ingest.wait_for_ring(timeout=30)
                        feed = Feed.open(ring, expected_fingerprint=config.fingerprint, wait=10)
                        entry: OrderEntry
                        if paper is None:
                            entry = shadow_entry(settings, deployment)
                        else:
                            venue = BinanceVenue(
                                order_gateway,
                                market=market_name,
                                keepalive_s=_keepalive_s(settings.speed),
                                # The local venue takes wall-clock timestamps; its own clock
                                # is the replay's, which runs at ``speed``: a synced offset
                                # would fall behind it (a -1021 still resyncs and retries).
                                clock_sync_s=None,
                                ws_api=WsApiClient(paper.ws_url, order_key, private_pem),
                                instruments={
                                    instrument.symbol: instrument
                                    for instrument in deployment.instruments
                                },
                            )
                            entry = PortEntry(venue)
                        trader, control_path = assemble_trader(
                            settings,
                            deployment,
                            strategy,
                            entry,
                            feed,
                            db,
                            {
                                "capture": str(capture),
                                "strategy_spec": (
                                    type(strategy).qualified_name()
                                    if strategy_factory is not None
                                    else _replayable_spec(deployment.strategy)
                                ),
                                "ingest_capture_dir": str(capture_dir.resolve()),
                            },
                            restart_ingest=restart_ingest,
                            recover=recovering,
                        )
                        say(f"control socket {control_path}")
                        say(f"ingest pid {ingest.pid} -> ring {ring}; trading")
                        summary = trader.run(
                            duration_s=settings.duration_s,
                            should_stop=_replay_done(
                                market.status,
                                feed,
                                settings.settle_s,
                                venue_alive=market.running,
                                trader=trader,
                            ),
                        )
                        abnormal = _venue_lost(market)
                        if abnormal is None:
                            try:
                                venue_messages = int(market.status().get("messages_sent", 0))
                            except OSError as error:  # died just now
                                abnormal = f"the market-data venue became unreachable: {error}"
                        if abnormal is not None:
                            say(f"session ended abnormally: {abnormal}")
                            db.risk_event(trader.ctx.now, "", "venue_unreachable", abnormal, {})
                    finally:
                        for started in ingests:
                            started.stop()
                            started.remove_ring()
            finally:
                if venue is not None:
                    stream_gaps = venue.stream_gaps
                    venue.close()
                if paper is not None:
                    paper.stop()
    finally:
        db.close()
        if owned_tmp is not None:
            owned_tmp.cleanup()
    return SessionResult(
        summary, Path(settings.db), capture_dir, venue_messages, stream_gaps, abnormal
    )


def _replayable_spec(spec: str) -> str:
    """``spec`` with a strategy file's path made absolute (the replay may run elsewhere)."""
    module, _, name = spec.rpartition(":")
    if module.endswith(".py") or "/" in module or os.sep in module:
        return f"{Path(module).resolve()}:{name}"
    return spec


def work_folder(
    work_dir: str | os.PathLike[str] | None,
) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    """A session's working folder: ``work_dir``, or a temporary one (returned to clean up)."""
    owned = None
    if work_dir is None:
        from twinfeed.live.leftovers import tagged

        owned = tempfile.TemporaryDirectory(prefix=tagged("live", os.getpid()))
        work_dir = owned.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    return work, owned


def running_runs(db: TradeDB) -> list[str]:
    """Runs a dead session left ``running`` (a brain killed with -9): the next session
    recovers them (:mod:`twinfeed.live.brain.recovery`)."""
    rows = db.con.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()
    return [row[0] for row in rows]


def shadow_entry(settings: LiveSettings, deployment: Any) -> ShadowEntry:
    """The in-brain order entry of a ``--shadow`` session (the backtester's engine settings)."""
    return ShadowEntry(
        deployment.symbols,
        deployment.symbol_instruments(),
        latency_ns=settings.latency_ns,
        maker_fee_bps=settings.maker_fee_bps,
        taker_fee_bps=settings.taker_fee_bps,
    )


def assemble_trader(
    settings: LiveSettings,
    deployment: Any,
    strategy: Any,
    entry: OrderEntry,
    feed: Any,
    db: TradeDB,
    run_config: Mapping[str, Any],
    *,
    restart_ingest: Callable[[], Any],
    recover: bool,
) -> tuple[LiveTrader, str]:
    """A session's :class:`LiveTrader` from its parts (the settings' fault policy, the order
    link, the control server on ``control_socket``); returns it and the socket's path."""
    control_path = settings.control_socket or str(Path(settings.db).parent / "control.sock")
    config = deployment.config
    trader = LiveTrader(
        replace(settings.live, symbols=deployment.symbols),
        strategy,
        entry,
        feed,
        db,
        RiskManager(deployment.risk),
        expected_fingerprint=config.fingerprint,
        run_config={
            "session": settings.describe(),
            **run_config,
            "feature_config": config.canonical_json,
            "deployment": deployment.run_config(),
        },
        instruments=deployment.symbol_instruments(),
        faults=settings.faults,
        restart_ingest=restart_ingest,
        recover=recover,
        control=ControlServer(control_path),
    )
    return trader, control_path


def paper_ledger_path(db: str | os.PathLike[str]) -> Path:
    """The paper venue's trade ledger of trade DB ``db`` (see twinfeed.live.paper_ledger)."""
    path = Path(db)
    return path.with_name(f"{path.stem}.paper-ledger.jsonl")


def _venue_lost(market: Any) -> str | None:
    """Why the market-data venue is gone, or None while it runs."""
    code = market.process.poll()
    if code is None:
        return None
    how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return (
        f"the market-data venue (twinfeed-venue, pid {market.process.pid}) became unreachable: "
        f"{how}"
    )


#: Longest wait, once the market-data venue died, for the brain to unwind before the session
#: ends anyway.
VENUE_LOST_GRACE_S = 30.0


def _venue_rules(deployment: Any) -> dict[str, Any]:
    """The rules the paper venue applies and states: the table's (shipped + --instruments) for
    the symbols traded; a symbol the table lacks is not listed (orders on it get -1121)."""
    from twinfeed.instruments import UnknownInstrumentError

    rules = {}
    for symbol in deployment.symbols:
        with contextlib.suppress(UnknownInstrumentError):
            rules[symbol] = deployment.table.get(symbol, deployment.venue)
    return rules


def _replay_done(
    status: Callable[[], Mapping[str, Any]],
    feed: Any,
    settle_s: float,
    venue_alive: Callable[[], bool] | None = None,
    trader: Any = None,
) -> Callable[[], bool]:
    """True ``settle_s`` after the venue reports its replay finished (the ingest and the brain
    catch up meanwhile; heartbeats keep coming, so "no new records" is no signal). True as
    well once the venue process died (it never finishes then) and ``trader`` is flat with no
    order open and no unwind going on, or ``VENUE_LOST_GRACE_S`` after it died."""
    next_check = 0.0
    finished_at: float | None = None
    lost_at: float | None = None

    def done() -> bool:
        nonlocal next_check, finished_at, lost_at
        now = time.monotonic()
        if lost_at is not None or (
            venue_alive is not None and now >= next_check and not venue_alive()
        ):
            lost_at = now if lost_at is None else lost_at
            if now - lost_at >= VENUE_LOST_GRACE_S or trader is None:
                return True
            state = trader.status()
            flat = not any(abs(qty) > 1e-12 for qty in state["positions"].values())
            return flat and not state["open_orders"] and not state["unwinding"]
        if finished_at is not None:
            return now - finished_at >= settle_s and feed.backlog == 0
        if now < next_check:
            return False
        next_check = now + 0.2
        try:
            replay = dict(status())
        except Exception:  # the venue is busy or gone; the duration limit still applies
            return False
        if trader is not None:
            # What `twinfeed ctl status` shows as replay progress (no request of its own).
            trader.replay_status = replay
        if replay.get("finished"):
            finished_at = now
        return False

    return done
