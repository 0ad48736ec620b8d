"""Synthetic Binance USD-M futures captures, byte-for-byte reproducible from a seed.

The output has the shape of the real hftbacktest recordings (``<local_receive_ns> <frame>``
lines, combined-stream envelopes, one bare REST depth snapshot) so every pipeline path runs on
it: bookTicker, trade, depth diffs with a valid ``U/u/pu`` chain, and a snapshot that arrives
after the diff straddling its ``lastUpdateId`` (so buffered-diff replay is exercised).

The market model is small but coherent:

- a latent fair price follows a Gaussian random walk; the book follows it through order flow;
- the L2 book holds ~50 levels per side on a 0.10 price grid, quantities in 0.001 lots;
- events arrive as a Poisson process; each is a limit add, a cancel or a market order, and each
  gets the next book update id (ids jump like the exchange's do);
- market orders arrive with an aggressor side tilted towards the fair price's lead over the mid,
  consume touch size (up to a few levels), and print one trade per level;
- a bookTicker follows every event that changes the best bid/ask price or size, carrying that
  event's update id, so it equals the book after the depth diff that ends at that id;
- depth diffs cover 100 ms windows of exchange time: ``pu`` is the previous diff's ``u``,
  ``U = pu + 1``, ``u`` the window's last update id, levels at their final quantity (0 removed).

COIN-M (``SynthParams(venue="coinm")``, ``twinfeed data synth --venue coinm``): the same market
as a coin-margined perpetual (``/dapi`` streams, e.g. ``BTCUSD_PERP``): events carry the pair
``ps`` (``BTCUSD``) and sizes are whole contracts (one lot = one contract of 100 USD, Binance's
BTCUSD_PERP ``contractSize``), so the capture has Binance COIN-M's shapes.

Determinism: only ``random.Random(seed)``; integers for prices (ticks) and sizes (lots); fixed
decimal formatting; frames written by hand with a fixed key order and no spaces.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from typing import Any

from twinfeed._atomic import atomic_path

#: 2024-08-09T00:00:00Z, the default first exchange timestamp.
DEFAULT_START_MS = 1_723_161_600_000
#: Local receive clock minus exchange clock, like the real recording (collector ~1.27 s behind).
DEFAULT_CLOCK_OFFSET_MS = -1_270

_TICKS_PER_UNIT = 10  # price grid 0.10
_LOTS_PER_UNIT = 1000  # quantity grid 0.001
_DIFF_WINDOW_US = 100_000
_SNAPSHOT_AT_US = 550_000  # mid-window, after five diffs
_REST_LATENCY_US = 120_000  # the REST body lands after the straddling diff's line
_MAX_LEVEL_LOTS = 60_000


@dataclass(frozen=True)
class SynthParams:
    """Knobs of the market model. The defaults give ~110 book events/s, ~22 trade prints/s."""

    levels: int = 50
    start_price: float = 61_800.0
    events_per_s: float = 110.0
    p_trade: float = 0.2
    p_add: float = 0.45
    fair_vol_ticks: float = 8.0  # fair price standard deviation per sqrt(second), in ticks
    start_ms: int = DEFAULT_START_MS
    clock_offset_ms: int = DEFAULT_CLOCK_OFFSET_MS
    #: ``usdm`` (USD-M futures, sizes in 0.001 lots) or ``coinm`` (sizes in contracts).
    venue: str = "usdm"


def _contracts(lots: int) -> str:
    return str(lots)


def _px(ticks: int) -> str:
    return f"{ticks // _TICKS_PER_UNIT}.{ticks % _TICKS_PER_UNIT}0"


def _qty(lots: int) -> str:
    return f"{lots // _LOTS_PER_UNIT}.{lots % _LOTS_PER_UNIT:03d}"


def _levels_json(levels: list[tuple[int, int]], qty: Any = _qty) -> str:
    return ",".join(f'["{_px(p)}","{qty(q)}"]' for p, q in levels)


class _Market:
    """Book, fair price and id counters; every draw goes through ``self.rng``."""

    def __init__(self, seed: int, symbol: str, params: SynthParams) -> None:
        self.rng = random.Random(seed)
        self.params = params
        self.symbol = symbol
        self.prefix = symbol.lower()
        coinm = params.venue == "coinm"
        self.qty = _contracts if coinm else _qty
        # COIN-M events name the pair as well as the contract.
        self.pair = f',"ps":"{symbol.partition("_")[0]}"' if coinm else ""
        rng = self.rng
        self.update_id = 5_123_000_000_000 + rng.randrange(1_000_000_000)
        self.trade_id = 5_266_000_000 + rng.randrange(1_000_000)
        mid = round(params.start_price * _TICKS_PER_UNIT)
        self.fair = float(mid)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        for side, sign, touch in ((self.bids, -1, mid), (self.asks, 1, mid + 1)):
            price = touch
            for index in range(params.levels):
                side[price] = self._size(touch=index == 0)
                price += sign * (1 if rng.random() < 0.6 else rng.randint(2, 4))
        self.changed_bids: set[int] = set()
        self.changed_asks: set[int] = set()

    # -- draws -------------------------------------------------------------------------------
    def _lognormal_lots(self, median_lots: float, sigma: float) -> int:
        lots = int(median_lots * math.exp(self.rng.gauss(0.0, sigma)))
        return max(1, min(lots, _MAX_LEVEL_LOTS))

    def _size(self, touch: bool = False) -> int:
        return self._lognormal_lots(800.0 if touch else 60.0, 1.0 if touch else 1.6)

    def _depth_index(self, p: float, count: int) -> int:
        """A level index, geometric from the touch (most activity is near it)."""
        index = 0
        while index < count - 1 and self.rng.random() > p:
            index += 1
        return index

    # -- book --------------------------------------------------------------------------------
    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def top(self) -> tuple[int, int, int, int]:
        bid, ask = self.best_bid(), self.best_ask()
        return bid, self.bids[bid], ask, self.asks[ask]

    def spread(self) -> int:
        return self.best_ask() - self.best_bid()

    def drift(self) -> float:
        """How far the fair price leads the mid, in ticks (positive: the book should go up)."""
        return self.fair - (self.best_bid() + self.best_ask()) / 2.0

    def _set(self, is_bid: bool, price: int, lots: int) -> None:
        side, changed = (self.bids, self.changed_bids) if is_bid else (self.asks, self.changed_asks)
        if lots <= 0:
            side.pop(price, None)
        else:
            side[price] = min(lots, _MAX_LEVEL_LOTS)
        changed.add(price)

    def _sorted_side(self, is_bid: bool) -> list[int]:
        return sorted(self.bids, reverse=True) if is_bid else sorted(self.asks)

    # -- events ------------------------------------------------------------------------------
    def add(self) -> None:
        rng = self.rng
        tilt = math.tanh(self.drift() / 3.0)
        bid, ask = self.best_bid(), self.best_ask()
        if ask - bid > 1 and rng.random() < 0.9:
            # A gap at the touch is filled fast, more often from the side the fair price favours.
            is_bid = rng.random() < 0.5 + 0.4 * tilt
            price = rng.randint(bid + 1, ask - 1)
            self._set(is_bid, price, self._size(touch=True) // 2 + 1)
            return
        is_bid = rng.random() < 0.5 + 0.15 * tilt
        prices = self._sorted_side(is_bid)
        base = prices[self._depth_index(0.3, len(prices))]
        price = base - rng.randint(0, 1) if is_bid else base + rng.randint(0, 1)
        side = self.bids if is_bid else self.asks
        self._set(is_bid, price, side.get(price, 0) + self._size())

    def cancel(self) -> None:
        rng = self.rng
        tilt = math.tanh(self.drift() / 3.0)
        # When the fair price leads, the side it moves towards pulls its quotes.
        is_bid = rng.random() < 0.5 - 0.3 * tilt
        prices = self._sorted_side(is_bid)
        adverse = -tilt if is_bid else tilt
        if adverse > 0.5 and rng.random() < 0.5 * adverse:
            price = prices[0]
            self._set(is_bid, price, 0)
            return
        price = prices[self._depth_index(0.35, len(prices))]
        side = self.bids if is_bid else self.asks
        lots = side[price]
        remove = lots if rng.random() < 0.25 else max(1, int(lots * rng.uniform(0.1, 0.9)))
        self._set(is_bid, price, lots - remove)

    def market_order(self) -> tuple[bool, list[tuple[int, int]]]:
        """A taker order: (buyer is aggressor, fills as (price, lots) per level)."""
        rng = self.rng
        buy = rng.random() < 0.5 + 0.4 * math.tanh(self.drift() / 3.0)
        wanted = self._lognormal_lots(25.0, 1.5)
        fills: list[tuple[int, int]] = []
        for price in self._sorted_side(not buy)[:3]:
            side = self.asks if buy else self.bids
            take = min(wanted, side[price])
            fills.append((price, take))
            self._set(not buy, price, side[price] - take)
            wanted -= take
            if wanted == 0:
                break
        return buy, fills

    def keep_depth(self) -> None:
        """Holds each side at levels +-5: far levels appear and fall off as the book moves."""
        levels = self.params.levels
        for is_bid in (True, False):
            side = self.bids if is_bid else self.asks
            while len(side) > levels + 5:
                self._set(is_bid, min(side) if is_bid else max(side), 0)
            while len(side) < levels - 5:
                step = self.rng.randint(1, 3)
                far = min(side) - step if is_bid else max(side) + step
                self._set(is_bid, far, self._size())

    def next_update_id(self) -> int:
        self.update_id += self.rng.randint(1, 40)
        return self.update_id

    # -- frames ------------------------------------------------------------------------------
    def book_ticker(self, update_id: int, ms: int, event_ms: int) -> str:
        bid, bid_lots, ask, ask_lots = self.top()
        return (
            f'{{"stream":"{self.prefix}@bookTicker","data":{{"e":"bookTicker","u":{update_id},'
            f'"s":"{self.symbol}"{self.pair},"b":"{_px(bid)}","B":"{self.qty(bid_lots)}",'
            f'"a":"{_px(ask)}","A":"{self.qty(ask_lots)}","T":{ms},"E":{event_ms}}}}}'
        )

    def trade(self, ms: int, price: int, lots: int, buyer_aggressor: bool) -> str:
        self.trade_id += 1
        maker = "false" if buyer_aggressor else "true"
        return (
            f'{{"stream":"{self.prefix}@trade","data":{{"e":"trade","E":{ms},"T":{ms},'
            f'"s":"{self.symbol}","t":{self.trade_id},"p":"{_px(price)}","q":"{self.qty(lots)}",'
            f'"X":"MARKET","m":{maker}}}}}'
        )

    def depth_diff(self, event_ms: int, ms: int, first: int, final: int, previous: int) -> str:
        bids = [(p, self.bids.get(p, 0)) for p in sorted(self.changed_bids)]
        asks = [(p, self.asks.get(p, 0)) for p in sorted(self.changed_asks)]
        self.changed_bids.clear()
        self.changed_asks.clear()
        return (
            f'{{"stream":"{self.prefix}@depth@100ms","data":{{"e":"depthUpdate","E":{event_ms},'
            f'"T":{ms},"s":"{self.symbol}"{self.pair},"U":{first},"u":{final},"pu":{previous},'
            f'"b":[{_levels_json(bids, self.qty)}],"a":[{_levels_json(asks, self.qty)}]}}}}'
        )

    def snapshot(self, last_update_id: int, event_ms: int, ms: int) -> str:
        bids = [(p, self.bids[p]) for p in sorted(self.bids, reverse=True)]
        asks = [(p, self.asks[p]) for p in sorted(self.asks)]
        return (
            f'{{"lastUpdateId":{last_update_id},"E":{event_ms},"T":{ms},'
            f'"bids":[{_levels_json(bids, self.qty)}],"asks":[{_levels_json(asks, self.qty)}]}}'
        )


class _Clock:
    """Local receive stamps: exchange time + offset + jitter, strictly increasing."""

    def __init__(self, rng: random.Random, offset_ms: int) -> None:
        self.rng = rng
        self.offset_ns = offset_ms * 1_000_000
        self.last_ns = 0

    def arrival(self, exchange_us: int) -> int:
        """When a frame sent at ``exchange_us`` reaches the collector (not yet stamped)."""
        latency_ns = 800_000 + int(self.rng.expovariate(1.0) * 1_500_000)
        return exchange_us * 1000 + self.offset_ns + latency_ns

    def stamp(self, arrival_ns: int) -> int:
        """The line's stamp: the arrival, or just after the previous line (never decreasing)."""
        self.last_ns = max(arrival_ns, self.last_ns + self.rng.randint(300, 1500))
        return self.last_ns


def synthesize(
    seed: int,
    seconds: float = 120.0,
    symbol: str = "BTCUSDT",
    params: SynthParams | None = None,
) -> Iterator[str]:
    """Capture lines (each ending in ``"\\n"``) of ``seconds`` of a synthetic USD-M market.

    ``"".join(synthesize(seed, ...))`` is the same bytes for the same arguments, on any run.
    The REST snapshot is taken 0.55 s in, so shorter captures have none.
    """
    if not symbol.isascii() or not symbol.replace("_", "").isalnum():
        raise ValueError(f"symbol: expected ASCII letters, digits and _, got {symbol!r}")
    params = params or SynthParams()
    market = _Market(seed, symbol, params)
    rng = market.rng
    clock = _Clock(rng, params.clock_offset_ms)
    start_us = params.start_ms * 1000
    end_us = start_us + round(seconds * 1_000_000)
    rate_per_us = params.events_per_s / 1_000_000

    previous_final = market.update_id
    window_end = start_us + _DIFF_WINDOW_US
    window_last_ms = params.start_ms
    snapshot_due = start_us + _SNAPSHOT_AT_US
    snapshot_taken = False
    pending_snapshot: tuple[int, str] | None = None  # (local ns, line) of the REST body
    last_top = market.top()
    now = start_us

    def line(local_ns: int, frame: str) -> str:
        return f"{local_ns} {frame}\n"

    def emit(arrival_ns: int, frame: str) -> Iterator[str]:
        """The frame's line, preceded by the REST snapshot if that arrived first."""
        nonlocal pending_snapshot
        if pending_snapshot is not None and pending_snapshot[0] <= arrival_ns:
            yield line(clock.stamp(pending_snapshot[0]), pending_snapshot[1])
            pending_snapshot = None
        yield line(clock.stamp(arrival_ns), frame)

    def close_window() -> Iterator[str]:
        nonlocal previous_final
        if market.changed_bids or market.changed_asks:
            first = previous_final + 1
            final = market.update_id
            event_ms = window_end // 1000
            frame = market.depth_diff(event_ms, window_last_ms, first, final, previous_final)
            yield from emit(clock.arrival(window_end), frame)
            previous_final = final

    while True:
        step_us = max(1, round(rng.expovariate(rate_per_us)))
        now += step_us
        while window_end <= min(now, end_us):
            yield from close_window()
            window_end += _DIFF_WINDOW_US
        if now >= end_us:
            break
        market.fair += rng.gauss(0.0, params.fair_vol_ticks * math.sqrt(step_us / 1_000_000))
        ms = now // 1000
        window_last_ms = ms
        update_id = market.next_update_id()
        frames: list[str] = []
        draw = rng.random()
        if market.spread() > 1 and rng.random() < 0.6:
            market.add()  # liquidity providers close a gap quickly: BTC's spread is one tick
        elif draw < params.p_trade:
            buyer_aggressor, fills = market.market_order()
            frames.extend(market.trade(ms, p, q, buyer_aggressor) for p, q in fills)
        elif draw < params.p_trade + params.p_add:
            market.add()
        else:
            market.cancel()
        market.keep_depth()
        top = market.top()
        if top != last_top:
            event_ms = ms + (1 if rng.random() < 0.1 else 0)
            frames.append(market.book_ticker(update_id, ms, event_ms))
            last_top = top
        for frame in frames:
            yield from emit(clock.arrival(now), frame)
        if not snapshot_taken and now >= snapshot_due:
            body = market.snapshot(update_id, ms + rng.randint(2, 9), ms)
            pending_snapshot = (clock.arrival(now + _REST_LATENCY_US), body)
            snapshot_taken = True
    if pending_snapshot is not None:
        yield line(clock.stamp(pending_snapshot[0]), pending_snapshot[1])


def write_synth(
    path: str | PathLike[str],
    seed: int,
    seconds: float = 120.0,
    symbol: str = "BTCUSDT",
    params: SynthParams | None = None,
) -> tuple[int, int]:
    """Writes :func:`synthesize` output to ``path``; returns (lines, bytes)."""
    lines = 0
    size = 0
    with (
        atomic_path(path) as partial,
        partial.open("w", encoding="ascii", newline="\n") as out,
    ):
        for text in synthesize(seed, seconds, symbol, params):
            out.write(text)
            lines += 1
            size += len(text)
    return lines, size
