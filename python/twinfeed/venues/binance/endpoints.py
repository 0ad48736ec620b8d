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
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENDPOINTS", "Endpoints"]


@dataclass(frozen=True)
class Endpoints:
    """Bases of one Binance USD-M environment.

    Attributes:
        rest: REST base (``/fapi/...`` paths are appended).
        ws_api: WebSocket API base (``/ws-fapi/v1`` is appended).
        streams: Market and user-data stream base (``/ws/<listenKey>``, ``/stream?...``).
    """

    rest: str
    ws_api: str
    streams: str


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
