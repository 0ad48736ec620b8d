"""The matching engine's batch fast paths.

:class:`BatchPaths` is mixed into :class:`twinfeed.matching.MatchingEngine`: for a range of
rows with no request arriving in between it produces exactly the state changes and events of
the per-row definition (``MatchingEngine._one_row``), skipping rows that cannot matter (see
"Fast path" in :mod:`twinfeed.matching`; property tests check the equality). The state it
works on is :mod:`twinfeed.matching_state`'s.
"""

from __future__ import annotations

from dataclasses import replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from twinfeed.matching_state import _NO_PRICE, RecordColumns, _Market, _Working
from twinfeed.orders import Event, Fill

__all__ = ["BatchPaths"]


class BatchPaths:
    """The engine's batch fast paths (a mixin of :class:`twinfeed.matching.MatchingEngine`)."""

    if TYPE_CHECKING:
        _events: list[Event]
        _fill_ids: int
        _markets: dict[int, _Market]
        per_order_min_rows: int
        short_segment_rows: int

        def _market(self, symbol: int) -> _Market: ...
        def _one_row(self, columns: RecordColumns, row: int) -> None: ...
        def _touch_row(
            self, market: _Market, bid: int, bid_units: int, ask: int, ask_units: int, ts: int
        ) -> None: ...
        def _trade_row(self, market: _Market, trade_key: int, units: int, ts: int) -> None: ...
        def _fill(
            self, working: _Working, units: int, key: int, liquidity: Any, ts: int
        ) -> None: ...
        def _maker_fill_rest(self, working: _Working, ts: int) -> None: ...

    def _bounds(self, market: _Market) -> tuple[int, int]:
        """Highest working buy key and lowest working sell price key (or no-match bounds)."""
        buy = -_NO_PRICE
        sell = _NO_PRICE
        for working in market.working:
            if working.sign > 0:
                buy = max(buy, working.key)
            else:
                sell = min(sell, -working.key)
        return buy, sell

    def _segment(self, columns: RecordColumns, start: int, stop: int) -> None:
        """Rows ``start:stop``, with no request arriving in between: per-row logic on the rows
        that can touch a working order, the touch of the others applied in bulk."""
        if stop - start == 1:
            self._one_row(columns, start)
            return
        if columns.single_symbol:
            market = self._market(int(columns.symbol[start]))
            if market.last_uid == columns.uid_before[start]:
                self._fast_segment(columns, market, start, stop)
                return
            symbols = [int(columns.symbol[start])]
            masks: list[np.ndarray[Any, Any] | None] = [None]
        else:
            window = columns.symbol[start:stop]
            symbols = np.unique(window).tolist()
            masks = [window == symbol for symbol in symbols]
        relevant: np.ndarray[Any, Any] | None = None
        updates = []
        for symbol, mask in zip(symbols, masks, strict=True):
            market = self._market(symbol)
            touch = columns.is_touch[start:stop]
            if mask is not None:
                touch = touch & mask
            uid = columns.update_id[start:stop]
            # Stale-touch rule: applied iff the id is unknown (0) or newer than all before it.
            touch_uid = np.where(touch, uid, 0)
            previous = np.empty_like(touch_uid)
            np.maximum.accumulate(touch_uid[:-1], out=previous[1:])
            previous[0] = 0
            np.maximum(previous, market.last_uid, out=previous)
            applied = touch & ((uid == 0) | (uid > previous))
            updates.append((market, applied, int(touch_uid.max())))
            if not market.working:
                continue
            buy, sell = self._bounds(market)
            bid = columns.bid[start:stop]
            ask = columns.ask[start:stop]
            mine = applied & ((bid <= buy) | (ask <= buy) | (ask >= sell) | (bid >= sell))
            trade = columns.is_trade[start:stop]
            if mask is not None:
                trade = trade & mask
            trade_key = columns.trade_key[start:stop]
            mine |= trade & ((trade_key <= buy) | (trade_key >= sell))
            relevant = mine if relevant is None else relevant | mine
        if relevant is not None:
            rows = np.flatnonzero(relevant)
            if len(rows):
                self._relevant_rows(columns, rows + start)
        for market, applied, max_uid in updates:
            applied_rows = np.flatnonzero(applied)
            if len(applied_rows):
                # Idempotent for rows the per-row logic already applied: no takes happen inside
                # a segment, so the taken counters are zero either way.
                row = start + int(applied_rows[-1])
                market.set_touch(
                    int(columns.bid[row]),
                    int(columns.bid_units[row]),
                    int(columns.ask[row]),
                    int(columns.ask_units[row]),
                )
            market.last_uid = max(market.last_uid, max_uid)

    def _fast_segment(self, columns: RecordColumns, market: _Market, start: int, stop: int) -> None:
        """Single symbol, engine's last id equal to the batch's so far (it processed the rows
        before): the batch's fresh mask is exactly the applied mask, and the precomputed price
        bounds pick the rows that matter."""
        if market.working and stop - start <= self.short_segment_rows:
            # Short segments: a Python scan beats the fixed cost of numpy calls.
            low, high, last_fresh, uid_through = columns.bound_lists()
            buy, sell = self._bounds(market)
            rows = [row for row in range(start, stop) if low[row] <= buy or high[row] >= sell]
            if rows:
                self._fast_rows(columns, market, rows)
            row = last_fresh[stop - 1]
            if row >= start:
                _, _, _, _, _, bid, bid_units, ask, ask_units, _, _ = columns.row_lists()
                market.set_touch(bid[row], bid_units[row], ask[row], ask_units[row])
                market.last_uid = max(market.last_uid, uid_through[stop - 1])
        else:
            if market.working:
                buy, sell = self._bounds(market)
                relevant = (columns.low[start:stop] <= buy) | (columns.high[start:stop] >= sell)
                found = np.flatnonzero(relevant)
                if len(found) >= self.per_order_min_rows and self._independent(market):
                    self._per_order_rows(columns, market, start, stop)
                elif len(found):
                    self._fast_rows(columns, market, (found + start).tolist())
            row = int(columns.last_fresh[stop - 1])
            if row >= start:
                market.set_touch(
                    int(columns.bid[row]),
                    int(columns.bid_units[row]),
                    int(columns.ask[row]),
                    int(columns.ask_units[row]),
                )
                market.last_uid = max(market.last_uid, int(columns.uid_through[stop - 1]))
        # Setting the touch again is idempotent for a row the per-row logic applied: no takes
        # happen inside a segment, so the taken counters are zero either way.

    @staticmethod
    def _independent(market: _Market) -> bool:
        """True if no two working orders share a side and price (so no print is shared) and
        none is reduce-only (whose fills depend on the others' through the position)."""
        if any(working.order.reduce_only for working in market.working):
            return False
        levels = {working.key * 2 + (working.sign > 0) for working in market.working}
        return len(levels) == len(market.working)

    def _order_rows(
        self, columns: RecordColumns, working: _Working, start: int, stop: int
    ) -> list[int]:
        """Rows of ``start:stop`` that can change one order's state: opposite touch at or
        through it, prints at or through it, and visible-size rows whose size differs from
        the previous visible row's (or that follow a print at its price). Every other row is
        a no-op for the order under rules 5-6 (hidden rows change nothing; an unchanged
        visible size leaves level and queue as they are)."""
        fresh = columns.fresh[start:stop]
        bid = columns.bid[start:stop]
        ask = columns.ask[start:stop]
        trade = columns.is_trade[start:stop]
        trade_key = columns.trade_key[start:stop]
        if working.sign > 0:
            price = working.key
            cross = fresh & (ask <= price)
            visible = fresh & (bid <= price) & ~cross
            size = np.where(bid == price, columns.bid_units[start:stop], 0)
            prints = trade & (trade_key <= price)
        else:
            price = -working.key
            cross = fresh & (bid >= price)
            visible = fresh & (ask >= price) & ~cross
            size = np.where(ask == price, columns.ask_units[start:stop], 0)
            prints = trade & (trade_key >= price)
        relevant = cross | prints
        shown = np.flatnonzero(visible)
        if len(shown):
            sizes = size[shown]
            prints_before = np.cumsum(prints)[shown]
            changed = np.empty(len(shown), dtype=bool)
            changed[0] = True
            np.not_equal(sizes[1:], sizes[:-1], out=changed[1:])
            changed[1:] |= prints_before[1:] != prints_before[:-1]
            relevant[shown[changed]] = True
        return (np.flatnonzero(relevant) + start).tolist()

    def _per_order_rows(
        self, columns: RecordColumns, market: _Market, start: int, stop: int
    ) -> None:
        """Each working order over its own relevant rows, then events merged into exactly the
        per-row order: by row, then time priority (valid when no two orders share a level)."""
        is_touch, ts, bid, bid_units, ask, ask_units, trade_key, trade_units = columns.lists()
        outer = self._events
        first_fill_id = self._fill_ids
        tagged: list[tuple[int, int, int, Event]] = []
        for priority, working in enumerate(tuple(market.working)):
            rows = self._order_rows(columns, working, start, stop)
            if not rows:
                continue
            events: list[Event] = []
            self._events = events
            buy = working.sign > 0
            key = working.key
            for row in rows:
                if is_touch[row]:
                    if buy:
                        same, size_units, opposite = bid[row], bid_units[row], ask[row]
                    else:
                        same, size_units, opposite = -ask[row], ask_units[row], -bid[row]
                    if opposite <= key:
                        self._maker_fill_rest(working, ts[row])
                    else:
                        working.see_level(float(size_units) if same == key else 0.0)
                        continue
                else:
                    self._trade_one(working, trade_key[row], trade_units[row], ts[row])
                if events:
                    tagged.extend((row, priority, index, e) for index, e in enumerate(events))
                    events.clear()
                    if not working.order.is_open:
                        break
        self._events = outer
        if tagged:
            tagged.sort(key=lambda item: (item[0], item[1], item[2]))
            # Fill ids were handed out order by order: renumber them in event order.
            fill_id = first_fill_id
            for _, _, _, event in tagged:
                if isinstance(event, Fill):
                    fill_id += 1
                    event = replace(event, fill_id=fill_id)
                outer.append(event)

    def _trade_one(self, working: _Working, trade_key: int, units: int, ts: int) -> None:
        """``_trade_row`` for one order that shares its level with no other order."""
        key = working.key
        signed = working.sign * trade_key
        if signed < key:
            self._maker_fill_rest(working, ts)
            return
        if signed > key or working.queue < 0:
            return
        passed = working.see_print(units)
        if passed >= 1.0:
            self._fill(working, min(working.units - working.filled, int(passed)), key, "maker", ts)

    def _fast_rows(self, columns: RecordColumns, market: _Market, rows: list[int]) -> None:
        """The per-row logic of ``_touch_row``/``_trade_row`` inlined for the hot loop.

        The market's touch is not set row by row: nothing inside a segment reads it, and the
        segment's last applied touch is set afterwards.
        """
        lists = columns.lists()
        if len(rows) == 1:
            values: Any = [(item[rows[0]],) for item in lists]
        else:
            gather = itemgetter(*rows)
            values = [gather(item) for item in lists]
        workings = market.working
        for is_touch, ts, b, bu, a, au, trade_key, trade_units in zip(*values, strict=True):
            if not is_touch:
                self._trade_row(market, trade_key, trade_units, ts)
                if not workings:
                    return
                continue
            crossed = None
            for working in workings:
                key = working.key
                if working.sign > 0:
                    if a <= key:
                        crossed = [working] if crossed is None else [*crossed, working]
                        continue
                    if b > key:
                        continue
                    size = float(bu) if b == key else 0.0
                else:
                    if -b <= key:
                        crossed = [working] if crossed is None else [*crossed, working]
                        continue
                    if -a > key:
                        continue
                    size = float(au) if -a == key else 0.0
                working.see_level(size)
            if crossed is not None:
                for working in crossed:
                    self._maker_fill_rest(working, ts)
                if not workings:
                    return

    def _relevant_rows(self, columns: RecordColumns, rows: np.ndarray[Any, Any]) -> None:
        symbol = columns.symbol[rows].tolist()
        is_touch = columns.is_touch[rows].tolist()
        ts = columns.local_ns[rows].tolist()
        bid = columns.bid[rows].tolist()
        bid_units = columns.bid_units[rows].tolist()
        ask = columns.ask[rows].tolist()
        ask_units = columns.ask_units[rows].tolist()
        trade_key = columns.trade_key[rows].tolist()
        trade_units = columns.trade_units[rows].tolist()
        markets = self._markets
        for index in range(len(rows)):
            market = markets[symbol[index]]
            if not market.working:
                continue
            if is_touch[index]:
                self._touch_row(
                    market, bid[index], bid_units[index], ask[index], ask_units[index], ts[index]
                )
            else:
                self._trade_row(market, trade_key[index], trade_units[index], ts[index])
