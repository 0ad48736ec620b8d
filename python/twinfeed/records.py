"""Record kinds and build provenance, read from the extension."""

from __future__ import annotations

import enum
import warnings
from typing import Any

import numpy as np

from twinfeed import _features

#: Record kind codes by name, e.g. ``KIND["quote"] == 1``.
KIND: dict[str, int] = dict(_features.record_kinds())
#: Kind names by code.
KIND_NAME: dict[int, str] = {code: name for name, code in KIND.items()}


#: Every code table of the record layout, from the feature crate (``record.rs``) through the
#: binding: ``kind``, ``flag``, ``gap_reason`` and ``status_event``, each name -> code.
CODES: dict[str, dict[str, int]] = {
    table: dict(codes) for table, codes in _features.record_codes().items()
}


class Kind(enum.IntEnum):
    """The record ``kind`` codes (``features-rs/core/src/record.rs``), as numpy record arrays
    and the ring hold them (``records["kind"] == Kind.QUOTE``). In Arrow and polars, ``kind``
    is an Enum of the names (:data:`KIND_NAMES`): ``df.filter(pl.col("kind") == "quote")``,
    or ``Kind.QUOTE.label``."""

    @property
    def label(self) -> str:
        """The name the Arrow/polars ``kind`` column shows, e.g. ``"quote"``."""
        return KIND_NAME[self.value]

    QUOTE = CODES["kind"]["quote"]
    BOOK = CODES["kind"]["book"]
    TRADE = CODES["kind"]["trade"]
    BAR = CODES["kind"]["bar"]
    GAP = CODES["kind"]["gap"]
    HEARTBEAT = CODES["kind"]["heartbeat"]
    STATUS = CODES["kind"]["status"]


class Flag(enum.IntFlag):
    """Bits of ``flags`` on quote, trade and book records (values from the binding)."""

    #: Quote/trade: the aggressor was the buyer.
    BUYER_AGGRESSOR = CODES["flag"]["buyer_aggressor"]
    #: Book-derived fields (imbalance) are valid.
    BOOK_VALID = CODES["flag"]["book_valid"]
    #: Book record produced by applying a depth snapshot (a resync point).
    FROM_SNAPSHOT = CODES["flag"]["from_snapshot"]


class GapReason(enum.IntEnum):
    """``flags`` of a gap record (values from the binding)."""

    #: A depth diff did not continue the previous one.
    SEQUENCE = CODES["gap_reason"]["sequence"]
    #: The first diff after a snapshot did not straddle it.
    SNAPSHOT = CODES["gap_reason"]["snapshot"]
    #: The connection dropped; the book is rebuilt.
    DISCONNECT = CODES["gap_reason"]["disconnect"]
    #: The rebuilt book did not match the checksum the venue sent (OKX); rebuilt at the next
    #: snapshot (the live ingest resubscribes to get one).
    CHECKSUM = CODES["gap_reason"]["checksum"]


class StatusEvent(enum.IntEnum):
    """``flags`` of a status record (values from the binding)."""

    CONNECTED = CODES["status_event"]["connected"]
    DISCONNECTED = CODES["status_event"]["disconnected"]
    SUBSCRIBED = CODES["status_event"]["subscribed"]
    SNAPSHOT_FETCHED = CODES["status_event"]["snapshot_fetched"]


def _check_complete() -> None:
    """A code the crate defines but Python has no member for is an error at import, not a
    record Python silently cannot name."""
    for table, members in (
        ("kind", Kind),
        ("flag", Flag),
        ("gap_reason", GapReason),
        ("status_event", StatusEvent),
    ):
        missing = sorted(set(CODES[table]) - {name.lower() for name in members.__members__})
        if missing:
            raise ImportError(
                f"twinfeed.records: the binding's {table} table has {missing} "
                f"that {members.__name__} does not name"
            )


_check_complete()


#: The categories of the Arrow/polars ``kind`` Enum, in code order.
KIND_NAMES: tuple[str, ...] = tuple(KIND_NAME[code] for code in sorted(KIND_NAME))

#: Version of the Arrow view of records (schema and null rules; ``features-rs/py/src/arrow.rs``),
#: stamped into feature Parquet files as ``twinfeed.arrow_view``; a file of another view is
#: rebuilt by backfills rather than reused. 2: timestamps, nulls, the ``kind`` Enum, no
#: ``reserved``.
ARROW_VIEW = "2"

#: Integer fields the Arrow view shows as null, with the record value a null stands for.
_NULL_INTEGERS = {"exchange_ns": 0, "update_id": 0, "count": 0, "symbol_id": 0xFFFF}


def last_mids(records: np.ndarray[Any, Any]) -> dict[int, float]:
    """The last defined ``mid`` of each symbol among the quote and book records of a record
    array, by symbol id (what a brain marks its positions to after a batch)."""
    kinds = records["kind"]
    touch = np.flatnonzero((kinds == Kind.QUOTE) | (kinds == Kind.BOOK))
    if not len(touch):
        return {}
    symbols = records["symbol_id"][touch]
    mids = records["mid"][touch]
    marks: dict[int, float] = {}
    for symbol in np.unique(symbols).tolist():
        mid = float(mids[np.flatnonzero(symbols == symbol)[-1]])
        if mid == mid:
            marks[int(symbol)] = mid
    return marks


def records_from_arrow(table: Any) -> np.ndarray[Any, Any]:
    """The binary records (dtype :func:`twinfeed.record_dtype`) behind an Arrow view of them
    (a pyarrow Table or RecordBatch, or a polars DataFrame): the inverse of the view, byte for
    byte (nulls back to NaN or the integer marker, ``kind`` names back to codes, the
    ``reserved`` padding 0). ``symbol`` is derived, and dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(table, pa.Table | pa.RecordBatch):
        table = pa.table(table)
    dtype = _features.record_dtype()
    names = [name for name in dtype.names or () if name != "reserved"]
    missing = [name for name in names if name not in table.column_names]
    if missing:
        raise ValueError(f"not twinfeed feature records: missing columns {missing}")
    records = np.zeros(table.num_rows, dtype=dtype)
    for name in names:
        column = table.column(name)
        if name == "kind":
            records[name] = _kind_codes(column)
            continue
        if pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.int64())
        if name in _NULL_INTEGERS:
            column = pc.fill_null(column, _NULL_INTEGERS[name])
        elif pa.types.is_floating(column.type):
            column = pc.fill_null(column, float("nan"))
        records[name] = column.to_numpy(zero_copy_only=False)
    return records


def _kind_codes(column: Any) -> np.ndarray[Any, Any]:
    """Record kind codes of an Arrow ``kind`` column (dictionary or strings of the names;
    null or an unknown name gives 0)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.zeros(0, np.uint8)]
    for chunk in chunks:
        if pa.types.is_dictionary(chunk.type):
            names = chunk.dictionary.to_pylist()
            lookup = np.array([KIND.get(str(n), 0) for n in names] + [0], dtype=np.uint8)
            indices = pc.fill_null(chunk.indices, len(names)).to_numpy(zero_copy_only=False)
            parts.append(lookup[indices])
        else:
            names = chunk.to_pylist()
            parts.append(np.array([KIND.get(str(n), 0) for n in names], dtype=np.uint8))
    return np.concatenate(parts)


def build_info(config: _features.FeatureConfig | None = None) -> dict[str, Any]:
    """Crate version, build profile, git revision, schema version and (with a config)
    fingerprint."""
    info: dict[str, Any] = {
        "version": _features.__version__,
        "profile": _features.BUILD_PROFILE,
        "git_revision": _features.GIT_REVISION,
        "schema_version": _features.SCHEMA_VERSION,
    }
    if config is not None:
        info["fingerprint"] = config.fingerprint
    return info


def warn_if_debug() -> None:
    """Benchmarks call this: a debug build must never be measured silently."""
    if _features.BUILD_PROFILE != "release":
        warnings.warn(
            "twinfeed._features is a debug build; timings are meaningless",
            RuntimeWarning,
            stacklevel=2,
        )
