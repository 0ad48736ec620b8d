"""Record kinds and build provenance, read from the extension."""

from __future__ import annotations

import enum
import warnings
from typing import Any

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
    """The ``kind`` column (``features-rs/core/src/record.rs``); compares equal to the codes,
    so ``df.filter(pl.col("kind") == Kind.QUOTE)`` works. Values come from the binding."""

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
