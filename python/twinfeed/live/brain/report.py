"""Reports over the trade DB: what a run did, for the terminal, notebooks and a PNG.

:func:`load_report` reads one run (default: the latest) into a :class:`RunReport` of polars
DataFrames; :func:`print_report` shows it with rich; :func:`plot_report` writes
``pnl_inventory.png`` (PnL and inventory over time). Slippage is signed so that positive is
a cost: ``(fill price - mid at order time) / mid`` in bps for buys, the negative for sells.
Order-to-fill latency is wall clock (``fills.wall_ns - orders.submit_wall_ns``); for resting
orders it is mostly queue time.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from twinfeed._atomic import atomic_path
from twinfeed.live.brain.trade_db import open_read_only

__all__ = [
    "DROP_ORDER",
    "RunReport",
    "TradeDBError",
    "load_report",
    "plot_report",
    "print_report",
    "report_figure",
    "risk_label",
]


@dataclass
class RunReport:
    run: dict[str, Any]
    orders: pl.DataFrame
    fills: pl.DataFrame
    positions: pl.DataFrame
    risk_events: pl.DataFrame
    feed_events: pl.DataFrame

    def order_states(self) -> dict[str, int]:
        if self.orders.is_empty():
            return {}
        counts = self.orders.group_by("state").len().sort("state")
        return dict(zip(counts["state"].to_list(), counts["len"].to_list(), strict=True))

    def fill_stats(self) -> dict[str, float]:
        """Volume, slippage and latency figures over the run's fills."""
        fills = self.fills
        if fills.is_empty():
            return {"fills": 0}
        return {
            "fills": fills.height,
            "volume": _num(fills["qty"].sum()),
            "notional": _num((fills["qty"] * fills["price"]).sum()),
            "fees": _num(fills["fee"].sum()),
            "maker_share": _num((fills["liquidity"] == "maker").mean()),
            "slippage_bps_mean": _num(fills["slippage_bps"].mean()),
            "latency_ms_p50": _num(fills["latency_ms"].median()),
            "latency_ms_max": _num(fills["latency_ms"].max()),
        }


def _num(value: Any) -> float:
    return float(value) if value is not None else float("nan")


class TradeDBError(ValueError):
    """A file that is not a trade DB (or one that cannot be read); the message says which file
    and what to give instead."""


def _is_lock_error(error: Exception) -> bool:
    return "lock" in str(error).lower()


@contextmanager
def _read_connection(db_path: str | PathLike[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``db_path``; when a live session holds the file (DuckDB lets
    one process write a file and no other open it meanwhile), to a copy of it (and its WAL)
    in a temporary folder: the report shows the run as it was a moment ago."""
    path = Path(db_path)
    if not path.is_file():
        raise TradeDBError(
            f"{path}: no such trade DB; give the --db a `twinfeed live` run wrote "
            "(default runs/live/trade.duckdb)"
        )
    try:
        con = open_read_only(path)
    except duckdb.Error as error:
        if not _is_lock_error(error):
            raise TradeDBError(
                f"{path}: not a DuckDB trade DB ({_first_line(error)}); give the trade.duckdb "
                "a `twinfeed live` run wrote"
            ) from error
        with tempfile.TemporaryDirectory(prefix="twinfeed-report-") as folder:
            copy = Path(folder) / path.name
            shutil.copyfile(path, copy)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
            # Read-only would refuse to replay the copied WAL; the copy is ours to write.
            con = duckdb.connect(str(copy))
            try:
                yield con
            finally:
                con.close()
        return
    try:
        yield con
    finally:
        con.close()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load_report(db_path: str | PathLike[str], run_id: str | None = None) -> RunReport:
    """One run of a trade DB (the latest started if ``run_id`` is None). A DB a running
    session holds is read from a copy (see :func:`_read_connection`)."""
    with _read_connection(db_path) as con:
        try:
            return _load(con, db_path, run_id)
        except duckdb.CatalogException as error:
            raise TradeDBError(
                f"{db_path}: a DuckDB file without the trade DB tables ({_first_line(error)}); "
                "give the trade.duckdb a `twinfeed live` run wrote"
            ) from error


def _load(con: Any, db_path: str | PathLike[str], run_id: str | None) -> RunReport:
    if run_id is None:
        latest = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()
        if not latest:
            raise TradeDBError(f"{db_path}: no runs recorded yet")
        run_id = str(latest[0][0])
    cursor = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
    columns = [d[0] for d in cursor.description or []]
    rows = cursor.fetchall()
    if not rows:
        known = [str(r[0]) for r in con.execute("SELECT run_id FROM runs").fetchall()]
        raise TradeDBError(f"{db_path}: no run {run_id!r}; its runs: {', '.join(known[-5:])}")
    run = dict(zip(columns, rows[0], strict=True))
    for key in ("build", "config", "params", "summary"):
        if isinstance(run.get(key), str):
            run[key] = json.loads(run[key])

    def frame(sql: str) -> pl.DataFrame:
        result: Any = con.sql(sql, params=[run_id])
        return result.pl()

    orders = frame("SELECT * FROM orders WHERE run_id = ? ORDER BY submit_wall_ns")
    fills = frame(
        "SELECT *, (CASE WHEN side = 'buy' THEN 1 ELSE -1 END) * (price - mid_at_submit) "
        "/ mid_at_submit * 1e4 AS slippage_bps, (wall_ns - submit_wall_ns) / 1e6 AS "
        "latency_ms FROM fills WHERE run_id = ? ORDER BY ts_ns"
    )
    positions = frame("SELECT * FROM position_snapshots WHERE run_id = ? ORDER BY ts_ns")
    risk = frame("SELECT * FROM risk_events WHERE run_id = ? ORDER BY wall_ns")
    feed = frame("SELECT * FROM feed_events WHERE run_id = ? ORDER BY wall_ns")
    return RunReport(run, orders, fills, positions, risk, feed)


#: Order in which each table's columns are left out when the terminal is too narrow (least
#: useful first; see twinfeed._tables). Columns not listed always stay.
DROP_ORDER: dict[str, tuple[str, ...]] = {
    "positions": ("venue qty", "fees", "unrealized", "realized"),
    "last fills": ("client_id", "liquidity", "slippage_bps"),
    "risk events": ("first at",),
    "feed events": ("previous",),
}


def risk_label(check: str, reason: str) -> str:
    """What a risk event was, in a person's words: the risk manager records every refusal
    while trading is blocked under its ``kill_switch`` check, whoever blocked it (an operator's
    pause, a stale feed, an unreachable order venue, or the kill switch itself)."""
    if check != "kill_switch" or not reason.startswith("opening risk blocked"):
        return check
    cause = reason.partition(":")[2].strip()
    if "operator" in cause:
        return "operator pause"
    if cause.startswith("feed"):
        return "feed block"
    if cause.startswith("order venue"):
        return "venue block"
    return "opening blocked"


def print_report(report: RunReport, console: Any = None) -> None:
    """Rich tables: run, positions and PnL, orders, fills, risk and feed events. Times are UTC
    ISO with microseconds; tables fit the console's width (columns left out in
    :data:`DROP_ORDER`)."""
    from rich.console import Console
    from rich.table import Table

    from twinfeed._tables import fitted_table
    from twinfeed._time import utc_iso

    console = console or Console()
    width = console.width
    run = report.run
    summary = run.get("summary") or {}
    build = run.get("build") or {}
    console.print(
        f"[bold]run {run['run_id']}[/] {run['status']}  strategy {run['strategy']}  "
        f"fingerprint {str(run['fingerprint'])[:12]}  build {build.get('version')} "
        f"({build.get('profile')}, git {build.get('git_revision')})"
    )
    deployment = (run.get("config") or {}).get("deployment") or {}
    currencies = sorted({i["settlement"] for i in deployment.get("instruments") or [] if i})
    pnl = summary.get("pnl", {})
    venue = summary.get("venue_positions", {})
    rows = [
        [
            symbol,
            f"{qty:+.3f}",
            f"{venue.get(symbol, float('nan')):+.3f}",
            f"{pnl.get('realized', 0.0):.4f}",
            f"{pnl.get('unrealized', 0.0):.4f}",
            f"{pnl.get('fees', 0.0):.4f}",
            f"{pnl.get('total', 0.0):.4f}",
        ]
        for symbol, qty in (summary.get("positions") or {}).items()
    ]
    columns = ("symbol", "brain qty", "venue qty", "realized", "unrealized", "fees", "total")
    console.print(
        fitted_table(
            f"positions and PnL ({', '.join(currencies) or 'quote currency'})",
            [(c, "right") for c in columns],
            rows,
            width=width,
            drop_order=DROP_ORDER["positions"],
        )
    )
    reconciled = summary.get("reconciled")
    console.print(
        f"reconciled with venue: {'yes' if reconciled else 'NO' if reconciled is False else '-'}"
        f"   records {summary.get('records', 0):,}   orders {summary.get('orders', 0)}"
        f"   risk rejections {summary.get('risk_rejections', 0)}"
        f"   venue rejections {summary.get('venue_rejections', 0)}"
    )
    states = report.order_states()
    console.print("orders by state: " + (", ".join(f"{k} {v}" for k, v in states.items()) or "-"))
    refusals = sorted((summary.get("refusals") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if refusals:
        orders = int(summary.get("orders", 0))
        refused = sum(count for _, count in refusals)
        label = "EVERY ORDER REFUSED" if orders and refused >= orders else "refusals"
        console.print(
            f"{label}: " + "; ".join(f"{count} x {reason}" for reason, count in refusals[:5]),
            markup=False,
        )
    # One row per figure: fits any width, whatever the figures' names.
    table = Table(title="fills", min_width=min(5, width))
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in report.fill_stats().items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    if not report.fills.is_empty():
        rows = [
            [
                utc_iso(row["ts_ns"]),
                row["client_id"],
                row["side"],
                f"{row['price']:.1f}",
                f"{row['qty']:.3f}",
                row["liquidity"],
                f"{row['slippage_bps']:+.2f}",
            ]
            for row in report.fills.tail(8).iter_rows(named=True)
        ]
        columns = ("time (UTC)", "client_id", "side", "price", "qty", "liquidity", "slippage_bps")
        console.print(
            fitted_table(
                "last fills",
                [(c, "left" if c == "time (UTC)" else "right") for c in columns],
                rows,
                width=width,
                drop_order=DROP_ORDER["last fills"],
            )
        )
    if not report.risk_events.is_empty():
        counts: dict[str, list[Any]] = {}
        for row in report.risk_events.iter_rows(named=True):
            label = risk_label(row["check"], row["reason"] or "")
            entry = counts.setdefault(label, [0, row["ts_ns"], row["reason"] or ""])
            entry[0] += 1
        rows = [
            [label, str(count), utc_iso(first_ns), reason]
            for label, (count, first_ns, reason) in counts.items()
        ]
        console.print(
            fitted_table(
                "risk events",
                [
                    ("event", "left"),
                    ("count", "right"),
                    ("first at", "left"),
                    ("first reason", "left"),
                ],
                rows,
                width=width,
                drop_order=DROP_ORDER["risk events"],
                wrap=("first reason",),
            )
        )
    if not report.feed_events.is_empty():
        rows = []
        for row in report.feed_events.iter_rows(named=True):
            detail = json.loads(row["detail"]) if row["detail"] else {}
            rows.append(
                [utc_iso(row["ts_ns"]), row["previous"], row["status"], detail.get("reason", "")]
            )
        console.print(
            fitted_table(
                "feed events",
                [
                    ("time (UTC)", "left"),
                    ("previous", "left"),
                    ("status", "left"),
                    ("reason", "left"),
                ],
                rows,
                width=width,
                drop_order=DROP_ORDER["feed events"],
                wrap=("reason",),
            )
        )


def report_figure(report: RunReport) -> Any:
    """The matplotlib figure of :func:`plot_report`: total PnL and position over event time;
    a run without position snapshots gets one line of text saying so, not blank axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = report.positions
    if positions.is_empty():
        figure = plt.figure(figsize=(9, 2))
        figure.text(
            0.5,
            0.5,
            f"run {report.run['run_id']}: no position snapshots to plot "
            f"({report.run.get('status')}, {report.orders.height} orders, "
            f"{report.fills.height} fills)",
            ha="center",
            va="center",
        )
        return figure
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    start = int(positions["ts_ns"].min())  # type: ignore[arg-type]
    for symbol in positions["symbol"].unique(maintain_order=True).to_list():
        rows = positions.filter(pl.col("symbol") == symbol)
        seconds = ((rows["ts_ns"] - start) / 1e9).to_list()
        top.plot(seconds, rows["total"].to_list(), label=f"{symbol} PnL")
        bottom.step(seconds, rows["qty"].to_list(), where="post", label=f"{symbol} position")
    top.set_ylabel("PnL (quote)")
    bottom.set_ylabel("position (base)")
    from twinfeed._time import utc_iso

    bottom.set_xlabel(f"event time since {utc_iso(start)} (s)")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left")
    figure.suptitle(f"run {report.run['run_id']}: PnL and position")
    figure.tight_layout()
    return figure


def plot_report(report: RunReport, out_dir: str | PathLike[str]) -> Path:
    """Writes ``pnl_inventory.png`` (see :func:`report_figure`); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pnl_inventory.png"
    figure = report_figure(report)
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path
