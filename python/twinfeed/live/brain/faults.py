"""Feed faults: stale-feed unwinding, ingest restarts, the resume delay, operator controls.

:class:`FaultTolerantTrader` is the :class:`twinfeed.live.brain.runner.LiveTrader` a session
runs. Thresholds live in :class:`FaultConfig`, in units of the ingest's heartbeat interval:

- ``degraded`` (heartbeat late, market data silent for a few heartbeats, a book gap): no orders
  that add risk; working orders stay.
- ``stale`` (ingest gone, no heartbeat, market data silent while heartbeats keep coming, i.e. a
  stalled venue connection, or exchange-vs-local lag too high): cancel every working order, go
  reduce-only, then per ``policy``: ``"flatten"`` sends market (IOC) orders, through risk,
  until every position is flat; ``"hold"`` keeps the position and raises an alert
  (``risk_events`` check ``feed_alert``). A dead ingest is restarted through the session's
  ``restart_ingest`` callback (a fresh process and ring; the trader swaps its feed).
- back to ``healthy``: trading resumes only after the feed has stayed healthy for
  ``resume_after_s`` (and no operator pause is in force).

Every feed transition goes to ``feed_events`` (as the base runner does) and so do the brain's
own milestones: ``flat`` (the unwind finished; detail ``seconds_since_stale``) and ``resumed``.

Order-side faults (the order venue unreachable, rate limits) are
:class:`twinfeed.live.brain.order_faults.OrderLink`'s: while the link is down opening risk
stays blocked whatever the feed says; it reconciles with the venue before trading again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from twinfeed.live.brain.monitor import FeedMonitor, FeedTransition
from twinfeed.live.brain.runner import LiveTrader, RunSummary, when_allowed
from twinfeed.live.feed import Feed, FeedHealth, process_alive
from twinfeed.orders import OPEN_STATES, Order
from twinfeed.records import KIND
from twinfeed.strategy import FeedStatus

__all__ = ["FaultConfig", "FaultMonitor", "FaultTolerantTrader", "UnwindPolicy"]

log = logging.getLogger("twinfeed.live.faults")

UnwindPolicy = Literal["flatten", "hold"]

_MARKET_KINDS = np.array([KIND["quote"], KIND["book"], KIND["trade"]], dtype=np.uint8)
_HEARTBEAT = KIND["heartbeat"]
_EPS = 1e-12


@dataclass(frozen=True)
class FaultConfig:
    """Fault thresholds (``*_heartbeats``: multiples of ``heartbeat_interval_s``) and policy.

    Attributes:
        heartbeat_interval_s: The ingest's heartbeat period (``[ingest] heartbeat_ms``).
        degraded_after_heartbeats / stale_after_heartbeats: Age of the ingest's last heartbeat.
        silence_degraded_heartbeats / silence_stale_heartbeats: Heartbeats in a row with no
            market data (quote, book, trade) between them: the ingest is alive but the venue
            connection sends nothing (a stall). 0 disables.
        max_lag_heartbeats: Exchange-vs-local lag of market data above the lowest lag seen
            (the clock offset); stale above it. 0 disables (replays faster than 1x always
            pass: their exchange clock runs ahead).
        policy: ``"flatten"`` or ``"hold"`` (see the module docstring).
        resume_after_s: How long the feed must stay healthy before opening risk again.
        restart_ingest: Restart a dead ingest (needs the session's callback).
        restart_backoff_s: Wait between restart attempts.
        unwind_retry_s: Wait before re-sending an unwind order that did not flatten.
        venue_retry_s / venue_retry_max_s: First and longest wait between probes of an
            unreachable order venue (exponential backoff).
        rate_limit_backoff_s: Hold on every order after a rate limit (doubles on repeats).
    """

    heartbeat_interval_s: float = 0.1
    degraded_after_heartbeats: float = 5.0
    stale_after_heartbeats: float = 20.0
    silence_degraded_heartbeats: int = 5
    silence_stale_heartbeats: int = 10
    max_lag_heartbeats: float = 0.0
    policy: UnwindPolicy = "flatten"
    resume_after_s: float = 1.0
    restart_ingest: bool = True
    restart_backoff_s: float = 1.0
    unwind_retry_s: float = 0.5
    venue_retry_s: float = 0.1
    venue_retry_max_s: float = 2.0
    rate_limit_backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if self.policy not in ("flatten", "hold"):
            raise ValueError(f'faults.policy must be "flatten" or "hold", got {self.policy!r}')
        if self.heartbeat_interval_s <= 0:
            raise ValueError("faults.heartbeat_interval_s must be positive")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FaultConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown [faults] settings: {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultMonitor(FeedMonitor):
    """:class:`FeedMonitor` with heartbeat-unit thresholds, market-data silence and lag."""

    def __init__(self, config: FaultConfig) -> None:
        interval = config.heartbeat_interval_s
        super().__init__(
            stale_after_s=config.stale_after_heartbeats * interval,
            degraded_after_s=config.degraded_after_heartbeats * interval,
        )
        self.config = config
        self.heartbeats_since_market = 0
        self.seen_market = False
        self.lag_excess_s = 0.0
        self._lag_floor_ns: int | None = None
        self.awaiting_data = False

    def observe(self, records: np.ndarray[Any, Any]) -> None:
        super().observe(records)
        if not len(records):
            return
        kinds = records["kind"]
        market = np.flatnonzero(np.isin(kinds, _MARKET_KINDS))
        if len(market):
            self.seen_market = True
            last = int(market[-1])
            self.heartbeats_since_market = int(np.count_nonzero(kinds[last + 1 :] == _HEARTBEAT))
            exchange = records["exchange_ns"][market]
            stamped = exchange > 0
            if stamped.any():
                lags = records["local_ns"][market][stamped] - exchange[stamped]
                floor = int(lags.min())
                if self._lag_floor_ns is None or floor < self._lag_floor_ns:
                    self._lag_floor_ns = floor
                self.lag_excess_s = (int(lags[-1]) - self._lag_floor_ns) / 1e9
        else:
            self.heartbeats_since_market += int(np.count_nonzero(kinds == _HEARTBEAT))

    def new_feed(self) -> None:
        """A restarted ingest: forget what the old ring said (the status stays until the new
        feed proves healthy)."""
        self._seen_records = False
        self._records_status = "healthy"
        self.heartbeats_since_market = 0
        self.seen_market = False
        self.lag_excess_s = 0.0
        self._lag_floor_ns = None
        self.awaiting_data = True

    def assess(self, health: FeedHealth | None) -> FeedTransition | None:
        config = self.config
        status: FeedStatus = self._records_status
        reason = "records"
        detail: dict[str, Any] = {}
        if health is not None:
            detail = {
                "heartbeat_age_s": health.producer_heartbeat_age_s,
                "producer_pid": health.producer_pid,
                "producer_alive": health.producer_alive,
                "connected": health.connected,
                "gaps_seen": health.gaps_seen,
                "overruns": health.overruns,
                "heartbeats_since_market_data": self.heartbeats_since_market,
                "lag_excess_s": self.lag_excess_s,
            }
        candidates: list[tuple[FeedStatus, str]] = []
        if health is not None and not health.producer_alive:
            candidates.append(("stale", "ingest process gone"))
        elif health is not None and self._seen_records:
            age = health.producer_heartbeat_age_s
            if age is None:
                if time.monotonic() - self._first_record_wall > self.stale_after_s:
                    candidates.append(("stale", "no ingest heartbeat yet"))
            elif age > self.stale_after_s:
                candidates.append(("stale", f"no ingest heartbeat for {age:.2f} s"))
            elif age > self.degraded_after_s:
                candidates.append(("degraded", f"ingest heartbeat {age:.2f} s old"))
        if self.awaiting_data and not self.seen_market:
            candidates.append(("stale", "waiting for market data from the restarted ingest"))
        silent = self.heartbeats_since_market
        if (
            self.seen_market
            and config.silence_stale_heartbeats
            and (silent >= config.silence_stale_heartbeats)
        ):
            candidates.append(("stale", f"no market data for {silent} heartbeats"))
        elif (
            self.seen_market
            and config.silence_degraded_heartbeats
            and (silent >= config.silence_degraded_heartbeats)
        ):
            candidates.append(("degraded", f"no market data for {silent} heartbeats"))
        max_lag = config.max_lag_heartbeats * config.heartbeat_interval_s
        if max_lag > 0 and self.lag_excess_s > max_lag:
            candidates.append(("stale", f"market data {self.lag_excess_s:.2f} s behind"))
        rank = {"healthy": 0, "degraded": 1, "stale": 2}
        for candidate, why in candidates:
            if rank[candidate] > rank[status]:
                status, reason = candidate, why
        if status == self.status:
            return None
        transition = FeedTransition(self.status, status, reason, detail)
        self.status = status
        return transition


class FaultTolerantTrader(LiveTrader):
    """:class:`LiveTrader` with the fault policy of :class:`FaultConfig` and operator controls.

    Extra keyword arguments: ``faults`` (the config) and ``restart_ingest`` (a callable that
    starts a fresh ingest and returns the :class:`Feed` of its ring; None: never restart).
    """

    def __init__(
        self,
        *args: Any,
        faults: FaultConfig | None = None,
        restart_ingest: Callable[[], Feed] | None = None,
        recover: bool = False,
        **kwargs: Any,
    ) -> None:
        self.faults = faults or FaultConfig()
        kwargs.setdefault("monitor", FaultMonitor(self.faults))
        super().__init__(*args, **kwargs)
        self.restart_ingest = restart_ingest
        self.unwinding = False
        self.paused = False
        self.feed_blocked = False
        self.ingest_restarts = 0
        #: One entry per stale episode: detection, flat and resume wall times (ns).
        self.episodes: list[dict[str, Any]] = []
        self._healthy_since: float | None = None
        self._next_restart = 0.0
        self._next_unwind = 0.0
        self._unwind_seq = 0
        self.control: Any = None  # a twinfeed.live.brain.control.ControlServer, if any
        self.recover = recover
        self.recovery: dict[str, Any] | None = None
        from twinfeed.live.brain.order_faults import OrderLink

        self.order_link = OrderLink(
            self,
            retry_s=self.faults.venue_retry_s,
            retry_max_s=self.faults.venue_retry_max_s,
            rate_limit_backoff_s=self.faults.rate_limit_backoff_s,
        )

    def start(self) -> str:
        """Starts the run; with ``recover``, first rebuilds state after a crash
        (:func:`twinfeed.live.brain.recovery.recover`)."""
        run_id = super().start()
        if self.recover:
            from twinfeed.live.brain.recovery import recover

            self.recovery = recover(self).to_dict()
            self._dispatch()
        return run_id

    # ---- the loop -----------------------------------------------------------------------

    def step(self) -> int:
        if self.control is not None:
            self.control.serve_pending(self)
        rows = super().step()
        self.order_link.step()
        self._maybe_restart_ingest()
        self._maybe_unwind()
        self._maybe_resume()
        return rows

    def on_feed_transition(self, transition: FeedTransition) -> None:
        self.summary.feed_transitions += 1
        wall = time.time_ns()
        self.db.feed_event(
            self.ctx.now,
            transition.status,
            transition.previous,
            {"reason": transition.reason, **transition.detail},
        )
        log.warning("feed %s -> %s: %s", transition.previous, transition.status, transition.reason)
        if transition.status in ("degraded", "stale"):
            self._healthy_since = None
            self.feed_blocked = True
            self.risk.block_opening(f"feed {transition.status}: {transition.reason}")
        if transition.status == "stale":
            self.episodes.append(
                {"reason": transition.reason, "stale_wall_ns": wall, "policy": self.faults.policy}
            )
            self.cancel_all()
            if self.faults.policy == "flatten":
                self.unwinding = True
                self._next_unwind = 0.0
            else:
                self.db.risk_event(
                    self.ctx.now,
                    "",
                    "feed_alert",
                    f"feed stale ({transition.reason}): holding positions {self._positions()}",
                    {"positions": self._positions()},
                )
        elif transition.status == "healthy":
            self._healthy_since = time.monotonic()
        self._dispatch()
        self.deliver("on_feed_status", transition.status)
        self._dispatch()

    # ---- ingest restart -----------------------------------------------------------------

    def _maybe_restart_ingest(self) -> None:
        if self.restart_ingest is None or not self.faults.restart_ingest:
            return
        if self.feed.closed or process_alive(self.feed.writer_pid):
            return
        if self.monitor.status != "stale":
            # Act on the death (cancel, unwind) before replacing the process.
            self._check_feed(force=True)
        now = time.monotonic()
        if now < self._next_restart:
            return
        self._next_restart = now + self.faults.restart_backoff_s
        old_path = self.feed.path
        try:
            feed = self.restart_ingest()
        except Exception as error:  # retried after the backoff; the feed stays stale
            log.error("ingest restart failed: %s", error)
            self.db.risk_event(self.ctx.now, "", "ingest_restart", f"failed: {error}", {})
            return
        self.feed = feed
        self.journal.generation += 1
        self._health = None
        if isinstance(self.monitor, FaultMonitor):
            self.monitor.new_feed()
        self.ingest_restarts += 1
        self.db.risk_event(
            self.ctx.now,
            "",
            "ingest_restart",
            f"ingest restarted (pid {feed.writer_pid}, ring {feed.path})",
            {"pid": feed.writer_pid, "ring": feed.path},
        )
        if old_path.startswith("/dev/shm/"):
            Path(old_path).unlink(missing_ok=True)

    # ---- unwinding ----------------------------------------------------------------------

    def _positions(self) -> dict[str, float]:
        return {
            self._symbol_name(symbol): position.qty
            for symbol, position in sorted(self.portfolio.positions.items())
            if abs(position.qty) > _EPS
        }

    def start_flatten(self) -> None:
        """Cancels everything and unwinds to flat (operator ``flatten``)."""
        self.journal.control(self.ctx.now, "flatten")
        self.cancel_all()
        self.unwinding = True
        self._next_unwind = 0.0

    def _maybe_unwind(self) -> None:
        if not self.unwinding:
            return
        open_orders = self.oms.open_orders()
        positions = {
            symbol: position.qty
            for symbol, position in self.portfolio.positions.items()
            if abs(position.qty) > _EPS
        }
        if not positions:
            if open_orders:
                self.cancel_all()
                return
            self.unwinding = False
            now_ns = time.time_ns()
            detail: dict[str, Any] = {}
            for episode in self.episodes:
                if "flat_wall_ns" not in episode:
                    episode["flat_wall_ns"] = now_ns
                    seconds = (now_ns - episode["stale_wall_ns"]) / 1e9
                    episode["seconds_to_flat"] = seconds
                    detail["seconds_since_stale"] = seconds
            self.db.feed_event(self.ctx.now, "flat", self.monitor.status, detail)
            log.warning("flat after unwinding %s", detail)
            return
        now = time.monotonic()
        if now < self._next_unwind or open_orders:
            return
        self._next_unwind = now + self.faults.unwind_retry_s
        max_qty = self.risk.config.max_order_qty
        for symbol, qty in sorted(positions.items()):
            self._unwind_seq += 1
            order = Order(
                f"{self.id_prefix}unwind{self._unwind_seq}",
                symbol,
                "sell" if qty > 0 else "buy",
                round(min(abs(qty), max_qty), 8),
                None,
                type="market",
                tif="IOC",
                submit_ns=self.ctx.now,
            )
            self.submit(order)
        self._dispatch()

    # ---- resuming -----------------------------------------------------------------------

    def _maybe_resume(self) -> None:
        if not self.feed_blocked or self.unwinding or self.monitor.status != "healthy":
            return
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        if time.monotonic() - self._healthy_since < self.faults.resume_after_s:
            return
        self.feed_blocked = False
        now_ns = time.time_ns()
        for episode in self.episodes:
            episode.setdefault("resume_wall_ns", now_ns)
        self.db.feed_event(
            self.ctx.now, "resumed", "healthy", {"healthy_for_s": self.faults.resume_after_s}
        )
        if not self.paused and not self.order_link.blocking:
            self.risk.allow_opening()

    def venue_link_restored(self) -> bool:
        """The order venue is reachable again and reconciled: opens risk unless the feed, an
        unwind or an operator pause still blocks it. Returns whether trading resumed."""
        if self.feed_blocked or self.unwinding or self.paused:
            return False
        self.risk.allow_opening()
        return True

    # ---- operator controls (called in the loop's thread by the control server) ---------

    def pause(self, reason: str = "paused by the operator") -> None:
        self.journal.control(self.ctx.now, "pause", {"reason": reason})
        self.paused = True
        self.risk.block_opening(reason)
        self.cancel_all()
        self._dispatch()

    def resume(self) -> bool:
        """Lifts an operator pause; opening risk resumes now if the feed allows it."""
        self.journal.control(self.ctx.now, "resume")
        self.paused = False
        if not self.feed_blocked and not self.unwinding and not self.order_link.blocking:
            self.risk.allow_opening()
            return True
        return False

    def status(self) -> dict[str, Any]:
        """What ``twinfeed ctl status`` shows."""
        pnl = self.portfolio.pnl()
        health = self._health
        return {
            "run_id": self.summary.run_id,
            "feed": self.monitor.status,
            "venue": self.order_link.state,
            "trading": not (self.risk.opening_blocked or self.risk.killed),
            "paused": self.paused,
            "unwinding": self.unwinding,
            "block_reason": self.risk.opening_reason,
            "ingest_pid": self.feed.writer_pid,
            "ingest_alive": None if health is None else health.producer_alive,
            "ingest_restarts": self.ingest_restarts,
            "positions": {
                self._symbol_name(s): p.qty for s, p in sorted(self.portfolio.positions.items())
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
                    "symbol": self._symbol_name(o.symbol),
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
            "episodes": self.episodes,
            "venue_episodes": self.order_link.episodes,
        }

    # ---- end ----------------------------------------------------------------------------

    def finish(self, status: str = "completed") -> RunSummary:
        self.order_link.close()
        summary = super().finish(status)
        extra: dict[str, Any] = {
            "episodes": self.episodes,
            "venue_episodes": self.order_link.episodes,
            "venue_rate_limits": self.order_link.rate_limits,
            "ingest_restarts": self.ingest_restarts,
            "recovery": self.recovery,
        }
        port = getattr(self.gateway, "port", None)
        if port is not None:
            try:
                extra["venue_open_orders"] = len(when_allowed(port.open_orders))
            except Exception as error:  # best effort, as the positions are
                log.warning("venue open orders unavailable: %s", error)
        self.db.end_run(summary.status, {**summary.to_dict(), **extra})
        if self.control is not None:
            self.control.close()
        return summary
