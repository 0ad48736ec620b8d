"""Order sizing and price rounding helpers for strategies (pure functions, no state).

Quantities come out rounded down to the lot size, never negative, so a helper can't make an
order bigger than asked. Prices round to the tick in the direction that keeps a quote passive
(bids down, asks up) unless asked otherwise, and come back as the float nearest to the decimal
(``round(n * tick, digits)``), which is the float the feature records hold for that price.
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from twinfeed.orders import Side

Rounding = Literal["down", "up", "nearest"]


@lru_cache(maxsize=64)
def decimals(step: float) -> int:
    """Number of decimals of a tick or lot size, e.g. 0.001 -> 3, 5.0 -> 0."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def round_price(price: float, tick: float, rounding: Rounding = "nearest") -> float:
    """``price`` on the tick grid, rounded down, up or to the nearest tick."""
    steps = price / tick
    # A hair of tolerance so 61800.2 / 0.1 = 618001.9999999 still counts as on the grid.
    if rounding == "down":
        count = math.floor(steps + 1e-9)
    elif rounding == "up":
        count = math.ceil(steps - 1e-9)
    else:
        count = round(steps)
    return round(count * tick, decimals(tick))


def passive_price(price: float, tick: float, side: Side) -> float:
    """Rounds a quote away from the market: bids down, asks up."""
    return round_price(price, tick, "down" if side == "buy" else "up")


def round_qty(qty: float, lot: float) -> float:
    """``qty`` rounded down to a whole number of lots (0 if negative or NaN)."""
    if not qty > 0:
        return 0.0
    return round(math.floor(qty / lot + 1e-9) * lot, decimals(lot))


def fixed_notional(notional: float, price: float, lot: float) -> float:
    """Quantity worth ``notional`` quote currency at ``price``, rounded down to the lot."""
    if not (price > 0):
        return 0.0
    return round_qty(notional / price, lot)


def volatility_scaled(
    risk: float,
    price: float,
    realized_vol: float,
    lot: float,
    vol_floor: float = 1e-5,
    max_qty: float = math.inf,
) -> float:
    """Quantity whose one-sigma move is ``risk`` quote currency: ``risk / (price * vol)``.

    ``realized_vol`` is the feature records' per-bar standard deviation of log mid returns,
    so ``risk`` is "quote currency per bar at one sigma". NaN or tiny volatility is floored at
    ``vol_floor`` (calm markets must not produce huge orders), and the result is capped at
    ``max_qty``.
    """
    if not (price > 0):
        return 0.0
    vol = realized_vol if realized_vol == realized_vol else vol_floor
    vol = max(vol, vol_floor)
    return round_qty(min(risk / (price * vol), max_qty), lot)


def inventory_aware(
    base_qty: float, position: float, max_position: float, side: Side, lot: float
) -> float:
    """Quote size for ``side`` given the current ``position`` and a position limit.

    The side that would add to the position shrinks linearly to 0 at ``|position| ==
    max_position``, and never takes the position past the limit; the side that reduces it
    keeps ``base_qty`` (still within the limit on the other side). So a long market maker
    keeps offering and stops bidding as it nears its limit.
    """
    if max_position <= 0:
        return 0.0
    signed = position if side == "buy" else -position
    room = max_position - signed
    if signed <= 0:
        return round_qty(min(base_qty, room), lot)
    scale = max(0.0, 1.0 - signed / max_position)
    return round_qty(min(base_qty * scale, room), lot)
