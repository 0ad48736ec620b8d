"""Strategies for the trade-parity tests (tests/test_trade_parity.py), loaded by file path.

``UpdateDigestMaker`` is the example MarketMaker whose bid also depends on the order of the
order updates it was handed: a runner that drops or reorders one changes a later request.
``WallClockMaker`` and ``UnseededRandomMaker`` are deliberately broken: their quotes depend on
the wall clock and on an unseeded random generator, so no replay can reproduce them.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Mapping
from typing import Any

from twinfeed.orders import OrderUpdate
from twinfeed.strategies.market_maker import MarketMaker
from twinfeed.strategy import Context


class UpdateDigestMaker(MarketMaker):
    """MarketMaker whose bid moves down 0..2 ticks by a digest of the updates seen, in order."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._digest = 0

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        self._digest = zlib.crc32(f"{update.client_id}:{update.state}".encode(), self._digest)
        super().on_order_update(ctx, update)

    def shift_ticks(self) -> int:
        return self._digest % 3

    def targets(
        self, bid_px: float, ask_px: float, microprice: float, position: float
    ) -> dict[Any, tuple[float, float]]:
        targets = super().targets(bid_px, ask_px, microprice, position)
        bid, size = targets["buy"]
        targets["buy"] = (round(bid - self.shift_ticks() * self._tick, self._digits), size)
        return targets


class WallClockMaker(UpdateDigestMaker):
    """Broken on purpose: the shift comes from the wall clock."""

    def shift_ticks(self) -> int:
        return time.time_ns() // 1_000 % 3


class UnseededRandomMaker(UpdateDigestMaker):
    """Broken on purpose: the shift comes from an unseeded random generator."""

    def shift_ticks(self) -> int:
        return random.randrange(3)
