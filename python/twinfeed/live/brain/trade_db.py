"""The trade database: one DuckDB file per account/config, one row in ``runs`` per run.

Every write is its own transaction (DuckDB autocommit), so what the brain acted on is on disk
before it acts: the runner writes a fill here before the portfolio and the strategy see it.
The schema is documented in ``docs/trade_db.md``. Notebooks read it with
``duckdb.connect(path, read_only=True)`` (after the run: DuckDB lets one process write a file
at a time), or with :func:`open_read_only`.
"""

from __future__ import annotations

import json
import time
import uuid
from os import PathLike
from pathlib import Path
from typing import Any

import duckdb

from twinfeed.orders import Fill, Order, OrderUpdate
from twinfeed.portfolio import Position

__all__ = ["SCHEMA", "SCHEMA_VERSION", "TradeDB", "open_read_only"]

#: 2: the decision journal (``journal``, twinfeed.live.brain.journal).
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    status VARCHAR,
    fingerprint VARCHAR,
    build JSON,
    config JSON,
    strategy VARCHAR,
    params JSON,
    summary JSON
);
CREATE TABLE IF NOT EXISTS orders (
    run_id VARCHAR,
    client_id VARCHAR,
    strategy_id VARCHAR,
    symbol VARCHAR,
    side VARCHAR,
    type VARCHAR,
    tif VARCHAR,
    qty DOUBLE,
    price DOUBLE,
    submit_ns BIGINT,
    submit_wall_ns BIGINT,
    mid_at_submit DOUBLE,
    state VARCHAR,
    filled_qty DOUBLE,
    avg_price DOUBLE,
    fees DOUBLE,
    reason VARCHAR,
    done_ns BIGINT,
    PRIMARY KEY (run_id, client_id)
);
CREATE TABLE IF NOT EXISTS order_events (
    run_id VARCHAR,
    client_id VARCHAR,
    ts_ns BIGINT,
    wall_ns BIGINT,
    state VARCHAR,
    filled_qty DOUBLE,
    remaining_qty DOUBLE,
    price DOUBLE,
    qty DOUBLE,
    reason VARCHAR
);
CREATE TABLE IF NOT EXISTS fills (
    run_id VARCHAR,
    client_id VARCHAR,
    strategy_id VARCHAR,
    trade_id BIGINT,
    symbol VARCHAR,
    side VARCHAR,
    price DOUBLE,
    qty DOUBLE,
    fee DOUBLE,
    liquidity VARCHAR,
    ts_ns BIGINT,
    wall_ns BIGINT,
    submit_ns BIGINT,
    submit_wall_ns BIGINT,
    mid_at_submit DOUBLE
);
CREATE TABLE IF NOT EXISTS position_snapshots (
    run_id VARCHAR,
    ts_ns BIGINT,
    wall_ns BIGINT,
    symbol VARCHAR,
    qty DOUBLE,
    avg_price DOUBLE,
    mark DOUBLE,
    realized DOUBLE,
    unrealized DOUBLE,
    fees DOUBLE,
    total DOUBLE
);
CREATE TABLE IF NOT EXISTS risk_events (
    run_id VARCHAR,
    ts_ns BIGINT,
    wall_ns BIGINT,
    client_id VARCHAR,
    "check" VARCHAR,
    reason VARCHAR,
    detail JSON
);
CREATE TABLE IF NOT EXISTS journal (
    run_id VARCHAR,
    entry BIGINT,
    kind VARCHAR,
    now_ns BIGINT,
    at_seq BIGINT,
    generation INTEGER,
    inside BOOLEAN,
    data JSON,
    PRIMARY KEY (run_id, entry)
);
CREATE TABLE IF NOT EXISTS feed_events (
    run_id VARCHAR,
    ts_ns BIGINT,
    wall_ns BIGINT,
    status VARCHAR,
    previous VARCHAR,
    detail JSON
);
"""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or value != value else value


def open_read_only(path: str | PathLike[str]) -> duckdb.DuckDBPyConnection:
    """A read-only connection for notebooks and reports."""
    return duckdb.connect(str(path), read_only=True)


class TradeDB:
    """Writer of one trade DB file. Single-threaded; one writing process per file."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(self.path))
        self.con.execute(SCHEMA)
        self.con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
        )
        self.run_id = ""

    # ---- runs ---------------------------------------------------------------------------

    def start_run(
        self,
        *,
        fingerprint: str,
        build: dict[str, Any],
        config: dict[str, Any],
        strategy: str,
        params: dict[str, Any],
        run_id: str | None = None,
    ) -> str:
        self.run_id = (
            run_id or time.strftime("%Y%m%dT%H%M%SZ-", time.gmtime()) + uuid.uuid4().hex[:6]
        )
        self.con.execute(
            "INSERT INTO runs VALUES (?, now(), NULL, 'running', ?, ?, ?, ?, ?, NULL)",
            [self.run_id, fingerprint, _json(build), _json(config), strategy, _json(params)],
        )
        return self.run_id

    def end_run(self, status: str, summary: dict[str, Any]) -> None:
        self.con.execute(
            "UPDATE runs SET ended_at = now(), status = ?, summary = ? WHERE run_id = ?",
            [status, _json(summary), self.run_id],
        )

    # ---- orders -------------------------------------------------------------------------

    def order(
        self,
        order: Order,
        *,
        symbol: str,
        strategy_id: str,
        submit_wall_ns: int,
        mid: float,
    ) -> None:
        """Records an order as the brain is about to send it (or as risk refused it)."""
        self.con.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                order.client_id,
                strategy_id,
                symbol,
                order.side,
                order.type,
                order.tif,
                order.qty,
                order.price,
                order.submit_ns,
                submit_wall_ns,
                _nan_to_none(mid),
                order.state,
                order.filled_qty,
                _nan_to_none(order.avg_price),
                order.fees,
                order.reason,
                order.done_ns,
            ],
        )

    def order_event(self, update: OrderUpdate, order: Order) -> None:
        """An order state change, and the order row's current state."""
        wall = time.time_ns()
        self.con.execute(
            "INSERT INTO order_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                update.client_id,
                update.ts_ns,
                wall,
                update.state,
                update.filled_qty,
                update.remaining_qty,
                update.price,
                update.qty,
                update.reason,
            ],
        )
        self.con.execute(
            "UPDATE orders SET state = ?, filled_qty = ?, avg_price = ?, fees = ?, reason = ?, "
            "done_ns = ? WHERE run_id = ? AND client_id = ?",
            [
                order.state,
                order.filled_qty,
                _nan_to_none(order.avg_price),
                order.fees,
                order.reason,
                order.done_ns,
                self.run_id,
                order.client_id,
            ],
        )

    def fill(
        self,
        fill: Fill,
        *,
        symbol: str,
        strategy_id: str,
        order: Order,
        submit_wall_ns: int,
        mid_at_submit: float,
    ) -> None:
        """Writes (and commits) one fill. Called before anything acts on it."""
        self.con.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                fill.client_id,
                strategy_id,
                fill.fill_id,
                symbol,
                fill.side,
                fill.price,
                fill.qty,
                fill.fee,
                fill.liquidity,
                fill.ts_ns,
                time.time_ns(),
                order.submit_ns,
                submit_wall_ns,
                _nan_to_none(mid_at_submit),
            ],
        )

    # ---- state and events ---------------------------------------------------------------

    def positions(self, ts_ns: int, positions: list[tuple[str, Position]]) -> None:
        wall = time.time_ns()
        rows = [
            [
                self.run_id,
                ts_ns,
                wall,
                symbol,
                p.qty,
                _nan_to_none(p.avg_price),
                _nan_to_none(p.mark),
                p.realized,
                p.unrealized,
                p.fees,
                p.total,
            ]
            for symbol, p in positions
        ]
        if rows:
            self.con.executemany(
                "INSERT INTO position_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def risk_event(
        self, ts_ns: int, client_id: str, check: str, reason: str, detail: dict[str, Any]
    ) -> None:
        self.con.execute(
            "INSERT INTO risk_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            [self.run_id, ts_ns, time.time_ns(), client_id, check, reason, _json(detail)],
        )

    def feed_event(self, ts_ns: int, status: str, previous: str, detail: dict[str, Any]) -> None:
        self.con.execute(
            "INSERT INTO feed_events VALUES (?, ?, ?, ?, ?, ?)",
            [self.run_id, ts_ns, time.time_ns(), status, previous, _json(detail)],
        )

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> TradeDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
