"""Pre-trade risk checks: every order the strategy sends passes here before the venue sees it.

Checks, in order (the first failure is the reason):

1. ``kill_switch``: trading halted (by an operator, or by the brain on a stale feed for
   orders that would add risk; see :meth:`RiskManager.block_opening`).
2. ``order_size``: ``qty <= max_order_qty``.
3. ``price_band``: a limit price within ``price_band_bps`` of the mid (unknown mid: refused).
4. ``position``: the worst case position if this order and every open order on the same side
   fill, ``|position + working + qty|``, stays within ``max_position``.
5. ``notional``: that worst-case position times the price stays within ``max_notional``.
6. ``open_orders``: fewer than ``max_open_orders`` orders open.
7. ``rate``: a token bucket of ``orders_per_second`` refilled on event time with room for
   ``burst`` orders (replaces count as orders: they are new orders at the venue).

Orders that reduce the position are always allowed through checks 4 and 5, and through the
opening block, so the brain can unwind. Every rejection is a :class:`RiskDecision` with the
check's name and a reason a person can read; the runner records each one in the trade DB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from twinfeed.orders import Order, side_sign

__all__ = ["RiskConfig", "RiskDecision", "RiskManager"]


@dataclass(frozen=True)
class RiskConfig:
    """Limits (base units for quantities, quote currency for notional).

    Defaults fit the example market maker on BTCUSDT (0.005 quotes, 0.05 inventory limit).
    """

    max_order_qty: float = 0.05
    max_position: float = 0.1
    max_notional: float = 10_000.0
    max_open_orders: int = 10
    price_band_bps: float = 50.0
    orders_per_second: float = 50.0
    burst: int = 100
    kill_switch: bool = False

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RiskConfig:
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown risk settings: {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """Outcome of the checks: ``ok``, else the failing ``check`` and a ``reason``."""

    ok: bool
    check: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


_OK = RiskDecision(True)


class RiskManager:
    """Stateful checks (the token bucket, the kill switch, the opening block)."""

    def __init__(self, config: RiskConfig | None = None) -> None:
        self.config = config if config is not None else RiskConfig()
        self.killed = self.config.kill_switch
        self.kill_reason = "kill switch set in the config" if self.killed else ""
        self.opening_blocked = False
        self.opening_reason = ""
        self._tokens = float(self.config.burst)
        self._refilled_ns: int | None = None
        self.rejections: list[tuple[str, RiskDecision]] = []

    # ---- controls -----------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        """Stops all new orders (cancels still go through)."""
        self.killed = True
        self.kill_reason = reason

    def block_opening(self, reason: str) -> None:
        """Refuses orders that would add to a position (reducing orders still pass)."""
        self.opening_blocked = True
        self.opening_reason = reason

    def allow_opening(self) -> None:
        self.opening_blocked = False
        self.opening_reason = ""

    # ---- the check ----------------------------------------------------------------------

    def check(
        self,
        order: Order,
        *,
        now_ns: int,
        position: float,
        mid: float,
        open_orders: list[Order],
    ) -> RiskDecision:
        """Runs the checks for ``order``; records and returns the decision."""
        decision = self._check(order, now_ns, position, mid, open_orders)
        if not decision.ok:
            self.rejections.append((order.client_id, decision))
        return decision

    def _check(
        self, order: Order, now_ns: int, position: float, mid: float, open_orders: list[Order]
    ) -> RiskDecision:
        config = self.config
        sign = side_sign(order.side)
        reduces = position != 0 and (position > 0) != (sign > 0) and order.qty <= abs(position)
        if self.killed:
            return RiskDecision(False, "kill_switch", f"kill switch: {self.kill_reason}")
        if self.opening_blocked and not reduces:
            return RiskDecision(
                False, "kill_switch", f"opening risk blocked: {self.opening_reason}"
            )
        if order.qty > config.max_order_qty:
            return RiskDecision(
                False,
                "order_size",
                f"qty {order.qty:g} exceeds max_order_qty {config.max_order_qty:g}",
                {"qty": order.qty, "limit": config.max_order_qty},
            )
        price = order.price if order.price is not None else mid
        if order.type == "limit":
            if not (mid > 0 and math.isfinite(mid)):
                return RiskDecision(False, "price_band", "no mid price known yet")
            assert order.price is not None
            off_bps = abs(order.price - mid) / mid * 1e4
            if off_bps > config.price_band_bps:
                return RiskDecision(
                    False,
                    "price_band",
                    f"price {order.price:g} is {off_bps:.1f} bps from mid {mid:g} "
                    f"(band {config.price_band_bps:g} bps)",
                    {"price": order.price, "mid": mid, "bps": off_bps},
                )
        working = sum(
            o.remaining_qty
            for o in open_orders
            if o.side == order.side and o.symbol == order.symbol
        )
        worst = position + sign * (working + order.qty)
        if not reduces and abs(worst) > config.max_position + 1e-12:
            return RiskDecision(
                False,
                "position",
                f"worst-case position {worst:+g} (position {position:+g}, working "
                f"{working:g} {order.side}) exceeds max_position {config.max_position:g}",
                {"worst": worst, "position": position, "working": working},
            )
        if not reduces and price == price and abs(worst) * price > config.max_notional:
            return RiskDecision(
                False,
                "notional",
                f"worst-case notional {abs(worst) * price:.2f} exceeds max_notional "
                f"{config.max_notional:g}",
                {"notional": abs(worst) * price},
            )
        if len(open_orders) >= config.max_open_orders:
            return RiskDecision(
                False,
                "open_orders",
                f"{len(open_orders)} orders open (max_open_orders {config.max_open_orders})",
            )
        if not self._take_token(now_ns):
            return RiskDecision(
                False,
                "rate",
                f"order rate above {config.orders_per_second:g}/s (burst {config.burst})",
            )
        return _OK

    def _take_token(self, now_ns: int) -> bool:
        config = self.config
        if self._refilled_ns is not None and now_ns > self._refilled_ns:
            elapsed = (now_ns - self._refilled_ns) / 1e9
            self._tokens = min(
                float(config.burst), self._tokens + elapsed * config.orders_per_second
            )
        if self._refilled_ns is None or now_ns > self._refilled_ns:
            self._refilled_ns = now_ns
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
