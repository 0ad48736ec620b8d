"""``parity diff``: two feature Parquet files, first divergence field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from twinfeed.parity.compare import Comparison, compare_streams
from twinfeed.records import records_from_arrow


def parquet_records(path: Path) -> np.ndarray[Any, Any]:
    """A feature Parquet file back into records (the ``symbol`` column is derived, dropped)."""
    try:
        return records_from_arrow(pq.read_table(path))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def diff_parquet(a: Path, b: Path, ignore_fields: tuple[str, ...] = ()) -> Comparison:
    """Compares the records of two feature Parquet files in order."""
    fingerprints = []
    for path in (a, b):
        metadata = pq.read_schema(path).metadata or {}
        fingerprints.append(metadata.get(b"twinfeed.fingerprint", b"?").decode())
    comparison = compare_streams(
        parquet_records(a),
        parquet_records(b),
        label="parquet diff",
        a_name=str(a),
        b_name=str(b),
        ignore_fields=ignore_fields,
    )
    comparison.extra["fingerprint_a"], comparison.extra["fingerprint_b"] = fingerprints
    if fingerprints[0] != fingerprints[1]:
        comparison.note = "the files were computed under different fingerprints"
    return comparison
