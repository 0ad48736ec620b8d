"""Request parameters of the paper venue, read as strictly as Binance USD-M reads them.

Binance refuses what a lenient parser would accept: ``float("1_0")``, ``float(" 0.01 ")`` and
``float("١٢")`` (Arabic-Indic digits) are numbers to Python, not to Binance, whose decimal
parameters follow ``^([0-9]{1,20})(\\.[0-9]{1,20})?$`` (ASCII digits, no sign, no exponent, at
most 20 digits either side of the point): anything else is -1100 "Illegal characters found in
parameter '%s'; legal range is '%s'." (USD-M error codes,
https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code). So
``1e308`` and ``1e-300`` never reach the engine as numbers, and a 309-digit quantity is out of
range before it is a float.

Also here: the per-endpoint request weights and order counts, and the rate limiter that
answers the ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-10S`` / ``X-MBX-ORDER-COUNT-1M``
headers and the 429 / 418 refusals (USD-M "General Info", LIMITS,
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from twinfeed.venues.binance.errors import classify
from twinfeed.venues.errors import VenueError

__all__ = [
    "ApiError",
    "RateLimiter",
    "RateLimits",
    "client_order_id",
    "decimal_param",
    "flag_param",
    "int_param",
    "missing",
    "weight_of",
]

DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INTEGER_RANGE = r"^[0-9]{1,19}$"
#: ``newClientOrderId``: "Can only be string following the rule: ^[\.A-Z\:/a-z0-9_-]{1,36}$"
#: (New Order (TRADE), https://developers.binance.com/docs/derivatives/usds-margined-futures/
#: trade/rest-api/New-Order).
CLIENT_ORDER_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_DECIMAL = re.compile(DECIMAL_RANGE[1:-1])
_INTEGER = re.compile(INTEGER_RANGE[1:-1])
_CLIENT_ORDER_ID = re.compile(CLIENT_ORDER_ID_RANGE[1:-1])


class ApiError(VenueError):
    """A Binance-shaped error answer (``{"code", "msg"}`` with HTTP ``status``), classified
    by the client's own code table (:func:`twinfeed.venues.binance.errors.classify`)."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(code, msg, **classify(code, status, headers))
        self.status = status
        self.headers = dict(headers or {})


def missing(name: str) -> ApiError:
    """-1102 for a mandatory parameter not sent (or empty)."""
    return ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, legal: str) -> ApiError:
    """-1100 with the parameter and its legal range, as Binance words it."""
    return ApiError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def decimal_param(params: Mapping[str, str], name: str, required: bool = True) -> Decimal | None:
    """A decimal parameter, exactly as sent (None if absent and optional)."""
    text = params.get(name)
    if text is None or text == "":
        if required:
            raise missing(name)
        return None
    if not _DECIMAL.fullmatch(text):
        raise illegal(name, DECIMAL_RANGE)
    return Decimal(text)


def int_param(
    params: Mapping[str, str], name: str, default: int | None = None, required: bool = False
) -> int | None:
    """A non-negative integer parameter (``timestamp``, ``orderId``, ``limit``, ...)."""
    text = params.get(name)
    if text is None or text == "":
        if required:
            raise missing(name)
        return default
    if not _INTEGER.fullmatch(text):
        raise illegal(name, INTEGER_RANGE)
    return int(text)


def flag_param(params: Mapping[str, str], name: str) -> bool:
    """``true``/``false`` (any case; absent is false). Anything else is -1130."""
    text = params.get(name)
    if text is None or text == "":
        return False
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ApiError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return lowered == "true"


def client_order_id(params: Mapping[str, str], name: str = "newClientOrderId") -> str | None:
    """``newClientOrderId`` checked against Binance's rule: -4015 "Client order id is not
    valid." (error codes page, -4015 INVALID_CL_ORD_ID_LEN; longer than 36: "Client order id
    length should not be more than 36 chars")."""
    text = params.get(name)
    if text is None or text == "":
        return None
    if len(text) > 36:
        raise ApiError(-4015, "Client order id length should not be more than 36 chars")
    if not _CLIENT_ORDER_ID.fullmatch(text):
        raise ApiError(-4015, "Client order id is not valid.")
    return text


def check_characters(params: Mapping[str, str]) -> None:
    """A control character (newline, NUL, ...) in any parameter is -1100; ``newClientOrderId``
    has its own documented rule (-4015, :func:`client_order_id`)."""
    for name, value in params.items():
        if name == "newClientOrderId":
            continue
        # One regex scan in C per value (a per-character loop was a fifth of order.place).
        if _CONTROL_IN_VALUE.search(value) or _CONTROL_IN_NAME.search(name):
            raise ApiError(-1100, "Illegal characters found in a parameter.")


_CONTROL_IN_VALUE = re.compile("[\x00-\x1f\x7f]")
_CONTROL_IN_NAME = re.compile("[\x00-\x1f]")


# ---- weights and rate limits ---------------------------------------------------------------

#: (method, path) -> (IP weight, orders counted in 10 s, in 1 min). As each endpoint's page states
#: (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/...,
#: .../account/rest-api/..., .../market-data/rest-api/...). A callable weight depends on the
#: parameters (openOrders: 1 with a symbol, 40 without; bookTicker: 2 / 5).
_WEIGHTS: dict[tuple[str, str], tuple[int | Callable[[Mapping[str, str]], int], int, int]] = {
    ("POST", "/fapi/v1/order"): (0, 1, 1),  # "1 on 10s order rate limit; 1 on 1min; 0 on IP"
    ("PUT", "/fapi/v1/order"): (1, 1, 1),
    ("DELETE", "/fapi/v1/order"): (1, 0, 0),
    ("GET", "/fapi/v1/order"): (1, 0, 0),
    ("POST", "/fapi/v1/order/test"): (0, 0, 0),
    ("POST", "/fapi/v1/batchOrders"): (5, 5, 1),  # "5 on 10s order rate limit; 1 on 1min"
    ("PUT", "/fapi/v1/batchOrders"): (5, 5, 1),
    ("DELETE", "/fapi/v1/batchOrders"): (1, 0, 0),
    ("DELETE", "/fapi/v1/allOpenOrders"): (1, 0, 0),
    ("GET", "/fapi/v1/openOrder"): (1, 0, 0),
    ("GET", "/fapi/v1/openOrders"): (lambda p: 1 if p.get("symbol") else 40, 0, 0),
    ("GET", "/fapi/v1/allOrders"): (5, 0, 0),
    ("GET", "/fapi/v1/userTrades"): (5, 0, 0),
    ("GET", "/fapi/v2/account"): (5, 0, 0),
    ("GET", "/fapi/v3/account"): (5, 0, 0),
    ("GET", "/fapi/v2/balance"): (5, 0, 0),
    ("GET", "/fapi/v3/balance"): (5, 0, 0),
    ("GET", "/fapi/v2/positionRisk"): (5, 0, 0),
    ("GET", "/fapi/v3/positionRisk"): (5, 0, 0),
    ("POST", "/fapi/v1/leverage"): (1, 0, 0),
    ("GET", "/fapi/v1/leverageBracket"): (1, 0, 0),
    ("GET", "/fapi/v1/commissionRate"): (20, 0, 0),
    ("GET", "/fapi/v1/positionSide/dual"): (30, 0, 0),
    ("POST", "/fapi/v1/positionSide/dual"): (1, 0, 0),
    ("GET", "/fapi/v1/ticker/bookTicker"): (lambda p: 2 if p.get("symbol") else 5, 0, 0),
    ("GET", "/fapi/v1/exchangeInfo"): (1, 0, 0),
    ("GET", "/fapi/v1/time"): (1, 0, 0),
    ("GET", "/fapi/v1/ping"): (1, 0, 0),
    ("POST", "/fapi/v1/listenKey"): (1, 0, 0),
    ("PUT", "/fapi/v1/listenKey"): (1, 0, 0),
    ("DELETE", "/fapi/v1/listenKey"): (1, 0, 0),
}


def weight_of(method: str, path: str, params: Mapping[str, str]) -> tuple[int, int, int]:
    """(IP weight, orders counted in the 10 s and the 1 min windows) of a request; an unknown
    route weighs 1."""
    weight, orders_10s, orders_1m = _WEIGHTS.get((method, path), (1, 0, 0))
    return (weight(params) if callable(weight) else weight), orders_10s, orders_1m


@dataclass(frozen=True)
class RateLimits:
    """Binance USD-M's defaults (exchangeInfo ``rateLimits``): 2400 request weight a minute
    per IP, 1200 orders a minute and 300 every 10 s per account. ``ban_seconds``: how long an
    IP that keeps sending after a 429 is banned (Binance: "scales in duration for repeat
    offenders, from 2 minutes to 3 days"); ``ban_after``: requests refused with 429 in one
    window before the ban."""

    weight_per_minute: int = 2400
    orders_per_10s: int = 300
    orders_per_minute: int = 1200
    ban_seconds: int = 120
    ban_after: int = 10


@dataclass
class _Window:
    start: int = 0
    used: int = 0


@dataclass
class RateLimiter:
    """Fixed windows (the minute, the 10 s) as Binance counts them; thread safe.

    ``admit`` counts a request and returns the headers to send, or raises :class:`ApiError`
    (429 -1003 over the weight, 429 -1015 over an order count, 418 -1003 while banned, each
    with ``Retry-After`` in seconds). Rate limiting uses the wall clock: it limits clients,
    whose clocks run in wall time, not the replay.
    """

    limits: RateLimits = field(default_factory=RateLimits)
    clock: Callable[[], float] = time.time
    _weight: dict[str, _Window] = field(default_factory=dict)
    _orders_10s: dict[str, _Window] = field(default_factory=dict)
    _orders_1m: dict[str, _Window] = field(default_factory=dict)
    _refused: dict[str, _Window] = field(default_factory=dict)
    _banned_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _count(windows: dict[str, _Window], who: str, start: int, amount: int) -> int:
        window = windows.get(who)
        if window is None or window.start != start:
            window = windows[who] = _Window(start)
        window.used += amount
        return window.used

    def admit(
        self, ip: str, account: str | None, weight: int, orders_10s: int = 0, orders_1m: int = 0
    ) -> dict[str, str]:
        now = self.clock()
        limits = self.limits
        minute = int(now // 60)
        ten = int(now // 10)
        with self._lock:
            banned = self._banned_until.get(ip, 0.0)
            if now < banned:
                until = int(banned * 1000)
                raise ApiError(
                    -1003,
                    f"Way too many requests; IP banned until {until}. Please use the websocket "
                    "for live updates to avoid bans.",
                    418,
                    {"Retry-After": str(max(1, int(banned - now + 0.999)))},
                )
            used = self._count(self._weight, ip, minute, weight)
            headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
            orders = orders_10s or orders_1m
            if account is not None and orders:
                count_10s = self._count(self._orders_10s, account, ten, orders_10s)
                count_1m = self._count(self._orders_1m, account, minute, orders_1m)
                headers["X-MBX-ORDER-COUNT-10S"] = str(count_10s)
                headers["X-MBX-ORDER-COUNT-1M"] = str(count_1m)
            elif account is not None:
                for name, windows, start in (
                    ("X-MBX-ORDER-COUNT-10S", self._orders_10s, ten),
                    ("X-MBX-ORDER-COUNT-1M", self._orders_1m, minute),
                ):
                    window = windows.get(account)
                    if window is not None and window.start == start:
                        headers[name] = str(window.used)
            if used > limits.weight_per_minute:
                refused = self._count(self._refused, ip, minute, 1)
                if refused > limits.ban_after:
                    self._banned_until[ip] = now + limits.ban_seconds
                    until = int((now + limits.ban_seconds) * 1000)
                    raise ApiError(
                        -1003,
                        f"Way too many requests; IP banned until {until}. Please use the "
                        "websocket for live updates to avoid bans.",
                        418,
                        {**headers, "Retry-After": str(limits.ban_seconds)},
                    )
                raise ApiError(
                    -1003,
                    f"Too many requests; current limit is {limits.weight_per_minute} requests "
                    "per minute. Please use the websocket for live updates to avoid polling "
                    "the API.",
                    429,
                    {**headers, "Retry-After": str(max(1, (minute + 1) * 60 - int(now)))},
                )
            if account is not None and orders:
                if int(headers["X-MBX-ORDER-COUNT-10S"]) > limits.orders_per_10s:
                    raise ApiError(
                        -1015,
                        f"Too many new orders; current limit is {limits.orders_per_10s} orders "
                        "per 10 SECOND.",
                        429,
                        {**headers, "Retry-After": str(max(1, (ten + 1) * 10 - int(now)))},
                    )
                if int(headers["X-MBX-ORDER-COUNT-1M"]) > limits.orders_per_minute:
                    raise ApiError(
                        -1015,
                        f"Too many new orders; current limit is {limits.orders_per_minute} "
                        "orders per MINUTE.",
                        429,
                        {**headers, "Retry-After": str(max(1, (minute + 1) * 60 - int(now)))},
                    )
            return headers
