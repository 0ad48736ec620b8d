"""The matching engine's rules on hand-made records, and its properties under hypothesis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import twinfeed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twinfeed.matching import MatchingEngine, fills_and_updates
from twinfeed.orders import Fill, Order, OrderUpdate

QUOTE, BOOK, TRADE, BAR = (twinfeed.KIND[name] for name in ("quote", "book", "trade", "bar"))
FLOAT_FIELDS = [name for name, kind, _ in twinfeed.record_fields() if kind == "<f8"]


def records(*rows: dict[str, Any]) -> np.ndarray[Any, Any]:
    """Records with NaN floats except the fields given; ``local_ns`` defaults to the row index."""
    array = np.zeros(len(rows), dtype=twinfeed.record_dtype())
    for name in FLOAT_FIELDS:
        array[name] = np.nan
    for index, row in enumerate(rows):
        array[index]["local_ns"] = index
        for name, value in row.items():
            array[index][name] = value
    return array


def quote(ts: int, bid: float, bid_qty: float, ask: float, ask_qty: float, uid: int = 0) -> dict:
    return {
        "kind": QUOTE,
        "local_ns": ts,
        "bid_px": bid,
        "bid_qty": bid_qty,
        "ask_px": ask,
        "ask_qty": ask_qty,
        "update_id": uid,
    }


def trade(ts: int, price: float, signed_qty: float) -> dict:
    return {"kind": TRADE, "local_ns": ts, "trade_px": price, "trade_qty": signed_qty}


def order(cid: str, side: str, qty: float, price: float | None = None, **kw: Any) -> Order:
    kind = "market" if price is None else "limit"
    symbol = kw.pop("symbol", 0)
    return Order(cid, symbol, side, qty, price, type=kw.pop("type", kind), **kw)  # type: ignore[arg-type]


def states(events: list) -> list[tuple[str, str]]:
    return [(e.client_id, e.state) for e in events if isinstance(e, OrderUpdate)]


def fills(events: list) -> list[tuple[str, float, float, str]]:
    return [(f.client_id, f.price, f.qty, f.liquidity) for f in events if isinstance(f, Fill)]


def test_latency_delays_arrival_until_a_record_at_or_after_it() -> None:
    engine = MatchingEngine(latency_ns=10)
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 2.0))[0])
    engine.submit(order("a", "buy", 0.5), now_ns=5)
    assert engine.on_batch(records(quote(14, 100.0, 1.0, 100.1, 2.0))) == []
    events = engine.on_batch(records(quote(15, 100.0, 1.0, 100.1, 2.0)))
    assert states(events) == [("a", "acked"), ("a", "filled")]
    assert fills(events) == [("a", 100.1, 0.5, "taker")]
    assert events[1].ts_ns == 15  # type: ignore[union-attr]


def test_market_order_beyond_touch_size_sweeps_at_slippage() -> None:
    engine = MatchingEngine(taker_fee_bps=5.0, sweep_slippage_bps=10.0)
    engine.on_record(records(quote(0, 100.0, 1.0, 100.0 + 0.1, 0.3))[0])
    engine.submit(order("a", "buy", 0.5), now_ns=1)
    engine.submit(order("b", "buy", 0.1), now_ns=1)
    events = engine.advance(1)
    got = fills(events)
    assert got[0] == ("a", 100.1, 0.3, "taker")
    assert got[1][:3] == ("a", pytest.approx(100.1 * 1.001), 0.2)
    # The touch was taken by order a: b sweeps too.
    assert got[2][:3] == ("b", pytest.approx(100.1 * 1.001), 0.1)
    first = next(e for e in events if isinstance(e, Fill))
    assert first.fee == pytest.approx(100.1 * 0.3 * 5e-4)


def test_market_order_without_touch_is_rejected() -> None:
    engine = MatchingEngine()
    engine.submit(order("a", "sell", 1.0), now_ns=0)
    events = engine.advance(0)
    assert states(events) == [("a", "rejected")]
    assert events[0].reason == "no market"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tif", "expected_states", "expected_fills"),
    [
        ("GTC", [("a", "acked"), ("a", "partially_filled")], [("a", 100.1, 0.4, "taker")]),
        (
            "IOC",
            [("a", "acked"), ("a", "partially_filled"), ("a", "expired")],
            [("a", 100.1, 0.4, "taker")],
        ),
        ("GTX", [("a", "expired")], []),
        # Fill-or-kill: 1.0 wanted, 0.4 shown at the touch: expires without filling.
        ("FOK", [("a", "expired")], []),
    ],
)
def test_crossing_limit_order(tif: str, expected_states: list, expected_fills: list) -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 0.4))[0])
    engine.submit(order("a", "buy", 1.0, 100.3, tif=tif), now_ns=1)
    events = engine.advance(1)
    assert states(events) == expected_states
    assert fills(events) == expected_fills
    if tif == "GTC":
        # The rest rests at 100.3 with nothing ahead; the next touch still crossing fills it.
        assert engine.queue_ahead("a") == 0.0
        events = engine.on_record(records(quote(2, 100.0, 1.0, 100.2, 0.4))[0])
        assert fills(events) == [("a", 100.3, 0.6, "maker")]


def test_ioc_that_does_not_cross_expires() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 0.4))[0])
    engine.submit(order("a", "buy", 1.0, 100.0, tif="IOC"), now_ns=1)
    assert states(engine.advance(1)) == [("a", "expired")]


def test_fok_fills_entirely_at_the_touch_or_not_at_all() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 0.4))[0])
    engine.submit(order("fits", "buy", 0.4, 100.3, tif="FOK"), now_ns=1)
    engine.submit(order("rest", "buy", 0.1, 100.3, tif="FOK"), now_ns=1)  # touch used up
    engine.submit(order("away", "sell", 0.1, 100.2, tif="FOK"), now_ns=1)  # does not cross
    events = engine.advance(1)
    assert fills(events) == [("fits", 100.1, 0.4, "taker")]
    assert states(events) == [
        ("fits", "acked"),
        ("fits", "filled"),
        ("rest", "expired"),
        ("away", "expired"),
    ]
    assert engine.orders["rest"].reason == "FOK: could not fill entirely"


def test_expire_ends_an_open_order_expired_and_is_refused_once_finished() -> None:
    engine = MatchingEngine(latency_ns=5)
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 0.4))[0])
    engine.submit(order("a", "buy", 1.0, 99.0), now_ns=1)
    engine.advance(6)
    engine.expire("a", 10, "goodTillDate reached")
    assert engine.advance(14) == []  # travels like a cancel
    events = engine.advance(15)
    assert states(events) == [("a", "expired")]
    assert engine.orders["a"].reason == "goodTillDate reached"
    engine.expire("a", 20, "again")
    (update,) = engine.advance(25)
    assert isinstance(update, OrderUpdate) and update.reason == "cancel refused: order is expired"


def test_queue_position_consumed_by_prints_then_partial_fills() -> None:
    engine = MatchingEngine(maker_fee_bps=-1.0)
    engine.on_record(records(quote(0, 100.0, 2.0, 100.1, 1.0))[0])
    engine.submit(order("a", "buy", 1.0, 100.0), now_ns=1)
    engine.advance(1)
    assert engine.queue_ahead("a") == 2.0
    events = engine.on_batch(records(trade(2, 100.0, -1.5), trade(3, 100.0, -0.7)))
    assert engine.queue_ahead("a") == 0.0
    assert fills(events) == [("a", 100.0, pytest.approx(0.2), "maker")]
    fill = next(e for e in events if isinstance(e, Fill))
    assert fill.fee == pytest.approx(-100.0 * 0.2 * 1e-4)
    assert fill.queue_ns == 2
    events = engine.on_record(records(trade(4, 100.0, -5.0))[0])
    assert fills(events) == [("a", 100.0, pytest.approx(0.8), "maker")]
    assert states(events) == [("a", "filled")]


def test_prints_at_one_level_never_fill_more_than_their_size() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 1.0))[0])
    engine.submit(order("a", "buy", 1.0, 100.0), now_ns=1)
    engine.submit(order("b", "buy", 1.0, 100.0), now_ns=1)
    engine.advance(1)
    events = engine.on_record(records(trade(2, 100.0, -1.5))[0])
    assert fills(events) == [("a", 100.0, 0.5, "maker")]
    events = engine.on_record(records(trade(3, 100.0, -1.0))[0])
    assert fills(events) == [("a", 100.0, 0.5, "maker"), ("b", 100.0, 0.5, "maker")]


def test_cancels_shrink_queue_ahead_in_proportion() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 4.0, 100.1, 1.0))[0])
    engine.submit(order("a", "buy", 1.0, 100.0), now_ns=1)
    engine.advance(1)
    engine.on_record(records(trade(2, 100.0, -1.0))[0])  # ahead 3, level 3
    engine.on_record(records(quote(3, 100.0, 1.5, 100.1, 1.0))[0])  # 1.5 cancelled of 3
    assert engine.queue_ahead("a") == pytest.approx(1.5)
    engine.on_record(records(quote(4, 100.0, 5.0, 100.1, 1.0))[0])  # joins behind
    assert engine.queue_ahead("a") == pytest.approx(1.5)
    engine.on_record(records(quote(5, 99.9, 5.0, 100.0, 1.0))[0])  # our level is empty
    # The opposite touch reached our price: filled at our price as maker.
    assert engine.orders["a"].state == "filled"
    assert engine.orders["a"].avg_price == 100.0


def test_new_better_level_has_no_queue_and_behind_touch_is_unknown() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 4.0, 100.3, 1.0))[0])
    engine.submit(order("inside", "sell", 1.0, 100.2), now_ns=1)
    engine.submit(order("behind", "sell", 1.0, 100.5), now_ns=1)
    engine.advance(1)
    assert engine.queue_ahead("inside") == 0.0
    assert engine.queue_ahead("behind") is None
    engine.on_record(records(trade(2, 100.2, 0.4))[0])
    assert engine.orders["inside"].filled_qty == pytest.approx(0.4)
    engine.on_record(records(quote(3, 100.4, 1.0, 100.5, 3.0))[0])
    assert engine.queue_ahead("behind") == 3.0
    assert engine.orders["inside"].state == "filled"  # the bid went through 100.2


def test_trade_through_fills_whole_order() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 4.0, 100.3, 1.0))[0])
    engine.submit(order("a", "buy", 2.0, 100.0), now_ns=1)
    engine.advance(1)
    events = engine.on_record(records(trade(2, 99.9, -0.001))[0])
    assert fills(events) == [("a", 100.0, 2.0, "maker")]


def test_stale_touch_is_ignored() -> None:
    engine = MatchingEngine()
    engine.on_batch(
        records(quote(0, 100.0, 4.0, 100.3, 1.0, uid=10), quote(1, 99.0, 1, 99.1, 1, uid=9))
    )
    touch = engine.touch(0)
    assert touch is not None and touch.bid_px == 100.0 and touch.update_id == 10


def test_cancel_and_replace() -> None:
    engine = MatchingEngine(latency_ns=2)
    engine.on_record(records(quote(0, 100.0, 4.0, 100.3, 1.0))[0])
    engine.submit(order("a", "buy", 1.0, 100.0), now_ns=0)
    engine.replace("a", 100.0, 0.5, now_ns=1)  # same price, smaller: keeps its place
    engine.advance(3)
    assert engine.orders["a"].qty == 0.5 and engine.queue_ahead("a") == 4.0
    engine.replace("a", 100.1, 0.5, now_ns=3)  # new better price: loses its place
    engine.advance(5)
    assert engine.queue_ahead("a") == 0.0 and engine.orders["a"].price == 100.1
    engine.cancel("a", now_ns=5)
    events = engine.advance(7)
    assert states(events) == [("a", "cancelled")]
    engine.cancel("a", now_ns=7)
    events = engine.advance(9)
    assert events[0].reason == "cancel refused: order is cancelled"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="duplicate"):
        engine.submit(order("a", "buy", 1.0, 100.0), now_ns=9)


def test_invalid_orders_are_rejected_on_arrival() -> None:
    engine = MatchingEngine()
    engine.submit(order("a", "buy", 0.0, 100.0), now_ns=0)
    engine.submit(order("b", "buy", 1.0, -1.0), now_ns=0)
    engine.submit(order("c", "buy", 1.0, tif="GTX"), now_ns=0)
    assert states(engine.advance(0)) == [("a", "rejected"), ("b", "rejected"), ("c", "rejected")]


def test_gtd_rests_then_expires_at_its_time() -> None:
    engine = MatchingEngine(latency_ns=10)
    engine.on_record(records(quote(0, 100.0, 1.0, 100.1, 2.0))[0])
    engine.submit(order("a", "buy", 0.5, 99.0, tif="GTD", good_till_ms=3), now_ns=0)
    assert states(engine.on_batch(records(quote(2_999_999, 100.0, 1.0, 100.1, 2.0)))) == [
        ("a", "acked")
    ]
    events = engine.on_batch(records(quote(3_000_000, 100.0, 1.0, 100.1, 2.0)))
    assert states(events) == [("a", "expired")]
    assert events[0].ts_ns == 3_000_000 and events[0].reason == "goodTillDate reached"  # type: ignore[union-attr]
    engine.submit(order("b", "buy", 0.5, 99.0, tif="GTD"), now_ns=3_000_000)
    engine.submit(order("c", "buy", 0.5, tif="GTD", good_till_ms=9), now_ns=3_000_000)
    assert states(engine.advance(3_000_010)) == [("b", "rejected"), ("c", "rejected")]


def test_reduce_only_is_cut_to_the_position_and_never_opens_one() -> None:
    engine = MatchingEngine()
    engine.on_record(records(quote(0, 100.0, 5.0, 100.1, 5.0))[0])
    engine.submit(order("flat", "sell", 1.0, reduce_only=True), now_ns=1)
    events = engine.advance(1)
    assert states(events) == [("flat", "rejected")] and fills(events) == []
    assert "-2022" in engine.orders["flat"].reason
    engine.submit(order("open", "buy", 0.3), now_ns=2)
    engine.submit(order("close", "sell", 1.0, reduce_only=True), now_ns=2)
    events = engine.advance(2)
    assert fills(events) == [("open", 100.1, 0.3, "taker"), ("close", 100.0, 0.3, "taker")]
    assert engine.orders["close"].qty == 0.3 and engine.orders["close"].state == "filled"
    # Resting reduce-only sells: the first to fill closes the position, the second expires.
    engine.submit(order("long", "buy", 0.2), now_ns=3)
    engine.submit(order("r1", "sell", 0.2, 100.2, reduce_only=True), now_ns=3)
    engine.submit(order("r2", "sell", 0.2, 100.3, reduce_only=True), now_ns=3)
    engine.advance(3)
    events = engine.on_batch(records(trade(4, 100.5, 3.0)))
    assert fills(events) == [("r1", 100.2, 0.2, "maker")]
    assert states(events) == [("r1", "filled"), ("r2", "expired")]
    assert engine.orders["r2"].reason == "reduce-only order would increase the position"


# ---- properties --------------------------------------------------------------------------

PRICES = [99.7, 99.8, 99.9, 100.0, 100.1, 100.2, 100.3]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], list[tuple[int, str, Order]]]:
    n = draw(st.integers(2, 40))
    symbols = st.sampled_from([0, 0, 0, 1]) if draw(st.booleans()) else st.just(0)
    rows = []
    ts = 0
    uid = 0
    for _ in range(n):
        ts += draw(st.integers(0, 3))
        if draw(st.booleans()):
            bid = draw(st.integers(0, len(PRICES) - 2))
            ask = draw(st.integers(bid + 1, len(PRICES) - 1))
            uid += draw(st.integers(-1, 3))
            size = st.sampled_from([0.1, 0.5, 1.0, 2.5])
            row = quote(ts, PRICES[bid], draw(size), PRICES[ask], draw(size), max(uid, 0))
        else:
            qty = draw(st.sampled_from([0.05, 0.3, 1.0, 3.0])) * draw(st.sampled_from([1, -1]))
            row = trade(ts, draw(st.sampled_from(PRICES)), qty)
        row["symbol_id"] = draw(symbols)
        rows.append(row)
    orders = []
    for index in range(draw(st.integers(0, 6))):
        side = draw(st.sampled_from(["buy", "sell"]))
        kind = draw(st.sampled_from(["limit", "limit", "market"]))
        price = draw(st.sampled_from(PRICES)) if kind == "limit" else None
        tif = draw(st.sampled_from(["GTC", "IOC", "GTX", "FOK"])) if kind == "limit" else "GTC"
        qty = draw(st.sampled_from([0.1, 0.7, 2.0]))
        reduce_only = draw(st.sampled_from([False, False, True]))
        new = order(
            f"o{index}", side, qty, price, tif=tif, symbol=draw(symbols), reduce_only=reduce_only
        )
        orders.append((draw(st.integers(0, ts)), "submit", new))
    return records(*rows), orders


def run(engine: MatchingEngine, data: np.ndarray[Any, Any], requests: list, batch: bool) -> list:
    """Submits requests and feeds rows in time order; per-row or in batches between requests."""
    events: list = []
    requests = sorted(requests, key=lambda item: item[0])
    row = 0
    for ts, _, item in requests:
        stop = row
        while stop < len(data) and data[stop]["local_ns"] < ts:
            stop += 1
        if batch:
            if stop > row:
                events += engine.on_batch(data[row:stop])
        else:
            for index in range(row, stop):
                events += engine.on_record(data[index])
        row = stop
        engine.submit(item, ts)
    if batch:
        events += engine.on_batch(data[row:])
    else:
        for index in range(row, len(data)):
            events += engine.on_record(data[index])
    return events


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.integers(0, 3), st.sampled_from([0, 96]))
def test_properties(case: tuple, latency: int, per_order_min_rows: int) -> None:
    data, requests = case
    fresh = [
        (
            ts,
            a,
            Order(
                **{
                    f: getattr(o, f)
                    for f in (
                        "client_id",
                        "symbol",
                        "side",
                        "qty",
                        "price",
                        "type",
                        "tif",
                        "reduce_only",
                    )
                }
            ),
        )
        for ts, a, o in requests
    ]
    engine = MatchingEngine(latency_ns=latency, maker_fee_bps=-0.5, taker_fee_bps=2.0)
    events = run(engine, data, requests, batch=False)
    fill_list, _ = fills_and_updates(events)
    for order_ in engine.orders.values():
        mine = [f for f in fill_list if f.client_id == order_.client_id]
        total = sum(round(f.qty * 1e8) for f in mine)
        # No fill beyond the order's quantity.
        assert total <= round(order_.qty * 1e8)
        assert order_.filled_qty == pytest.approx(total / 1e8)
        if order_.state == "filled":
            assert total == round(order_.qty * 1e8)
        # Fills never at a worse price than the limit.
        if order_.type == "limit":
            assert order_.price is not None
            for fill in mine:
                if order_.side == "buy":
                    assert fill.price <= order_.price + 1e-9
                else:
                    assert fill.price >= order_.price - 1e-9
        if order_.tif == "GTX":
            assert all(f.liquidity == "maker" for f in mine)
        if order_.tif == "FOK":  # all at once on arrival, or nothing
            assert order_.state in ("new", "filled", "expired", "rejected")  # never rests
            assert total in (0, round(order_.qty * 1e8))
            assert all(f.liquidity == "taker" for f in mine)
    # A reduce-only order's fill never opens, increases or flips a position.
    held: dict[int, int] = {}
    for fill in fill_list:
        units = round(fill.qty * 1e8) * (1 if fill.side == "buy" else -1)
        before = held.get(fill.symbol, 0)
        after = held[fill.symbol] = before + units
        if engine.orders[fill.client_id].reduce_only:
            assert before != 0 and abs(after) < abs(before) and before * after >= 0
    # Deterministic, and the batch fast path equals the per-row path exactly.
    # per_order_min_rows=0 (and no short-segment scan) forces the per-order path on every
    # multi-row segment.
    batch_engine = MatchingEngine(latency_ns=latency, maker_fee_bps=-0.5, taker_fee_bps=2.0)
    batch_engine.per_order_min_rows = per_order_min_rows
    if per_order_min_rows == 0:
        batch_engine.short_segment_rows = 0
    again = run(batch_engine, data, fresh, batch=True)
    assert again == events


@st.composite
def one_symbol_stream(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], list[Order]]:
    """A long single-symbol stream and resting orders sent before it (batch fast paths)."""
    rows = []
    uid = 1
    bid = draw(st.integers(1, 4))
    for ts in range(draw(st.integers(20, 150))):
        if draw(st.integers(0, 3)):
            bid = min(max(bid + draw(st.sampled_from([-1, 0, 0, 0, 1])), 0), len(PRICES) - 2)
            ask = min(bid + draw(st.sampled_from([1, 1, 1, 2])), len(PRICES) - 1)
            uid += draw(st.sampled_from([1, 1, 1, 2, -3]))
            size = st.sampled_from([0.1, 0.5, 1.0, 2.5])
            rows.append(quote(ts, PRICES[bid], draw(size), PRICES[ask], draw(size), max(uid, 0)))
        else:
            qty = draw(st.sampled_from([0.05, 0.3, 1.0])) * draw(st.sampled_from([1, -1]))
            rows.append(trade(ts, PRICES[min(bid + draw(st.integers(-1, 2)), 6)], qty))
    orders = [
        order(f"o{index}", side, draw(st.sampled_from([0.1, 0.7, 2.0])), price)
        for index, (side, price) in enumerate(
            draw(
                st.lists(
                    st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from(PRICES)),
                    min_size=1,
                    max_size=4,
                )
            )
        )
    ]
    return records(*rows), orders


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    one_symbol_stream(), st.sampled_from([0, 10_000]), st.sampled_from([0, 48]), st.integers(0, 5)
)
def test_batch_paths_equal_per_row_on_long_streams(
    case: tuple, per_order_min_rows: int, short_segment_rows: int, latency: int
) -> None:
    data, orders = case

    def copy(o: Order) -> Order:
        return Order(o.client_id, o.symbol, o.side, o.qty, o.price, type=o.type, tif=o.tif)

    per_row = MatchingEngine(latency_ns=latency)
    batched = MatchingEngine(latency_ns=latency)
    batched.per_order_min_rows = per_order_min_rows
    batched.short_segment_rows = short_segment_rows
    for o in orders:
        per_row.submit(copy(o), now_ns=0)
        batched.submit(copy(o), now_ns=0)
    expected = [event for row in data for event in per_row.on_record(row)]
    half = len(data) // 2
    got = batched.on_batch(data[:half]) + batched.on_batch(data[half:])
    assert got == expected
    assert per_row.touch(0) == batched.touch(0)
    for client_id, o in per_row.orders.items():
        assert batched.queue_ahead(client_id) == per_row.queue_ahead(client_id)
        assert batched.orders[client_id] == o


@pytest.mark.parametrize("path", ["rows", "per_order", "fast_rows", "segment"])
def test_every_path_uses_the_one_queue_rule(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rule 5 is written once (``_Working.see_level``/``see_print``); every path calls it, so
    changing the rule there changes every path's fills alike."""
    from twinfeed.matching_state import _Working

    calls: list[str] = []
    see_level, see_print = _Working.see_level, _Working.see_print

    def level(self: _Working, size: float) -> None:
        calls.append("level")
        see_level(self, size)

    def printed(self: _Working, units: int) -> float:
        calls.append("print")
        return see_print(self, units)

    monkeypatch.setattr(_Working, "see_level", level)
    monkeypatch.setattr(_Working, "see_print", printed)
    rows = [quote(0, 100.0, 1.0, 100.1, 1.0, 1)]
    for ts in range(1, 200):
        rows.append(quote(ts, 100.0, 1.0 - ts / 400, 100.1, 1.0, ts + 1))
        rows.append(trade(ts, 100.0, -0.001))
    data = records(*rows)
    engine = MatchingEngine()
    engine.on_record(data[0])
    engine.submit(order("a", "buy", 0.5, 100.0), now_ns=0)
    engine.per_order_min_rows = {"per_order": 0, "fast_rows": 10**9}.get(path, 96)
    engine.short_segment_rows = {"fast_rows": 10**9, "per_order": 0, "segment": 0}.get(path, 48)
    if path == "segment":
        data["symbol_id"][::3] = 1  # two symbols: the general segment path
    if path == "rows":
        for row in data[1:]:
            engine.on_record(row)
    else:
        engine.on_batch(data[1:])
    assert "level" in calls and "print" in calls
    assert engine.queue_ahead("a") is not None and engine.queue_ahead("a") < 1.0  # type: ignore[operator]
