"""Binance USD-M futures: everything Binance in one package.

- :mod:`~twinfeed.venues.binance.signing`: HMAC and Ed25519 request signing, credentials.
- :mod:`~twinfeed.venues.binance.wire`: order status, side, type both ways; reports and fills.
- :mod:`~twinfeed.venues.binance.errors`: the error codes and what each means to the brain.
- :mod:`~twinfeed.venues.binance.rest`: the REST client and the user-data websocket.
- :mod:`~twinfeed.venues.binance.adapter`: :class:`BinanceVenue`, the venue port over them.
"""
