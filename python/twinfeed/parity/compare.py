"""Record-stream comparison: digests, byte-for-byte equality, first divergence field by field."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.recfunctions import repack_fields

from twinfeed import _features
from twinfeed.records import KIND, KIND_NAME

#: Fields that record when *this* process received a line; they differ by construction between
#: a live run and the original recording it replayed.
LOCAL_FIELDS = ("local_ns", "line", "seq")
#: Book-derived fields: they depend on when the live ingest fetched its depth snapshot, which
#: differs from when the original collector did.
BOOK_TIMING_FIELDS = ("flags", "imbalance")
#: Record kinds that exist only on the live transport (written by the ingest, not the venue).
TRANSPORT_KINDS = ("heartbeat", "status")

Locator = Callable[[int], "CaptureLine | None"]


@dataclass(frozen=True)
class CaptureLine:
    """The capture line that produced a record."""

    path: str
    line: int
    text: str


@dataclass
class Divergence:
    """The first record where two streams differ."""

    index: int
    fields: list[tuple[str, Any, Any]]
    record_a: dict[str, Any] | None
    record_b: dict[str, Any] | None
    line_a: CaptureLine | None = None
    line_b: CaptureLine | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "differing_fields": [{"field": f, "a": a, "b": b} for f, a, b in self.fields],
            "record_a": self.record_a,
            "record_b": self.record_b,
            "capture_line_a": None if self.line_a is None else vars(self.line_a),
            "capture_line_b": None if self.line_b is None else vars(self.line_b),
        }


@dataclass
class Comparison:
    """Result of comparing stream A against stream B."""

    label: str
    a_name: str
    b_name: str
    count_a: int
    count_b: int
    digest_a: str
    digest_b: str
    equal: bool
    excluded_fields: tuple[str, ...] = ()
    excluded_kinds: tuple[str, ...] = ()
    note: str = ""
    first: Divergence | None = None
    gating: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "a": self.a_name,
            "b": self.b_name,
            "records_a": self.count_a,
            "records_b": self.count_b,
            "sha256_a": self.digest_a,
            "sha256_b": self.digest_b,
            "equal": self.equal,
            "gating": self.gating,
            "excluded_fields": list(self.excluded_fields),
            "excluded_kinds": list(self.excluded_kinds),
            "note": self.note,
            "first_divergence": None if self.first is None else self.first.to_json(),
            **self.extra,
        }


def as_records(data: bytes | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Raw record bytes or a record array, as a record array."""
    if isinstance(data, np.ndarray):
        return data
    return np.frombuffer(data, dtype=_features.record_dtype())


def digest(records: bytes | np.ndarray[Any, Any]) -> str:
    """sha256 of the records' bytes (the record stream digest)."""
    raw = records.tobytes() if isinstance(records, np.ndarray) else records
    return hashlib.sha256(raw).hexdigest()


def _py(value: Any) -> Any:
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def record_dict(row: np.void) -> dict[str, Any]:
    """One record decoded field by field, with the kind's name."""
    out = {name: _py(row[name]) for name in row.dtype.names or ()}
    out["kind_name"] = KIND_NAME.get(out["kind"], "?")
    return out


def _bits_equal(a: Any, b: Any) -> bool:
    return bool(np.asarray(a).tobytes() == np.asarray(b).tobytes())


def select(
    records: np.ndarray[Any, Any], exclude_kinds: Sequence[str] = (), kinds: Sequence[str] = ()
) -> np.ndarray[Any, Any]:
    """Records of ``kinds`` (all if empty) minus ``exclude_kinds``."""
    mask = np.ones(len(records), dtype=bool)
    if kinds:
        mask &= np.isin(records["kind"], [KIND[k] for k in kinds])
    if exclude_kinds:
        mask &= ~np.isin(records["kind"], [KIND[k] for k in exclude_kinds])
    return records[mask]


def compare_streams(
    a: bytes | np.ndarray[Any, Any],
    b: bytes | np.ndarray[Any, Any],
    *,
    label: str,
    a_name: str = "a",
    b_name: str = "b",
    ignore_fields: Sequence[str] = (),
    locate_a: Locator | None = None,
    locate_b: Locator | None = None,
    note: str = "",
) -> Comparison:
    """Compares two record streams in order; with ``ignore_fields`` empty, byte for byte."""
    ra, rb = as_records(a), as_records(b)
    dtype = ra.dtype
    fields = [name for name in dtype.names or () if name not in ignore_fields]
    pa = repack_fields(ra[fields]) if ignore_fields else ra
    pb = repack_fields(rb[fields]) if ignore_fields else rb
    width = pa.dtype.itemsize
    n = min(len(pa), len(pb))
    va = np.frombuffer(pa.tobytes(), dtype=np.uint8).reshape(-1, width)[:n]
    vb = np.frombuffer(pb.tobytes(), dtype=np.uint8).reshape(-1, width)[:n]
    differs = np.flatnonzero((va != vb).any(axis=1))
    equal = len(differs) == 0 and len(pa) == len(pb)
    comparison = Comparison(
        label=label,
        a_name=a_name,
        b_name=b_name,
        count_a=len(ra),
        count_b=len(rb),
        digest_a=digest(pa),
        digest_b=digest(pb),
        equal=equal,
        excluded_fields=tuple(ignore_fields),
        note=note,
    )
    if equal:
        return comparison
    index = int(differs[0]) if len(differs) else n
    row_a = ra[index] if index < len(ra) else None
    row_b = rb[index] if index < len(rb) else None
    diffs: list[tuple[str, Any, Any]] = []
    if row_a is not None and row_b is not None:
        diffs = [
            (name, _py(row_a[name]), _py(row_b[name]))
            for name in fields
            if not _bits_equal(row_a[name], row_b[name])
        ]
    else:
        diffs = [("<length>", len(ra), len(rb))]
    comparison.first = Divergence(
        index=index,
        fields=diffs,
        record_a=None if row_a is None else record_dict(row_a),
        record_b=None if row_b is None else record_dict(row_b),
        line_a=None if row_a is None or locate_a is None else locate_a(int(row_a["line"])),
        line_b=None if row_b is None or locate_b is None else locate_b(int(row_b["line"])),
    )
    return comparison
