"""The decision journal: everything a live strategy saw and did, in order (README, trade parity).

One row per entry in the trade DB's ``journal`` table (``docs/trade_db.md``), numbered from 0
within a run. Entry kinds:

- ``start``: what a replay needs to build the same strategy and context (strategy spec,
  parameters, symbols, instruments, client id prefix, the ingest's capture folder, the
  feature config), then ``on_start``.
- ``batch``: a record batch handed to the strategy, as ring sequence numbers ``first_seq`` ..
  ``last_seq`` (the records themselves are rebuilt from the ingest's capture) with their first
  and last capture line; ``now_ns`` is ``ctx.now_ns`` after the batch.
- ``fill`` / ``update``: a fill or order update queued for the strategy (the portfolio and the
  strategy's order view changed then). ``inside`` marks one produced while a strategy request
  ran (e.g. the venue's synchronous answer to a submit): it took effect before that request
  returned.
- ``deliver``: the runner handed the queued fills and updates to the strategy, after the
  record ``at_seq - 1`` of the ring.
- ``feed``: ``on_feed_status`` with the new status. ``control``: an operator control.
- ``request``: a strategy request (``submit`` / ``cancel`` / ``cancel_all`` / ``replace``)
  with all its arguments and ``ctx.now_ns``.
- ``stop``: ``on_stop``. ``end``: the run finished (its status); a journal without it was cut
  short by a crash.

Durability is the fills' (each a committed DuckDB write): entries are buffered and written
in one transaction at the end of every loop step, and at once together with every fill. A
crash loses at most the entries of the step it happened in; the replay says so (no ``end``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from twinfeed.context import Request
from twinfeed.live.brain.trade_db import TradeDB
from twinfeed.orders import Event, Fill, OrderUpdate

__all__ = [
    "JOURNAL_KINDS",
    "RUNNER_FAULT_ENV",
    "Journal",
    "RunnerFault",
    "event_from_json",
    "event_to_json",
    "request_to_json",
]

JOURNAL_KINDS = (
    "start",
    "batch",
    "fill",
    "update",
    "deliver",
    "feed",
    "control",
    "request",
    "stop",
    "end",
)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN (no limit price, no average yet) becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def event_to_json(event: Event) -> dict[str, Any]:
    """A fill or order update as the journal stores it (every field)."""
    names = Fill.__slots__ if isinstance(event, Fill) else OrderUpdate.__slots__
    return {name: _clean(getattr(event, name)) for name in names}


def request_to_json(request: Request) -> dict[str, Any]:
    """A strategy request with all its arguments (``now_ns`` is the entry's own column)."""
    out: dict[str, Any] = {"op": request.action, "client_id": request.client_id}
    order = request.order
    if request.action == "submit" and order is not None:
        out.update(
            side=order.side,
            qty=order.qty,
            price=_clean(order.price),
            type=order.type,
            tif=order.tif,
            symbol=order.symbol,
            reduce_only=order.reduce_only,
            good_till_ms=order.good_till_ms,
            refusal=request.refusal,
        )
    elif request.action == "cancel_all":
        out["symbol"] = request.symbol
    elif request.action == "replace":
        out.update(price=request.price, qty=request.qty)
    return out


def event_from_json(kind: str, data: Mapping[str, Any]) -> Event:
    """The inverse of :func:`event_to_json` (``kind`` ``fill`` or ``update``)."""
    if kind == "fill":
        return Fill(**data)
    return OrderUpdate(**data)


class Journal:
    """Writer of one run's journal (see the module docstring). Single-threaded, like the
    trader that owns it."""

    def __init__(self, db: TradeDB) -> None:
        self._db = db
        self._rows: list[list[Any]] = []
        self._entry = 0
        #: True while a strategy request runs (effects then are marked ``inside``).
        self.inside = False
        #: Ring sequence number after the last record handed to the strategy.
        self.at_seq = 0
        #: Ingest generation (0; +1 per ingest restart: a fresh ring numbers from 0 again).
        self.generation = 0
        self.ended = False

    @property
    def entries(self) -> int:
        return self._entry

    def _add(self, kind: str, now_ns: int, data: Mapping[str, Any], inside: bool = False) -> None:
        self._rows.append(
            [
                self._db.run_id,
                self._entry,
                kind,
                int(now_ns),
                self.at_seq,
                self.generation,
                inside,
                json.dumps(data, separators=(",", ":"), default=str),
            ]
        )
        self._entry += 1

    def flush(self) -> None:
        """Writes the buffered entries in one transaction."""
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        con = self._db.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # ---- entries ------------------------------------------------------------------------

    def start(self, now_ns: int, setup: Mapping[str, Any]) -> None:
        self._add("start", now_ns, setup)
        self.flush()

    def batch(
        self, first_seq: int, first_line: int, last_line: int, rows: int, now_ns: int
    ) -> None:
        self.at_seq = first_seq
        self._add(
            "batch",
            now_ns,
            {
                "first_seq": first_seq,
                "last_seq": first_seq + rows - 1,
                "first_line": first_line,
                "last_line": last_line,
            },
        )
        self.at_seq = first_seq + rows

    def effect(self, event: Event) -> None:
        fill = isinstance(event, Fill)
        self._add("fill" if fill else "update", event.ts_ns, event_to_json(event), self.inside)
        if fill:
            self.flush()

    def deliver(self, now_ns: int, count: int, at_seq: int | None = None) -> None:
        if at_seq is not None:
            self.at_seq = at_seq
        self._add("deliver", now_ns, {"count": count})

    def feed(self, now_ns: int, status: str, reason: str = "") -> None:
        self._add("feed", now_ns, {"status": status, "reason": reason})

    def control(self, now_ns: int, command: str, detail: Mapping[str, Any] | None = None) -> None:
        self._add("control", now_ns, {"command": command, **(detail or {})})

    def request(self, request: Request) -> None:
        self._add("request", request.ts_ns, request_to_json(request))

    def stop(self, now_ns: int) -> None:
        self._add("stop", now_ns, {})

    def end(self, now_ns: int, status: str) -> None:
        if self.ended:
            return
        self.ended = True
        self._add("end", now_ns, {"status": status, "entries": self._entry + 1})
        self.flush()


#: Test-only: a deliberately broken runner, so the decision replay can be shown to catch one
#: (tests/test_trade_parity.py). ``drop-update:N`` drops the N-th order update the runner
#: delivers (1-based), ``swap-updates:N`` delivers the N-th after the one following it,
#: ``alter-batch:N`` moves every price of the N-th record batch and every later one up by
#: 0.1 % before the strategy sees them. Unset in every real run.
RUNNER_FAULT_ENV = "TWINFEED_TEST_RUNNER_FAULT"


class RunnerFault:
    """The broken runner of :data:`RUNNER_FAULT_ENV` (None from :meth:`from_env` when unset)."""

    _PRICES = ("bid_px", "ask_px", "mid", "microprice", "trade_px", "vwap")

    def __init__(self, spec: str) -> None:
        what, _, number = spec.partition(":")
        if what not in ("drop-update", "swap-updates", "alter-batch") or not number.isdigit():
            raise ValueError(
                f"{RUNNER_FAULT_ENV}={spec!r}: expected drop-update:N, swap-updates:N or "
                "alter-batch:N"
            )
        self.what = what
        self.number = int(number)
        self._updates = 0
        self._batches = 0
        self._held: Event | None = None

    @classmethod
    def from_env(cls) -> RunnerFault | None:
        import os

        spec = os.environ.get(RUNNER_FAULT_ENV, "")
        return cls(spec) if spec else None

    def deliveries(self, events: list[Event]) -> list[Event]:
        if self.what == "alter-batch":
            return events
        out: list[Event] = []
        for event in events:
            if isinstance(event, OrderUpdate):
                self._updates += 1
                if self._updates == self.number:
                    if self.what == "swap-updates":
                        self._held = event  # handed over after the next update
                    continue
                out.append(event)
                if self._held is not None:
                    out.append(self._held)
                    self._held = None
                continue
            out.append(event)
        return out

    def batch(self, records: Any) -> Any:
        if self.what != "alter-batch":
            return records
        self._batches += 1
        if self._batches < self.number:
            return records
        altered = records.copy()
        for name in self._PRICES:
            altered[name] = altered[name] * 1.001
        return altered
