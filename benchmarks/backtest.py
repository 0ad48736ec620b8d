"""Backtest throughput: feature records per second through the matching engine and a strategy.

Input: the real Binance USD-M capture (../shared/data/real), decoded once through the binding
(not timed), then repeated end to end until there are >= 1M records (``--quick``: 200k). Each
repetition is shifted in time and in update ids, so the engine sees one long, consistent
stream (the price jumps back at each seam). Every case runs the in-memory records through
``Backtest`` (or the bare engine), pinned to one core; the best of ``--repeats`` runs is
reported (building the ``Backtest``, which hashes its input, is not timed), as wall time and
as this process's CPU time (the machine is shared: CPU time is the
less noisy figure, and the load average is printed with the results).

Cases:
- ``engine, no orders``: ``MatchingEngine.on_batch`` on 64k-row batches, nothing working
  (the cost floor of the batch path: a few numpy calls per batch).
- ``null strategy, batches``: the backtester calling a do-nothing ``on_batch`` every 100 ms.
- ``market maker, batches @ D``: the example ``MarketMaker`` (two quotes resting at or near
  the touch, so nearly every touch record touches a working order) deciding every D of
  event time.
- ``market maker, rows``: the same strategy called per record (``mode="rows"``), on a
  ``--rows-records`` prefix (it is ~20x slower).
- ``end to end from capture``: the market maker in batch mode reading the gzip capture
  through the binding (decode included), on the original capture (not repeated).

    .venv/bin/python benchmarks/backtest.py [--quick] [--repeats N] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import twinfeed
from twinfeed.matching import MatchingEngine
from twinfeed.records import warn_if_debug
from twinfeed.research import iter_record_batches
from twinfeed.research.backtest import Backtest
from twinfeed.strategies import MarketMaker
from twinfeed.strategy import Context, Strategy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CAPTURE = REPO.parent / "shared" / "data" / "real" / "binance-usdm" / "btcusdt_20240808.gz"


@dataclass
class Result:
    case: str
    records: int
    wall_s: float
    cpu_s: float
    fills: int

    @property
    def per_second_cpu(self) -> float:
        return self.records / self.cpu_s

    @property
    def per_second_wall(self) -> float:
        return self.records / self.wall_s


class NullStrategy(Strategy):
    """Takes batches and does nothing: the backtester's own cost."""

    wants_batches = True

    def on_batch(self, ctx: Context, records: np.ndarray[Any, Any]) -> None:
        pass


def repeated(records: np.ndarray[Any, Any], minimum: int) -> np.ndarray[Any, Any]:
    """``records`` end to end until >= ``minimum`` rows, shifted in time and update ids."""
    copies = max(1, -(-minimum // len(records)))
    span = int(records["local_ns"][-1] - records["local_ns"][0]) + 1_000_000
    exchange_span = int(records["exchange_ns"][-1] - records["exchange_ns"][0]) + 1_000_000
    id_span = int(records["update_id"].max()) + 1
    parts = []
    for copy in range(copies):
        part = records.copy()
        part["local_ns"] += copy * span
        part["exchange_ns"] += copy * exchange_span
        # Touch ids must keep increasing or the engine's stale-touch guard drops every row.
        touch = (part["kind"] == twinfeed.KIND["quote"]) | (part["kind"] == twinfeed.KIND["book"])
        part["update_id"][touch] += np.uint64(copy * id_span)
        parts.append(part)
    return np.concatenate(parts)


def best_of(
    prepare: Callable[[], Callable[[], int]], records: int, repeats: int, case: str
) -> Result:
    """Best (by CPU time) of ``repeats`` timed calls of a freshly prepared run."""
    best: Result | None = None
    for _ in range(repeats):
        run = prepare()
        gc.collect()
        wall = time.perf_counter()
        cpu = time.process_time()
        fills = run()
        result = Result(case, records, time.perf_counter() - wall, time.process_time() - cpu, fills)
        if best is None or result.cpu_s < best.cpu_s:
            best = result
    assert best is not None
    return best


def engine_only(records: np.ndarray[Any, Any]) -> Callable[[], Callable[[], int]]:
    def prepare() -> Callable[[], int]:
        engine = MatchingEngine(latency_ns=1_000_000)

        def run() -> int:
            for start in range(0, len(records), 65_536):
                engine.on_batch(records[start : start + 65_536])
            return 0

        return run

    return prepare


def backtest(
    strategy: type[Strategy], source: Any, **settings: Any
) -> Callable[[], Callable[[], int]]:
    """Builds the Backtest (input hashing, not timed); the timed part is ``run()``."""

    def prepare() -> Callable[[], int]:
        runner = Backtest(strategy, source, **settings)
        return lambda: int(runner.run().metrics["fills"])

    return prepare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE)
    parser.add_argument("--quick", action="store_true", help="200k records, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows-records", type=int, default=200_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.capture.exists():
        print(f"capture {args.capture} not found (../shared/data/real missing?)", file=sys.stderr)
        return 2
    warn_if_debug()
    repeats = 1 if args.quick else args.repeats
    minimum = 200_000 if args.quick else 1_000_000
    core = None
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})

    base = np.concatenate(list(iter_record_batches(args.capture)))
    records = repeated(base, minimum)
    rows_records = records[: min(args.rows_records, len(records))]
    n = len(records)
    cases: list[tuple[str, Callable[[], Callable[[], int]], int]] = [
        ("engine, no orders", engine_only(records), n),
        ("null strategy, batches @100ms", backtest(NullStrategy, records), n),
        (
            "market maker, batches @1s",
            backtest(MarketMaker, records, decision_interval_ns=1_000_000_000),
            n,
        ),
        ("market maker, batches @100ms", backtest(MarketMaker, records), n),
        (
            "market maker, rows",
            backtest(MarketMaker, rows_records, mode="rows"),
            len(rows_records),
        ),
        ("end to end from capture @100ms", backtest(MarketMaker, args.capture), len(base)),
    ]
    results = [best_of(run, count, repeats, case) for case, run, count in cases]

    load = os.getloadavg()
    print(
        f"backtest throughput: {args.capture.name} x{n // len(base)} = {n:,} records "
        f"(rows mode: {len(rows_records):,}); best of {repeats}; "
        f"core {core}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"twinfeed {twinfeed.__version__} ({twinfeed.BUILD_PROFILE}); "
        f"python {platform.python_version()}"
    )
    header = (
        f"{'case':<34} {'records':>10} {'cpu s':>8} {'rec/s cpu':>12} "
        f"{'rec/s wall':>12} {'fills':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.case:<34} {r.records:>10,} {r.cpu_s:>8.3f} {r.per_second_cpu:>12,.0f} "
            f"{r.per_second_wall:>12,.0f} {r.fills:>7,}"
        )
    if load[0] > 1.5:
        print(f"note: load average {load[0]:.2f} on this machine; wall times are contended")
    if args.json:
        payload = {
            "capture": args.capture.name,
            "records": n,
            "load_average": load,
            "build": twinfeed.build_info(),
            "results": [
                {
                    **asdict(r),
                    "per_second_cpu": r.per_second_cpu,
                    "per_second_wall": r.per_second_wall,
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
