"""Order-side faults: the order-entry venue unreachable, then back; rejections; rate limits.

:class:`OrderLink` watches the brain's :class:`twinfeed.live.brain.entry.PortEntry` (it is a
part of the :class:`twinfeed.live.brain.runner.LiveTrader`, built with ``faults``; the trader
steps it):

- **down**: a REST call got no usable answer (connection refused or reset, timeout, HTTP 5xx,
  -1001, -1007) or the user-data websocket closed (its listen key expired, or the link
  dropped). Binance's stream events carry no sequence number, so a stream that closed, even
  one the reader reopened at once, may have lost events: the only way to know is to
  reconcile. At once: every new order and cancel is
  refused locally (``entry.hold``; code ``NOT_SENT``, nothing reaches the venue), opening risk
  is blocked, a ``risk_events`` row (check ``venue_disconnected``) is written. Working orders
  stay at the venue (they cannot be cancelled) and may fill meanwhile. A new order whose own
  request was lost stays ``new`` (its outcome is unknown) until reconciliation settles it.
- **probing**: the port's ``ping`` every ``venue_retry_s``, doubling up to ``venue_retry_max_s``.
  When it answers, the user-stream reader is woken (it opens a new websocket); once the
  stream is open again, :func:`reconcile` runs (the events published meanwhile are only in
  REST). Any failure: back to probing.
- **reconcile** (the venue is the truth): the venue's ``userTrades`` whose trade id the DB
  lacks are booked through the OMS (so the stream's copy of the same trade is a duplicate); every
  order the OMS thinks open gets the venue's state (``openOrders``, else ``GET /order``; unknown
  to the venue: rejected, it never arrived); orders of this run open at the venue that the OMS
  thinks finished are cancelled; cancels requested while down are sent; positions are
  compared with ``positionRisk``. One ``risk_events`` row (check ``venue_reconciled``) holds
  every difference; a position that still differs adds a ``venue_reconcile_mismatch`` row.
- **up**: the hold is lifted and opening risk allowed again (unless the feed, an operator pause
  or an unwind still blocks it); ``venue_resumed`` row with the seconds down.

Rate limits (-1003, HTTP 429/418): the refused order is rejected like any refusal and never
re-sent; every order and cancel is held for ``rate_limit_backoff_s`` (doubling while the venue
keeps refusing, up to ``rate_limit_backoff_max_s``); ``venue_rate_limited`` row. Other
refusals are plain rejections (the strategy decides what to do; nothing is resubmitted).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from twinfeed.live.brain.entry import PortEntry
from twinfeed.live.brain.oms import ExecutionReport
from twinfeed.orders import OPEN_STATES
from twinfeed.venues.errors import VenueError
from twinfeed.venues.port import VenueOrder

__all__ = ["OrderLink", "reconcile"]

log = logging.getLogger("twinfeed.live.order_faults")

_EPS = 1e-9


class OrderLink:
    """The order-entry link's state machine (see the module docstring).

    Args:
        trader: The :class:`twinfeed.live.brain.runner.LiveTrader` it belongs to.
        retry_s / retry_max_s: First and longest wait between probes while down.
        rate_limit_backoff_s / rate_limit_backoff_max_s: Hold after a rate limit.
    """

    def __init__(
        self,
        trader: Any,
        *,
        retry_s: float = 0.1,
        retry_max_s: float = 2.0,
        rate_limit_backoff_s: float = 1.0,
        rate_limit_backoff_max_s: float = 30.0,
    ) -> None:
        self.trader = trader
        entry = trader.gateway
        self.entry: PortEntry | None = entry if isinstance(entry, PortEntry) else None
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.rate_limit_backoff_s = rate_limit_backoff_s
        self.rate_limit_backoff_max_s = rate_limit_backoff_max_s
        self.up = True
        self.reconciling = False
        #: One entry per outage: reason, down/probe-ok/up wall times, reconciliation.
        self.episodes: list[dict[str, Any]] = []
        self.rate_limits = 0
        self._rate_until = 0.0
        self._rate_backoff = rate_limit_backoff_s
        self._next_probe = 0.0
        self._delay = retry_s
        self._stream_errors = 0
        if self.entry is not None:
            self.entry.on_error = self._on_error
            self.entry.pending_on_link_error = True
            self._stream_errors = self.entry.port.stream_errors

    @property
    def blocking(self) -> bool:
        """True while opening risk must stay blocked because of the order link."""
        return not self.up

    @property
    def state(self) -> str:
        if not self.up:
            return "down"
        return "rate_limited" if time.monotonic() < self._rate_until else "up"

    # ---- detection (called in the loop's thread) ----------------------------------------

    def _on_error(self, error: VenueError) -> None:
        if error.link_lost:
            self.went_down(f"no answer from the venue: {error.code} {error.message}")
        elif error.rate_limited:
            self._rate_limited(error)

    def went_down(self, reason: str) -> None:
        entry = self.entry
        if entry is None or not self.up:
            return
        trader = self.trader
        self.up = False
        self._delay = self.retry_s
        self._next_probe = time.monotonic() + self._delay
        entry.hold = "order venue unreachable"
        self.episodes.append({"reason": reason, "down_wall_ns": time.time_ns()})
        trader.risk.block_opening(f"order venue unreachable: {reason}")
        open_orders = [order.client_id for order in trader.oms.open_orders()]
        trader.db.risk_event(
            trader.ctx.now,
            "",
            "venue_disconnected",
            f"order venue unreachable ({reason}); holding orders, opening risk blocked",
            {"reason": reason, "open_orders": open_orders},
        )
        log.warning("order venue unreachable: %s", reason)

    def _rate_limited(self, error: VenueError) -> None:
        now = time.monotonic()
        if now > self._rate_until + self._rate_backoff:
            self._rate_backoff = self.rate_limit_backoff_s  # a quiet spell: start over
        elif self._rate_until > 0:
            self._rate_backoff = min(self._rate_backoff * 2, self.rate_limit_backoff_max_s)
        if error.retry_after_s is not None:  # the venue said how long: never less
            self._rate_backoff = max(self._rate_backoff, error.retry_after_s)
        self._rate_until = now + self._rate_backoff
        self.rate_limits += 1
        if self.entry is not None and self.up:
            self.entry.hold = f"rate limited ({error.code}), backing off"
        trader = self.trader
        trader.db.risk_event(
            trader.ctx.now,
            "",
            "venue_rate_limited",
            f"rate limited ({error.code} {error.message}): holding orders "
            f"{self._rate_backoff:.1f} s",
            {"code": error.code, "http_status": error.http_status, "backoff_s": self._rate_backoff},
        )
        log.warning("rate limited: holding orders %.1f s", self._rate_backoff)

    # ---- the loop -----------------------------------------------------------------------

    def step(self) -> None:
        entry = self.entry
        if entry is None:
            return
        if self.up:
            if entry.port.stream_errors != self._stream_errors:
                # Closed, even if already reopened: events may be lost; reconcile.
                self.went_down("user stream closed")
            self._stream_errors = entry.port.stream_errors
            if self.up and entry.hold is not None and time.monotonic() >= self._rate_until:
                entry.hold = None  # the rate-limit backoff is over
            if self.up:
                return
        now = time.monotonic()
        if now < self._next_probe:
            return
        episode = self.episodes[-1]
        try:
            if "probe_ok_wall_ns" not in episode:
                entry.port.ping()
                episode["probe_ok_wall_ns"] = time.time_ns()
                entry.port.wake_stream()
            if entry.port.stream_down:
                self._next_probe = now + 0.02  # the woken reader is reconnecting
                return
            self.reconciling = True
            try:
                result = reconcile(self.trader)
            finally:
                self.reconciling = False
        except Exception as error:  # still unreachable (or failed mid-way): probe again later
            episode.pop("probe_ok_wall_ns", None)
            episode["probes_failed"] = episode.get("probes_failed", 0) + 1
            self._delay = min(self._delay * 2, self.retry_max_s)
            self._next_probe = time.monotonic() + self._delay
            log.info("order venue still unreachable (%s); next probe in %.2f s", error, self._delay)
            return
        self._came_back(episode, result)

    def _came_back(self, episode: dict[str, Any], result: dict[str, Any]) -> None:
        trader = self.trader
        assert self.entry is not None
        self.up = True
        self._stream_errors = self.entry.port.stream_errors
        self.entry.hold = None if time.monotonic() >= self._rate_until else self.entry.hold
        now_ns = time.time_ns()
        episode["up_wall_ns"] = now_ns
        episode["seconds_down"] = (now_ns - episode["down_wall_ns"]) / 1e9
        episode["reconcile"] = result
        opened = trader.venue_link_restored()
        episode["trading_resumed"] = opened
        trader.db.risk_event(
            trader.ctx.now,
            "",
            "venue_resumed",
            f"order venue reachable again after {episode['seconds_down']:.2f} s, reconciled; "
            + (
                "trading resumes"
                if opened
                else f"opening still blocked: {trader.risk.opening_reason}"
            ),
            {k: v for k, v in episode.items() if k != "reconcile"},
        )
        log.warning("order venue back after %.2f s: %s", episode["seconds_down"], result)

    def close(self) -> None:
        """Lifts any hold (the end of the run tries its final cancels regardless)."""
        if self.entry is not None:
            self.entry.hold = None
            self.entry.on_error = None


def reconcile(trader: Any) -> dict[str, Any]:
    """Makes the brain agree with the venue after an outage; returns what differed.

    Raises whatever the venue's calls raise (the caller retries later; each step is
    idempotent).
    """
    entry = trader.gateway
    port = entry.port
    oms = trader.oms
    symbols = list(trader.config.symbols)
    result: dict[str, Any] = {
        "fills_added": [],
        "foreign_trades": [],
        "db_only_trades": [],
        "orders_updated": {},
        "orders_never_arrived": [],
        "orphans_cancelled": [],
        "foreign_open_orders": [],
        "cancels_sent": [],
        "positions": {},
        "position_mismatch": {},
    }
    # What the stream already delivered first; then the venue's lists.
    trader.apply_reports(entry.poll_reports())
    trader.dispatch()
    db_ids = {int(row[0]) for row in trader.db.con.execute("SELECT trade_id FROM fills").fetchall()}
    for symbol in symbols:
        venue_ids: set[int] = set()
        for fill in port.fills_since(symbol):
            trade_id = fill.trade_id
            venue_ids.add(trade_id)
            if trade_id in db_ids:
                continue
            client_id = fill.client_id
            if client_id not in oms:
                result["foreign_trades"].append(trade_id)
                continue
            order = oms.get(client_id)
            if trade_id in oms.tracked(client_id).trade_ids:
                continue
            trader.apply_reports(
                [
                    ExecutionReport(
                        client_id,
                        order.state,
                        fill.ts_ns,
                        trade_id=trade_id,
                        last_qty=fill.qty,
                        last_price=fill.price,
                        fee=fill.fee,
                        liquidity=fill.liquidity,
                        venue_order_id=fill.venue_order_id,
                    )
                ]
            )
            result["fills_added"].append(trade_id)
        in_db = {
            int(row[0])
            for row in trader.db.con.execute(
                "SELECT trade_id FROM fills WHERE symbol = ?", [symbol]
            ).fetchall()
        }
        result["db_only_trades"].extend(sorted(in_db - venue_ids))
    venue_open: dict[str, VenueOrder] = {}
    for symbol in symbols:
        for venue_order in port.open_orders(symbol):
            venue_open[venue_order.client_id] = venue_order
    for order in oms.open_orders():
        client_id = order.client_id
        symbol = trader.symbol_name(order.symbol)
        found = venue_open.get(client_id)
        if found is None:
            try:
                found = port.order_status(symbol, client_id=client_id)
            except VenueError as error:
                if not error.unknown_order:
                    raise
                trader.apply_reports(
                    [
                        ExecutionReport(
                            client_id,
                            "rejected",
                            trader.ctx.now,
                            reason="never reached the venue (connection lost)",
                        )
                    ]
                )
                result["orders_never_arrived"].append(client_id)
                continue
        before = order.state
        trader.apply_reports([found.report])
        if order.state != before:
            result["orders_updated"][client_id] = [before, order.state]
    for client_id, found in venue_open.items():
        if client_id in oms and oms.get(client_id).state in OPEN_STATES:
            continue
        if not client_id.startswith(trader.id_prefix):
            result["foreign_open_orders"].append(client_id)
            continue
        # Ours, but the brain thinks it finished: the venue's copy must not trade on.
        answer = port.cancel(client_id, found.symbol)
        if client_id in oms:
            trader.apply_reports([answer])
        result["orphans_cancelled"].append(client_id)
    for order in oms.open_orders():
        if oms.tracked(order.client_id).cancel_requested:
            try:
                answer = port.cancel(order.client_id, trader.symbol_name(order.symbol))
            except VenueError as error:
                if not error.unknown_order:
                    raise
                continue
            trader.apply_reports([answer])
            result["cancels_sent"].append(order.client_id)
    trader.dispatch()
    # The result, as both sides see it now (a fill racing these calls can still differ).
    result["open_orders"] = sorted(order.client_id for order in oms.open_orders())
    result["venue_open_orders"] = sorted(
        venue_order.client_id
        for symbol in symbols
        for venue_order in port.open_orders(symbol)
        if venue_order.client_id.startswith(trader.id_prefix)
    )
    venue = port.positions()
    for index, symbol in enumerate(symbols):
        brain = trader.portfolio.position(index).qty
        result["positions"][symbol] = venue.get(symbol, 0.0)
        if abs(brain - venue.get(symbol, 0.0)) > _EPS:
            result["position_mismatch"][symbol] = [brain, venue.get(symbol, 0.0)]
    differences = sum(
        len(result[key])
        for key in (
            "fills_added",
            "foreign_trades",
            "db_only_trades",
            "orders_updated",
            "orders_never_arrived",
            "orphans_cancelled",
            "position_mismatch",
        )
    )
    result["differences"] = differences
    trader.db.risk_event(
        trader.ctx.now,
        "",
        "venue_reconciled",
        f"reconciled with the order venue: {differences} difference(s) "
        f"({len(result['fills_added'])} fill(s) booked, {len(result['orders_updated'])} "
        f"order(s) updated, {len(result['orphans_cancelled'])} orphan(s) cancelled)",
        result,
    )
    if result["position_mismatch"]:
        trader.db.risk_event(
            trader.ctx.now,
            "",
            "venue_reconcile_mismatch",
            f"brain and venue positions still differ: {result['position_mismatch']}",
            {"position_mismatch": result["position_mismatch"]},
        )
    return result
