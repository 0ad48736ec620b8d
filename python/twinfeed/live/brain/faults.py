"""Feed faults: stale-feed unwinding, ingest restarts, the resume delay, operator controls.

:class:`FaultPolicy` is the feed policy, one part of the
:class:`twinfeed.live.brain.runner.LiveTrader` a session runs (the trader builds it when given
``faults``). Thresholds live in :class:`FaultConfig`, in units of the ingest's heartbeat
interval:

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

Every feed transition goes to ``feed_events`` (the trader writes it) and so do the brain's
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
from twinfeed.live.brain.runner import FeedPolicy, LiveTrader
from twinfeed.live.feed import Feed, FeedHealth, process_alive
from twinfeed.orders import Order
from twinfeed.records import KIND
from twinfeed.strategy import FeedStatus

__all__ = ["FaultConfig", "FaultMonitor", "FaultPolicy", "UnwindPolicy"]

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


class FaultPolicy(FeedPolicy):
    """The feed policy of :class:`FaultConfig` (see the module docstring): a part of the
    :class:`twinfeed.live.brain.runner.LiveTrader`, which builds it when given ``faults``.

    Args:
        trader: The trader it acts for.
        config: Thresholds and policy.
        restart_ingest: Starts a fresh ingest and returns the :class:`Feed` of its ring (None:
            never restart).
    """

    def __init__(
        self,
        trader: LiveTrader,
        config: FaultConfig,
        restart_ingest: Callable[[], Feed] | None = None,
    ) -> None:
        super().__init__(trader)
        self.config = config
        self.restart_ingest = restart_ingest
        self.ingest_restarts = 0
        #: One entry per stale episode: detection, flat and resume wall times (ns).
        self.episodes: list[dict[str, Any]] = []
        self._healthy_since: float | None = None
        self._next_restart = 0.0
        self._next_unwind = 0.0
        self._unwind_seq = 0

    def on_transition(self, transition: FeedTransition) -> None:
        trader = self.trader
        wall = time.time_ns()
        log.warning("feed %s -> %s: %s", transition.previous, transition.status, transition.reason)
        if transition.status in ("degraded", "stale"):
            self._healthy_since = None
            self.feed_blocked = True
            trader.risk.block_opening(f"feed {transition.status}: {transition.reason}")
        if transition.status == "stale":
            self.episodes.append(
                {"reason": transition.reason, "stale_wall_ns": wall, "policy": self.config.policy}
            )
            trader.cancel_all()
            if self.config.policy == "flatten":
                self.unwinding = True
                self._next_unwind = 0.0
            else:
                positions = self._positions()
                trader.db.risk_event(
                    trader.ctx.now,
                    "",
                    "feed_alert",
                    f"feed stale ({transition.reason}): holding positions {positions}",
                    {"positions": positions},
                )
        elif transition.status == "healthy":
            self._healthy_since = time.monotonic()

    def step(self) -> None:
        self._maybe_restart_ingest()
        self._maybe_unwind()
        self._maybe_resume()

    # ---- ingest restart -----------------------------------------------------------------

    def _maybe_restart_ingest(self) -> None:
        trader = self.trader
        if self.restart_ingest is None or not self.config.restart_ingest:
            return
        if trader.feed.closed or process_alive(trader.feed.writer_pid):
            return
        if trader.monitor.status != "stale":
            # Act on the death (cancel, unwind) before replacing the process.
            trader.check_feed(force=True)
        now = time.monotonic()
        if now < self._next_restart:
            return
        self._next_restart = now + self.config.restart_backoff_s
        old_path = trader.feed.path
        try:
            feed = self.restart_ingest()
        except Exception as error:  # retried after the backoff; the feed stays stale
            log.error("ingest restart failed: %s", error)
            trader.db.risk_event(trader.ctx.now, "", "ingest_restart", f"failed: {error}", {})
            return
        trader.replace_feed(feed)
        if isinstance(trader.monitor, FaultMonitor):
            trader.monitor.new_feed()
        self.ingest_restarts += 1
        trader.db.risk_event(
            trader.ctx.now,
            "",
            "ingest_restart",
            f"ingest restarted (pid {feed.writer_pid}, ring {feed.path})",
            {"pid": feed.writer_pid, "ring": feed.path},
        )
        if old_path.startswith("/dev/shm/"):
            Path(old_path).unlink(missing_ok=True)

    # ---- unwinding ----------------------------------------------------------------------

    def _positions(self) -> dict[str, float]:
        trader = self.trader
        return {
            trader.symbol_name(symbol): position.qty
            for symbol, position in sorted(trader.portfolio.positions.items())
            if abs(position.qty) > _EPS
        }

    def start_flatten(self) -> None:
        """Cancels everything and unwinds to flat (operator ``flatten``)."""
        self.trader.cancel_all()
        self.unwinding = True
        self._next_unwind = 0.0

    def _maybe_unwind(self) -> None:
        if not self.unwinding:
            return
        trader = self.trader
        open_orders = trader.oms.open_orders()
        positions = {
            symbol: position.qty
            for symbol, position in trader.portfolio.positions.items()
            if abs(position.qty) > _EPS
        }
        if not positions:
            if open_orders:
                trader.cancel_all()
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
            trader.db.feed_event(trader.ctx.now, "flat", trader.monitor.status, detail)
            log.warning("flat after unwinding %s", detail)
            return
        now = time.monotonic()
        if now < self._next_unwind or open_orders:
            return
        self._next_unwind = now + self.config.unwind_retry_s
        max_qty = trader.risk.config.max_order_qty
        for symbol, qty in sorted(positions.items()):
            self._unwind_seq += 1
            order = Order(
                f"{trader.id_prefix}unwind{self._unwind_seq}",
                symbol,
                "sell" if qty > 0 else "buy",
                round(min(abs(qty), max_qty), 8),
                None,
                type="market",
                tif="IOC",
                submit_ns=trader.ctx.now,
            )
            trader.submit(order)
        trader.dispatch()

    # ---- resuming -----------------------------------------------------------------------

    def _maybe_resume(self) -> None:
        trader = self.trader
        if not self.feed_blocked or self.unwinding or trader.monitor.status != "healthy":
            return
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        if time.monotonic() - self._healthy_since < self.config.resume_after_s:
            return
        self.feed_blocked = False
        now_ns = time.time_ns()
        for episode in self.episodes:
            episode.setdefault("resume_wall_ns", now_ns)
        trader.db.feed_event(
            trader.ctx.now, "resumed", "healthy", {"healthy_for_s": self.config.resume_after_s}
        )
        if not self.paused and not trader.link_blocking:
            trader.risk.allow_opening()

    def report(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "ingest_restarts": self.ingest_restarts}
