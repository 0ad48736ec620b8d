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


class Kind(enum.IntEnum):
    """The ``kind`` column (``features-rs/core/src/record.rs``); compares equal to the codes,
    so ``df.filter(pl.col("kind") == Kind.QUOTE)`` works."""

    QUOTE = 1
    BOOK = 2
    TRADE = 3
    BAR = 4
    GAP = 5
    HEARTBEAT = 6
    STATUS = 7


class Flag(enum.IntFlag):
    """Bits of ``flags`` on quote, trade and book records."""

    #: Quote/trade: the aggressor was the buyer.
    BUYER_AGGRESSOR = 1
    #: Book-derived fields (imbalance) are valid.
    BOOK_VALID = 2
    #: Book record produced by applying a depth snapshot (a resync point).
    FROM_SNAPSHOT = 4


class GapReason(enum.IntEnum):
    """``flags`` of a gap record."""

    #: A depth diff did not continue the previous one.
    SEQUENCE = 1
    #: The first diff after a snapshot did not straddle it.
    SNAPSHOT = 2
    #: The connection dropped; the book is rebuilt.
    DISCONNECT = 3
    #: The rebuilt book did not match the checksum the venue sent (OKX); rebuilt at the next
    #: snapshot (the live ingest resubscribes to get one).
    CHECKSUM = 4


class StatusEvent(enum.IntEnum):
    """``flags`` of a status record."""

    CONNECTED = 1
    DISCONNECTED = 2
    SUBSCRIBED = 3
    SNAPSHOT_FETCHED = 4


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
