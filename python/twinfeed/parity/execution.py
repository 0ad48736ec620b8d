"""Execution comparison: what the venue did with a live run's orders against what the
matching engine does with the same orders (README, trade parity).

The live run's requests come from its journal (the strategy's exact submits, cancels and
replaces with their ``ctx.now_ns``); the market is the record stream rebuilt from the capture
the ingest wrote (the strategy's own clock: the ingest's receive time). Each order reaches the
simulated venue after its own live submit -> ack latency, measured in the trade DB (wall clock
from the brain's send to the venue's answer being recorded); a request without a measurement
gets the run's median. So only execution can differ: the paper venue matches the original
capture on its replay clock with the same engine, so there the differences are latency and
timing; against a real venue, queue position and everything the engine does not model.

Per strategy order: the fate on each side (``filled`` / ``partly`` / ``cancelled`` /
``expired`` / ``refused``), the first-fill time and average price deltas, and for a
different fate a cause: ``risk refusal`` and ``venue refusal`` (the live reason says which),
``feed status`` (the feed was not healthy while the order lived), ``latency`` (a taker order,
or a maker whose price was crossed within one measured latency of its submit or cancel),
``queue position`` (a maker at a level that traded while it rested, so only the queue ahead
decided), else ``unexplained``. Then the PnL on both sides, cumulative over time (PNG).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinfeed import FeatureConfig
from twinfeed.capture import capture_files
from twinfeed.matching import MatchingEngine
from twinfeed.orders import TERMINAL_STATES, Fill, Order
from twinfeed.parity.arrivals import VenueClock, latencies
from twinfeed.parity.trades import Entry, JournalError, _instruments, load_journal
from twinfeed.portfolio import Portfolio
from twinfeed.records import KIND

__all__ = [
    "ExecutionComparison",
    "compare_execution",
    "fate",
    "print_execution",
]

_QUOTE = KIND["quote"]
_BOOK = KIND["book"]
_TRADE = KIND["trade"]
_EPS = 1e-9
FATES = ("filled", "partly", "cancelled", "expired", "refused", "open")


def fate(state: str, qty: float, filled: float, reason: str = "", active: bool = False) -> str:
    """One order's fate from its final state and quantities. A post-only order that would
    cross on arrival is ``refused`` whether the venue refused it (Binance -5022, what the paper
    venue answers) or expired it (the matching engine's ``post-only would cross``); one that
    was ``active`` (resting) before a modify made it cross is ``expired``, as on Binance.
    """
    if filled > _EPS:
        return "filled" if filled >= qty - _EPS else "partly"
    if state == "rejected" or (state == "expired" and "post-only" in reason and not active):
        return "refused"
    if state in ("cancelled", "expired"):
        return str(state)
    return "open" if state not in TERMINAL_STATES else str(state)


@dataclass
class ExecutionComparison:
    """The comparison of one run (see the module docstring)."""

    run_id: str
    orders: list[dict[str, Any]] = field(default_factory=list)
    latency_ns: dict[str, float] = field(default_factory=dict)
    latency_method: str = ""
    queue_fraction: float = 1.0
    #: The queue fit (:func:`fit_queue`), when made.
    queue_fit: dict[str, Any] = field(default_factory=dict)
    pnl_live: float = 0.0
    pnl_backtest: float = 0.0
    curve: dict[str, list[float]] = field(default_factory=dict)
    json_path: Path | None = None
    png_path: Path | None = None

    @property
    def equal(self) -> int:
        return sum(1 for order in self.orders if order["same_fate"])

    @property
    def share(self) -> float:
        """Share of orders whose simulated fate equals the live one (1.0 with no orders)."""
        return self.equal / len(self.orders) if self.orders else 1.0

    def causes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.orders:
            if not order["same_fate"]:
                counts[order["cause"]] = counts.get(order["cause"], 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "orders_compared": len(self.orders),
            "equal_fate": self.equal,
            "equal_fate_share": self.share,
            "causes": self.causes(),
            "latency_ns": self.latency_ns,
            "latency_method": self.latency_method,
            "queue_fraction": self.queue_fraction,
            "queue_fit": self.queue_fit,
            "pnl_live": self.pnl_live,
            "pnl_backtest": self.pnl_backtest,
            "pnl_difference": self.pnl_backtest - self.pnl_live,
            "orders": self.orders,
            "curve": self.curve,
        }


def _rows(con: Any, sql: str, run_id: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql, [run_id])
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _load_live(db: Path, run_id: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        config_text = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()
        orders = _rows(
            con,
            "SELECT client_id, strategy_id, symbol, side, type, tif, qty, price, submit_ns, "
            "submit_wall_ns, state, filled_qty, avg_price, reason, done_ns FROM orders "
            "WHERE run_id = ? ORDER BY submit_wall_ns, client_id",
            run_id,
        )
        fills = _rows(
            con,
            "SELECT client_id, strategy_id, symbol, side, price, qty, fee, liquidity, ts_ns, "
            "wall_ns, trade_id FROM fills WHERE run_id = ? ORDER BY wall_ns",
            run_id,
        )
        acks = _rows(
            con,
            "SELECT client_id, min(ts_ns) AS ts_ns FROM order_events WHERE run_id = ? "
            "AND state <> 'rejected' GROUP BY client_id",
            run_id,
        )
        modifies = _rows(
            con,
            "SELECT client_id, ts_ns, wall_ns FROM order_events WHERE run_id = ? "
            "AND (reason = 'replaced' OR state = 'expired') ORDER BY wall_ns",
            run_id,
        )
        cancels = _rows(
            con,
            "SELECT client_id, min(ts_ns) AS ts_ns FROM order_events WHERE run_id = ? "
            "AND state IN ('cancelled', 'expired') GROUP BY client_id",
            run_id,
        )
        answers = _rows(
            con,
            "SELECT client_id, min(wall_ns) AS wall_ns FROM order_events WHERE run_id = ? "
            "GROUP BY client_id",
            run_id,
        )
    finally:
        con.close()
    config = json.loads(config_text[0]) if config_text and config_text[0] else {}
    return {
        "config": config,
        "orders": orders,
        "fills": fills,
        "answers": answers,
        "acks": acks,
        "cancels": cancels,
        "modifies": modifies,
    }


def _records(files: list[Path], config: FeatureConfig) -> np.ndarray[Any, Any]:
    from twinfeed import record_dtype
    from twinfeed.research.features import compute_records

    raw, _ = compute_records(files, config)
    return np.frombuffer(raw, dtype=record_dtype())


class _Mids:
    """Mid of each symbol at a time (the latest quote or book record)."""

    def __init__(self, records: np.ndarray[Any, Any]) -> None:
        kinds = records["kind"]
        touch = records[((kinds == _QUOTE) | (kinds == _BOOK)) & (records["mid"] == records["mid"])]
        self._by_symbol = {
            int(symbol): (
                touch["local_ns"][touch["symbol_id"] == symbol],
                touch["mid"][touch["symbol_id"] == symbol],
            )
            for symbol in np.unique(touch["symbol_id"]).tolist()
        }

    def at(self, symbol: int, ns: int) -> float:
        found = self._by_symbol.get(symbol)
        if found is None:
            return float("nan")
        times, mids = found
        index = int(np.searchsorted(times, ns, side="right")) - 1
        return float(mids[index]) if index >= 0 else float("nan")


def _curve(
    fills: list[Fill], mids: _Mids, portfolio: Portfolio, grid: np.ndarray[Any, Any]
) -> list[float]:
    ordered = sorted(fills, key=lambda f: f.ts_ns)
    out = []
    index = 0
    for ns in grid.tolist():
        while index < len(ordered) and ordered[index].ts_ns <= ns:
            portfolio.apply(ordered[index])
            index += 1
        for symbol in list(portfolio.positions):
            mid = mids.at(symbol, ns)
            if mid == mid:
                portfolio.mark(symbol, mid)
        out.append(portfolio.pnl().total)
    return out


def _simulate(
    entries: list[Entry],
    records: np.ndarray[Any, Any],
    engine: MatchingEngine,
    latency: dict[str, int],
    median: int,
    cancel_at: dict[str, int],
    live_legs: set[str],
    modified: dict[str, int],
    modify_at: dict[str, int],
) -> list[Fill]:
    """The journal's requests into ``engine`` over ``records``; the simulated fills.

    Every request reaches the engine where the live one reached the venue, on the records'
    clock (this can be before the record the decision was made on: the paper venue's replay
    may stand behind the ingest): a submit after its venue order's measured latency; a cancel,
    and a replace done as a cancel and a new leg (a venue without modify sends the new leg once
    the cancel is confirmed), where the venue cancelled the live leg (``cancel_at``); a
    replace the venue did in place (modify) where the venue answered it (``modify_at``), as
    the engine's replace. Without a measurement: the decision time plus the median latency.
    Requests are handled in the order they reached the venue.
    """
    local = records["local_ns"]
    fills: list[Fill] = []
    position = 0
    actions: list[tuple[int, int, str, Any]] = []
    legs: dict[str, int] = {}  # strategy order -> live legs so far (0: the first)

    def leg_name(client_id: str, number: int) -> str:
        return client_id if number == 0 else f"{client_id}.{number}"

    def schedule(at: int, kind: str, payload: Any) -> None:
        actions.append((at, len(actions), kind, payload))

    def refused_live(index: int) -> bool:
        """The venue refused the request at ``entries[index]`` (its answer, journaled inside
        the request, says ``replace refused``): nothing reached the order."""
        for effect in entries[index + 1 :]:
            if effect.kind not in ("fill", "update") or not effect.inside:
                return False
            if effect.kind == "update" and str(effect.data.get("reason", "")).startswith(
                "replace refused"
            ):
                return True
        return False

    end_ns = int(local[-1]) if len(local) else 0
    for index, entry in enumerate(entries):
        if entry.kind == "end":
            end_ns = entry.now_ns
            break
        if entry.kind != "request":
            continue
        data = entry.data
        now = entry.now_ns
        op = data["op"]
        client_id = str(data.get("client_id") or "")
        if op == "submit":
            order = Order(
                client_id,
                int(data["symbol"] or 0),
                data["side"],
                float(data["qty"]),
                None if data["type"] == "market" else data["price"],
                type=data["type"],
                tif=data["tif"],
                reduce_only=bool(data.get("reduce_only", False)),
                good_till_ms=int(data.get("good_till_ms") or 0),
            )
            legs[client_id] = 0
            schedule(now + latency.get(client_id, median), "submit", order)
        elif op == "cancel" and client_id in legs:
            name = leg_name(client_id, legs[client_id])
            schedule(cancel_at.get(name, now + median), "cancel", name)
        elif op == "cancel_all":
            for order_id, number in legs.items():
                name = leg_name(order_id, number)
                schedule(cancel_at.get(name, now + median), "cancel", name)
        elif op == "replace" and client_id in legs and not refused_live(index):
            number = legs[client_id]
            name = leg_name(client_id, number)
            if f"{client_id}.{number + 1}" not in live_legs:
                # Live modified the order in place (the venue's modify): the engine's replace.
                modified[name] = modified.get(name, 0) + 1
                at = modify_at.get(f"{name}@{modified[name]}", now + median)
                schedule(at, "modify", (client_id, name, float(data["price"]), float(data["qty"])))
                continue
            # As live without a modify: cancel the working leg, then a new leg for the rest.
            schedule(cancel_at.get(name, now + median), "cancel", name)
            legs[client_id] = number + 1
            new = f"{client_id}.{number + 1}"
            at = now + latency.get(new, median)
            schedule(at, "leg", (client_id, new, float(data["price"]), float(data["qty"])))

    def feed_before(ns: int) -> None:
        nonlocal position
        stop = int(np.searchsorted(local, ns, side="left"))
        if stop > position:
            fills.extend(e for e in engine.on_batch(records[position:stop]) if isinstance(e, Fill))
            position = stop

    def filled_before(client_id: str, name: str) -> float:
        total = 0.0
        number = 0
        while (leg := leg_name(client_id, number)) in engine.orders and leg != name:
            total += engine.orders[leg].filled_qty
            number += 1
        return total

    engine.latency_ns = 0
    for at, _, kind, payload in sorted(actions, key=lambda action: (action[0], action[1])):
        feed_before(at)
        if kind == "submit":
            engine.submit(payload, at)
        elif kind == "cancel":
            if payload in engine.orders:
                engine.cancel(payload, at)
        elif kind == "modify":
            client_id, name, price, qty = payload
            current = engine.orders.get(name)
            if current is not None and current.is_open:
                leg_qty = round(qty - filled_before(client_id, name), 8)
                engine.replace(name, price, leg_qty, at)
        else:
            client_id, name, price, qty = payload
            rest = round(qty - filled_before(client_id, name), 8)
            template = engine.orders.get(client_id)
            if template is None or rest <= 1e-12:
                continue
            engine.submit(
                Order(
                    name,
                    template.symbol,
                    template.side,
                    rest,
                    price,
                    type=template.type,
                    tif=template.tif,
                    reduce_only=template.reduce_only,
                    good_till_ms=template.good_till_ms,
                ),
                at,
            )
    # The live session cancels whatever is left when it ends.
    feed_before(end_ns + 1)
    for order in engine.open_orders():
        engine.latency_ns = max(cancel_at.get(order.client_id, end_ns + median) - end_ns, 0)
        engine.cancel(order.client_id, end_ns)
    horizon = end_ns + 10 * max(median, 1)
    feed_before(horizon + 1)
    fills.extend(e for e in engine.advance(horizon) if isinstance(e, Fill))
    return fills


def _cause(
    sim: Order,
    live_reason: str,
    entries_feed: list[Entry],
    records: np.ndarray[Any, Any],
    live_done_ns: int,
    latency_ns: int,
) -> str:
    if live_reason.startswith(("risk", "rules")):
        return "risk refusal"
    if live_reason.startswith("venue: -5022") or "post-only" in sim.reason:
        return "latency"  # crossed at arrival on one side only: the touch moved meanwhile
    if live_reason.startswith("venue") or sim.state == "rejected":
        return "venue refusal"
    start = sim.submit_ns
    end = max(sim.done_ns, live_done_ns, start)
    for entry in entries_feed:
        if start <= entry.now_ns <= end and entry.data.get("status") != "healthy":
            return "feed status"
    taker = sim.type == "market" or sim.tif in ("IOC", "FOK")
    if taker or sim.price is None:
        return "latency"
    local = records["local_ns"]
    lo = int(np.searchsorted(local, start, side="left"))
    hi = int(np.searchsorted(local, end, side="right"))
    window = records[lo:hi]
    window = window[window["symbol_id"] == sim.symbol]
    prints = window[window["kind"] == _TRADE]
    if len(prints) and np.any(np.abs(prints["trade_px"] - sim.price) < 1e-9):
        return "queue position"
    edges = (start, sim.done_ns if sim.done_ns >= 0 else end)
    for edge in edges:
        a = int(np.searchsorted(local, edge - latency_ns, side="left"))
        b = int(np.searchsorted(local, edge + latency_ns, side="right"))
        near = records[a:b]
        near = near[(near["symbol_id"] == sim.symbol) & (near["kind"] == _QUOTE)]
        if not len(near):
            continue
        crossed = near["ask_px"] <= sim.price if sim.side == "buy" else near["bid_px"] >= sim.price
        if np.any(crossed):
            return "latency"
    return "unexplained"


@dataclass
class _Inputs:
    """What a comparison reads once (the journal, the records, the trade DB, the clocks)."""

    run: str
    entries: list[Entry]
    records: np.ndarray[Any, Any]
    live: dict[str, Any]
    clock: VenueClock | None
    measured_all: dict[str, int]
    measured: str
    setup: dict[str, Any]


def _inputs(db: str | Path, run_id: str | None) -> _Inputs:
    path = Path(db)
    run, entries = load_journal(path, run_id)
    setup = entries[0].data
    files = capture_files(setup["capture_dir"]) if Path(setup["capture_dir"]).is_dir() else []
    if not files:
        raise JournalError(
            f"{path}: run {run}: the ingest's capture {setup['capture_dir']} is gone"
        )
    toml = setup.get("feature_config_toml")
    config = FeatureConfig.from_toml_str(toml, "the journal") if toml else FeatureConfig.default()
    records = _records(files, config)
    live = _load_live(path, run)
    original = live["config"].get("capture")
    clock = None
    if original and Path(original).exists():
        clock = VenueClock(_records([Path(original)], config), records)
    try:
        speed: float | None = float(live["config"].get("session", {}).get("speed"))
    except (TypeError, ValueError):
        speed = None  # "max": no fixed ratio of venue time to wall time
    measured_all, measured = latencies(live, clock, speed)
    return _Inputs(run, entries, records, live, clock, measured_all, measured, setup)


def compare_execution(
    db: str | Path,
    run_id: str | None = None,
    out_dir: str | Path | None = None,
    *,
    queue_fraction: float = 1.0,
    inputs: _Inputs | None = None,
) -> ExecutionComparison:
    """Compares a live run's order fates with the matching engine's (module docstring);
    writes ``execution-RUN.json`` and ``execution-RUN.png`` into ``out_dir`` when given.
    ``queue_fraction``: the engine's queue position of a new resting order (see
    :class:`twinfeed.matching.MatchingEngine`)."""
    read = inputs if inputs is not None else _inputs(db, run_id)
    run, entries, records, live = read.run, read.entries, read.records, read.live
    clock, measured_all, measured, setup = read.clock, read.measured_all, read.measured, read.setup
    # "<leg>@<k>": where the k-th modify of a leg reached the venue (records' clock).
    modify_at = {key: value for key, value in measured_all.items() if "@" in key}
    latency = {key: value for key, value in measured_all.items() if "@" not in key}
    values = np.array(sorted(latency.values()) or [0], dtype=np.int64)
    median = int(np.median(values))
    session = live["config"].get("session", {})
    instruments = _instruments(setup)
    engine = MatchingEngine(
        latency_ns=median,
        maker_fee_bps=float(session.get("maker_fee_bps", 0.0)),
        taker_fee_bps=float(session.get("taker_fee_bps", 1.7)),
        instruments=instruments,
        queue_fraction=queue_fraction,
    )
    cancel_at: dict[str, int] = {}
    if clock is not None:
        for cancelled in live["cancels"]:
            mapped = clock.to_ingest(int(cancelled["ts_ns"]))
            if mapped is not None:
                cancel_at[cancelled["client_id"]] = mapped
    live_legs = {str(order["client_id"]) for order in live["orders"]}
    modified: dict[str, int] = {}
    sim_fills = _simulate(
        entries, records, engine, latency, median, cancel_at, live_legs, modified, modify_at
    )
    feeds = [entry for entry in entries if entry.kind == "feed"]
    result = ExecutionComparison(run_id=run, queue_fraction=queue_fraction)
    result.latency_method = measured
    result.latency_ns = {
        "orders_measured": float(len(latency)),
        "p10": float(np.percentile(values, 10)),
        "p50": float(median),
        "p90": float(np.percentile(values, 90)),
        "max": float(values.max()),
    }
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for order in live["orders"]:
        by_strategy.setdefault(order["strategy_id"], []).append(order)
    live_fills: dict[str, list[dict[str, Any]]] = {}
    for live_fill in live["fills"]:
        live_fills.setdefault(live_fill["strategy_id"], []).append(live_fill)
    sim_by_order: dict[str, list[Fill]] = {}
    for fill in sim_fills:
        sim_by_order.setdefault(fill.client_id.split(".", 1)[0], []).append(fill)
    for entry in entries:
        if entry.kind != "request" or entry.data["op"] != "submit":
            continue
        order_id = str(entry.data["client_id"])
        sim = engine.orders.get(order_id)
        legs_live = by_strategy.get(order_id, [])
        if sim is None or not legs_live:
            continue
        last = legs_live[-1]
        filled = sum(float(leg["filled_qty"] or 0.0) for leg in legs_live)
        total = float(last["qty"]) + sum(float(leg["filled_qty"] or 0.0) for leg in legs_live[:-1])
        live_fate = fate(str(last["state"]), total, filled)
        sim_legs = [sim]
        while f"{order_id}.{len(sim_legs)}" in engine.orders:
            sim_legs.append(engine.orders[f"{order_id}.{len(sim_legs)}"])
        sim_last = sim_legs[-1]
        sim_filled = sum(leg.filled_qty for leg in sim_legs)
        sim_total = sim_last.qty + sum(leg.filled_qty for leg in sim_legs[:-1])
        sim_fate = fate(
            sim_last.state, sim_total, sim_filled, sim_last.reason, sim_last.client_id in modified
        )
        reason = next((str(leg["reason"]) for leg in legs_live if leg["state"] == "rejected"), "")
        lf = live_fills.get(order_id, [])
        sf = sim_by_order.get(order_id, [])
        row: dict[str, Any] = {
            "client_id": order_id,
            "side": sim.side,
            "type": sim.type,
            "tif": sim.tif,
            "price": sim_last.price,
            "qty": sim_total,
            "submit_ns": sim.submit_ns,
            "backtest_life_s": (
                (sim_last.done_ns - sim.submit_ns) / 1e9 if sim_last.done_ns >= 0 else None
            ),
            "latency_ns": latency.get(order_id, median),
            "live_fate": live_fate,
            "backtest_fate": sim_fate,
            "same_fate": live_fate == sim_fate,
            "live_filled": filled,
            "backtest_filled": sim_filled,
            "live_reason": reason or str(last["reason"] or ""),
            "backtest_reason": sim_last.reason,
            "fill_time_delta_ns": (
                int(min(f.ts_ns for f in sf)) - int(min(int(r["wall_ns"]) for r in lf))
                if lf and sf
                else None
            ),
            "fill_price_delta": (
                float(
                    sum(f.price * f.qty for f in sf) / sum(f.qty for f in sf)
                    - sum(float(r["price"]) * float(r["qty"]) for r in lf)
                    / sum(float(r["qty"]) for r in lf)
                )
                if lf and sf
                else None
            ),
            "cause": "",
        }
        if not row["same_fate"]:
            done = max((int(leg["done_ns"] or -1) for leg in legs_live), default=-1)
            row["cause"] = _cause(
                sim_last, row["live_reason"], feeds, records, done, int(result.latency_ns["p90"])
            )
        result.orders.append(row)
    # PnL: the live fills on the wall clock of their arrival (the ingest's receive clock is a
    # wall clock too), the simulated ones on the records' clock.
    live_events = [
        Fill(
            str(r["strategy_id"]),
            instruments.symbols().index(r["symbol"]) if r["symbol"] in instruments.symbols() else 0,
            r["side"],
            float(r["price"]),
            float(r["qty"]),
            float(r["fee"]),
            r["liquidity"],
            int(r["wall_ns"]),
            int(r["trade_id"] or 0),
        )
        for r in live["fills"]
    ]
    mids = _Mids(records)
    local = records["local_ns"]
    if len(local):
        grid = np.linspace(int(local[0]), int(local[-1]), num=min(400, len(local))).astype(np.int64)
        live_curve = _curve(live_events, mids, Portfolio(instruments), grid)
        sim_curve = _curve(sim_fills, mids, Portfolio(instruments), grid)
        result.curve = {
            "t_s": ((grid - grid[0]) / 1e9).tolist(),
            "live": live_curve,
            "backtest": sim_curve,
        }
        result.pnl_live = live_curve[-1]
        result.pnl_backtest = sim_curve[-1]
    if out_dir is not None:
        _write(result, Path(out_dir))
    return result


def _write(result: ExecutionComparison, out: Path) -> None:
    from twinfeed._atomic import atomic_path, write_text

    result.json_path = out / f"execution-{result.run_id}.json"
    write_text(result.json_path, json.dumps(result.to_json(), indent=2, default=str) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    curve = result.curve
    if curve:
        axis.plot(curve["t_s"], curve["live"], label="live (venue)")
        axis.plot(curve["t_s"], curve["backtest"], label="backtest (matching engine)")
    axis.set_xlabel("seconds since the first record")
    axis.set_ylabel("cumulative PnL")
    axis.set_title(f"run {result.run_id}: equal fate {result.share:.1%} of {len(result.orders)}")
    axis.legend()
    figure.tight_layout()
    result.png_path = out / f"execution-{result.run_id}.png"
    with atomic_path(result.png_path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def print_execution(result: ExecutionComparison, console: Any, rows: int = 20) -> None:
    """The comparison's summary and the differing orders (the first ``rows``)."""
    from rich.table import Table

    latency = result.latency_ns
    console.print(
        f"execution: {result.equal}/{len(result.orders)} orders with the same fate in the "
        f"backtest ([bold]{result.share:.1%}[/]); submit->ack latency p50 "
        f"{latency.get('p50', 0) / 1e6:.2f} ms, p90 {latency.get('p90', 0) / 1e6:.2f} ms"
    )
    console.print(
        f"PnL live {result.pnl_live:.6g}, backtest {result.pnl_backtest:.6g}, difference "
        f"{result.pnl_backtest - result.pnl_live:.6g}"
    )
    causes = result.causes()
    if causes:
        console.print("causes: " + ", ".join(f"{n} x {cause}" for cause, n in causes.items()))
    differing = [order for order in result.orders if not order["same_fate"]]
    if differing:
        table = Table("order", "side", "price", "live", "backtest", "cause")
        for order in differing[:rows]:
            table.add_row(
                order["client_id"],
                order["side"],
                f"{order['price']}",
                order["live_fate"],
                order["backtest_fate"],
                order["cause"],
            )
        console.print(table)
        if len(differing) > rows:
            console.print(f"... and {len(differing) - rows} more in the JSON")
    fit = result.queue_fit
    if fit:
        console.print(
            "queue fit: equal fate by queue position of a new order (share of the level ahead): "
            + ", ".join(f"{f}: {share:.1%}" for f, share in fit["shares"].items())
            + f"; fitted {fit['fitted_fraction']} ({fit['fitted_share']:.1%}, "
            f"{fit['improvement']:+.1%} against the engine's 1.0)"
        )
        for row in fit["fill_table"]:
            console.print(
                f"  time at level {row['time_at_level']}: {row['orders']} maker orders, fill "
                f"probability live {row['live_fill_probability']:.1%}, engine "
                f"{row['engine_fill_probability']:.1%}"
            )
    if result.json_path is not None:
        console.print(f"execution JSON: {result.json_path}")
    if result.png_path is not None:
        console.print(f"PnL plot: {result.png_path}")
