"""twinfeed.live: the live side. A strategy process reads the ingest's ring with
:class:`Feed`::

    from twinfeed.live import Feed

    feed = Feed.open("NAME")        # the ring `twinfeed ingest --ring NAME` writes
    records = feed.read()           # numpy records (twinfeed.record_dtype())

``twinfeed live`` runs a whole paper-trading session (:mod:`twinfeed.live.brain.session`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twinfeed.live.feed import Feed, FeedBatch, FeedHealth, FeedOverrun

__all__ = ["Feed", "FeedBatch", "FeedHealth", "FeedOverrun"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `twinfeed.live.<module>` imports stay as light as they were.
    if name in __all__:
        from twinfeed.live import feed

        return getattr(feed, name)
    raise AttributeError(f"module 'twinfeed.live' has no attribute {name!r}")
