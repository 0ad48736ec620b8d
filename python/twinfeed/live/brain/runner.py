"""The live trader: feed -> strategy -> risk -> OMS -> venue; venue -> OMS -> DB -> strategy.

One loop, one thread. Each step:

1. read a batch of records from the ring (waiting up to ``poll_timeout_s``);
2. apply the venue's execution reports (user stream) to the OMS; each fill is written to the
   trade DB (committed), then booked in the portfolio, then handed to ``strategy.on_fill``;
   each state change is written and handed to ``strategy.on_order_update``;
3. assess the feed (:class:`twinfeed.live.brain.monitor.FeedMonitor`); on a change, record it,
   act on it (stale: cancel everything, block opening risk) and call ``on_feed_status``;
4. hand the records to the strategy (``on_batch`` for batch strategies, ``on_record`` per row
   otherwise, with ``ctx.now_ns`` the row's ``local_ns``), routing what it sends through risk,
   the OMS and the venue;
5. snapshot positions every ``snapshot_interval_ns`` of event time.

Replaces: where the venue changes an order in place (``OrderEntry.supports_modify``, Binance's
``order.modify``), ``ctx.replace`` modifies the working venue order: same id, same queue place
if the price stays and the quantity does not grow (as the matching engine's replace). Elsewhere
(and for a new total at or below the filled quantity) it cancels the working venue order and
sends a new one for ``qty - filled`` (a "leg" ``<id>.<n>``: Binance client ids allow only
``[.A-Za-z0-9:/_-]``) once the cancel is confirmed. The strategy keeps seeing one order under
its own id: fills of every leg, and the state of the current leg. The OMS and the DB's
``orders`` and ``fills`` tables work per leg (``client_id``), with the strategy's id in
``strategy_id``.

Hook points: every strategy request goes through :meth:`LiveTrader.request`, every callback
into the strategy through :meth:`LiveTrader.deliver`.

Event time is the records' ``local_ns`` (the ingest's receive clock), as in the backtester;
the wall clock is only recorded next to it (``wall_ns`` columns) for latency reports.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from twinfeed.context import ContextBase, Request
from twinfeed.instruments import (
    SymbolInstruments,
    UnknownInstrumentError,
    load_table,
)
from twinfeed.live.brain.entry import OrderEntry
from twinfeed.live.brain.journal import Journal, RunnerFault
from twinfeed.live.brain.monitor import FeedMonitor, FeedTransition
from twinfeed.live.brain.oms import ExecutionReport, OrderManager
from twinfeed.live.brain.risk import RiskManager
from twinfeed.live.brain.trade_db import TradeDB
from twinfeed.live.feed import Feed, FeedHealth
from twinfeed.orders import (
    OPEN_STATES,
    TERMINAL_STATES,
    Event,
    Fill,
    Order,
    OrderUpdate,
)
from twinfeed.portfolio import Portfolio
from twinfeed.records import build_info, last_mids
from twinfeed.strategy import PnL, Strategy
from twinfeed.venues.errors import VenueError

if TYPE_CHECKING:
    from twinfeed.live.brain.control import ControlServer
    from twinfeed.live.brain.faults import FaultConfig
    from twinfeed.live.brain.order_faults import OrderLink

_T = TypeVar("_T")

__all__ = ["FeedPolicy", "LiveConfig", "LiveContext", "LiveTrader", "RunSummary"]


def when_allowed(call: Callable[[], _T], limit_s: float = 15.0) -> _T:
    """``call()``; while the venue link holds calls locally (a 429/418 ``Retry-After``, or the
    request weight near its limit: nothing was sent), waits the hold out and calls again, for
    at most ``limit_s``. The end of a session must still cancel and reconcile after a burst of
    orders ran into the venue's rate limit."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            return call()
        except VenueError as error:
            wait = error.retry_after_s or 0.0
            if error.sent or not error.rate_limited or time.monotonic() + wait > deadline:
                raise
            time.sleep(wait + 0.05)


log = logging.getLogger("twinfeed.live")

#: The strategy callbacks :meth:`LiveTrader.deliver` makes.
Callback = Literal[
    "on_start", "on_fill", "on_order_update", "on_feed_status", "on_batch", "on_record", "on_stop"
]


@dataclass(frozen=True)
class LiveConfig:
    """Settings of the live loop (risk limits live in :class:`RiskConfig`).

    Attributes:
        symbols: Venue symbol per record ``symbol_id`` (index = id).
        poll_timeout_s: Longest wait for records in one step.
        max_batch_rows: Most records handed over per step.
        snapshot_interval_ns: Event-time interval of position snapshots.
        health_interval_s: Wall-clock interval of feed health checks.
        stale_after_s / degraded_after_s: See :class:`FeedMonitor`.
        drain_timeout_s: At the end, how long to wait for cancels and fills to settle.
    """

    symbols: tuple[str, ...] = ("BTCUSDT",)
    poll_timeout_s: float = 0.05
    max_batch_rows: int = 65_536
    snapshot_interval_ns: int = 1_000_000_000
    health_interval_s: float = 0.1
    stale_after_s: float = 2.0
    degraded_after_s: float = 0.5
    drain_timeout_s: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunSummary:
    """What a run did (also stored in ``runs.summary``)."""

    run_id: str
    status: str = "running"
    records: int = 0
    batches: int = 0
    orders: int = 0
    fills: int = 0
    risk_rejections: int = 0
    venue_rejections: int = 0
    feed_transitions: int = 0
    duplicates: int = 0
    positions: dict[str, float] = field(default_factory=dict)
    venue_positions: dict[str, float] = field(default_factory=dict)
    reconciled: bool | None = None
    pnl: dict[str, float] = field(default_factory=dict)
    #: Refused orders by reason (``risk rate``, ``venue -1111 Precision is over ...``).
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Orders that passed risk and the venue's order entry."""
        return self.orders - self.risk_rejections - self.venue_rejections

    def top_refusals(self, count: int = 3) -> list[tuple[str, int]]:
        """The most frequent refusal reasons with their counts."""
        return sorted(self.refusals.items(), key=lambda item: (-item[1], item[0]))[:count]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Logical:
    """The strategy's view of one order across its venue legs."""

    view: Order
    leg: str
    legs: int = 1
    replacing: bool = False


@dataclass(slots=True)
class _LegInfo:
    strategy_id: str
    submit_wall_ns: int
    mid: float


class LiveContext(ContextBase):
    """The :class:`twinfeed.strategy.Context` of a live run: its sink is
    :meth:`LiveTrader.request`."""

    def __init__(self, trader: LiveTrader) -> None:
        super().__init__(trader.strategy.params, trader.instruments, 0)
        self._trader = trader

    def _request(self, request: Request) -> list[str]:
        return self._trader.request(request)

    def _position(self, symbol: int) -> float:
        return self._trader.portfolio.position(symbol).qty

    def pnl(self) -> PnL:
        """See :meth:`twinfeed.strategy.Context.pnl`."""
        return self._trader.portfolio.pnl()

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        """See :meth:`twinfeed.strategy.Context.open_orders`."""
        return [
            logical.view
            for logical in self._trader.logical.values()
            if logical.view.state in OPEN_STATES
            and (symbol is None or logical.view.symbol == symbol)
        ]


class FeedPolicy:
    """The trader's feed policy part: what a feed status change does to trading. This one:
    ``stale`` blocks opening risk and cancels every working order; ``healthy`` opens risk
    again (unless an operator pause or the order link blocks it).
    :class:`twinfeed.live.brain.faults.FaultPolicy` adds unwinding, ingest restarts and a
    resume delay.

    Attributes:
        paused: An operator pause is in force.
        unwinding: Positions are being flattened.
        feed_blocked: The feed blocks opening risk.
    """

    def __init__(self, trader: LiveTrader) -> None:
        self.trader = trader
        self.paused = False
        self.unwinding = False
        self.feed_blocked = False

    def on_transition(self, transition: FeedTransition) -> None:
        """Acts on a status change (the trader has recorded it)."""
        trader = self.trader
        if transition.status == "stale":
            self.feed_blocked = True
            trader.risk.block_opening(f"feed stale: {transition.reason}")
            trader.cancel_all()
        elif transition.status == "healthy":
            self.feed_blocked = False
            if not self.paused and not trader.link_blocking:
                trader.risk.allow_opening()

    def step(self) -> None:
        """Called once per loop step, after the trader's own work."""

    def start_flatten(self) -> None:
        """Cancels everything and flattens positions (operator ``flatten``)."""
        raise ValueError("this trader's feed policy cannot flatten (no [faults] settings)")

    def report(self) -> dict[str, Any]:
        """What the policy adds to the run's summary."""
        return {}


class LiveTrader:
    """Runs a strategy live. See the module docstring for the loop.

    Assembled from parts: the feed policy (:attr:`policy`: :class:`FeedPolicy`, or
    :class:`twinfeed.live.brain.faults.FaultPolicy` with ``faults``), the order link
    (:attr:`order_link`: :class:`twinfeed.live.brain.order_faults.OrderLink`, with ``faults``)
    and the operator control server (:attr:`control`, optional).

    Args:
        config: Loop settings.
        strategy: The strategy instance (the same class the backtester runs).
        gateway: Order entry (:class:`twinfeed.live.brain.entry.OrderEntry`).
        feed: The ring reader; its fingerprint is recorded with the run.
        db: The trade DB (a run is started in it by :meth:`run` / :meth:`start`).
        risk: Pre-trade checks.
        expected_fingerprint: Refuse to start if the feed's fingerprint differs.
        faults: Fault thresholds and policy: builds the fault policy and the order link.
        restart_ingest: For the fault policy: starts a fresh ingest, returns its feed.
        recover: Rebuild state after a crash at start
            (:func:`twinfeed.live.brain.recovery.recover`).
        control: The operator control server (``twinfeed ctl``), served every step.
    """

    def __init__(
        self,
        config: LiveConfig,
        strategy: Strategy,
        gateway: OrderEntry,
        feed: Feed,
        db: TradeDB,
        risk: RiskManager,
        *,
        expected_fingerprint: str | None = None,
        run_config: Mapping[str, Any] | None = None,
        monitor: FeedMonitor | None = None,
        instruments: SymbolInstruments | None = None,
        faults: FaultConfig | None = None,
        restart_ingest: Callable[[], Feed] | None = None,
        recover: bool = False,
        control: ControlServer | None = None,
    ) -> None:
        if expected_fingerprint is not None and feed.fingerprint != expected_fingerprint:
            raise ValueError(
                f"feed fingerprint {feed.fingerprint} differs from the validated "
                f"{expected_fingerprint}: refusing to trade"
            )
        self.config = config
        self.strategy = strategy
        self.gateway = gateway
        self.feed = feed
        self.db = db
        self.risk = risk
        self.faults = faults
        if monitor is None and faults is not None:
            from twinfeed.live.brain.faults import FaultMonitor

            monitor = FaultMonitor(faults)
        self.monitor = monitor or FeedMonitor(config.stale_after_s, config.degraded_after_s)
        self.oms = OrderManager()
        #: The trading rules of ``config.symbols`` (``ctx.instrument``, PnL of inverse contracts).
        #: Given, orders are checked against them before the venue. Default: the shipped table
        #: for Binance USD-M (the order entry this brain speaks), for ``ctx.instrument`` only.
        self._rules_given = instruments is not None
        self.instruments = instruments or SymbolInstruments(
            load_table(), "binance-usdm", list(config.symbols)
        )
        self.portfolio = Portfolio(self.instruments)
        self.ctx = LiveContext(self)
        self.logical: dict[str, _Logical] = {}
        self._legs: dict[str, _LegInfo] = {}
        self._pending: list[Event] = []
        self._mids: dict[int, float] = {}
        self._next_snapshot_ns = 0
        self._next_health = 0.0
        self._health: FeedHealth | None = None
        self._run_config = dict(run_config or {})
        self.id_prefix = "o"
        self.summary = RunSummary(run_id="")
        self.stopping = False
        #: What the strategy saw and did (twinfeed.live.brain.journal), for the replay.
        self.journal = Journal(db)
        self._fault = RunnerFault.from_env()
        self._batch_first = 0
        self.recover = recover
        self.recovery: dict[str, Any] | None = None
        #: An order entry that matches on the market data itself (shadow trading,
        #: :class:`twinfeed.live.brain.shadow.ShadowEntry`) gets every batch first.
        self._market_data: Callable[[np.ndarray[Any, Any]], None] | None = getattr(
            gateway, "market_data", None
        )
        # ---- the parts
        self.control = control
        #: The local replay venue's latest status document (its ``GET /_venue/status``: line
        #: index, lines, lap, finished), as the session last polled it; None when the feed is
        #: not a local replay or before the first poll.
        self.replay_status: dict[str, Any] | None = None
        self.order_link: OrderLink | None = None
        self.policy: FeedPolicy
        if faults is None:
            self.policy = FeedPolicy(self)
        else:
            from twinfeed.live.brain.faults import FaultPolicy
            from twinfeed.live.brain.order_faults import OrderLink

            self.policy = FaultPolicy(self, faults, restart_ingest)
            self.order_link = OrderLink(
                self,
                retry_s=faults.venue_retry_s,
                retry_max_s=faults.venue_retry_max_s,
                rate_limit_backoff_s=faults.rate_limit_backoff_s,
            )

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> str:
        """Starts a run in the trade DB and calls ``on_start``; returns the run id."""
        strategy = self.strategy
        run_id = self.db.start_run(
            fingerprint=self.feed.fingerprint,
            build=build_info(),
            config={
                **self._run_config,
                "live": self.config.to_dict(),
                "risk": self.risk.config.to_dict(),
            },
            strategy=strategy.name or type(strategy).qualified_name(),
            params=dict(strategy.params),
        )
        # Client ids unique across runs on one account: Binance refuses a reused open id.
        self.id_prefix = self.ctx.id_prefix = f"{run_id[-6:]}-"
        self.summary = RunSummary(run_id=run_id)
        self.journal.start(self.ctx.now, self._journal_setup(run_id))
        self.deliver("on_start")
        self.dispatch()
        if self.recover:
            from twinfeed.live.brain.recovery import recover

            self.recovery = recover(self).to_dict()
            self.dispatch()
        return run_id

    def run(
        self,
        *,
        duration_s: float | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RunSummary:
        """Starts, steps until ``duration_s`` (wall clock), ``should_stop()``, the ring closes,
        or KeyboardInterrupt; then stops cleanly. Returns the summary."""
        self.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        status = "completed"
        try:
            while not self.stopping:
                self.step()
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if should_stop is not None and should_stop():
                    break
                if self.feed.closed:
                    break
        except KeyboardInterrupt:
            status = "interrupted"
        except Exception:
            status = "failed"
            self.finish(status)
            raise
        return self.finish(status)

    def step(self) -> int:
        """One iteration of the loop; returns the number of records handled."""
        if self.control is not None:
            self.control.serve_pending(self)
        rows = self._step()
        if self.order_link is not None:
            self.order_link.step()
        self.policy.step()
        return rows

    def _step(self) -> int:
        batch = self.feed.read_batch(self.config.max_batch_rows, self.config.poll_timeout_s)
        records = batch.records
        if self._market_data is not None and len(records):
            self._market_data(records)  # an in-brain venue matches on what the strategy sees
        self.apply_reports(self.gateway.poll_reports())
        self.dispatch()
        if len(records):
            self.monitor.observe(records)
            self.ctx.now = max(self.ctx.now, int(records["local_ns"][-1]))
        self.check_feed(force=bool(batch.lost))
        if len(records):
            if self._fault is not None:
                records = self._fault.batch(records)
            self._mark(records)
            self.summary.records += len(records)
            self.summary.batches += 1
            # Ring sequence of the batch's first record (lost records counted); a feed
            # without a cursor (tests' stand-ins) numbers the records it handed over.
            cursor = getattr(self.feed, "cursor", None)
            self._batch_first = (
                cursor - len(records) if cursor is not None else self.summary.records - len(records)
            )
            self.journal.batch(
                self._batch_first,
                int(records["line"][0]),
                int(records["line"][-1]),
                len(records),
                self.ctx.now,
            )
            self._feed_strategy(records)
            self.dispatch()
        if self.ctx.now >= self._next_snapshot_ns and self.ctx.now > 0:
            self.snapshot()
            interval = self.config.snapshot_interval_ns
            self._next_snapshot_ns = (self.ctx.now // interval + 1) * interval
        self.journal.flush()
        return len(records)

    def finish(self, status: str = "completed") -> RunSummary:
        """``on_stop``, cancel everything, wait for the venue to settle, reconcile, record."""
        self.stopping = True
        if self.order_link is not None:
            self.order_link.close()
        try:
            self.deliver("on_stop")
        finally:
            self.dispatch()
        for symbol in self.config.symbols:
            try:
                when_allowed(functools.partial(self.gateway.send_cancel_all, symbol))
            except VenueError as error:
                log.warning("cancel all %s refused: %s", symbol, error)
        deadline = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < deadline:
            self.apply_reports(self.gateway.poll_reports())
            self.dispatch(notify=False)
            if not self.oms.open_orders() and not self.oms.unsettled():
                break
            time.sleep(0.02)
        self.snapshot()
        summary = self.summary
        summary.status = status
        summary.duplicates = self.oms.duplicates
        summary.positions = {
            self.symbol_name(symbol): position.qty
            for symbol, position in sorted(self.portfolio.positions.items())
        }
        pnl = self.portfolio.pnl()
        summary.pnl = {
            "realized": pnl.realized,
            "unrealized": pnl.unrealized,
            "fees": pnl.fees,
            "total": pnl.total,
        }
        venue: dict[str, float] | None
        try:
            venue = when_allowed(self.gateway.venue_positions)
        except Exception as error:  # reconciliation is best effort; the run is recorded
            log.warning("venue positions unavailable: %s", error)
            venue = None
        if venue is not None:
            summary.venue_positions = {s: venue.get(s, 0.0) for s in self.config.symbols}
            mismatched = {
                s: (summary.positions.get(s, 0.0), summary.venue_positions[s])
                for s in self.config.symbols
                if abs(summary.positions.get(s, 0.0) - summary.venue_positions[s]) > 1e-9
            }
            summary.reconciled = not mismatched
            if mismatched:
                self.db.risk_event(
                    self.ctx.now,
                    "",
                    "reconciliation",
                    f"brain and venue positions differ: {mismatched}",
                    {"mismatched": mismatched},
                )
        extra: dict[str, Any] = {**self.policy.report(), "recovery": self.recovery}
        if self.order_link is not None:
            extra["venue_episodes"] = self.order_link.episodes
            extra["venue_rate_limits"] = self.order_link.rate_limits
        port = getattr(self.gateway, "port", None)
        if port is not None:
            try:
                extra["venue_open_orders"] = len(when_allowed(port.open_orders))
            except Exception as error:  # best effort, as the positions are
                log.warning("venue open orders unavailable: %s", error)
        self.journal.end(self.ctx.now, status)
        self.db.end_run(status, {**summary.to_dict(), **extra})
        if self.control is not None:
            self.control.close()
        return summary

    # ---- orders from the strategy -------------------------------------------------------

    def symbol_name(self, symbol: int) -> str:
        symbols = self.config.symbols
        return symbols[symbol] if 0 <= symbol < len(symbols) else str(symbol)

    def request(self, request: Request) -> list[str]:
        """The one door for the strategy's requests (:class:`twinfeed.context.Request`, from
        ``ctx.submit/cancel/cancel_all/replace``); for ``cancel_all`` returns the ids it
        cancels."""
        journal = self.journal
        journal.request(request)
        journal.inside = True
        try:
            if request.action == "submit":
                assert request.order is not None
                self.submit(request.order, request.refusal)
            elif request.action == "cancel":
                self.cancel(request.client_id)
            elif request.action == "cancel_all":
                return self.cancel_all(request.symbol)
            else:
                self.replace(request.client_id, request.price, request.qty)
            return []
        finally:
            journal.inside = False

    def submit(self, order: Order, refusal: str = "") -> None:
        """Risk-checks, records and sends a new strategy order (``refusal``: the context found
        it invalid; it is recorded rejected and not sent)."""
        if order.client_id in self.logical:
            raise ValueError(f"duplicate client order id {order.client_id!r}")
        view = order.as_submitted()
        self.logical[order.client_id] = _Logical(view, order.client_id)
        self._send_leg(order, order.client_id, refusal)

    def _send_leg(self, order: Order, strategy_id: str, invalid: str = "") -> None:
        mid = self._mids.get(order.symbol, float("nan"))
        symbol = self.symbol_name(order.symbol)
        self.oms.add(order)
        self._legs[order.client_id] = _LegInfo(strategy_id, time.time_ns(), mid)
        self.db.order(
            order,
            symbol=symbol,
            strategy_id=strategy_id,
            submit_wall_ns=self._legs[order.client_id].submit_wall_ns,
            mid=mid,
        )
        self.summary.orders += 1
        if invalid:
            self.summary.risk_rejections += 1
            self._count_refusal(f"invalid {invalid}")
            self._apply_events(self.oms.reject(order.client_id, self.ctx.now, invalid))
            return
        refusal = self._rules_refusal(order, mid)
        if refusal:
            # The instrument's rules, checked before the venue (which applies the same ones).
            self.summary.risk_rejections += 1
            self._count_refusal(f"rules {refusal}")
            self.db.risk_event(self.ctx.now, order.client_id, "instrument", refusal, {})
            self._apply_events(self.oms.reject(order.client_id, self.ctx.now, f"rules: {refusal}"))
            return
        decision = self.risk.check(
            order,
            now_ns=self.ctx.now,
            position=self.portfolio.position(order.symbol).qty,
            mid=mid,
            open_orders=self.oms.open_orders(order.symbol),
        )
        if not decision.ok:
            self.summary.risk_rejections += 1
            self._count_refusal(f"risk {decision.check}")
            self.db.risk_event(
                self.ctx.now, order.client_id, decision.check, decision.reason, decision.detail
            )
            self._apply_events(
                self.oms.reject(order.client_id, self.ctx.now, f"risk: {decision.reason}")
            )
            return
        try:
            report = self.gateway.send_order(order, symbol)
        except VenueError as error:
            self.summary.venue_rejections += 1
            self._count_refusal(f"venue {error.code} {error.message}")
            self._apply_events(
                self.oms.reject(
                    order.client_id, self.ctx.now, f"venue: {error.code} {error.message}"
                )
            )
            return
        self.apply_reports([report])

    def _rules_refusal(self, order: Order, mid: float) -> str:
        """Binance's refusal of ``order`` under its instrument's rules ("" if none or no rules)."""
        if not self._rules_given:
            return ""  # the default table only informs ctx.instrument; the venue checks
        try:
            instrument = self.instruments.maybe(order.symbol)
        except UnknownInstrumentError:
            instrument = None
        if instrument is None:
            return "-1121: Invalid symbol."
        refusal = instrument.check_order(order.qty, order.price, order.type, reference_price=mid)
        return "" if refusal is None else str(refusal)

    def _count_refusal(self, reason: str) -> None:
        refusals = self.summary.refusals
        refusals[reason] = refusals.get(reason, 0) + 1

    def cancel(self, strategy_id: str) -> None:
        logical = self.logical.get(strategy_id)
        if logical is None:
            raise KeyError(f"unknown order {strategy_id!r}")
        self._cancel_leg(logical.leg)

    def _cancel_leg(self, leg: str) -> bool:
        """Cancels a venue order; False if it had already finished."""
        if not self.oms.request_cancel(leg):
            return False
        order = self.oms.get(leg)
        try:
            report = self.gateway.send_cancel(leg, self.symbol_name(order.symbol))
        except VenueError as error:
            log.warning("cancel %s refused: %s", leg, error)
            return False
        if report is not None:
            self.apply_reports([report])
        return report is not None and report.state in ("cancelled", "expired")

    def cancel_all(self, symbol: int | None = None) -> list[str]:
        cancelled = []
        for strategy_id, logical in list(self.logical.items()):
            view = logical.view
            if view.state in OPEN_STATES and (symbol is None or view.symbol == symbol):
                cancelled.append(strategy_id)
                self._cancel_leg(logical.leg)
        return cancelled

    def replace(self, strategy_id: str, price: float, qty: float) -> None:
        logical = self.logical.get(strategy_id)
        if logical is None:
            raise KeyError(f"unknown order {strategy_id!r}")
        view = logical.view
        if view.state in TERMINAL_STATES:
            self._queue(OrderUpdate.of(view, self.ctx.now, "replace refused: order finished"))
            return
        remaining = qty - view.filled_qty
        if self.gateway.supports_modify and view.type == "limit" and remaining > 1e-12:
            self._modify_leg(logical, price, qty)
            return
        logical.replacing = True
        try:
            cancelled = self._cancel_leg(logical.leg)
        finally:
            logical.replacing = False
        old = self.oms.get(logical.leg)
        if not cancelled or old.state not in ("cancelled", "expired"):
            # The leg finished (filled) first: its own update tells the strategy.
            self._sync_view(logical, old, self.ctx.now)
            return
        if remaining <= 1e-12:
            view.qty = qty
            self._finish_view(logical, "filled" if view.filled_qty > 0 else "cancelled")
            return
        view.price = price
        view.qty = qty
        leg_id = f"{strategy_id}.{logical.legs}"
        logical.legs += 1
        logical.leg = leg_id
        leg = Order(
            leg_id,
            view.symbol,
            view.side,
            round(remaining, 8),
            price,
            type=view.type,
            tif=view.tif,
            submit_ns=self.ctx.now,
            reduce_only=view.reduce_only,
            good_till_ms=view.good_till_ms,
        )
        self._send_leg(leg, strategy_id)

    def _modify_leg(self, logical: _Logical, price: float, qty: float) -> None:
        """A replace in place (the venue's modify): the leg keeps its id; its total quantity
        is the strategy's new total less what earlier legs filled."""
        view = logical.view
        leg = self.oms.get(logical.leg)
        leg_qty = round(qty - (view.filled_qty - leg.filled_qty), 8)
        try:
            report = self.gateway.send_modify(
                leg.client_id, self.symbol_name(leg.symbol), leg.side, leg_qty, price
            )
        except VenueError as error:
            self._queue(
                OrderUpdate.of(view, self.ctx.now, f"replace refused: {error.code} {error.message}")
            )
            return
        if report.state not in TERMINAL_STATES:
            leg.qty, leg.price = leg_qty, price
            view.qty, view.price = qty, price
            # The venue's time of the modify, as every order event row (trade parity reads it).
            self.db.order_event(OrderUpdate.of(leg, report.ts_ns, "replaced"), leg)
            self._queue(OrderUpdate.of(view, self.ctx.now, "replaced"))
        self.apply_reports([report])

    # ---- venue reports ------------------------------------------------------------------

    def apply_reports(self, reports: list[ExecutionReport]) -> None:
        """Applies execution reports (REST responses or stream events) to the OMS."""
        for report in reports:
            if report.client_id not in self.oms:
                log.debug("report for an order of another session: %s", report.client_id)
                continue
            self._apply_events(self.oms.apply(report))

    def _apply_events(self, events: list[Event]) -> None:
        for event in events:
            leg = self.oms.get(event.client_id)
            info = self._legs[event.client_id]
            logical = self.logical[info.strategy_id]
            if isinstance(event, Fill):
                # Written and committed before anything acts on it.
                self.db.fill(
                    event,
                    symbol=self.symbol_name(event.symbol),
                    strategy_id=info.strategy_id,
                    order=leg,
                    submit_wall_ns=info.submit_wall_ns,
                    mid_at_submit=info.mid,
                )
                self.summary.fills += 1
                view = logical.view
                before = view.filled_qty
                view.filled_qty = before + event.qty
                view.avg_price = (
                    event.price
                    if before <= 0
                    else (view.avg_price * before + event.price * event.qty) / view.filled_qty
                )
                view.fees += event.fee
                self.portfolio.apply(event)
                if info.strategy_id != event.client_id:
                    event = Fill(
                        info.strategy_id,
                        event.symbol,
                        event.side,
                        event.price,
                        event.qty,
                        event.fee,
                        event.liquidity,
                        event.ts_ns,
                        event.fill_id,
                        event.queue_ns,
                    )
                self._queue(event)
            else:
                self.db.order_event(event, leg)
                if logical.leg == event.client_id and not (
                    logical.replacing and event.state in ("cancelled", "expired")
                ):
                    self._sync_view(logical, leg, event.ts_ns, event.reason)

    def _sync_view(self, logical: _Logical, leg: Order, ts_ns: int, reason: str = "") -> None:
        view = logical.view
        if view.state in TERMINAL_STATES:
            return
        state = leg.state
        if state in ("acked", "partially_filled"):
            state = "partially_filled" if view.filled_qty > 1e-12 else "acked"
        if state == view.state and not reason:
            return
        view.state = state
        if view.active_ns < 0 and leg.active_ns >= 0:
            view.active_ns = leg.active_ns
        if state in TERMINAL_STATES:
            view.done_ns = ts_ns
            view.reason = leg.reason
        self._queue(OrderUpdate.of(view, ts_ns, reason))

    def _finish_view(self, logical: _Logical, state: Any) -> None:
        view = logical.view
        view.state = state
        view.done_ns = self.ctx.now
        self._queue(OrderUpdate.of(view, self.ctx.now))

    def _queue(self, event: Event) -> None:
        """Queues a fill or update for the strategy (journaled: its effect starts now)."""
        self.journal.effect(event)
        self._pending.append(event)

    def dispatch(self, notify: bool = True) -> None:
        """Hands queued fills and updates to the strategy, in order."""
        while self._pending:
            events, self._pending = self._pending, []
            if not notify:
                continue
            self.journal.deliver(self.ctx.now, len(events))
            if self._fault is not None:
                events = self._fault.deliveries(events)
            for event in events:
                self.deliver("on_fill" if isinstance(event, Fill) else "on_order_update", event)

    def deliver(self, callback: Callback, payload: Any = None) -> None:
        """The one door into the strategy: every callback (start, fill, order update, feed
        status, batch or record, stop) is made here, with ``ctx.now_ns`` already set."""
        if callback == "on_feed_status":
            self.journal.feed(self.ctx.now, payload)
        elif callback == "on_stop":
            self.journal.stop(self.ctx.now)
        if callback == "on_start" or callback == "on_stop":
            getattr(self.strategy, callback)(self.ctx)
        else:
            getattr(self.strategy, callback)(self.ctx, payload)

    # ---- market data --------------------------------------------------------------------

    def _mark(self, records: np.ndarray[Any, Any]) -> None:
        for symbol, mid in last_mids(records).items():
            self._mids[symbol] = mid
            self.portfolio.mark(symbol, mid)

    def _feed_strategy(self, records: np.ndarray[Any, Any]) -> None:
        strategy = self.strategy
        row = len(records) - 1
        try:
            if strategy.wants_batches:
                self.deliver("on_batch", records)
                return
            times = records["local_ns"].tolist()
            for row in range(len(records)):
                self.ctx.now = times[row]
                self.deliver("on_record", records[row])
                if self._pending:
                    self.journal.at_seq = self._batch_first + row + 1
                    self.dispatch()
        except Exception as error:
            # One line naming the record the strategy failed on (README: the CLI's errors).
            from twinfeed.research.backtest import strategy_failure

            failure = strategy_failure(
                error,
                strategy,
                phase="run",
                record=records[row],
                place=f"line {int(records[row]['line'])} of the ingest's capture",
                batch=strategy.wants_batches,
            )
            if failure is None:
                raise
            raise failure from error

    def check_feed(self, force: bool = False) -> None:
        # Records-derived changes (gap, disconnect) are assessed every step; the ring's health
        # (heartbeat age, ingest process) every ``health_interval_s``.
        now = time.monotonic()
        if force or now >= self._next_health or self._health is None:
            self._next_health = now + self.config.health_interval_s
            self._health = self.feed.health()
        transition = self.monitor.assess(self._health)
        if transition is not None:
            self.on_feed_transition(transition)

    def on_feed_transition(self, transition: FeedTransition) -> None:
        """Records a feed status change, has the feed policy act on it, tells the strategy."""
        self.summary.feed_transitions += 1
        self.db.feed_event(
            self.ctx.now,
            transition.status,
            transition.previous,
            {"reason": transition.reason, **transition.detail},
        )
        self.policy.on_transition(transition)
        self.dispatch()
        self.deliver("on_feed_status", transition.status)
        self.dispatch()

    # ---- feed swaps and operator controls (in the loop's thread) -------------------------

    def replace_feed(self, feed: Feed) -> None:
        """Reads from ``feed`` from now on (a restarted ingest's ring)."""
        self.feed = feed
        self.journal.generation += 1  # a fresh ring numbers its records from 0 again
        self._health = None

    @property
    def link_blocking(self) -> bool:
        """True while the order link keeps opening risk blocked (the venue is down)."""
        return self.order_link is not None and self.order_link.blocking

    def venue_link_restored(self) -> bool:
        """The order venue is reachable again and reconciled: opens risk unless the feed, an
        unwind or an operator pause still blocks it. Returns whether trading resumed."""
        policy = self.policy
        if policy.feed_blocked or policy.unwinding or policy.paused:
            return False
        self.risk.allow_opening()
        return True

    def pause(self, reason: str = "paused by the operator") -> None:
        """Blocks opening risk and cancels every working order until :meth:`resume`."""
        self.journal.control(self.ctx.now, "pause", {"reason": reason})
        self.policy.paused = True
        self.risk.block_opening(reason)
        self.cancel_all()
        self.dispatch()

    def resume(self) -> bool:
        """Lifts an operator pause; opening risk resumes now if the feed allows it."""
        self.journal.control(self.ctx.now, "resume")
        policy = self.policy
        policy.paused = False
        if not policy.feed_blocked and not policy.unwinding and not self.link_blocking:
            self.risk.allow_opening()
            return True
        return False

    def start_flatten(self) -> None:
        """Cancels everything and unwinds to flat (operator ``flatten``)."""
        self.journal.control(self.ctx.now, "flatten")
        self.policy.start_flatten()

    def status(self) -> dict[str, Any]:
        """What ``twinfeed ctl status`` shows."""
        pnl = self.portfolio.pnl()
        health = self._health
        policy = self.policy
        report = policy.report()
        return {
            "run_id": self.summary.run_id,
            # The brain's clock: the latest record's receive time by the ingest (ns since the
            # epoch; 0 before the first record).
            "session_ns": int(self.ctx.now),
            "replay": replay_progress(self.replay_status),
            "feed": self.monitor.status,
            "venue": "up" if self.order_link is None else self.order_link.state,
            "trading": not (self.risk.opening_blocked or self.risk.killed),
            "paused": policy.paused,
            "unwinding": policy.unwinding,
            "block_reason": self.risk.opening_reason,
            "ingest_pid": self.feed.writer_pid,
            "ingest_alive": None if health is None else health.producer_alive,
            "ingest_restarts": report.get("ingest_restarts", 0),
            "positions": {
                self.symbol_name(s): p.qty for s, p in sorted(self.portfolio.positions.items())
            },
            "pnl": {
                "realized": pnl.realized,
                "unrealized": pnl.unrealized,
                "fees": pnl.fees,
                "total": pnl.total,
            },
            "open_orders": [
                {
                    "client_id": o.client_id,
                    "symbol": self.symbol_name(o.symbol),
                    "side": o.side,
                    "qty": o.qty,
                    "price": o.price,
                    "state": o.state,
                }
                for o in self.oms.open_orders()
                if o.state in OPEN_STATES
            ],
            "orders": self.summary.orders,
            "accepted": self.summary.accepted,
            "refusals": self.summary.top_refusals(5),
            "symbols": list(self.config.symbols),
            "currency": self.portfolio.currency,
            "fills": self.summary.fills,
            "episodes": report.get("episodes", []),
            "venue_episodes": [] if self.order_link is None else self.order_link.episodes,
        }

    def _journal_setup(self, run_id: str) -> dict[str, Any]:
        """What the journal's ``start`` entry holds: enough to rebuild strategy and context."""
        strategy = self.strategy
        instruments: list[dict[str, Any]] = []
        try:
            resolved = self.instruments.resolved()
        except UnknownInstrumentError:
            resolved = []
        for instrument in resolved:
            instruments.append({"venue": instrument.venue, **instrument.to_exchange_info()})
        deployment = self._run_config.get("deployment") or {}
        return {
            "run_id": run_id,
            "id_prefix": self.id_prefix,
            "strategy": self._run_config.get("strategy_spec") or type(strategy).qualified_name(),
            "params": dict(strategy.params),
            "wants_batches": bool(strategy.wants_batches),
            "symbols": list(self.config.symbols),
            "venue": self.instruments.venue,
            "instruments": instruments,
            "rules_given": self._rules_given,
            "capture_dir": self._run_config.get("ingest_capture_dir"),
            "feature_config_toml": deployment.get("feature_config_toml"),
            "fingerprint": self.feed.fingerprint,
        }

    def snapshot(self) -> None:
        """Writes the positions of every traded symbol to ``position_snapshots``."""
        self.db.positions(
            self.ctx.now,
            [
                (self.symbol_name(symbol), position)
                for symbol, position in sorted(self.portfolio.positions.items())
            ],
        )


def replay_progress(status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Replay progress from a local venue's status document: ``line`` (1-based capture line
    replayed last, 0 before the first), ``lines`` (the capture's), ``local_ns`` (that line's
    receive time in the capture: the replay's clock, 0 before the first), ``percent`` of the
    capture replayed, ``lap`` (0-based, ``--loop``) and ``finished``; None without a status or
    before the venue knows its capture's length."""
    if not status or not status.get("lines"):
        return None
    lines = int(status["lines"])
    index = status.get("line_index")
    line = 0 if index is None else int(index) + 1
    finished = bool(status.get("finished"))
    return {
        "line": line,
        "lines": lines,
        "local_ns": int(status.get("local_ns") or 0),
        "percent": 100.0 if finished else round(100.0 * line / lines, 1),
        "lap": int(status.get("lap") or 0),
        "finished": finished,
    }
