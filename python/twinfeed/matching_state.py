"""The matching engine's state: fixed-point keys, markets, working orders, prepared columns.

Prices and quantities are integers of 1e-8 units, the feature crate's fixed-point scale.
:class:`_Working` holds the one queue-update rule (``see_level``, ``see_print``) that every
path of the engine calls. :class:`RecordColumns` turns a record batch into integer keys, masks
and prefix maxima once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twinfeed.orders import Order
from twinfeed.records import KIND

__all__ = ["SCALE", "RecordColumns", "Touch", "price_key", "qty_units"]

SCALE = 100_000_000
_SCALE_F = float(SCALE)
_QUOTE = KIND["quote"]
_BOOK = KIND["book"]
_TRADE = KIND["trade"]
_NO_PRICE = 1 << 62  # larger than any price key; a bound that matches nothing


def price_key(price: float) -> int:
    """The exact integer key (1e-8 units) of a price as the feature crate parsed it."""
    return round(price * _SCALE_F)


def qty_units(qty: float) -> int:
    """A quantity in integer 1e-8 units (rounded to the nearest unit)."""
    return round(qty * _SCALE_F)


class _Market:
    """Touch and working orders of one symbol."""

    __slots__ = (
        "ask",
        "ask_taken",
        "ask_units",
        "bid",
        "bid_taken",
        "bid_units",
        "known",
        "last_uid",
        "working",
    )

    def __init__(self) -> None:
        self.known = False
        self.bid = 0
        self.bid_units = 0
        self.ask = 0
        self.ask_units = 0
        self.bid_taken = 0
        self.ask_taken = 0
        self.last_uid = 0
        self.working: list[_Working] = []

    def set_touch(self, bid: int, bid_units: int, ask: int, ask_units: int) -> None:
        self.known = True
        self.bid = bid
        self.bid_units = bid_units
        self.ask = ask
        self.ask_units = ask_units
        self.bid_taken = 0
        self.ask_taken = 0


class _Working:
    """Engine-side state of one order at the venue.

    ``key`` is the price key times the side sign (+1 buy, -1 sell), so "better for the order"
    is always "smaller signed opposite price" and one code path serves both sides.
    """

    __slots__ = ("filled", "key", "level", "notional", "order", "queue", "sign", "start", "units")

    def __init__(self, order: Order) -> None:
        self.order = order
        self.sign = 1 if order.side == "buy" else -1
        self.key = self.sign * price_key(order.price) if order.price is not None else 0
        self.units = qty_units(order.qty)
        self.filled = 0
        self.notional = 0.0
        self.queue = -1.0  # queue ahead in units; < 0 while unknown
        self.level = 0.0  # displayed size at the order's price when last seen
        #: Share of the displayed size ahead of it when first seen (the engine's queue_fraction).
        self.start = 1.0

    # The queue-update rule (rule 5 of :mod:`twinfeed.matching`), the one definition every
    # path (per row, per order, inlined hot loop) calls.

    def see_level(self, size: float) -> None:
        """The order's level shows ``size`` (0: it is empty in the real book). An unknown
        queue becomes ``start`` x the size (the engine's ``queue_fraction``); a size that
        shrank by more than prints explained shrinks the
        queue ahead in proportion; the queue never exceeds the size."""
        queue = self.queue
        if queue < 0:
            self.level = size
            self.queue = size * self.start
            return
        level = self.level
        if size < level:
            queue = queue * size / level
        self.level = size
        self.queue = size if queue > size else queue

    def see_print(self, units: int) -> float:
        """A print of ``units`` at the order's price (queue known): it consumes the queue
        ahead first; returns what passed the queue (available to fill the order)."""
        passed = units - self.queue
        self.queue = max(self.queue - units, 0.0)
        self.level = max(self.level - units, 0.0)
        return passed


class RecordColumns:
    """Columns of a record batch prepared for the engine (integer keys, masks, prefix maxima).

    Build it once per batch and pass it to :meth:`MatchingEngine.process` for consecutive
    ranges of rows; :meth:`MatchingEngine.on_batch` does both. The per-batch precomputation
    (stale-touch guard within the batch, bounds of touch and print prices per row) is what
    keeps the per-range cost at a few numpy calls.
    """

    __slots__ = (
        "_bound_lists",
        "_lists",
        "_row_lists",
        "ask",
        "ask_units",
        "bid",
        "bid_units",
        "fresh",
        "high",
        "is_touch",
        "is_trade",
        "last_fresh",
        "local_ns",
        "low",
        "monotonic",
        "n",
        "single_symbol",
        "symbol",
        "trade_key",
        "trade_units",
        "uid_before",
        "uid_through",
        "update_id",
    )

    def __init__(self, records: np.ndarray[Any, Any]) -> None:
        n = self.n = len(records)
        kind = records["kind"]
        self.symbol = records["symbol_id"].astype(np.int64)
        self.local_ns = records["local_ns"].astype(np.int64)
        self.update_id = records["update_id"].astype(np.int64)
        bid_px, bid_qty = records["bid_px"], records["bid_qty"]
        ask_px, ask_qty = records["ask_px"], records["ask_qty"]
        trade_px, trade_qty = records["trade_px"], records["trade_qty"]
        with np.errstate(invalid="ignore"):
            self.is_touch = ((kind == _QUOTE) | (kind == _BOOK)) & np.isfinite(
                bid_px + bid_qty + ask_px + ask_qty
            )
            self.is_trade = (kind == _TRADE) & np.isfinite(trade_px + trade_qty) & (trade_qty != 0)
            self.bid = _keys(bid_px, self.is_touch)
            self.bid_units = _keys(bid_qty, self.is_touch)
            self.ask = _keys(ask_px, self.is_touch)
            self.ask_units = _keys(ask_qty, self.is_touch)
            self.trade_key = _keys(trade_px, self.is_trade)
            self.trade_units = np.abs(_keys(trade_qty, self.is_trade))
        self.monotonic = bool(n < 2 or (np.diff(self.local_ns) >= 0).all())
        self.single_symbol = bool(n == 0 or (self.symbol == self.symbol[0]).all())
        self._lists: tuple[list[Any], ...] | None = None
        self._row_lists: tuple[list[Any], ...] | None = None
        self._bound_lists: tuple[list[Any], ...] | None = None
        if not self.single_symbol or n == 0:
            return
        # Stale-touch guard within the batch: a touch row is fresh if its id is unknown (0) or
        # newer than every touch id before it in the batch. That equals the engine's rule once
        # the engine's last id is the batch's last id so far (checked per range).
        touch_uid = np.where(self.is_touch, self.update_id, 0)
        self.uid_through = np.maximum.accumulate(touch_uid)
        self.uid_before = np.empty_like(self.uid_through)
        self.uid_before[0] = 0
        self.uid_before[1:] = self.uid_through[:-1]
        self.fresh = self.is_touch & ((self.update_id == 0) | (self.update_id > self.uid_before))
        index = np.arange(n)
        self.last_fresh = np.maximum.accumulate(np.where(self.fresh, index, -1))
        # Lowest and highest price a row shows (fresh touch: bid/ask; print: its price): a row
        # can only matter to a buy at or above ``low`` or a sell at or below ``high``.
        self.low = np.where(
            self.fresh, self.bid, np.where(self.is_trade, self.trade_key, _NO_PRICE)
        )
        self.high = np.where(
            self.fresh, self.ask, np.where(self.is_trade, self.trade_key, -_NO_PRICE)
        )

    def bound_lists(self) -> tuple[list[Any], ...]:
        """Python lists of low, high, last_fresh and uid_through (single-symbol batches)."""
        if self._bound_lists is None:
            self._bound_lists = (
                self.low.tolist(),
                self.high.tolist(),
                self.last_fresh.tolist(),
                self.uid_through.tolist(),
            )
        return self._bound_lists

    def row_lists(self) -> tuple[list[Any], ...]:
        """Python lists for the one-row path: is_touch, is_trade, symbol, update_id, local_ns,
        bid, bid_units, ask, ask_units, trade_key, trade_units (built once, on demand)."""
        if self._row_lists is None:
            is_touch, local_ns, bid, bid_units, ask, ask_units, trade_key, trade_units = (
                self.lists()
            )
            self._row_lists = (
                is_touch,
                self.is_trade.tolist(),
                self.symbol.tolist(),
                self.update_id.tolist(),
                local_ns,
                bid,
                bid_units,
                ask,
                ask_units,
                trade_key,
                trade_units,
            )
        return self._row_lists

    def lists(self) -> tuple[list[Any], ...]:
        """Python lists of the columns the per-row logic reads (built once, on demand)."""
        if self._lists is None:
            self._lists = (
                self.is_touch.tolist(),
                self.local_ns.tolist(),
                self.bid.tolist(),
                self.bid_units.tolist(),
                self.ask.tolist(),
                self.ask_units.tolist(),
                self.trade_key.tolist(),
                self.trade_units.tolist(),
            )
        return self._lists


def _keys(values: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``round(value * 1e8)`` as int64 where ``mask``, else 0 (rounds like :func:`price_key`)."""
    scaled = np.rint(np.where(mask, values, 0.0) * _SCALE_F)
    return scaled.astype(np.int64)


@dataclass(frozen=True, slots=True)
class Touch:
    """Best bid and ask of one symbol as the engine knows it (sizes net of own takes)."""

    bid_px: float
    bid_qty: float
    ask_px: float
    ask_qty: float
    update_id: int
