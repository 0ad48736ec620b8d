"""A :class:`BinanceVenue` for one environment of the endpoint table, with credentials from
the environment or a 0600 file (:func:`twinfeed.venues.binance.signing.load_credentials`;
never logged). An Ed25519 key gets the WebSocket API fast path; an HMAC key trades over REST
(the WebSocket API's ``session.logon`` takes Ed25519 keys only)."""

from __future__ import annotations

import os

from twinfeed.instruments import Instrument
from twinfeed.venues.binance.adapter import BinanceVenue
from twinfeed.venues.binance.endpoints import Endpoints, endpoints
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.binance.signing import load_credentials
from twinfeed.venues.binance.ws_api import WsApiClient

__all__ = ["connect_binance"]


def connect_binance(
    venue: str | Endpoints,
    credentials: str | os.PathLike[str] | None = None,
    *,
    stream: bool = False,
    instruments: dict[str, Instrument] | None = None,
) -> BinanceVenue:
    """The adapter for ``venue`` (a name of :data:`ENDPOINTS`, with the environment's
    overrides, :func:`twinfeed.venues.binance.endpoints.endpoints`; or endpoints of its own,
    e.g. the local venue's). Raises KeyError for an unknown name, CredentialsError without
    keys."""
    if isinstance(venue, str):
        venue = endpoints(venue)
    keys = load_credentials(credentials)
    private_key = keys.private_key or None
    gateway = OrderGateway(
        venue.rest, keys.api_key, keys.api_secret, private_key=private_key, stream_url=venue.streams
    )
    ws_api = None if private_key is None else WsApiClient(venue.ws_api, keys.api_key, private_key)
    return BinanceVenue(gateway, stream=stream, ws_api=ws_api, instruments=instruments)
