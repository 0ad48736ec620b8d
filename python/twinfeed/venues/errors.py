"""The one error a venue raises, in the brain's terms.

Every venue adapter turns its refusals and transport failures into :class:`VenueError`, with
its own code table deciding the flags (for Binance: :mod:`twinfeed.venues.binance.errors`).
The brain decides what to do from the flags alone, never from a venue's code numbers.
"""

from __future__ import annotations

__all__ = ["NOT_SENT", "VenueError"]

#: The code of a request the brain refused itself and never sent (the venue is unreachable
#: or the brain is backing off a rate limit).
NOT_SENT = -1


class VenueError(Exception):
    """The venue refused a request, or gave no usable answer.

    Attributes:
        code: The venue's error code (Binance's negative codes; 0: no answer at all;
            :data:`NOT_SENT`: refused by the brain itself).
        message: The venue's message.
        http_status: HTTP status of the answer (0: no answer, or not HTTP).
        retryable: Sending the same request again later may succeed.
        link_lost: No usable answer (no connection, timeout, the venue's own failure): a new
            order's outcome is unknown and must be settled by a query, never by re-sending.
        rate_limited: Throttled; ``retry_after_s`` is how long the venue asked to wait.
        unknown_order: The order named is unknown to the venue (finished, or never arrived).
        clock_skew: The request's timestamp was outside the venue's window (resync the clock).
        sent: False when the request never left this process (no connection could be
            opened): another path may take it. True when it may have reached the venue.
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 0,
        retryable: bool = False,
        link_lost: bool = False,
        rate_limited: bool = False,
        unknown_order: bool = False,
        clock_skew: bool = False,
        retry_after_s: float | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable
        self.link_lost = link_lost
        self.rate_limited = rate_limited
        self.unknown_order = unknown_order
        self.clock_skew = clock_skew
        self.retry_after_s = retry_after_s
        self.sent = sent

    @property
    def msg(self) -> str:
        """``message`` under Binance's name for it."""
        return self.message
