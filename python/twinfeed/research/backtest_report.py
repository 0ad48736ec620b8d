"""Backtest results: recorded frames, metrics, plots and the JSON strategy artifact.

Metrics (all PnL in the settlement currency of the instruments: the quote asset for spot and
USD-M, the coin for COIN-M inverse contracts; ``currency`` in the artifact names it; the run
starts flat with equity 0):

- ``pnl_total``: realized + unrealized - fees at the end (unrealized at the last mid).
- ``sharpe``: annualised Sharpe ratio of **per-minute** equity increments:
  ``mean / std(ddof=1) * sqrt(525_600)`` (minutes per 365-day year; crypto trades 24/7). The
  equity is taken at the last sample of each event-time minute, starting from 0. NaN (and
  :meth:`BacktestResult.metric_notes` says why) with fewer than :data:`MIN_SHARPE_SAMPLES`
  increments, i.e. a run shorter than that many minutes: scaled by ``sqrt(525_600)``, the
  noise of a handful of samples gives figures like -800 that mean nothing. Also NaN with
  zero variance. ``sharpe_samples`` is the number of increments.
- ``max_drawdown``: largest fall of the equity samples from a running peak (starting at 0).
- ``turnover``: notional traded (quote value; USD face value for inverse contracts);
  ``turnover_per_hour`` scales it by the run's duration.
- ``fill_ratio``: filled quantity / quantity of orders the venue accepted.
- ``order_fill_rate``: fraction of accepted orders with at least one fill.
- ``avg_queue_ms``: mean time from acceptance to execution over maker fills.
- ``inventory_*``: statistics of the primary symbol's position over the equity samples
  (a regular event-time grid, so means are time-weighted up to the grid).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from twinfeed._atomic import write_text
from twinfeed.matching import MatchingEngine
from twinfeed.orders import Fill
from twinfeed.portfolio import Portfolio, Position

__all__ = ["ARTIFACT_VERSION", "BacktestResult", "Recorder", "compute_metrics", "mark_portfolio"]

#: Version of the artifact JSON layout.
ARTIFACT_VERSION = 2
MINUTES_PER_YEAR = 525_600
_MINUTE_NS = 60_000_000_000

SHARPE_NOTE = (
    "annualised Sharpe of per-minute equity increments (event time), mean/std(ddof=1)*sqrt(525600)"
)
#: Fewest per-minute equity increments an annualised Sharpe ratio is computed from.
MIN_SHARPE_SAMPLES = 30


def mark_portfolio(portfolio: Portfolio, engine: MatchingEngine) -> None:
    """Marks every position at the mid of the engine's current touch."""
    for symbol in portfolio.positions:
        touch = engine.touch(symbol)
        if touch is not None:
            portfolio.mark(symbol, (touch.bid_px + touch.ask_px) / 2)


class Recorder:
    """Collects fills and equity/position samples while a backtest runs."""

    def __init__(
        self, engine: MatchingEngine, portfolio: Portfolio, interval_ns: int, shift_ns: int = 0
    ) -> None:
        self.engine = engine
        self.portfolio = portfolio
        self.interval_ns = interval_ns
        self.shift_ns = shift_ns
        self.records = 0
        self.first_ns: int | None = None
        self.last_ns = 0
        self.updates = 0
        self.status_changes = 0
        self._bucket: int | None = None
        self.fills: list[tuple[Any, ...]] = []
        self.equity: list[tuple[Any, ...]] = []
        self.positions: list[tuple[Any, ...]] = []

    def begin(self, first_ns: int, rows: int) -> None:
        """Before an interval: samples the previous equity interval if this one is new."""
        if self.first_ns is None:
            self.first_ns = first_ns
        bucket = (first_ns + self.shift_ns) // self.interval_ns
        if self._bucket is not None and bucket != self._bucket:
            self.sample()
        self.records += rows

    def end(self, last_ns: int) -> None:
        """After an interval."""
        self.last_ns = last_ns
        self._bucket = (last_ns + self.shift_ns) // self.interval_ns

    def fill(self, fill: Fill, position: Position) -> None:
        self.fills.append(
            (
                fill.fill_id,
                fill.ts_ns,
                fill.client_id,
                fill.symbol,
                fill.side,
                fill.price,
                fill.qty,
                fill.fee,
                fill.liquidity,
                fill.queue_ns,
                position.qty,
            )
        )

    def sample(self) -> None:
        """Equity and positions as of now (after the last processed record)."""
        mark_portfolio(self.portfolio, self.engine)
        ts = self.last_ns
        pnl = self.portfolio.pnl()
        touch = self.engine.touch(0)
        bid = touch.bid_px if touch else math.nan
        ask = touch.ask_px if touch else math.nan
        quote_bid = quote_ask = math.nan
        for order in self.engine.open_orders(0):
            if order.type != "limit" or order.state == "new" or order.price is None:
                continue
            if order.side == "buy" and not quote_bid >= order.price:
                quote_bid = order.price
            elif order.side == "sell" and not quote_ask <= order.price:
                quote_ask = order.price
        self.equity.append(
            (
                ts,
                pnl.total,
                pnl.realized,
                pnl.unrealized,
                pnl.fees,
                self.portfolio.position(0).qty,
                (bid + ask) / 2,
                bid,
                ask,
                quote_bid,
                quote_ask,
            )
        )
        for symbol in sorted(self.portfolio.positions):
            position = self.portfolio.positions[symbol]
            self.positions.append(
                (
                    ts,
                    symbol,
                    position.qty,
                    position.avg_price,
                    position.mark,
                    position.realized,
                    position.unrealized,
                    position.fees,
                )
            )

    def finish(self) -> None:
        if self.records:
            self.sample()


FILL_SCHEMA = {
    "fill_id": pl.Int64,
    "ts_ns": pl.Int64,
    "client_id": pl.String,
    "symbol": pl.Int64,
    "side": pl.String,
    "price": pl.Float64,
    "qty": pl.Float64,
    "fee": pl.Float64,
    "liquidity": pl.String,
    "queue_ns": pl.Int64,
    "position": pl.Float64,
}
EQUITY_SCHEMA = {
    "ts_ns": pl.Int64,
    "equity": pl.Float64,
    "realized": pl.Float64,
    "unrealized": pl.Float64,
    "fees": pl.Float64,
    "position": pl.Float64,
    "mid": pl.Float64,
    "bid": pl.Float64,
    "ask": pl.Float64,
    "quote_bid": pl.Float64,
    "quote_ask": pl.Float64,
}
POSITION_SCHEMA = {
    "ts_ns": pl.Int64,
    "symbol": pl.Int64,
    "position": pl.Float64,
    "avg_price": pl.Float64,
    "mark": pl.Float64,
    "realized": pl.Float64,
    "unrealized": pl.Float64,
    "fees": pl.Float64,
}
ORDER_SCHEMA = {
    "client_id": pl.String,
    "symbol": pl.Int64,
    "side": pl.String,
    "type": pl.String,
    "tif": pl.String,
    "price": pl.Float64,
    "qty": pl.Float64,
    "state": pl.String,
    "filled_qty": pl.Float64,
    "avg_price": pl.Float64,
    "fees": pl.Float64,
    "submit_ns": pl.Int64,
    "active_ns": pl.Int64,
    "done_ns": pl.Int64,
    "reason": pl.String,
}


def _frame(rows: list[tuple[Any, ...]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


@dataclass
class BacktestResult:
    """What a backtest produced.

    Attributes:
        fills: One row per fill (``position`` = the symbol's position after it).
        orders: One row per order, final state.
        equity: Equity samples on the event-time grid, with the primary symbol's position,
            touch and own best quotes (NaN where none).
        positions: Per-symbol position samples on the same grid.
        metrics: See the module docstring.
        strategy_name, params, settings, fingerprint, captures, build, symbols: provenance,
            written to the artifact.
    """

    fills: pl.DataFrame
    orders: pl.DataFrame
    equity: pl.DataFrame
    positions: pl.DataFrame
    metrics: dict[str, float]
    strategy_name: str
    params: dict[str, Any]
    settings: dict[str, Any]
    fingerprint: str
    captures: list[dict[str, Any]]
    build: dict[str, Any]
    symbols: list[str] = field(default_factory=list)
    #: The trading rules of ``symbols`` (``Instrument.describe()``), None for one without.
    instruments: list[dict[str, Any] | None] = field(default_factory=list)
    #: Unit of the PnL metrics (settlement asset), "" when unknown.
    currency: str = ""
    #: What deploying needs beyond the above: strategy class and source digest, the feature
    #: config's TOML text, risk limits, venue (see :mod:`twinfeed.deploy`).
    deployment: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_recorder(cls, recorder: Recorder, **provenance: Any) -> BacktestResult:
        """Frames and metrics from a finished :class:`Recorder`, plus provenance fields."""
        orders = [
            (
                o.client_id,
                o.symbol,
                o.side,
                o.type,
                o.tif,
                o.price,
                o.qty,
                o.state,
                o.filled_qty,
                o.avg_price,
                o.fees,
                o.submit_ns,
                o.active_ns,
                o.done_ns,
                o.reason,
            )
            for o in recorder.engine.orders.values()
        ]
        fills = _frame(recorder.fills, FILL_SCHEMA)
        orders_frame = _frame(orders, ORDER_SCHEMA)
        equity = _frame(recorder.equity, EQUITY_SCHEMA)
        positions = _frame(recorder.positions, POSITION_SCHEMA)
        metrics = compute_metrics(fills, orders_frame, equity, recorder)
        return cls(fills, orders_frame, equity, positions, metrics, **provenance)

    # ---- refusals -----------------------------------------------------------------------

    def all_refused(self) -> bool:
        """True when the strategy placed orders and none was accepted (risk or the venue's
        rules refused every one): a run that did not trade, whatever its metrics say."""
        return self.orders.height > 0 and not bool((self.orders["active_ns"] >= 0).any())

    def top_refusals(self, limit: int = 3) -> list[tuple[str, int]]:
        """``(reason, count)`` of the rejected orders, most frequent first."""
        rejected = self.orders.filter(pl.col("state") == "rejected")
        if rejected.is_empty():
            return []
        counts = (
            rejected.group_by("reason")
            .len()
            .sort(["len", "reason"], descending=[True, False])
            .head(limit)
        )
        return list(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))

    # ---- artifact -----------------------------------------------------------------------

    def artifact(self) -> dict[str, Any]:
        """The strategy artifact: what ran, on what data, built how, and how it did."""
        return {
            "artifact_version": ARTIFACT_VERSION,
            "strategy": {"name": self.strategy_name, "params": self.params},
            "feature_fingerprint": self.fingerprint,
            "captures": self.captures,
            "symbols": self.symbols,
            "build": self.build,
            "backtest": self.settings,
            "metrics": self.metrics,
            "metric_notes": {
                "sharpe": sharpe_note(self.metrics),
                "currency": self.currency or "quote currency (instruments unknown)",
            },
            "currency": self.currency,
            "instruments": self.instruments,
            "deployment": self.deployment,
        }

    def artifact_json(self) -> str:
        """The artifact as canonical JSON (sorted keys; NaN and infinities become null)."""
        return json.dumps(_finite(self.artifact()), sort_keys=True, indent=2, allow_nan=False)

    def write_artifact(self, path: str | Path) -> Path:
        """Writes :meth:`artifact_json` to ``path`` (parents created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, self.artifact_json() + "\n")
        return path

    def digest(self) -> str:
        """sha256 over the artifact and every frame's Arrow IPC bytes (determinism checks)."""
        import hashlib

        sha = hashlib.sha256(self.artifact_json().encode())
        for frame in (self.fills, self.orders, self.equity, self.positions):
            buffer = io.BytesIO()
            frame.write_ipc(buffer, compression="uncompressed")
            sha.update(buffer.getvalue())
        return sha.hexdigest()

    # ---- plots --------------------------------------------------------------------------

    def plot(self, out_dir: str | Path) -> list[Path]:
        """Writes equity.png, inventory.png and quotes.png into ``out_dir``; returns paths."""
        from twinfeed.research.backtest_plots import plot_result

        return plot_result(self, Path(out_dir))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _minute_increments(equity: pl.DataFrame) -> np.ndarray[Any, Any]:
    """Equity increments between the last samples of consecutive event-time minutes (from 0)."""
    if equity.is_empty():
        return np.zeros(0)
    ts = equity["ts_ns"].to_numpy()
    values = equity["equity"].to_numpy()
    minute = ts // _MINUTE_NS
    last_of_minute = np.flatnonzero(np.append(minute[1:] != minute[:-1], True))
    return np.diff(np.concatenate([[0.0], values[last_of_minute]]))


def _sharpe(increments: np.ndarray[Any, Any]) -> float:
    if len(increments) < MIN_SHARPE_SAMPLES:
        return math.nan
    std = float(np.std(increments, ddof=1))
    if std == 0.0:
        return math.nan
    return float(np.mean(increments)) / std * math.sqrt(MINUTES_PER_YEAR)


def sharpe_note(metrics: dict[str, float]) -> str:
    """What ``metrics["sharpe"]`` is, or why it is not there."""
    samples = int(metrics.get("sharpe_samples", 0))
    if samples < MIN_SHARPE_SAMPLES:
        return (
            f"not computed: {samples} one-minute samples, fewer than {MIN_SHARPE_SAMPLES} "
            "(annualising so few by sqrt(525600) gives noise, not a ratio); see pnl_total and "
            "max_drawdown"
        )
    if math.isnan(metrics.get("sharpe", math.nan)):
        return "not computed: the equity did not change"
    return SHARPE_NOTE + f" over {samples} samples"


def compute_metrics(
    fills: pl.DataFrame, orders: pl.DataFrame, equity: pl.DataFrame, recorder: Recorder
) -> dict[str, float]:
    """The metrics of the module docstring from a run's frames."""
    metrics: dict[str, float] = {}
    duration_ns = recorder.last_ns - (recorder.first_ns or recorder.last_ns)
    metrics["records"] = float(recorder.records)
    metrics["duration_s"] = duration_ns / 1e9
    pnl = recorder.portfolio.pnl()
    metrics["pnl_total"] = pnl.total
    metrics["pnl_realized"] = pnl.realized
    metrics["pnl_unrealized"] = pnl.unrealized
    metrics["fees"] = pnl.fees
    increments = _minute_increments(equity)
    metrics["sharpe"] = _sharpe(increments)
    metrics["sharpe_samples"] = float(len(increments))
    if equity.is_empty():
        metrics["max_drawdown"] = 0.0
    else:
        curve = np.concatenate([[0.0], equity["equity"].to_numpy()])
        metrics["max_drawdown"] = float(np.max(np.maximum.accumulate(curve) - curve))
    notional = sum(p.notional for p in recorder.portfolio.positions.values())
    metrics["turnover"] = notional
    metrics["turnover_per_hour"] = notional / (duration_ns / 3.6e12) if duration_ns else math.nan
    metrics["volume"] = float(fills["qty"].sum()) if fills.height else 0.0
    metrics["fills"] = float(fills.height)
    metrics["maker_fills"] = float((fills["liquidity"] == "maker").sum()) if fills.height else 0.0
    metrics["taker_fills"] = metrics["fills"] - metrics["maker_fills"]
    metrics["orders"] = float(orders.height)
    accepted = orders.filter(pl.col("active_ns") >= 0)
    metrics["orders_rejected"] = float((orders["state"] == "rejected").sum())
    metrics["orders_expired"] = float((orders["state"] == "expired").sum())
    metrics["orders_cancelled"] = float((orders["state"] == "cancelled").sum())
    accepted_qty = float(accepted["qty"].sum()) if accepted.height else 0.0
    metrics["fill_ratio"] = (
        float(accepted["filled_qty"].sum()) / accepted_qty if accepted_qty else math.nan
    )
    metrics["order_fill_rate"] = (
        float((accepted["filled_qty"] > 0).sum()) / accepted.height if accepted.height else math.nan
    )
    maker = fills.filter(pl.col("liquidity") == "maker")
    metrics["avg_queue_ms"] = (
        float(maker["queue_ns"].mean()) / 1e6 if maker.height else math.nan  # type: ignore[arg-type]
    )
    position = np.zeros(1) if equity.is_empty() else equity["position"].to_numpy()
    metrics["inventory_mean"] = float(np.mean(position))
    metrics["inventory_std"] = float(np.std(position))
    metrics["inventory_mean_abs"] = float(np.mean(np.abs(position)))
    metrics["inventory_max_abs"] = float(np.max(np.abs(position)))
    metrics["inventory_final"] = recorder.portfolio.position(0).qty
    metrics["order_updates"] = float(recorder.updates)
    metrics["feed_status_changes"] = float(recorder.status_changes)
    return metrics
