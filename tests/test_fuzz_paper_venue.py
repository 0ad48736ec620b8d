"""Fuzz target of the paper order-entry venue (Python): hostile requests over real HTTP.

The Rust parsers have cargo-fuzz targets (fuzz/, docs/fuzzing.md); the paper venue is Python,
so its target is a hypothesis property run against a real :class:`PaperVenue` on loopback over
the bundled capture. Whatever a client sends (any bytes as query string and body, any
Content-Length, structured hostile order parameters that carry a *valid* signature so the order
code itself is reached, signatures that are not hex or not ASCII), the answer is a complete HTTP
response with a Binance error document (``{"code": <negative int>, "msg": <str>}``, HTTP 4xx) or
a 200 with JSON, never a 500, a traceback or a dropped connection.

Each example is one raw request on a fresh socket: the socket is half-closed after the request
so a Content-Length that promises more than was sent ends at the end of the stream.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twinfeed.instruments import load_table
from twinfeed.live.paper_venue import PaperVenue, RateLimits
from twinfeed.venues.binance.signing import total_params, verify

SYNTH = Path(__file__).resolve().parents[1] / "data" / "synth-btcusdt.txt"
KEY, SECRET = "fuzz-key", "fuzz-secret"

SIGNED_ENDPOINTS = [
    ("POST", "/fapi/v1/order"),
    ("DELETE", "/fapi/v1/order"),
    ("GET", "/fapi/v1/order"),
    ("DELETE", "/fapi/v1/allOpenOrders"),
    ("GET", "/fapi/v1/openOrders"),
    ("GET", "/fapi/v2/account"),
    ("GET", "/fapi/v2/positionRisk"),
    ("GET", "/fapi/v1/userTrades"),
    ("PUT", "/fapi/v1/order"),
    ("POST", "/fapi/v1/order/test"),
    ("POST", "/fapi/v1/batchOrders"),
    ("PUT", "/fapi/v1/batchOrders"),
    ("DELETE", "/fapi/v1/batchOrders"),
    ("GET", "/fapi/v1/openOrder"),
    ("GET", "/fapi/v1/allOrders"),
    ("GET", "/fapi/v3/account"),
    ("GET", "/fapi/v2/balance"),
    ("GET", "/fapi/v3/positionRisk"),
    ("POST", "/fapi/v1/leverage"),
    ("GET", "/fapi/v1/leverageBracket"),
    ("GET", "/fapi/v1/commissionRate"),
    ("POST", "/fapi/v1/positionSide/dual"),
]
OTHER_ENDPOINTS = [
    ("GET", "/fapi/v1/ping"),
    ("GET", "/fapi/v1/time"),
    ("POST", "/fapi/v1/listenKey"),
    ("PUT", "/fapi/v1/listenKey"),
    ("GET", "/fapi/v1/nothing"),
    ("GET", "/fapi/v1/ticker/bookTicker"),
    ("GET", "/fapi/v1/exchangeInfo"),
]

# Values that broke number parsing, rounding and signature checks elsewhere.
HOSTILE_NUMBERS = [
    "0",
    "-1",
    "1e308",
    "1e400",
    "-1e308",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "18446744073709551615",
    "9223372036854775808",
    "1" + "0" * 40,
    "0." + "0" * 30 + "1",
    "00000.1",
    "1_000",
    "0x10",
    " 1 ",
    "",
    "١٢٣",  # Arabic-Indic digits: float() takes them
    "1e-400",
    "0.1000000000000000055511151231257827",
]
hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
)
number = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.floats().map(repr), hostile_text)
ORDER_FIELDS = {
    "symbol": st.sampled_from(["BTCUSDT", "btcusdt", "ETHUSDT", "", "BTCUSDT\x00", "ß" * 3]),
    "side": st.sampled_from(["BUY", "SELL", "buy", "HOLD", ""]),
    "type": st.sampled_from(["LIMIT", "MARKET", "STOP", ""]),
    "timeInForce": st.sampled_from(["GTC", "IOC", "GTX", "FOK", ""]),
    "quantity": number,
    "price": number,
    "newClientOrderId": hostile_text,
    "origClientOrderId": hostile_text,
    "orderId": number,
    "limit": number,
    "recvWindow": number,
    "listenKey": hostile_text,
    "timeout": st.sampled_from(["0", "-5", "nan", "1"]),
    "reduceOnly": st.sampled_from(["true", "false", "TRUE", "yes", ""]),
    "goodTillDate": number,
    "newOrderRespType": st.sampled_from(["ACK", "RESULT", "FULL", ""]),
    "positionSide": st.sampled_from(["BOTH", "LONG", ""]),
    "leverage": number,
    "dualSidePosition": st.sampled_from(["true", "false", "maybe"]),
    "startTime": number,
    "endTime": number,
    "batchOrders": st.one_of(
        hostile_text,
        st.lists(
            st.fixed_dictionaries(
                {
                    "symbol": st.just("BTCUSDT"),
                    "side": st.sampled_from(["BUY", "SELL"]),
                    "type": st.sampled_from(["LIMIT", "MARKET"]),
                    "quantity": number,
                    "price": number,
                    "orderId": number,
                    "timeInForce": st.just("GTC"),
                }
            ),
            max_size=7,
        ).map(json.dumps),
    ),
    "orderIdList": st.one_of(hostile_text, st.lists(st.integers(), max_size=12).map(json.dumps)),
}


@pytest.fixture(scope="module")
def venue() -> Iterator[PaperVenue]:
    """The venue over the bundled capture, its replay reported finished: the market is the
    capture's last state and requests are handled at once."""
    status = {"finished": True, "line_index": None, "local_ns": None, "lap": 0}
    # Rate limits lifted: a 429 would answer before the order code is reached.
    lifted = RateLimits(10**9, 10**9, 10**9)
    paper = PaperVenue.start(
        SYNTH, md_status=lambda: status, keys={KEY: SECRET}, ack_timeout=0.5, rate_limits=lifted
    )
    try:
        yield paper
    finally:
        paper.stop()


def _exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Sends ``request``, half-closes, and reads one response: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(body) >= length:
                    break
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP response to {request[:200]!r}: got {data[:200]!r}"
    status_line = head.split(b"\r\n", 1)[0].split()
    assert status_line[:1] == [b"HTTP/1.1"], f"bad status line {head[:100]!r}"
    return int(status_line[1]), body


def _request(method: str, target: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _check_answer(status: int, body: bytes, request: bytes) -> None:
    assert status != 500, f"500 for {request[:300]!r}: {body[:300]!r}"
    document: Any = json.loads(body)
    if status == 200:
        return
    assert 400 <= status < 500, (status, request[:300], body[:300])
    assert isinstance(document, dict), document
    assert isinstance(document.get("code"), int) and document["code"] < 0, document
    assert isinstance(document.get("msg"), str), document


def _sign(payload: str) -> str:
    return hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()


FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@FUZZ_SETTINGS
@given(
    endpoint=st.sampled_from(SIGNED_ENDPOINTS + OTHER_ENDPOINTS),
    query=st.binary(max_size=200),
    body=st.binary(max_size=200),
    content_length=st.one_of(
        st.none(), st.sampled_from(["-1", "abc", "99999999999999999999", "1e3", " 5", "0"])
    ),
    form=st.booleans(),
    api_key=st.sampled_from([KEY, "", "wrong", KEY + "\u00e9"]),
)
def test_arbitrary_bytes_get_an_answer(
    venue: PaperVenue,
    endpoint: tuple[str, str],
    query: bytes,
    body: bytes,
    content_length: str | None,
    form: bool,
    api_key: str,
) -> None:
    method, path = endpoint
    # Bytes of a request target as a client could put them on the wire (no space, CR or LF).
    safe_query = urllib.parse.quote(query, safe="=&%+;/:@!$'()*,?")
    headers = {"X-MBX-APIKEY": api_key.encode().decode("latin-1")}
    if form:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    headers["Content-Length"] = content_length if content_length is not None else str(len(body))
    request = _request(method, f"{path}?{safe_query}", body, headers)
    _check_answer(*_exchange(venue.port, request), request)


@FUZZ_SETTINGS
@given(
    endpoint=st.sampled_from(SIGNED_ENDPOINTS),
    fields=st.fixed_dictionaries({}, optional=ORDER_FIELDS),
    where=st.sampled_from(["query", "body"]),
    signature=st.sampled_from(["valid", "upper", "garbage", "non-ascii", "empty", "twice"]),
)
def test_signed_hostile_orders_get_binance_errors(
    venue: PaperVenue,
    endpoint: tuple[str, str],
    fields: dict[str, str],
    where: str,
    signature: str,
) -> None:
    method, path = endpoint
    params = dict(fields)
    params["timestamp"] = str(int(time.time() * 1000))
    encoded = urllib.parse.urlencode(params)
    valid = _sign(encoded)
    sig = {
        "valid": valid,
        "upper": valid.upper(),
        "garbage": "zz" * 32,
        "non-ascii": urllib.parse.quote("é" * 64),
        "empty": "",
        "twice": f"{valid}&signature={valid}",
    }[signature]
    signed = f"{encoded}&signature={sig}"
    headers = {"X-MBX-APIKEY": KEY}
    if where == "query":
        request = _request(method, f"{path}?{signed}", b"", headers)
    else:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Content-Length"] = str(len(signed.encode()))
        request = _request(method, path, signed.encode(), headers)
    _check_answer(*_exchange(venue.port, request), request)


def _names(encoded: str) -> set[str]:
    return {piece.partition("=")[0] for piece in encoded.split("&")}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(query=hostile_text, body=hostile_text, secret=hostile_text)
def test_signature_check_takes_any_text(query: str, body: str, secret: str) -> None:
    """verify() answers yes or no for any request text (never raises), no for a request without
    a signature, and yes for one signed as Binance signs (query string then body)."""
    _payload, signature = total_params(query, body)
    answer = verify(query, body, secret)
    assert isinstance(answer, bool)
    if signature is None:
        assert answer is False
    if "signature" not in _names(query) | _names(body):
        good = hmac.new(secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
        assert verify(f"{query}&signature={good}", body, secret) is True


@pytest.mark.parametrize(
    "signature", ["%C3%A9" * 32, "%FF", "\u00e9", "%00"], ids=["utf8", "bad-utf8", "latin1", "nul"]
)
def test_signature_that_is_not_ascii_is_refused_not_raised(signature: str) -> None:
    """Found by the fuzz target: hmac.compare_digest raises TypeError on a non-ASCII str, so a
    signature like ``%C3%A9`` was a 500 instead of -1022."""
    assert verify(f"symbol=BTCUSDT&signature={signature}", "", SECRET) is False
    assert verify("symbol=BTCUSDT", f"signature={signature}", SECRET) is False


def _signed_order(**fields: str) -> str:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    params.update(fields)
    params["timestamp"] = str(int(time.time() * 1000))
    encoded = urllib.parse.urlencode(params)
    return f"{encoded}&signature={_sign(encoded)}"


@pytest.mark.parametrize(
    ("make_request", "code"),
    [
        # 1e308: the grid check's Decimal remainder needs more than 28 digits
        # (decimal.InvalidOperation -> 500); before the instrument rules, the float grid
        # check overflowed (OverflowError -> 500).
        (
            lambda: _request(
                "POST",
                "/fapi/v1/order?" + _signed_order(quantity="1e308", price="100"),
                b"",
                {"X-MBX-APIKEY": KEY},
            ),
            -1100,  # Binance's decimals have no exponent form (was -4005, then a 500)
        ),
        (
            lambda: _request(
                "POST",
                "/fapi/v1/order?" + _signed_order(quantity="1", price="1e308"),
                b"",
                {"X-MBX-APIKEY": KEY},
            ),
            -1100,
        ),
        # Content-Length parsed outside the handler's error path: no response at all.
        (
            lambda: _request(
                "POST", "/fapi/v1/order", b"x", {"X-MBX-APIKEY": KEY, "Content-Length": "abc"}
            ),
            -1000,
        ),
        (
            lambda: _request(
                "POST", "/fapi/v1/order", b"x", {"X-MBX-APIKEY": KEY, "Content-Length": "-1"}
            ),
            -1000,
        ),
        (
            lambda: _request(
                "POST",
                "/fapi/v1/order",
                b"x",
                {"X-MBX-APIKEY": KEY, "Content-Length": "99999999999999999999"},
            ),
            -1000,
        ),
        # A body that is not UTF-8: UnicodeDecodeError, no response.
        (
            lambda: _request(
                "POST", "/fapi/v1/order", b"\x80=1", {"X-MBX-APIKEY": KEY, "Content-Length": "3"}
            ),
            -1100,
        ),
        # A non-ASCII signature: TypeError in hmac.compare_digest -> 500.
        (
            lambda: _request(
                "GET", "/fapi/v2/account?timestamp=1&signature=%C3%A9", b"", {"X-MBX-APIKEY": KEY}
            ),
            -1022,
        ),
    ],
    ids=[
        "qty-1e308",
        "price-1e308",
        "length-abc",
        "length-negative",
        "length-huge",
        "body-not-utf8",
        "signature-non-ascii",
    ],
)
def test_hostile_requests_found_by_fuzzing_get_binance_errors(
    venue: PaperVenue, make_request: Any, code: int
) -> None:
    request = make_request()
    status, body = _exchange(venue.port, request)
    assert status == 400, (status, body)
    assert json.loads(body)["code"] == code, body


@pytest.mark.parametrize(("qty", "price"), [("1e308", "100"), ("1", "1e308"), ("1e-300", "100")])
def test_grid_checks_take_extreme_decimals(qty: str, price: str) -> None:
    """Found by the fuzz target: ``Decimal("1e308") % Decimal("0.001")`` raises
    InvalidOperation in the default 28-digit context; the check answers instead."""
    instrument = load_table().get("BTCUSDT", "binance-usdm")
    refusal = instrument.check_order(qty, price, "limit")
    assert refusal is not None and refusal.code < 0
    assert instrument.on_qty_grid("1e308") is True
    assert instrument.on_qty_grid("1e500") is False
    assert instrument.on_price_grid("61800.1") is True
