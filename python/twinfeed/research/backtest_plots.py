"""Backtest plots with matplotlib's Agg renderer (no display, no global pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from twinfeed._atomic import atomic_path

if TYPE_CHECKING:
    from twinfeed.research.backtest_report import BacktestResult


def _seconds(ts: np.ndarray[Any, Any], origin: int) -> np.ndarray[Any, Any]:
    return (ts - origin) / 1e9


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110)
    return path


def plot_result(result: BacktestResult, out_dir: Path) -> list[Path]:
    """equity.png (equity, realized less fees, fees), inventory.png (position, fills) and
    quotes.png (touch against own quotes and fills, and their spreads in bps) into
    ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_save(figure, out_dir / name) for name, figure in result_figures(result).items()]


def result_figures(result: BacktestResult) -> dict[str, Figure]:
    """The figures :func:`plot_result` saves, by file name."""
    equity = result.equity
    fills = result.fills
    origin = 0 if equity.is_empty() else int(equity["ts_ns"][0])
    t = _seconds(equity["ts_ns"].to_numpy(), origin)
    title = f"{result.strategy_name} — {', '.join(c['name'] for c in result.captures)}"
    figures: dict[str, Figure] = {}

    figure = Figure(figsize=(10, 4.5))
    axes = figure.add_subplot()
    axes.plot(t, equity["equity"].to_numpy(), label="equity (net of fees)", linewidth=1.2)
    axes.plot(
        t,
        (equity["realized"] - equity["fees"]).to_numpy(),
        label="realized - fees",
        linewidth=0.9,
    )
    axes.plot(t, -equity["fees"].to_numpy(), label="-fees", linewidth=0.8, linestyle="--")
    axes.axhline(0.0, color="grey", linewidth=0.5)
    axes.set_xlabel("event time [s]")
    axes.set_ylabel("PnL [quote currency]")
    axes.set_title(title, fontsize=9)
    axes.legend(loc="best", fontsize=8)
    figures["equity.png"] = figure

    figure = Figure(figsize=(10, 4.5))
    axes = figure.add_subplot()
    axes.step(t, equity["position"].to_numpy(), where="post", label="position (samples)")
    if fills.height:
        primary = fills.filter(fills["symbol"] == 0)
        axes.plot(
            _seconds(primary["ts_ns"].to_numpy(), origin),
            primary["position"].to_numpy(),
            ".",
            markersize=2,
            label="after each fill",
        )
    axes.axhline(0.0, color="grey", linewidth=0.5)
    axes.set_xlabel("event time [s]")
    axes.set_ylabel("position [base units]")
    axes.set_title(title, fontsize=9)
    axes.legend(loc="best", fontsize=8)
    figures["inventory.png"] = figure

    figure = Figure(figsize=(10, 7))
    top = figure.add_subplot(2, 1, 1)
    top.plot(t, equity["bid"].to_numpy(), color="tab:green", linewidth=0.8, label="best bid")
    top.plot(t, equity["ask"].to_numpy(), color="tab:red", linewidth=0.8, label="best ask")
    top.plot(
        t, equity["quote_bid"].to_numpy(), ".", color="darkgreen", markersize=2, label="own bid"
    )
    top.plot(t, equity["quote_ask"].to_numpy(), ".", color="darkred", markersize=2, label="own ask")
    if fills.height:
        # Every fill at its price, takers included (they leave no own quote to draw).
        primary = fills.filter(fills["symbol"] == 0)
        for side, marker, color in (("buy", "^", "tab:blue"), ("sell", "v", "tab:orange")):
            rows = primary.filter(primary["side"] == side)
            if rows.height:
                top.plot(
                    _seconds(rows["ts_ns"].to_numpy(), origin),
                    rows["price"].to_numpy(),
                    marker,
                    color=color,
                    markersize=5,
                    linestyle="none",
                    label=f"{side} fills ({rows.height:,})",
                )
    top.set_ylabel("price")
    top.set_title(title, fontsize=9)
    top.legend(loc="best", fontsize=8)
    bottom = figure.add_subplot(2, 1, 2, sharex=top)
    mid = equity["mid"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        market = (equity["ask"] - equity["bid"]).to_numpy() / mid * 1e4
        own = (equity["quote_ask"] - equity["quote_bid"]).to_numpy() / mid * 1e4
    bottom.plot(t, market, linewidth=0.8, label="market spread")
    bottom.plot(t, own, ".", markersize=2, label="own quoted spread")
    bottom.set_xlabel("event time [s]")
    bottom.set_ylabel("spread [bps]")
    bottom.legend(loc="best", fontsize=8)
    figures["quotes.png"] = figure
    return figures
