"""``parity check``: the live path against the batch binding, on one capture.

Two comparisons (both in the report):

1. **live vs batch(ingest capture)**, byte for byte, every field: the records the live process
   handed the brain against the batch binding run over the capture that same process wrote.
   This is the guarantee ("research sees what live traded on") and it gates.
2. **live vs batch(original capture)**, the venue's input: local receive times differ by
   construction, and the ingest fetched its depth snapshot at another moment than the original
   collector, so this compares the market records (quote, trade, bar) in order on every field
   except ``local_ns``, ``line``, ``seq`` (local) and ``flags``, ``imbalance`` (book timing),
   and book records by update id on every non-local field. Transport-only kinds (heartbeat,
   status) and gap records are left out. It gates only without injected faults, since faults
   change what the venue sends.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinfeed import FeatureConfig, TwinfeedError
from twinfeed._atomic import write_text
from twinfeed.parity.compare import (
    BOOK_TIMING_FIELDS,
    LOCAL_FIELDS,
    TRANSPORT_KINDS,
    Comparison,
    as_records,
    compare_streams,
    select,
)
from twinfeed.parity.lines import capture_locator
from twinfeed.parity.live import CollectorTransform, LiveRun, run_live_path
from twinfeed.records import KIND, Flag, build_info
from twinfeed.research.features import compute_records

FLAG_FROM_SNAPSHOT = int(Flag.FROM_SNAPSHOT)


class ParityMismatch(TwinfeedError):
    """Builds or fingerprints differ, so a comparison would be meaningless."""


@dataclass
class ParityReport:
    capture: str
    fingerprint: str
    binding: dict[str, Any]
    ingest_version: str
    comparisons: list[Comparison]
    live: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.equal for c in self.comparisons if c.gating)

    def to_json(self) -> dict[str, Any]:
        return {
            "capture": self.capture,
            "ok": self.ok,
            "fingerprint": self.fingerprint,
            "binding_build": self.binding,
            "ingest_build": self.ingest_version,
            "live": self.live,
            "comparisons": [c.to_json() for c in self.comparisons],
        }

    def write(self, path: Path) -> None:
        write_text(path, json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")


def check_builds(config: FeatureConfig, ingest_version: str) -> None:
    """Refuses to compare when the ingest binary and the binding are different builds."""
    info = build_info(config)
    expected = {
        "version": info["version"],
        "profile": info["profile"],
        "fingerprint": config.fingerprint,
    }
    for key, value in expected.items():
        if value not in ingest_version:
            raise ParityMismatch(
                f"twinfeed-ingest reports {ingest_version!r}, but the binding has {key} "
                f"{value!r}: rebuild both from the same tree (make setup) before comparing"
            )


def _last_per_id(records: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """One record per update id (the last), ordered by id: a resync can repeat an id."""
    last = {int(update_id): i for i, update_id in enumerate(records["update_id"])}
    kept = records[sorted(last.values())]
    return kept[np.argsort(kept["update_id"], kind="stable")]


def _market_comparison(
    live: np.ndarray[Any, Any],
    original: np.ndarray[Any, Any],
    original_path: Path,
    live_run: LiveRun,
) -> Comparison:
    kinds = ("quote", "trade", "bar")
    ignore = LOCAL_FIELDS + BOOK_TIMING_FIELDS
    comparison = compare_streams(
        select(live, kinds=kinds),
        select(original, kinds=kinds),
        label="live vs batch(original capture)",
        a_name="live ring",
        b_name=f"batch over {original_path.name}",
        ignore_fields=ignore,
        locate_a=capture_locator(live_run.capture_files),
        locate_b=capture_locator([original_path]),
        note="market records (quote, trade, bar) in order; local and book-timing fields excluded",
    )
    comparison.excluded_kinds = (*TRANSPORT_KINDS, "gap")
    # Records from applying a snapshot are resync points whose timing is the ingest's own.
    books_live = select(live, kinds=("book",))
    books_live = books_live[books_live["flags"] & FLAG_FROM_SNAPSHOT == 0]
    books_original = select(original, kinds=("book",))
    books_original = books_original[books_original["flags"] & FLAG_FROM_SNAPSHOT == 0]
    common = np.intersect1d(books_live["update_id"], books_original["update_id"])
    a = books_live[np.isin(books_live["update_id"], common)]
    b = books_original[np.isin(books_original["update_id"], common)]
    a, b = _last_per_id(a), _last_per_id(b)
    book_cmp = compare_streams(a, b, label="book records by update id", ignore_fields=LOCAL_FIELDS)
    comparison.extra["book_records_compared"] = len(common)
    comparison.extra["book_records_equal"] = book_cmp.equal
    if not book_cmp.equal and comparison.equal:
        comparison.equal = False
        comparison.first = book_cmp.first
    return comparison


def parity_check(
    capture: str | Path,
    config: FeatureConfig | None = None,
    work_dir: str | Path | None = None,
    faults: dict[str, Any] | None = None,
    transform: CollectorTransform | None = None,
    speed: float | str = "max",
) -> ParityReport:
    """Runs the live path and the batch binding on ``capture`` and compares them."""
    config = config or FeatureConfig.default()
    capture = Path(capture)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="parity-"))
    original_raw, original_stats = compute_records(capture, config)
    symbols = config.symbols or original_stats["symbols"]
    if not symbols:
        raise TwinfeedError(f"{capture}: no symbols found; nothing to compare")
    live_run = run_live_path(
        capture, config, work, symbols, faults=faults, transform=transform, speed=speed
    )
    check_builds(config, live_run.ingest_version)
    if live_run.lost:
        raise TwinfeedError(
            f"the collector lost {live_run.lost} records to ring overrun; the comparison would "
            "be incomplete (raise ingest.ring_slots)"
        )
    replay_raw, _ = compute_records(live_run.capture_files, config)
    live = live_run.records
    strict = compare_streams(
        live,
        replay_raw,
        label="live vs batch(ingest capture)",
        a_name="live ring",
        b_name="batch over the ingest's capture",
        locate_a=capture_locator(live_run.capture_files),
        locate_b=capture_locator(live_run.capture_files),
        note="byte for byte, every field",
    )
    market = _market_comparison(live, as_records(original_raw), capture, live_run)
    market.gating = not faults
    kinds = {name: int((live["kind"] == code).sum()) for name, code in KIND.items()}
    return ParityReport(
        capture=str(capture),
        fingerprint=config.fingerprint,
        binding=build_info(config),
        ingest_version=live_run.ingest_version,
        comparisons=[strict, market],
        live={
            "records": len(live),
            "kinds": kinds,
            "venue_messages": live_run.venue_messages,
            "ingest_capture": [str(p) for p in live_run.capture_files],
            "faults": live_run.faults,
            "seconds": round(live_run.seconds, 3),
        },
    )
