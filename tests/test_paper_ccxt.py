"""ccxt 4.5.90 ``binanceusdm``, unmodified, against the paper venue: its REST base URLs are
pointed at the venue through ccxt's own configuration (``urls.api``) and nothing else. Every
call goes over real HTTP on loopback to the real venue stack (market-data venue replaying the
bundled capture to its end; the paper venue over it, market frozen at the last touch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paper_rest import binanceusdm, frozen_paper
from twinfeed.live.paper_venue import PaperVenue
from twinfeed.venues.binance.rest import OrderGateway
from twinfeed.venues.binance.signing import (
    API_KEY_ENV,
    API_PRIVATE_KEY_ENV,
    API_PRIVATE_KEY_FILE_ENV,
    CredentialsError,
    load_credentials,
)

KEY, SECRET = "ccxt-key", "ccxt-secret"
ED_KEY = "ccxt-ed25519-key"
SYMBOL = "BTC/USDT:USDT"
PRIVATE = Ed25519PrivateKey.generate()
PRIVATE_PEM = PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def client(url: str, key: str = KEY, secret: str = SECRET) -> Any:
    """A stock binanceusdm whose REST bases are the paper venue's."""
    return binanceusdm(url, url, key=key, secret=secret)


@pytest.fixture(scope="module")
def paper() -> Iterator[PaperVenue]:
    with frozen_paper({KEY: SECRET, ED_KEY: PUBLIC_PEM}, taker_fee_bps=4.0) as venue:
        yield venue


def test_ccxt_trades_the_paper_venue_end_to_end(paper: PaperVenue) -> None:
    exchange = client(paper.url)
    markets = exchange.load_markets()
    market = markets[SYMBOL]
    assert market["id"] == "BTCUSDT" and market["linear"] and market["swap"]
    assert market["precision"]["price"] == 0.1 and market["limits"]["cost"]["min"] == 100
    touch = paper.engine.touch(0)
    assert touch is not None
    bid, ask = touch.bid_px, touch.ask_px

    # Limit, query, open orders, modify.
    rest = exchange.create_order(SYMBOL, "limit", "buy", 0.002, round(bid - 500, 1))
    assert rest["status"] == "open" and rest["price"] == round(bid - 500, 1)
    assert exchange.fetch_order(rest["id"], SYMBOL)["status"] == "open"
    assert [o["id"] for o in exchange.fetch_open_orders(SYMBOL)] == [rest["id"]]
    edited = exchange.edit_order(rest["id"], SYMBOL, "limit", "buy", 0.003, round(bid - 400, 1))
    assert (edited["amount"], edited["price"]) == (0.003, round(bid - 400, 1))

    # Post-only: rests away from the touch, refused (-5022) when it would take.
    post = exchange.create_order(
        SYMBOL, "limit", "sell", 0.002, round(ask + 300, 1), {"postOnly": True}
    )
    assert post["postOnly"] and post["timeInForce"] == "PO"
    with pytest.raises(ccxt.InvalidOrder, match="-5022"):
        exchange.create_order(SYMBOL, "limit", "buy", 0.002, ask, {"postOnly": True})

    # FOK: more than the touch shows expires unfilled (-5021); within it, fills at once.
    with pytest.raises(ccxt.InvalidOrder, match="-5021"):
        exchange.create_order(SYMBOL, "limit", "buy", 999, ask, {"timeInForce": "FOK"})
    fok = exchange.create_order(SYMBOL, "limit", "buy", 0.002, ask, {"timeInForce": "FOK"})
    assert exchange.fetch_order(fok["id"], SYMBOL)["status"] == "closed"

    # Market, then reduce-only: a sell larger than the long closes it (capped at the
    # position); from flat, reduce-only is -2022 and opens nothing.
    bought = exchange.create_order(SYMBOL, "market", "buy", 0.003)
    assert exchange.fetch_order(bought["id"], SYMBOL)["filled"] == 0.003
    (position,) = exchange.fetch_positions([SYMBOL])
    assert position["contracts"] == pytest.approx(0.005) and position["side"] == "long"
    closing = exchange.create_order(SYMBOL, "market", "sell", 0.02, None, {"reduceOnly": True})
    assert exchange.fetch_order(closing["id"], SYMBOL)["filled"] == pytest.approx(0.005)
    assert exchange.fetch_positions([SYMBOL]) == []
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        exchange.create_order(SYMBOL, "market", "sell", 0.02, None, {"reduceOnly": True})
    assert exchange.fetch_positions([SYMBOL]) == []

    # All orders, cancel, cancel all.
    every = exchange.fetch_orders(SYMBOL)
    assert {o["id"] for o in every} >= {rest["id"], post["id"], fok["id"], closing["id"]}
    assert exchange.cancel_order(rest["id"], SYMBOL)["status"] == "canceled"
    exchange.cancel_all_orders(SYMBOL)
    assert exchange.fetch_open_orders(SYMBOL) == []
    assert exchange.fetch_order(post["id"], SYMBOL)["status"] == "canceled"

    # Balance and my trades agree with the fills: four taker fills (FOK, market, close).
    balance = exchange.fetch_balance()
    assert balance["USDT"]["total"] < 10_000  # fees and the spread paid
    trades = exchange.fetch_my_trades(SYMBOL)
    assert [t["order"] for t in trades] == [fok["id"], bought["id"], closing["id"]]
    assert sum(t["amount"] for t in trades if t["side"] == "buy") == pytest.approx(0.005)
    assert all(t["fee"]["currency"] == "USDT" for t in trades)


def test_ccxt_with_an_ed25519_key(paper: PaperVenue) -> None:
    """ccxt signs with the Ed25519 private key (base64, URL-encoded); the venue verifies it
    with the registered public key. The same key with a wrong private key is -1022."""
    exchange = client(paper.url, ED_KEY, PRIVATE_PEM)
    assert exchange.fetch_balance()["USDT"]["total"] > 0
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        client(paper.url, ED_KEY, other.decode()).fetch_balance()


def test_gateway_signs_with_an_ed25519_key_from_a_private_file(
    paper: PaperVenue, tmp_path: Path
) -> None:
    """The brain's gateway: TWINFEED_API_KEY plus an Ed25519 private key from a 0600 file (or
    the environment); a key file others can read is refused before any request."""
    key_file = tmp_path / "ed25519.pem"
    key_file.write_text(PRIVATE_PEM)
    key_file.chmod(0o600)
    environ = {API_KEY_ENV: ED_KEY, API_PRIVATE_KEY_FILE_ENV: str(key_file)}
    credentials = load_credentials(environ=environ)
    assert credentials.private_key == PRIVATE_PEM and PRIVATE_PEM not in repr(credentials)
    gateway = OrderGateway(paper.url, credentials.api_key, "", private_key=credentials.private_key)
    assert gateway.account()["assets"][0]["asset"] == "USDT"
    from_env = load_credentials(environ={API_KEY_ENV: ED_KEY, API_PRIVATE_KEY_ENV: PRIVATE_PEM})
    signed_by_env = OrderGateway(paper.url, ED_KEY, "", private_key=from_env.private_key)
    assert all(float(row["positionAmt"]) == 0 for row in signed_by_env.positions())
    key_file.chmod(0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_credentials(environ=environ)
