"""Feature Parquet files stamped with the fingerprint and config."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from twinfeed import FeatureConfig, _features
from twinfeed._atomic import atomic_path
from twinfeed.records import ARROW_VIEW, build_info
from twinfeed.research.features import (
    CapturePaths,
    EmptyCaptureError,
    Progress,
    empty_capture_error,
    open_run,
)

__all__ = ["EmptyCaptureError", "RunSummary", "summarize_run", "write_features"]


@dataclass
class RunSummary:
    """What a feature run produced and skipped."""

    rows: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    stats: dict[str, Any] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)
    fingerprint: str = ""
    out: Path | None = None


#: Counters of lines a run skipped, by reason, as ``FeatureRun.stats()`` names them.
SKIP_KEYS = (
    "malformed_lines",
    "decode_errors",
    "unknown_frames",
    "filtered",
    "over_symbol_cap",
    "unchanged_quotes",
)


def parquet_metadata(
    config: FeatureConfig, capture: CapturePaths | None = None
) -> dict[bytes, bytes]:
    """Key-value metadata stamped into every feature Parquet file: fingerprint, config TOML,
    build and, given the capture, its provenance (``twinfeed.captures``: name, path, sha256
    and size of each file, in reading order) and the venue its frames come from
    (``twinfeed.venue``, e.g. ``binance-spot``; the config's ``[ingest] market`` is only where
    a live ingest would connect, not what this capture is)."""
    info = build_info(config)
    metadata = {
        b"twinfeed.fingerprint": config.fingerprint.encode(),
        b"twinfeed.config": config.to_toml().encode(),
        b"twinfeed.build": json.dumps(info, sort_keys=True).encode(),
        b"twinfeed.arrow_view": ARROW_VIEW.encode(),
    }
    if capture is not None:
        from twinfeed.instruments import capture_venue
        from twinfeed.research.backtest import capture_digests
        from twinfeed.research.features import capture_names, is_url

        paths = capture_names(capture)
        captures = [
            {**digest, "path": path if is_url(path) else str(Path(path).resolve())}
            for digest, path in zip(capture_digests(capture), paths, strict=True)
        ]
        metadata[b"twinfeed.captures"] = json.dumps(captures, sort_keys=True).encode()
        metadata[b"twinfeed.venue"] = (capture_venue(paths) or "unknown").encode()
    return metadata


def write_features(
    capture: CapturePaths,
    config: FeatureConfig,
    out: Path | None,
    batch_rows: int = 65_536,
    progress: Progress | None = None,
) -> RunSummary:
    """Runs the pipeline over ``capture``; writes Parquet to ``out`` if given, batch by batch
    (a row group per batch). 65,536 rows (12 MiB of records) rather than 262,144: the batch is
    still in cache while it is encoded, and two runs at once (a backfill on 2 cores) each
    slowed by 15 % with the larger batch against 6 % (interleaved runs, benchmarks/backfill.py).

    Raises :class:`EmptyCaptureError` (and writes nothing) when ``capture`` gives no record.
    """
    summary = RunSummary(fingerprint=config.fingerprint, out=out)
    # Provenance hashes the capture once more: only for a file that keeps it. Before the run
    # opens it: some fsspec stores hand every opener the same file object.
    metadata = parquet_metadata(config, capture if out is not None else None)
    run = open_run(capture, config)
    schema = pa.schema(_features.arrow_schema()).with_metadata(metadata)
    if out is None:
        _write_batches(run, None, schema, summary, batch_rows, progress)
        _check_records(capture, run, summary)
    else:
        # Written under a temporary name and renamed when complete: a failed or interrupted
        # run (or one over something that is not a capture) leaves no 0-row or partial file
        # at `out` (see twinfeed._atomic).
        with atomic_path(out) as temporary:
            _write_batches(run, temporary, schema, summary, batch_rows, progress)
            _check_records(capture, run, summary)
    summary.stats = run.stats()
    summary.symbols = run.symbols()
    return summary


def _check_records(capture: CapturePaths, run: Any, summary: RunSummary) -> None:
    """Raises :class:`EmptyCaptureError` when the run gave no record at all."""
    if summary.rows == 0:
        raise empty_capture_error(capture, run.stats())


def _write_batches(
    run: Any,
    path: Path | None,
    schema: pa.Schema,
    summary: RunSummary,
    batch_rows: int,
    progress: Progress | None,
) -> None:
    """Pulls every batch of ``run``; writes them to Parquet at ``path`` if given."""
    writer: pq.ParquetWriter | None = None
    try:
        if path is not None:
            writer = pq.ParquetWriter(str(path), schema, compression="zstd")
        while (table := run.next_arrow(batch_rows)) is not None:
            arrow = pa.table(table)
            summary.rows += arrow.num_rows
            kinds = arrow.column("kind").value_counts().to_pylist()
            for item in kinds:
                summary.kinds[str(item["values"])] += item["counts"]
            if writer is not None:
                writer.write_table(arrow.replace_schema_metadata(schema.metadata))
            if progress is not None:
                progress(run.bytes_read, run.total_bytes)
    finally:
        if writer is not None:
            writer.close()


def read_arrow_view(path: Path) -> str | None:
    """The Arrow view version stamped into a feature Parquet file (None: written before the
    view had one, i.e. integer times, NaN instead of nulls)."""
    value = (pq.read_schema(str(path)).metadata or {}).get(b"twinfeed.arrow_view")
    return value.decode() if value else None


def read_fingerprint(path: Path) -> str | None:
    """The fingerprint stamped into a feature Parquet file, if any."""
    metadata = pq.read_schema(str(path)).metadata or {}
    value = metadata.get(b"twinfeed.fingerprint")
    return value.decode() if value else None


def summarize_run(summary: RunSummary, console: Console) -> None:
    """Prints a run summary table, skipped-line counts and warnings."""
    stats = summary.stats
    # The headline is a line of its own: as the title of this narrow table it would wrap.
    console.print(
        f"[bold]features[/]: {summary.rows:,} records, fingerprint {summary.fingerprint[:12]}"
    )
    table = Table()
    table.add_column("kind")
    table.add_column("records", justify="right")
    for kind, count in sorted(summary.kinds.items()):
        table.add_row(kind, f"{count:,}")
    console.print(table)
    console.print(
        f"lines {stats['lines']:,}  frames {stats['frames']:,}  "
        f"symbols {', '.join(summary.symbols) or '-'}  "
        f"snapshots {stats['snapshots']}  gaps {stats['gaps']}  heartbeats {stats['heartbeats']}"
    )
    skipped = {key: stats[key] for key in SKIP_KEYS if stats.get(key)}
    if skipped:
        console.print("skipped: " + ", ".join(f"{k} {v:,}" for k, v in skipped.items()))
    for line, message in stats["errors"][:5]:
        console.print(f"[yellow]line {line}: {message}")
    for warning in stats["warnings"]:
        console.print(f"[yellow]warning: {warning}")
    if summary.out is not None:
        console.print(f"wrote {summary.out}")
