"""Binance's error codes, in one table: what each means to the brain.

USD-M futures "Error Codes"
(https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code) and
"General Info" (HTTP 429/418, 5xx: "the execution status is UNKNOWN and could have been a
success"). The client (:mod:`twinfeed.venues.binance.rest`, ``ws_api``) and the paper venue
(:class:`twinfeed.live.paper_params.ApiError`) both classify through :func:`venue_error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinfeed.venues.errors import VenueError

__all__ = [
    "CLOCK_SKEW_CODES",
    "LINK_LOST_CODES",
    "RATE_LIMIT_CODES",
    "UNKNOWN_ORDER_CODES",
    "classify",
    "retry_after",
    "venue_error",
]

#: -1001 DISCONNECTED (internal error), -1007 TIMEOUT (backend did not answer in time): the
#: request's outcome is unknown. Code 0 is this client's "no answer at all".
LINK_LOST_CODES = frozenset({0, -1001, -1007})
#: -1003 TOO_MANY_REQUESTS (also sent with HTTP 429 and 418), -1015 TOO_MANY_ORDERS.
RATE_LIMIT_CODES = frozenset({-1003, -1015})
#: -2011 CANCEL_REJECTED "Unknown order sent.", -2013 NO_SUCH_ORDER "Order does not exist."
UNKNOWN_ORDER_CODES = frozenset({-2011, -2013})
#: -1021 INVALID_TIMESTAMP: outside recvWindow, or ahead of the server's clock.
CLOCK_SKEW_CODES = frozenset({-1021})


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The ``Retry-After`` header in seconds (None if absent or not a number)."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None


def classify(
    code: int, http_status: int = 0, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The :class:`VenueError` flags of a Binance answer (keyword arguments)."""
    link_lost = code in LINK_LOST_CODES or http_status >= 500
    rate_limited = code in RATE_LIMIT_CODES or http_status in (418, 429)
    return {
        "http_status": http_status,
        "retryable": link_lost or rate_limited,
        "link_lost": link_lost,
        "rate_limited": rate_limited,
        "unknown_order": code in UNKNOWN_ORDER_CODES,
        "clock_skew": code in CLOCK_SKEW_CODES,
        "retry_after_s": retry_after(headers),
    }


def venue_error(
    code: int, msg: str, http_status: int = 0, headers: Mapping[str, str] | None = None
) -> VenueError:
    """A Binance error answer (or a failure with no answer: ``code`` 0) as a VenueError."""
    return VenueError(code, msg, **classify(code, http_status, headers))
