"""Event-driven backtests of a :class:`twinfeed.strategy.Strategy` over captures.

The records come from the Rust binding (the same pipeline the live ingest runs), so the
strategy sees exactly what it would have seen live. Orders go through the shared
:class:`twinfeed.matching.MatchingEngine`, fills through :class:`twinfeed.portfolio.Portfolio`.

Time
    Event time is the capture's receive clock, ``local_ns``. With a market-data latency
    ``md_latency_ns`` the strategy sees each record that much later (``ctx.now_ns =
    local_ns + md_latency_ns``); its orders reach the matching engine ``latency_ns`` after it
    sent them. Nothing reads the wall clock.

Modes
    ``rows`` (strategies without ``wants_batches``): for each record, the engine processes it,
    fills and order updates go to the strategy, then ``on_record``.
    ``batches`` (``wants_batches = True``): records are cut on a fixed event-time grid of
    ``decision_interval_ns`` (on ``now_ns``); for each non-empty interval the engine processes
    all of it (fast path), the strategy gets the fills and updates, then one ``on_batch`` call
    with ``ctx.now_ns`` = the time of the interval's last record. ``mode="rows"`` forces per-row
    callbacks on a strategy that offers both.

Determinism
    The result is a pure function of (strategy and params, capture bytes, feature config,
    settings): same inputs give byte-identical frames and artifact, whatever ``batch_rows``
    the binding is read with, because intervals are cut on event time, not on read batches,
    and the engine's batch path equals its per-row path exactly.

Feed status
    Derived from the records: a ``gap`` record makes the feed ``degraded`` until the next
    ``book`` record (the book was rebuilt); a ``status`` record with the disconnected event makes
    it ``stale`` until the next quote or book record. Recorded captures have no heartbeats to
    lose, so silence is not treated as staleness here (the live runner does that).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from twinfeed import FeatureConfig
from twinfeed._time import utc_iso
from twinfeed.context import ContextBase, Request
from twinfeed.feed_status import may_change, next_status, special_rows, status_rows
from twinfeed.instruments import (
    Instrument,
    InstrumentTable,
    SymbolInstruments,
    UnknownInstrumentError,
    capture_venue,
    load_table,
    with_capture_rules,
)
from twinfeed.live.brain.risk import RiskConfig, RiskManager
from twinfeed.matching import MatchingEngine, RecordColumns
from twinfeed.orders import Event, Fill, Order
from twinfeed.portfolio import Portfolio
from twinfeed.records import build_info
from twinfeed.research.backtest_report import BacktestResult, Recorder, mark_portfolio
from twinfeed.research.features import (
    CapturePaths,
    Progress,
    capture_names,
    empty_capture_error,
    open_run,
)
from twinfeed.strategy import FeedStatus, PnL, Strategy

__all__ = [
    "DEFAULT_STRATEGY",
    "Backtest",
    "BacktestContext",
    "BacktestResult",
    "capture_digests",
    "StrategyError",
    "default_out_dir",
    "load_strategy",
    "strategy_failure",
]

#: The strategy the demo and ``twinfeed backtest`` run when none is named.
DEFAULT_STRATEGY = "twinfeed.strategies.market_maker:MarketMaker"

Mode = Literal["auto", "rows", "batches"]


def capture_digests(capture: CapturePaths) -> list[dict[str, Any]]:
    """sha256, size and name of every capture file, in reading order."""
    digests = []
    from twinfeed.research.features import is_url, open_url

    for path in capture_names(capture):
        sha = hashlib.sha256()
        size = 0
        # A URL is read once more for its digest (streamed, no local copy).
        with open_url(path)[1] if is_url(path) else open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
        digests.append({"name": Path(path).name, "sha256": sha.hexdigest(), "bytes": size})
    return digests


class StrategyError(RuntimeError):
    """A strategy callback raised; the message names the callback, the exception and the record
    (kind, capture file and line, time) it failed on. The original is ``__cause__``."""


def strategy_failure(
    error: Exception,
    strategy: Strategy,
    *,
    phase: str,
    record: Any = None,
    place: str = "",
    batch: bool = False,
) -> StrategyError | None:
    """A :class:`StrategyError` naming the callback, the exception and the record (kind,
    ``place`` in the capture, receive time) when ``error`` came out of one of ``strategy``'s
    methods (a traceback frame whose ``self`` is the strategy); None for any other error.
    ``phase`` is ``start``, ``run`` or ``stop``. The backtest and the live brain both use it.
    twinfeed's own errors raised on the strategy's behalf (an instrument without rules asked
    for through ``ctx.instrument``, a capture error) keep their type and message."""
    from twinfeed import TwinfeedError

    if isinstance(error, UnknownInstrumentError | TwinfeedError):
        return None
    method = ""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_locals.get("self") is strategy:
            method = tb.tb_frame.f_code.co_name
            break
        tb = tb.tb_next
    if not method:
        return None
    name = type(strategy).__name__
    what = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if phase != "run" or record is None:
        moment = "before the first record" if phase == "start" else "after the last record"
        return StrategyError(f"strategy {name}.{method} raised {what} ({moment})")
    from twinfeed.records import KIND_NAME

    kind = KIND_NAME.get(int(record["kind"]), str(int(record["kind"])))
    place = place or f"line {int(record['line'])}"
    time = utc_iso(int(record["local_ns"]))
    last = "the last record of its batch, " if batch else ""
    return StrategyError(
        f"strategy {name}.{method} raised {what} on {last}a {kind} record at {place}, "
        f"local time {time} (twinfeed --debug shows the traceback)"
    )


def load_strategy(spec: str) -> type[Strategy]:
    """The Strategy subclass named by ``spec``: ``module:Class`` (e.g. :data:`DEFAULT_STRATEGY`;
    a module in the current folder is found too) or ``path/to/file.py:Class``.

    A file is imported as a module named after its stem, with its folder on ``sys.path``, so the
    class's :meth:`Strategy.qualified_name` (``stem:Class``) loads it again from that folder.
    """
    import importlib
    import os
    import sys

    module_name, _, class_name = spec.rpartition(":")
    if not module_name or not class_name:
        raise ValueError(f"strategy must be module:Class or path/to/file.py:Class, got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name)
        if path.suffix != ".py":
            raise ValueError(f"strategy file {module_name} must be a .py file (path.py:Class)")
        if not path.is_file():
            raise ValueError(f"strategy file {module_name} not found (from {Path.cwd()})")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        module_name = path.stem
    elif "" not in sys.path and os.getcwd() not in sys.path:
        # `twinfeed` as a console script has its own folder first on sys.path, not the
        # current one: a strategy module beside the user is found as `python -m` would.
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import strategy module {module_name!r}: {error}") from error
    strategy = getattr(module, class_name, None)
    if strategy is None:
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and issubclass(value, Strategy)
            and value is not Strategy
            and value.__module__ == module.__name__
        )
        raise ValueError(
            f"class {class_name!r} not found in {getattr(module, '__file__', module_name)}; "
            + (
                f"its Strategy subclasses: {', '.join(found)}"
                if found
                else "it defines no twinfeed.strategy.Strategy subclass"
            )
        )
    if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
        raise ValueError(f"{spec!r} is not a twinfeed.strategy.Strategy subclass")
    return strategy


def default_out_dir(capture: str | Path) -> Path:
    """``runs/backtest-<capture stem>``, compression and text suffixes stripped."""
    from twinfeed.capture import capture_stem

    return Path("runs") / f"backtest-{capture_stem(Path(capture).name)}"


class BacktestContext(ContextBase):
    """The :class:`twinfeed.strategy.Context` of a backtest: its sink is the matching engine
    (after the live brain's pre-trade risk checks, when given)."""

    def __init__(
        self,
        engine: MatchingEngine,
        portfolio: Portfolio,
        params: Mapping[str, Any],
        primary_symbol: int = 0,
        instruments: SymbolInstruments | None = None,
        risk: RiskManager | None = None,
    ) -> None:
        super().__init__(params, instruments or SymbolInstruments(None, None, None), primary_symbol)
        self._engine = engine
        self._portfolio = portfolio
        self._risk = risk
        #: Pre-trade risk refusals by check name (``rate``, ``position``, ...).
        self.risk_refusals: dict[str, int] = {}

    def _request(self, request: Request) -> list[str]:
        engine, now = self._engine, self.now
        if request.action == "submit":
            assert request.order is not None
            reason = request.refusal or self._risk_refusal(request.order)
            if reason:
                engine.refuse(request.order, now, reason)
            else:
                engine.submit(request.order, now)
        elif request.action == "cancel":
            engine.cancel(request.client_id, now)
        elif request.action == "cancel_all":
            return engine.cancel_all(now, request.symbol)
        else:
            self._replace(request.client_id, request.price, request.qty)
        return []

    def _risk_refusal(self, order: Order) -> str:
        """The live brain's pre-trade check of ``order`` ("" if it passes)."""
        if self._risk is None:
            return ""
        touch = self._engine.touch(order.symbol)
        mid = (touch.bid_px + touch.ask_px) / 2 if touch is not None else float("nan")
        decision = self._risk.check(
            order,
            now_ns=self.now,
            position=self._portfolio.position(order.symbol).qty,
            mid=mid,
            open_orders=[o for o in self._engine.open_orders(order.symbol) if o is not order],
        )
        if decision.ok:
            return ""
        self.risk_refusals[decision.check] = self.risk_refusals.get(decision.check, 0) + 1
        return f"risk: {decision.reason}"

    def _replace(self, client_id: str, price: float, qty: float) -> None:
        """With risk checks, a replace is checked as the live brain checks it (a new order
        for the remaining quantity, which costs a rate token); refused, the order is
        cancelled, as the live brain's cancel-and-resend leaves it."""
        if self._risk is not None:
            order = self._engine.orders.get(client_id)
            if order is not None and order.is_open:
                leg = Order(
                    client_id,
                    order.symbol,
                    order.side,
                    max(qty - order.filled_qty, 0.0),
                    price,
                    type=order.type,
                    tif=order.tif,
                    reduce_only=order.reduce_only,
                    good_till_ms=order.good_till_ms,
                )
                if self._risk_refusal(leg):
                    self._engine.cancel(client_id, self.now)
                    return
        self._engine.replace(client_id, price, qty, self.now)

    def _position(self, symbol: int) -> float:
        return self._portfolio.position(symbol).qty

    def pnl(self) -> PnL:
        """See :meth:`twinfeed.strategy.Context.pnl`; marks positions at the current mid."""
        mark_portfolio(self._portfolio, self._engine)
        return self._portfolio.pnl()

    def open_orders(self, symbol: int | None = None) -> list[Order]:
        """See :meth:`twinfeed.strategy.Context.open_orders`."""
        return self._engine.open_orders(symbol)


def _special_rows(records: np.ndarray[Any, Any]) -> list[int]:
    """Indices of gap and status records (rare: the feed-status logic looks only there)."""
    return special_rows(records)


class Backtest:
    """One backtest run of a strategy over a capture.

    Args:
        strategy: A :class:`Strategy` subclass (instantiated with ``params``) or instance.
        capture: A capture file, a list of files, a capture folder, or an in-memory record
            array (``twinfeed.record_dtype()``; benchmarks and tests).
        config: Feature config (default ``FeatureConfig.default()``).
        params: Strategy parameter overrides (only with a strategy class).
        latency_ns: Order-entry latency (strategy -> matching engine). Default 1 ms.
        md_latency_ns: Market-data latency (record -> strategy). Default 0.
        maker_fee_bps: Maker fee in bps (negative = rebate). Default 0.
        taker_fee_bps: Taker fee in bps. Default 1.7 (a high Binance USD-M fee tier).
        sweep_slippage_bps: Penalty for market orders beyond the displayed touch size.
        batch_rows: Rows per batch read from the binding (results do not depend on it).
        decision_interval_ns: Event-time grid for ``on_batch`` calls (batch mode). 100 ms.
        equity_interval_ns: Event-time grid of the equity and position samples. 1 s; a
            multiple of ``decision_interval_ns`` in batch mode.
        mode: ``"auto"`` (batches if the strategy ``wants_batches``), ``"rows"`` or
            ``"batches"``.
        instruments: Trading rules: an :class:`InstrumentTable` to look the capture's symbols
            up in (default: the shipped table, :func:`twinfeed.instruments.load_table`), or a
            list of :class:`Instrument` (index = ``symbol_id`` for records in memory; by name
            for a capture). Records in memory without instruments are matched without rule
            checks.
        venue: The venue whose rules apply (default: detected from the capture's frames).
        risk: The live brain's pre-trade limits (``[risk]`` of a live settings file); each
            order and replace passes :class:`twinfeed.live.brain.risk.RiskManager` on event
            time and a refused one is ``rejected`` with reason ``risk: ...`` (counted in the
            metrics ``risk_refusals*``). None: no risk checks.
    """

    def __init__(
        self,
        strategy: type[Strategy] | Strategy,
        capture: CapturePaths | np.ndarray[Any, Any],
        config: FeatureConfig | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        latency_ns: int = 1_000_000,
        md_latency_ns: int = 0,
        maker_fee_bps: float = 0.0,
        taker_fee_bps: float = 1.7,
        sweep_slippage_bps: float = 1.0,
        batch_rows: int = 65_536,
        decision_interval_ns: int = 100_000_000,
        equity_interval_ns: int = 1_000_000_000,
        mode: Mode = "auto",
        instruments: InstrumentTable | list[Instrument] | None = None,
        venue: str | None = None,
        risk: RiskConfig | None = None,
    ) -> None:
        if isinstance(strategy, type):
            strategy = strategy(params)
        elif params:
            raise ValueError("params are only accepted with a strategy class, not an instance")
        self.strategy = strategy
        self.capture = capture
        self.config = config if config is not None else FeatureConfig.default()
        if mode == "auto":
            mode = "batches" if strategy.wants_batches else "rows"
        if mode not in ("rows", "batches"):
            raise ValueError(f"mode must be auto, rows or batches, got {mode!r}")
        for name, value in (
            ("latency_ns", latency_ns),
            ("md_latency_ns", md_latency_ns),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if decision_interval_ns <= 0 or equity_interval_ns <= 0 or batch_rows <= 0:
            raise ValueError("intervals and batch_rows must be positive")
        if mode == "batches" and equity_interval_ns % decision_interval_ns:
            raise ValueError("equity_interval_ns must be a multiple of decision_interval_ns")
        self.mode: Literal["rows", "batches"] = mode
        #: sha256, size and name of each input (hashed up front: provenance, not engine work).
        self.captures = self._capture_info()
        self._run: Any = None
        self._symbols_read: list[str] = []
        #: The binding's stats of the capture read (lines, malformed, ...), once read.
        self.read_stats: dict[str, Any] = {}
        self.instruments = self._instruments(instruments, venue)
        self.venue = self.instruments.venue
        self.risk = risk
        self.batch_rows = int(batch_rows)
        #: Everything that defines the run besides strategy, capture and config; the artifact
        #: records it. ``batch_rows`` is left out on purpose: results do not depend on it.
        self.settings: dict[str, Any] = {
            "latency_ns": int(latency_ns),
            "md_latency_ns": int(md_latency_ns),
            "maker_fee_bps": float(maker_fee_bps),
            "taker_fee_bps": float(taker_fee_bps),
            "sweep_slippage_bps": float(sweep_slippage_bps),
            "decision_interval_ns": int(decision_interval_ns),
            "equity_interval_ns": int(equity_interval_ns),
            "mode": mode,
            "clock": "local_ns (capture receive time)",
        }

    # ---- reading ------------------------------------------------------------------------

    def _batches(
        self, progress: Progress | None, symbols: list[str]
    ) -> Iterator[np.ndarray[Any, Any]]:
        if isinstance(self.capture, np.ndarray):
            records = self.capture
            for start in range(0, len(records), self.batch_rows):
                yield records[start : start + self.batch_rows]
                if progress is not None:
                    progress(min(start + self.batch_rows, len(records)), len(records))
            return
        import twinfeed

        dtype = twinfeed.record_dtype()
        run = self._run = open_run(self.capture, self.config)
        while (raw := run.next_records(self.batch_rows)) is not None:
            yield np.frombuffer(raw, dtype=dtype)
            if progress is not None:
                progress(run.bytes_read, run.total_bytes)
        symbols.extend(run.symbols())
        self.read_stats = run.stats()
        # The binding's run may only be dropped on this thread: not kept past the read.
        self._symbols_read = list(symbols)
        self._run = None

    def _slices(
        self, batches: Iterator[np.ndarray[Any, Any]], grid_ns: int
    ) -> Iterator[tuple[np.ndarray[Any, Any], RecordColumns, list[int], list[int]]]:
        """Re-cuts the read batches on an event-time grid (independent of ``batch_rows``).

        Yields ``(chunk, columns, bounds, special)``: interval ``i`` is
        ``chunk[bounds[i]:bounds[i + 1]]``; the engine's columns are prepared once per chunk (a
        read batch plus the unfinished interval carried over from the previous one), and
        ``special`` lists the chunk's gap and status rows (feed status).
        """
        shift = self.settings["md_latency_ns"]
        carry: np.ndarray[Any, Any] | None = None
        for batch in batches:
            if not len(batch):
                continue
            buckets = (batch["local_ns"] + shift) // grid_ns
            cuts = (np.flatnonzero(buckets[1:] != buckets[:-1]) + 1).tolist()
            if carry is not None and len(carry):
                carry_bucket = (int(carry["local_ns"][-1]) + shift) // grid_ns
                if int(buckets[0]) != carry_bucket:
                    cuts.insert(0, 0)
            if not cuts:
                carry = batch if carry is None else np.concatenate([carry, batch])
                continue
            first = cuts[0]
            if carry is not None and len(carry):
                # Only the interval that straddles two read batches is copied together.
                head = np.concatenate([carry, batch[:first]])
                yield head, RecordColumns(head), [0, len(head)], _special_rows(head)
            elif first:
                head = batch[:first]
                yield head, RecordColumns(head), [0, first], _special_rows(head)
            if len(cuts) > 1:
                # The last interval may continue in the next batch: carried over.
                body = batch[first : cuts[-1]]
                bounds = [cut - first for cut in cuts]
                yield body, RecordColumns(body), bounds, _special_rows(body)
            carry = batch[cuts[-1] :]
        if carry is not None and len(carry):
            yield carry, RecordColumns(carry), [0, len(carry)], _special_rows(carry)

    # ---- running ------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> BacktestResult:
        """Runs the backtest; ``progress(done, total)`` is called after each read batch."""
        try:
            return self._run_all(progress)
        finally:
            self._run = None  # the binding's run is dropped on this thread

    def _run_all(self, progress: Progress | None) -> BacktestResult:
        settings = self.settings
        strategy = self.strategy
        engine = MatchingEngine(
            latency_ns=settings["latency_ns"],
            maker_fee_bps=settings["maker_fee_bps"],
            taker_fee_bps=settings["taker_fee_bps"],
            sweep_slippage_bps=settings["sweep_slippage_bps"],
            instruments=self.instruments,
        )
        portfolio = Portfolio(self.instruments)
        ctx = BacktestContext(
            engine,
            portfolio,
            strategy.params,
            instruments=self.instruments,
            risk=RiskManager(self.risk) if self.risk is not None else None,
        )
        recorder = Recorder(
            engine, portfolio, settings["equity_interval_ns"], settings["md_latency_ns"]
        )
        md_latency = settings["md_latency_ns"]
        status: list[FeedStatus] = ["healthy"]

        def dispatch(events: list[Event]) -> None:
            for event in events:
                if isinstance(event, Fill):
                    recorder.fill(event, portfolio.apply(event))
                    strategy.on_fill(ctx, event)
                else:
                    recorder.updates += 1
                    strategy.on_order_update(ctx, event)

        def feed_status(kind: int, flags: int) -> None:
            current = status[0]
            new = next_status(current, kind, flags)
            if new != current:
                status[0] = new
                recorder.status_changes += 1
                strategy.on_feed_status(ctx, new)

        symbols: list[str] = []
        grid = settings["decision_interval_ns" if self.mode == "batches" else "equity_interval_ns"]
        batch_mode = self.mode == "batches"
        # Where a strategy exception happened (read only when one does: the loop stays as is).
        chunk: np.ndarray[Any, Any] | None = None
        start = stop = row = 0
        phase = "start"
        try:
            strategy.on_start(ctx)
            phase = "run"
            for chunk, columns, bounds, special in self._slices(
                self._batches(progress, symbols), grid
            ):
                local_ns = columns.local_ns
                for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
                    records = chunk[start:stop]
                    recorder.begin(int(local_ns[start]), stop - start)
                    if batch_mode:
                        dispatch(engine.process(columns, start, stop))
                        if status[0] != "healthy" or (
                            special and bisect_left(special, start) < bisect_left(special, stop)
                        ):
                            kinds = records["kind"]
                            flags = records["flags"]
                            for row in status_rows(records, status[0]):
                                ctx.now = int(local_ns[start + row]) + md_latency
                                feed_status(int(kinds[row]), int(flags[row]))
                        ctx.now = int(local_ns[stop - 1]) + md_latency
                        strategy.on_batch(ctx, records)
                    else:
                        times = (local_ns[start:stop] + md_latency).tolist()
                        kinds_list = records["kind"].tolist()
                        flags_list = records["flags"].tolist()
                        on_record = strategy.on_record
                        for row in range(stop - start):
                            events = engine.process(columns, start + row, start + row + 1)
                            if events:
                                dispatch(events)
                            ctx.now = times[row]
                            kind = kinds_list[row]
                            if may_change(status[0], kind):
                                feed_status(kind, flags_list[row])
                            on_record(ctx, records[row])
                    recorder.end(int(local_ns[stop - 1]))
            phase = "stop"
            strategy.on_stop(ctx)
        except Exception as error:
            where = None
            if phase == "run" and chunk is not None:
                where = chunk[start + row] if not batch_mode else chunk[max(stop - 1, start)]
            failure = self._strategy_failure(error, strategy, phase, where, batch_mode)
            if failure is None:
                raise
            raise failure from error
        # Whatever the strategy left working is cancelled; requests still in flight arrive.
        engine.cancel_all(ctx.now_ns)
        dispatch_final = engine.advance(ctx.now_ns + settings["latency_ns"])
        for event in dispatch_final:
            if isinstance(event, Fill):
                recorder.fill(event, portfolio.apply(event))
            else:
                recorder.updates += 1
        if not recorder.records and not isinstance(self.capture, np.ndarray):
            raise empty_capture_error(self.capture, self.read_stats)
        recorder.finish()
        result = BacktestResult.from_recorder(
            recorder=recorder,
            strategy_name=strategy.name or type(strategy).qualified_name(),
            params=dict(strategy.params),
            settings=dict(settings),
            fingerprint=self.config.fingerprint,
            captures=self.captures,
            build=build_info(self.config),
            symbols=symbols,
            instruments=self._described(symbols),
            currency=portfolio.currency,
            deployment=self._deployment(),
        )
        refusals = ctx.risk_refusals
        result.metrics["risk_refusals"] = float(sum(refusals.values()))
        for check, count in sorted(refusals.items()):
            result.metrics[f"risk_refusals_{check}"] = float(count)
        result.metrics["rule_refusals"] = float(
            sum(1 for o in engine.orders.values() if o.state == "rejected" and o.reason[:1] == "-")
        )
        return result

    def _strategy_failure(
        self,
        error: Exception,
        strategy: Strategy,
        phase: str,
        record: Any,
        batch_mode: bool,
    ) -> StrategyError | None:
        """:func:`strategy_failure` with the record's capture file and line."""
        place = ""
        if record is not None and phase == "run":
            line = int(record["line"])
            place = f"line {line}"
            if self._run is not None:
                located = self._run.locate(line)
                if located is not None:
                    place = f"{located[0]}:{located[1]}"
            elif not isinstance(self.capture, np.ndarray):
                paths = capture_names(self.capture)
                if len(paths) == 1:
                    place = f"{paths[0]}:{line}"
        return strategy_failure(
            error, strategy, phase=phase, record=record, place=place, batch=batch_mode
        )

    def _described(self, symbols: list[str]) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for name in symbols or self.instruments.symbols():
            try:
                out.append(self.instruments.by_name(name).describe())
            except UnknownInstrumentError:
                out.append(None)
        return out

    def _deployment(self) -> dict[str, Any]:
        """What ``twinfeed live --artifact`` needs to run exactly this strategy."""
        from twinfeed.deploy import strategy_source

        spec = type(self.strategy).qualified_name()
        return {
            "strategy_class": spec,
            "strategy_source": strategy_source(spec),
            "feature_config_toml": self.config.to_toml(),
            "venue": self.venue,
            "risk": self.risk.to_dict() if self.risk is not None else None,
        }

    def _instruments(
        self, given: InstrumentTable | list[Instrument] | None, venue: str | None
    ) -> SymbolInstruments:
        if isinstance(self.capture, np.ndarray):
            if given is None or isinstance(given, InstrumentTable):
                return SymbolInstruments(None, None, None)
            return SymbolInstruments(None, venue, [i.symbol for i in given], given)
        if venue is None:
            venue = capture_venue(capture_names(self.capture))
        fixed: list[Instrument] = []
        table = load_table()
        if isinstance(given, InstrumentTable):
            table = given
        elif given is not None:
            fixed = list(given)
        # The rules the capture recorded (its instruments line) over the shipped table's; the
        # table's origin names the sources used.
        table = with_capture_rules(table, capture_names(self.capture))

        def symbols() -> list[str]:
            return list(self._run.symbols()) if self._run is not None else self._symbols_read

        return SymbolInstruments(table, venue, symbols, fixed)

    def _capture_info(self) -> list[dict[str, Any]]:
        if isinstance(self.capture, np.ndarray):
            data = np.ascontiguousarray(self.capture).view(np.uint8)
            digest = hashlib.sha256(data.data).hexdigest()
            return [{"name": "<records in memory>", "sha256": digest, "bytes": self.capture.nbytes}]
        return capture_digests(self.capture)
