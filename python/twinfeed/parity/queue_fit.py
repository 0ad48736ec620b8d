"""The engine's queue position fitted from a live run (docs/trade_parity.md, "Queue model").

:func:`fit_queue` replays a run's orders through the matching engine with each candidate
``queue_fraction`` (the share of the displayed size ahead of a new resting order) and keeps
the one whose fates agree most with the venue's; :func:`fill_table` gives the maker orders'
fill probability by time at level, live against the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twinfeed.parity.execution import (
    _EPS,
    ExecutionComparison,
    _inputs,
    compare_execution,
)

__all__ = ["QUEUE_FRACTIONS", "TIME_BUCKETS", "fill_table", "fit_queue"]


#: Queue positions :func:`fit_queue` tries (share of the displayed size ahead of a new order).
QUEUE_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit_queue(
    db: str | Path,
    run_id: str | None = None,
    fractions: tuple[float, ...] = QUEUE_FRACTIONS,
) -> tuple[ExecutionComparison, dict[str, Any]]:
    """Fits the engine's queue position of a new resting order to a live run: the comparison
    at each of ``fractions``, the one with the most orders of equal fate (the engine's default
    1.0 on a tie), and the live run's fill probability of the resting (maker) orders by
    queue position and time at level (:func:`fill_table`) against the default engine's.
    Returns the default engine's comparison (with ``queue_fit`` set) and the fit."""
    read = _inputs(db, run_id)
    shares = {}
    comparisons = {}
    for fraction in fractions:
        comparisons[fraction] = compare_execution(db, queue_fraction=fraction, inputs=read)
        shares[fraction] = comparisons[fraction].share
    default = comparisons.get(1.0) or compare_execution(db, inputs=read)
    best = max(shares, key=lambda f: (shares[f], f == 1.0, f))
    fit = {
        "shares": {str(f): shares[f] for f in fractions},
        "fitted_fraction": best,
        "default_share": default.share,
        "fitted_share": shares[best],
        "improvement": shares[best] - default.share,
        "fill_table": fill_table(default),
    }
    default.queue_fit = fit
    return default, fit


#: Time-at-level buckets (seconds of the records' clock) of :func:`fill_table`.
TIME_BUCKETS = (0.1, 1.0)


def fill_table(result: ExecutionComparison) -> list[dict[str, Any]]:
    """Fill probability of the maker orders by time at level: live and the engine's.

    Time at level is from the order's arrival to its end in the backtest (the live one's
    lifetime on the same clock is not known for every order: refusals carry no venue time).
    """
    rows: dict[str, dict[str, Any]] = {}
    for order in result.orders:
        if order["type"] != "limit" or order["live_fate"] == "refused":
            continue
        life = order.get("backtest_life_s")
        if life is None:
            continue
        bucket = (
            f"< {TIME_BUCKETS[0]} s"
            if life < TIME_BUCKETS[0]
            else f"{TIME_BUCKETS[0]}-{TIME_BUCKETS[1]} s"
            if life < TIME_BUCKETS[1]
            else f">= {TIME_BUCKETS[1]} s"
        )
        row = rows.setdefault(
            bucket, {"time_at_level": bucket, "orders": 0, "live": 0, "engine": 0}
        )
        row["orders"] += 1
        row["live"] += order["live_filled"] > _EPS
        row["engine"] += order["backtest_filled"] > _EPS
    out = []
    for row in rows.values():
        out.append(
            {
                **row,
                "live_fill_probability": row["live"] / row["orders"],
                "engine_fill_probability": row["engine"] / row["orders"],
            }
        )
    return sorted(out, key=lambda row: str(row["time_at_level"]))
