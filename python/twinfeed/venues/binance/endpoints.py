"""Where Binance USD-M lives: one table for every venue name ``twinfeed live --venue`` takes.

From Binance's documentation (USD-M futures "General Info",
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info, and
"WebSocket API General Info",
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info:
"The base endpoint is: wss://ws-fapi.binance.com/ws-fapi/v1 / The base endpoint for testnet is:
wss://testnet.binancefuture.com/ws-fapi/v1"). The testnet's REST base is the one the OpenAPI
document of the same pages names (``https://demo-fapi.binance.com``; earlier pages named
``https://testnet.binancefuture.com``, which still answers as the same service). None of these
hosts can be reached from the project's machines: nothing here was exercised against them.

Every field can be overridden from the environment (:func:`endpoints`), e.g. to rehearse a
whole ``twinfeed live --venue binance-usdm-testnet`` session against the local venue
(``twinfeed venue``): ``TWINFEED_BINANCE_REST``, ``TWINFEED_BINANCE_WS_API``,
``TWINFEED_BINANCE_STREAMS``, ``TWINFEED_BINANCE_MARKET_REST``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["ENDPOINTS", "OVERRIDES", "Endpoints", "endpoints"]


@dataclass(frozen=True)
class Endpoints:
    """Bases of one Binance USD-M environment.

    Attributes:
        rest: REST base (``/fapi/...`` paths are appended).
        ws_api: WebSocket API base (``/ws-fapi/v1`` is appended).
        streams: Market and user-data stream base (``/ws/<listenKey>``, ``/stream?...``).
        market_rest: REST base of market data (the ingest's depth snapshots); None: ``rest``.
    """

    rest: str
    ws_api: str
    streams: str
    market_rest: str | None = None

    @property
    def depth_rest(self) -> str:
        """Where the ingest asks for depth snapshots."""
        return self.market_rest or self.rest


ENDPOINTS: dict[str, Endpoints] = {
    "binance-usdm": Endpoints(
        rest="https://fapi.binance.com",
        ws_api="wss://ws-fapi.binance.com",
        streams="wss://fstream.binance.com",
    ),
    "binance-usdm-testnet": Endpoints(
        rest="https://demo-fapi.binance.com",
        ws_api="wss://testnet.binancefuture.com",
        streams="wss://fstream.binancefuture.com",
    ),
}

#: Environment variables that override one field of the chosen environment's endpoints.
OVERRIDES: dict[str, str] = {
    "rest": "TWINFEED_BINANCE_REST",
    "ws_api": "TWINFEED_BINANCE_WS_API",
    "streams": "TWINFEED_BINANCE_STREAMS",
    "market_rest": "TWINFEED_BINANCE_MARKET_REST",
}


def endpoints(venue: str, environ: Mapping[str, str] | None = None) -> Endpoints:
    """The endpoints of ``venue`` (a name of :data:`ENDPOINTS`) with the fields the
    environment overrides (:data:`OVERRIDES`). KeyError for an unknown name."""
    if venue not in ENDPOINTS:
        raise KeyError(f"unknown venue {venue!r} (known: {', '.join(ENDPOINTS)})")
    environ = os.environ if environ is None else environ
    changes = {field: environ[name] for field, name in OVERRIDES.items() if environ.get(name)}
    return replace(ENDPOINTS[venue], **changes)
