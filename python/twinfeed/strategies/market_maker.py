"""An example market maker: quotes around the microprice, skews with inventory.

Each decision (every quote/book record in per-row mode; at the end of each decision interval
in batch mode, on the interval's last touch) it computes::

    fair       = microprice - skew_bps * 1e-4 * mid * position / max_position
    half       = mid * 1e-4 * (half_spread_bps + vol_multiplier * realized_vol * 1e4)
    bid        = fair - half, rounded down to the tick, and below the best ask
    ask        = fair + half, rounded up to the tick, and above the best bid
    bid size   = inventory_aware(order_qty, position, max_position, "buy")   (0 at the limit)
    ask size   = inventory_aware(order_qty, position, max_position, "sell")

``realized_vol`` is the latest bar's (per-bar standard deviation of log mid returns); until a
bar has closed the volatility term is 0. A working quote is moved (``replace``) only when its
target price moved by at least ``requote_ticks`` ticks or its size changed, to limit message
traffic and keep queue position; a side whose size drops to 0 is cancelled. Quotes are
post-only (GTX) by default, so a quote that the market crossed on the way expires instead of
taking liquidity, and is re-sent at the next decision. When the feed is not healthy all
quotes are cancelled until it recovers.

The same class runs in both modes: ``wants_batches = True`` (one decision per interval, which
is what the benchmark's ≥1M records/s needs), or per record with ``Backtest(mode="rows")``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from twinfeed.instruments import UnknownInstrumentError
from twinfeed.orders import TERMINAL_STATES, Fill, OrderUpdate, Side, TimeInForce
from twinfeed.records import KIND
from twinfeed.sizing import decimals, inventory_aware
from twinfeed.strategy import Context, FeedStatus, Strategy

_QUOTE = KIND["quote"]
_BOOK = KIND["book"]
_BAR = KIND["bar"]
_SIDES: tuple[Side, Side] = ("buy", "sell")


class MarketMaker(Strategy):
    """Two-sided quoting around the microprice with inventory skew and limits.

    Parameters (``default_params``):
        symbol: Record ``symbol_id`` to quote (0: the config's first symbol).
        tick_size: Price grid; None (default): the instrument's ``tickSize``
            (``ctx.instrument(symbol)``: BTCUSDT 0.1 on USD-M, 0.01 on spot). Give it only to
            override the venue's rules.
        lot_size: Quantity grid; None (default): the instrument's ``stepSize``. A side whose
            size is worth less than the instrument's minimum notional is not quoted (the venue
            would refuse it).
        order_qty: Base quote size per side (base units).
        max_position: Inventory limit (base units): the side adding to the position shrinks
            to 0 as ``|position|`` approaches it.
        half_spread_bps: Minimum distance of each quote from fair value.
        vol_multiplier: Extra half-spread per unit of realized volatility (in bps).
        skew_bps: Fair-value shift against the position at ``|position| == max_position``.
        requote_ticks: Minimum target move (ticks) before a working quote is moved.
        post_only: Send quotes as GTX (post-only) rather than GTC.
    """

    name: ClassVar[str] = "twinfeed.strategies.market_maker:MarketMaker"
    wants_batches: ClassVar[bool] = True
    default_params: ClassVar[dict[str, Any]] = {
        "symbol": 0,
        "tick_size": None,
        "lot_size": None,
        "order_qty": 0.005,
        "max_position": 0.05,
        "half_spread_bps": 0.0,
        "vol_multiplier": 0.0,
        "skew_bps": 0.5,
        "requote_ticks": 1,
        "post_only": True,
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        p = self.params
        for name in ("tick_size", "lot_size"):
            if p[name] is not None and not p[name] > 0:
                raise ValueError(f"{name} must be positive (or None: the instrument's)")
        if p["order_qty"] <= 0 or p["max_position"] <= 0:
            raise ValueError("order_qty and max_position must be positive")
        self._symbol = int(p["symbol"])
        self._tick = 0.0
        self._lot = 0.0
        self._min_notional = 0.0
        self._inverse = False
        self._rules_known = False
        if p["tick_size"] is not None and p["lot_size"] is not None:
            self._set_grid(float(p["tick_size"]), float(p["lot_size"]))
        self._tif: TimeInForce = "GTX" if p["post_only"] else "GTC"
        # Per side: working client id and what was last requested (price, remaining qty).
        self._working: dict[Side, str | None] = {"buy": None, "sell": None}
        self._requested: dict[Side, tuple[float, float]] = {}
        self._filled: dict[str, float] = {}
        self._vol = float("nan")
        self._halted = False

    def _set_grid(self, tick: float, lot: float) -> None:
        self._tick = tick
        self._lot = lot
        self._digits = decimals(tick)
        self._requote = float(self.params["requote_ticks"]) * tick - 1e-12

    def _learn_rules(self, ctx: Context) -> None:
        """Tick, lot and minimum notional from the instrument; parameters override the grid."""
        p = self.params
        instrument = ctx.instrument(self._symbol)
        tick = float(p["tick_size"]) if p["tick_size"] is not None else instrument.tick
        lot = float(p["lot_size"]) if p["lot_size"] is not None else instrument.lot
        self._min_notional = float(instrument.min_notional)
        self._inverse = instrument.inverse
        self._set_grid(tick, lot)

    # ---- callbacks ----------------------------------------------------------------------

    def on_record(self, ctx: Context, record: np.void) -> None:
        """Per-row mode: track volatility from bars, decide on every touch record."""
        kind = int(record["kind"])
        if int(record["symbol_id"]) != self._symbol:
            return
        if kind == _BAR:
            vol = float(record["realized_vol"])
            if vol == vol:
                self._vol = vol
        elif kind in (_QUOTE, _BOOK):
            self._decide(
                ctx,
                float(record["bid_px"]),
                float(record["ask_px"]),
                float(record["microprice"]),
            )

    def on_batch(self, ctx: Context, records: np.ndarray[Any, Any]) -> None:
        """Batch mode: one decision on the batch's last touch, volatility from its last bar."""
        kinds = records["kind"]
        symbols = records["symbol_id"]
        symbol = self._symbol
        bars = np.flatnonzero(kinds == _BAR)
        for row in bars[::-1].tolist():
            if symbols[row] == symbol:
                vol = float(records["realized_vol"][row])
                if vol == vol:
                    self._vol = vol
                break
        # The last touch is almost always among the last few rows: scan back in Python.
        for row in range(len(records) - 1, -1, -1):
            if (kinds[row] == _QUOTE or kinds[row] == _BOOK) and symbols[row] == symbol:
                self._decide(
                    ctx,
                    float(records["bid_px"][row]),
                    float(records["ask_px"][row]),
                    float(records["microprice"][row]),
                )
                return

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self._filled[fill.client_id] = self._filled.get(fill.client_id, 0.0) + fill.qty

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        if update.state in TERMINAL_STATES:
            for side in _SIDES:
                if self._working[side] == update.client_id:
                    self._working[side] = None
                    self._requested.pop(side, None)
            self._filled.pop(update.client_id, None)

    def on_feed_status(self, ctx: Context, status: FeedStatus) -> None:
        self._halted = status != "healthy"
        if self._halted:
            ctx.cancel_all(self._symbol)

    def on_stop(self, ctx: Context) -> None:
        ctx.cancel_all(self._symbol)

    # ---- quoting ------------------------------------------------------------------------

    def targets(
        self, bid_px: float, ask_px: float, microprice: float, position: float
    ) -> dict[Side, tuple[float, float]]:
        """Target (price, size) per side for a touch and position (pure; see module doc)."""
        p = self.params
        mid = (bid_px + ask_px) / 2
        fair = microprice if microprice == microprice else mid
        fair -= p["skew_bps"] * 1e-4 * mid * position / p["max_position"]
        vol_bps = self._vol * 1e4 if self._vol == self._vol else 0.0
        half = mid * 1e-4 * (p["half_spread_bps"] + p["vol_multiplier"] * vol_bps)
        tick = self._tick
        if not tick:
            raise RuntimeError("MarketMaker: no tick size yet (set by the first decision)")
        # On the tick grid: bids rounded down and below the best ask, asks rounded up and
        # above the best bid (the 1e-9 forgives float noise in price / tick).
        bid_ticks = min(math.floor((fair - half) / tick + 1e-9), round(ask_px / tick) - 1)
        ask_ticks = max(math.ceil((fair + half) / tick - 1e-9), round(bid_px / tick) + 1)
        bid = round(bid_ticks * tick, self._digits)
        ask = round(ask_ticks * tick, self._digits)
        lot, limit, size = self._lot, p["max_position"], p["order_qty"]
        bid_size = inventory_aware(size, position, limit, "buy", lot)
        ask_size = inventory_aware(size, position, limit, "sell", lot)
        floor = self._min_notional
        if floor and not self._inverse:
            # The venue refuses orders worth less than its minimum notional (-4164).
            bid_size = bid_size if bid_size * bid >= floor else 0.0
            ask_size = ask_size if ask_size * ask >= floor else 0.0
        return {"buy": (bid, bid_size), "sell": (ask, ask_size)}

    def _decide(self, ctx: Context, bid_px: float, ask_px: float, microprice: float) -> None:
        if self._halted or not (bid_px < ask_px):
            return
        if not self._rules_known:
            self._rules_known = True
            try:
                self._learn_rules(ctx)
            except UnknownInstrumentError:
                if not self._lot:  # no rules and no grid given: never guess a tick
                    raise
        targets = self.targets(bid_px, ask_px, microprice, ctx.position(self._symbol))
        for side in _SIDES:
            price, size = targets[side]
            self._quote(ctx, side, price, size)

    def _quote(self, ctx: Context, side: Side, price: float, size: float) -> None:
        client_id = self._working[side]
        if client_id is None:
            if size > 0:
                self._working[side] = ctx.submit(
                    side,
                    size,
                    price,
                    tif=self._tif,
                    symbol=self._symbol,
                )
                self._requested[side] = (price, size)
            return
        if size <= 0:
            ctx.cancel(client_id)
            self._working[side] = None
            self._requested.pop(side, None)
            return
        last_price, last_size = self._requested[side]
        if abs(price - last_price) >= self._requote or size != last_size:
            filled = self._filled.get(client_id, 0.0)
            ctx.replace(client_id, price, filled + size)
            self._requested[side] = (price, size)
