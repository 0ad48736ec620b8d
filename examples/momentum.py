"""An example strategy of your own: a taker that follows short-term mid momentum.

    twinfeed backtest --capture data/synth-btcusdt.txt --strategy examples/momentum.py:Momentum
    twinfeed live --capture data/synth-btcusdt.txt --strategy examples/momentum.py:Momentum

On each quote it compares the mid with the mid ``lookback`` quotes ago; a move of more than
``threshold_bps`` sends a market order in its direction, up to ``max_position`` either way.
Quantities follow the instrument's rules (``ctx.instrument()``): the order is rounded to the
lot and is large enough for the minimum notional.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import numpy as np

from twinfeed.records import KIND
from twinfeed.strategy import Context, Strategy

QUOTE = KIND["quote"]


class Momentum(Strategy):
    default_params: ClassVar[dict[str, Any]] = {
        "lookback": 20,
        "threshold_bps": 0.1,
        "order_qty": 0.002,
        "max_position": 0.01,
    }

    def on_start(self, ctx: Context) -> None:
        self.mids: deque[float] = deque(maxlen=int(self.params["lookback"]) + 1)

    def on_record(self, ctx: Context, record: np.void) -> None:
        if record["kind"] != QUOTE or ctx.open_orders():
            return
        mid = float(record["mid"])
        self.mids.append(mid)
        if len(self.mids) < self.mids.maxlen:  # type: ignore[operator]
            return
        move_bps = (mid / self.mids[0] - 1.0) * 1e4
        qty = float(self.params["order_qty"])
        position = ctx.position()
        limit = float(self.params["max_position"])
        if move_bps > self.params["threshold_bps"] and position + qty <= limit:
            ctx.submit("buy", qty, type="market")
        elif move_bps < -self.params["threshold_bps"] and position - qty >= -limit:
            ctx.submit("sell", qty, type="market")
