"""Decision replay: the strategy that traded, fed the journal's inputs, makes the same requests.

``replay_decisions(db)`` reads a live run's journal (:mod:`twinfeed.live.brain.journal`),
rebuilds the record stream from the capture the ingest wrote, through the batch binding (not
from anything the brain kept), and feeds a fresh instance of the run's Strategy class exactly
the journal's inputs: the same batches (ring sequence ranges), the same fills and order
updates delivered at the same positions, the same feed statuses, with ``ctx.now_ns`` as live.
Every request the replayed strategy makes must equal the journaled one (operation, every
argument, ``now_ns``). The first that differs (or is missing, or extra) is reported with the
input just before it, its capture line and both requests field by field.

What the replay context answers (position, PnL, open orders, instruments) comes from the same
journal: fills and updates take effect when the journal says they did (``inside`` a request:
before it returned), marks from the rebuilt records as the live runner marks them.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinfeed import FeatureConfig, TwinfeedError
from twinfeed.capture import capture_files
from twinfeed.context import ContextBase, Request
from twinfeed.instruments import Instrument, SymbolInstruments
from twinfeed.live.brain.journal import event_from_json, request_to_json
from twinfeed.orders import OPEN_STATES, Event, Fill, Order
from twinfeed.portfolio import Portfolio
from twinfeed.records import last_mids
from twinfeed.strategy import PnL, Strategy

__all__ = [
    "Divergence",
    "JournalError",
    "TradeReplay",
    "load_journal",
    "replay_decisions",
]

_INPUTS = ("start", "batch", "deliver", "feed", "stop")


class JournalError(TwinfeedError):
    """A run's journal (or the capture it points at) cannot be replayed."""


@dataclass(frozen=True)
class Entry:
    """One journal row."""

    entry: int
    kind: str
    now_ns: int
    at_seq: int
    generation: int
    inside: bool
    data: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "kind": self.kind,
            "now_ns": self.now_ns,
            "at_seq": self.at_seq,
            **self.data,
        }


def _resolve_run(con: Any, db: Path, run_id: str | None) -> str:
    if run_id is not None:
        found = con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if found is None:
            raise JournalError(f"{db}: no run {run_id!r}")
        return run_id
    row = con.execute(
        "SELECT run_id FROM runs WHERE run_id IN (SELECT DISTINCT run_id FROM journal) "
        "ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        raise JournalError(f"{db}: no run with a journal (runs of this version journal)")
    return str(row[0])


def load_journal(db: str | Path, run_id: str | None = None) -> tuple[str, list[Entry]]:
    """The run id (default: the newest run with a journal) and its journal entries."""
    import duckdb

    path = Path(db)
    if not path.is_file():
        raise JournalError(f"{path}: no such trade DB")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        raise JournalError(f"{path}: cannot open the trade DB: {error}") from error
    try:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if "journal" not in tables:
            raise JournalError(f"{path}: the trade DB has no journal (written before schema 2)")
        run = _resolve_run(con, path, run_id)
        rows = con.execute(
            "SELECT entry, kind, now_ns, at_seq, generation, inside, data FROM journal "
            "WHERE run_id = ? ORDER BY entry",
            [run],
        ).fetchall()
    finally:
        con.close()
    if not rows:
        raise JournalError(f"{path}: run {run} has no journal entries")
    entries = [
        Entry(int(e), str(k), int(n), int(a), int(g), bool(i), json.loads(d))
        for e, k, n, a, g, i, d in rows
    ]
    for position, entry in enumerate(entries):
        if entry.entry != position:
            raise JournalError(
                f"{path}: run {run} journal entry {position} missing (next is {entry.entry})"
            )
    if entries[0].kind != "start":
        raise JournalError(f"{path}: run {run} journal does not begin with 'start'")
    return run, entries


class RecordStream:
    """The ingest capture's records by ring sequence number, read forward in chunks."""

    def __init__(self, files: list[Path], config: FeatureConfig) -> None:
        from twinfeed import record_dtype
        from twinfeed.research.features import open_run

        self.run = open_run(files, config)
        self._dtype = record_dtype()
        self._chunk = np.empty(0, dtype=self._dtype)
        self._start = 0  # sequence number of self._chunk[0]
        self._done = False

    def take(self, first: int, last: int) -> np.ndarray[Any, Any]:
        """Records ``first`` .. ``last`` (sequence numbers never go back)."""
        if first < self._start:
            raise JournalError(f"ring sequence {first} requested after {self._start}")
        while self._start + len(self._chunk) <= last and not self._done:
            raw = self.run.next_records(1 << 16)
            if raw is None:
                self._done = True
                break
            keep = self._chunk[max(first - self._start, 0) :]
            self._start += len(self._chunk) - len(keep)
            self._chunk = np.concatenate([keep, np.frombuffer(raw, dtype=self._dtype)])
        if self._start + len(self._chunk) <= last:
            raise JournalError(
                f"the ingest's capture gives {self._start + len(self._chunk)} records; the "
                f"journal's batch reaches ring sequence {last}"
            )
        return self._chunk[first - self._start : last - self._start + 1]

    def locate(self, line: int) -> str:
        found = self.run.locate(line)
        return f"line {line}" if found is None else f"{found[0]}:{found[1]}"


@dataclass
class Divergence:
    """The first request the replay did not reproduce."""

    request: int
    reason: str
    expected: dict[str, Any] | None
    replayed: dict[str, Any] | None
    fields: list[str]
    input_before: dict[str, Any] | None
    capture_line: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "reason": self.reason,
            "expected": self.expected,
            "replayed": self.replayed,
            "differing_fields": self.fields,
            "input_before": self.input_before,
            "capture_line": self.capture_line,
        }


@dataclass
class TradeReplay:
    """What a decision replay found."""

    db: str
    run_id: str
    strategy: str
    requests: int = 0
    requests_replayed: int = 0
    batches: int = 0
    records: int = 0
    deliveries: int = 0
    feed_statuses: int = 0
    #: Why the journal ends early (a crash), or None when it has its ``end`` entry.
    truncated: str | None = None
    divergence: Divergence | None = None
    capture_files: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "run_id": self.run_id,
            "strategy": self.strategy,
            "identical": self.identical,
            "requests": self.requests,
            "requests_replayed": self.requests_replayed,
            "batches": self.batches,
            "records": self.records,
            "deliveries": self.deliveries,
            "feed_statuses": self.feed_statuses,
            "truncated": self.truncated,
            "capture_files": self.capture_files,
            "divergence": None if self.divergence is None else self.divergence.to_json(),
        }

    def write(self, path: str | Path) -> None:
        from twinfeed._atomic import write_text

        write_text(path, json.dumps(self.to_json(), indent=2, default=str) + "\n")


class _Diverged(Exception):
    """Unwinds the replayed strategy at the first divergence."""


class _JournalEnded(Exception):
    """Unwinds the replayed strategy where a journal cut short by a crash ends."""


def _normal(value: Mapping[str, Any]) -> dict[str, Any]:
    """The journal's JSON encoding of a request (so both sides compare alike)."""
    cleaned = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in value.items()}
    result: dict[str, Any] = json.loads(json.dumps(cleaned, default=str))
    return result


class ReplayContext(ContextBase):
    """The :class:`twinfeed.strategy.Context` of a replay (see the module docstring): the
    same :class:`twinfeed.context.ContextBase` as live, its sink the journal comparison."""

    def __init__(self, driver: _Driver, params: Mapping[str, Any]) -> None:
        super().__init__(params, driver.instruments, 0)
        self._driver = driver
        self.id_prefix = driver.id_prefix

    def _request(self, request: Request) -> list[str]:
        driver = self._driver
        driver.request(request)
        open_ids: list[str] = []
        if request.action == "submit" and request.order is not None:
            order = request.order
            driver.views[order.client_id] = order.as_submitted()
        elif request.action == "cancel_all":
            open_ids = [
                client_id
                for client_id, view in driver.views.items()
                if view.state in OPEN_STATES
                and (request.symbol is None or view.symbol == request.symbol)
            ]
        driver.after_request()
        return open_ids

    def _position(self, symbol: int) -> float:
        return self._driver.portfolio.position(symbol).qty

    def pnl(self) -> PnL:
        return self._driver.portfolio.pnl()

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        return [
            view
            for view in self._driver.views.values()
            if view.state in OPEN_STATES and (symbol is None or view.symbol == symbol)
        ]


def _instruments(setup: Mapping[str, Any]) -> SymbolInstruments:
    fixed = []
    for entry in setup.get("instruments") or []:
        entry = dict(entry)
        venue = entry.pop("venue")
        fixed.append(Instrument.from_exchange_info(venue, entry, origin="the journal"))
    symbols = list(setup.get("symbols") or [])
    if fixed:
        return SymbolInstruments(None, setup.get("venue"), symbols, fixed)
    from twinfeed.instruments import load_table

    return SymbolInstruments(load_table(), setup.get("venue") or "binance-usdm", symbols)


class _Driver:
    def __init__(
        self,
        entries: list[Entry],
        stream: RecordStream,
        strategy: Strategy,
        result: TradeReplay,
    ) -> None:
        setup = entries[0].data
        self.entries = entries
        self.stream = stream
        self.strategy = strategy
        self.result = result
        self.id_prefix = str(setup.get("id_prefix", ""))
        self.instruments = _instruments(setup)
        self.portfolio = Portfolio(self.instruments)
        self.views: dict[str, Order] = {}
        self.ctx = ReplayContext(self, strategy.params)
        self.cursor = 1
        self.pending: list[Event] = []
        self.last_input: Entry | None = None
        self.last_line: int | None = None
        self.request_number = 0

    # ---- requests (called by the replayed strategy through its context) ----------------

    def _diverge(
        self,
        reason: str,
        expected: Entry | None,
        replayed: dict[str, Any] | None,
    ) -> None:
        expected_json = None
        if expected is not None:
            expected_json = {**expected.data, "now_ns": expected.now_ns, "entry": expected.entry}
        fields: list[str] = []
        if expected_json is not None and replayed is not None:
            keys = sorted((set(expected_json) | set(replayed)) - {"entry"})
            fields = [k for k in keys if expected_json.get(k) != replayed.get(k)]
        line = None if self.last_line is None else self.stream.locate(self.last_line)
        self.result.divergence = Divergence(
            request=self.request_number,
            reason=reason,
            expected=expected_json,
            replayed=replayed,
            fields=fields,
            input_before=None if self.last_input is None else self.last_input.describe(),
            capture_line=line,
        )
        raise _Diverged(reason)

    def request(self, request: Request) -> None:
        self.request_number += 1
        replayed = _normal({**request_to_json(request), "now_ns": request.ts_ns})
        entry = self.entries[self.cursor] if self.cursor < len(self.entries) else None
        if entry is None and self.result.truncated:
            self.request_number -= 1
            raise _JournalEnded
        if entry is None or entry.kind != "request":
            self._diverge(
                "the replayed strategy made a request the live one did not make here",
                None,
                replayed,
            )
            return
        expected = {**entry.data, "now_ns": entry.now_ns}
        if expected != replayed:
            self._diverge("the request differs", entry, replayed)
        self.cursor += 1
        self.result.requests_replayed += 1

    def after_request(self) -> None:
        """Fills and updates the live request produced took effect before it returned."""
        while self.cursor < len(self.entries):
            entry = self.entries[self.cursor]
            if entry.kind not in ("fill", "update") or not entry.inside:
                return
            self.cursor += 1
            self.effect(entry)

    # ---- inputs -------------------------------------------------------------------------

    def effect(self, entry: Entry) -> None:
        event = event_from_json(entry.kind, entry.data)
        if isinstance(event, Fill):
            self.portfolio.apply(event)
            view = self.views.get(event.client_id)
            if view is not None:
                before = view.filled_qty
                view.filled_qty = before + event.qty
                view.avg_price = (
                    event.price
                    if before <= 0
                    else (view.avg_price * before + event.price * event.qty) / view.filled_qty
                )
                view.fees += event.fee
        else:
            view = self.views.get(event.client_id)
            if view is not None:
                view.state = event.state
                view.price = event.price
                view.qty = event.qty
        self.pending.append(event)

    def deliver(self, entry: Entry) -> None:
        self.ctx.now = entry.now_ns
        self.result.deliveries += 1
        strategy = self.strategy
        while self.pending:
            events, self.pending = self.pending, []
            for event in events:
                if isinstance(event, Fill):
                    strategy.on_fill(self.ctx, event)
                else:
                    strategy.on_order_update(self.ctx, event)

    def _mark(self, records: np.ndarray[Any, Any]) -> None:
        for symbol, mid in last_mids(records).items():
            self.portfolio.mark(symbol, mid)

    def _between_rows(self, seq_after: int) -> None:
        """Effects and deliveries the live runner made after the record ``seq_after - 1``."""
        while self.cursor < len(self.entries):
            entry = self.entries[self.cursor]
            if entry.kind in ("fill", "update"):
                self.cursor += 1
                self.effect(entry)
            elif entry.kind == "deliver" and entry.at_seq == seq_after:
                self.cursor += 1
                self.last_input = entry
                self.deliver(entry)
            else:
                return

    def batch(self, entry: Entry) -> None:
        first, last = int(entry.data["first_seq"]), int(entry.data["last_seq"])
        records = self.stream.take(first, last)
        self.result.batches += 1
        self.result.records += len(records)
        self._mark(records)
        self.ctx.now = max(self.ctx.now, int(records["local_ns"][-1]))
        strategy = self.strategy
        if strategy.wants_batches:
            self.last_line = int(records["line"][-1])
            strategy.on_batch(self.ctx, records)
            return
        times = records["local_ns"].tolist()
        lines = records["line"].tolist()
        for row in range(len(records)):
            self.ctx.now = times[row]
            self.last_line = lines[row]
            strategy.on_record(self.ctx, records[row])
            self._between_rows(first + row + 1)

    def run(self) -> None:
        entries = self.entries
        strategy = self.strategy
        while self.cursor < len(entries):
            entry = entries[self.cursor]
            self.cursor += 1
            kind = entry.kind
            if kind in _INPUTS:
                self.last_input = entry
            if kind == "start":
                raise JournalError(f"a second 'start' at journal entry {entry.entry}")
            if kind == "batch":
                if entry.generation:
                    raise JournalError(
                        f"journal entry {entry.entry}: a batch of a restarted ingest (generation "
                        f"{entry.generation}); replaying across ingest restarts is not supported"
                    )
                self.batch(entry)
            elif kind in ("fill", "update"):
                self.effect(entry)
            elif kind == "deliver":
                self.deliver(entry)
            elif kind == "feed":
                self.ctx.now = entry.now_ns
                self.result.feed_statuses += 1
                strategy.on_feed_status(self.ctx, entry.data["status"])
            elif kind == "request":
                self.request_number += 1
                self._diverge(
                    "the live strategy made a request the replayed one did not make",
                    entry,
                    None,
                )
            elif kind == "stop":
                self.ctx.now = entry.now_ns
                strategy.on_stop(self.ctx)
            elif kind == "end":
                return


def replay_decisions(
    db: str | Path,
    run_id: str | None = None,
    *,
    strategy_factory: Callable[[Mapping[str, Any]], Strategy] | None = None,
) -> TradeReplay:
    """Replays a live run's decisions (see the module docstring). ``strategy_factory(params)``
    builds the strategy instead of the journal's spec (tests)."""
    from twinfeed.research.backtest import load_strategy

    run, entries = load_journal(db, run_id)
    setup = entries[0].data
    spec = str(setup.get("strategy", ""))
    result = TradeReplay(db=str(db), run_id=run, strategy=spec)
    result.requests = sum(1 for entry in entries if entry.kind == "request")
    if entries[-1].kind != "end":
        result.truncated = (
            f"the journal ends at entry {entries[-1].entry} ({entries[-1].kind}) without an "
            "'end': the session crashed and lost the unflushed tail (at most one loop step); "
            "replayed up to there"
        )
    capture_dir = setup.get("capture_dir")
    if not capture_dir:
        raise JournalError(f"{db}: run {run} journal names no ingest capture folder")
    files = capture_files(capture_dir) if Path(capture_dir).is_dir() else []
    if not files:
        raise JournalError(
            f"{db}: run {run}: the ingest's capture {capture_dir} is gone (no capture-NNNNNN "
            "files); the replay rebuilds the records from it"
        )
    result.capture_files = [str(path) for path in files]
    toml = setup.get("feature_config_toml")
    config = FeatureConfig.from_toml_str(toml, "the journal") if toml else FeatureConfig.default()
    if setup.get("fingerprint") and config.fingerprint != setup["fingerprint"]:
        raise JournalError(
            f"{db}: run {run}: the journal's feature config has fingerprint {config.fingerprint}, "
            f"the live feed had {setup['fingerprint']}"
        )
    params = dict(setup.get("params") or {})
    if strategy_factory is not None:
        strategy = strategy_factory(params)
    else:
        strategy = load_strategy(spec)(params)
    driver = _Driver(entries, RecordStream(files, config), strategy, result)
    driver.ctx.now = entries[0].now_ns
    try:
        strategy.on_start(driver.ctx)
        driver.after_request()
        driver.run()
    except (_Diverged, _JournalEnded):
        pass
    except JournalError:
        raise
    except Exception as error:  # the replayed strategy failed where the live one did not
        with contextlib.suppress(_Diverged):
            driver._diverge(
                f"the replayed strategy raised {type(error).__name__}: {error}", None, None
            )
    return result


def print_replay(result: TradeReplay, console: Any) -> None:
    """The replay's verdict; on a divergence both requests field by field."""
    from rich.table import Table

    console.print(
        f"decision replay of run {result.run_id} ({result.strategy}): "
        f"{result.requests_replayed}/{result.requests} requests reproduced over "
        f"{result.batches} batches ({result.records:,} records), {result.deliveries} "
        f"deliveries, {result.feed_statuses} feed statuses"
    )
    if result.truncated:
        console.print(f"[yellow]{result.truncated}")
    divergence = result.divergence
    if divergence is None:
        console.print("[green]identical: every request equals the journaled one")
        return
    console.print(f"[red]request {divergence.request}: {divergence.reason}")
    if divergence.input_before is not None:
        console.print(f"input before it: {json.dumps(divergence.input_before, default=str)}")
    if divergence.capture_line is not None:
        console.print(f"capture line: {divergence.capture_line}")
    expected = divergence.expected or {}
    replayed = divergence.replayed or {}
    table = Table("field", "live (journal)", "replay", "")
    for key in sorted((set(expected) | set(replayed)) - {"entry"}):
        differs = expected.get(key) != replayed.get(key)
        table.add_row(
            key,
            json.dumps(expected.get(key)) if expected else "-",
            json.dumps(replayed.get(key)) if replayed else "-",
            "[red]<>" if differs else "",
        )
    console.print(table)
