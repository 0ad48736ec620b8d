"""Binance-style request signing and API credentials.

Signed endpoints carry ``timestamp`` (client wall clock, ms), optionally ``recvWindow`` (ms,
default 5000) and ``signature``: the hex HMAC-SHA256, keyed with the API secret, of the
*total parameters*: the query string as sent, immediately followed by the request body as sent
(no separator), with the ``signature=...`` parameter itself left out. The API key travels in the
``X-MBX-APIKEY`` header. This is Binance's USD-M futures scheme, so a client written for it
signs for :class:`twinfeed.live.paper_venue.PaperVenue` unchanged.

Ed25519 API keys: Binance also accepts keys registered with an Ed25519 public key; such a
request's ``signature`` is the base64 Ed25519 signature of the same payload, URL-encoded
(USD-M "General Info", SIGNED Endpoint Examples for Ed25519 keys,
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info). A venue
key whose secret is an Ed25519 public key (PEM text or a ``cryptography`` key object) verifies
that way; any other secret is an HMAC secret.

Credentials come from the environment (``TWINFEED_API_KEY`` and ``TWINFEED_API_SECRET``, or
for an Ed25519 key ``TWINFEED_API_KEY`` and ``TWINFEED_API_PRIVATE_KEY``: the PEM text, or
``TWINFEED_API_PRIVATE_KEY_FILE``: a PEM file) or from a file readable by its owner only
(mode 0600 or stricter; a file with group or other permissions is refused with
:class:`CredentialsError`; so is a private key file). The file holds ``NAME=value`` lines of
those names (``#`` comments allowed). Secrets never appear in ``repr``, log lines or error
messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

__all__ = [
    "API_KEY_ENV",
    "API_PRIVATE_KEY_ENV",
    "API_PRIVATE_KEY_FILE_ENV",
    "API_SECRET_ENV",
    "Credentials",
    "CredentialsError",
    "SignatureError",
    "create_credentials_file",
    "ed25519_public_key",
    "ed25519_sign",
    "encode_params",
    "load_credentials",
    "new_ed25519_key",
    "sign",
    "signed_params",
    "signed_query",
    "total_params",
    "verify",
]

API_KEY_ENV = "TWINFEED_API_KEY"
API_SECRET_ENV = "TWINFEED_API_SECRET"
API_PRIVATE_KEY_ENV = "TWINFEED_API_PRIVATE_KEY"
API_PRIVATE_KEY_FILE_ENV = "TWINFEED_API_PRIVATE_KEY_FILE"

#: What a venue key verifies with: an HMAC secret, or an Ed25519 public key.
VerifyKey = str | Ed25519PublicKey


class CredentialsError(RuntimeError):
    """Credentials are missing, malformed, or kept in a file others can read."""


@dataclass(frozen=True)
class Credentials:
    """An API key and its secret, or its Ed25519 private key in PEM (both kept out of
    ``repr``); with a private key, requests are signed with it instead of the secret."""

    api_key: str
    api_secret: str = field(repr=False)
    private_key: str = field(default="", repr=False)


def ed25519_public_key(value: VerifyKey | bytes) -> Ed25519PublicKey | None:
    """``value`` as an Ed25519 public key if it is one (PEM text or a key), else None."""
    if isinstance(value, Ed25519PublicKey):
        return value
    text = value.encode() if isinstance(value, str) else value
    if b"-----BEGIN PUBLIC KEY-----" not in text:
        return None
    key = load_pem_public_key(text)
    if not isinstance(key, Ed25519PublicKey):
        raise CredentialsError("the public key is not an Ed25519 key")
    return key


def _private_key(pem: str) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except ValueError as error:
        raise CredentialsError(f"unreadable Ed25519 private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialsError("the private key is not an Ed25519 key")
    return key


def ed25519_sign(payload: str, private_key: Ed25519PrivateKey | str) -> str:
    """The base64 Ed25519 signature of ``payload`` (not yet URL-encoded)."""
    key = _private_key(private_key) if isinstance(private_key, str) else private_key
    return base64.b64encode(key.sign(payload.encode())).decode()


def encode_params(params: Mapping[str, Any] | str) -> str:
    """``params`` as a query string, in insertion order (a string is taken as already encoded).

    Booleans become ``true``/``false`` as Binance expects; ``None`` values are left out.
    """
    if isinstance(params, str):
        return params
    items: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        items.append((key, str(value)))
    return urllib.parse.urlencode(items)


def sign(params: Mapping[str, Any] | str, secret: str, body: str = "") -> str:
    """The hex HMAC-SHA256 signature of ``encode_params(params) + body`` keyed by ``secret``."""
    payload = encode_params(params) + body
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(params: Mapping[str, Any] | str, secret: str) -> str:
    """``params`` encoded with ``&signature=...`` appended (signature over the query only)."""
    query = encode_params(params)
    signature = sign(query, secret)
    return f"{query}&signature={signature}" if query else f"signature={signature}"


def _without_signature(encoded: str) -> tuple[str, str | None]:
    """``encoded`` with its ``signature`` parameter removed, and that signature."""
    if not encoded:
        return "", None
    kept: list[str] = []
    signature: str | None = None
    for piece in encoded.split("&"):
        name, _, value = piece.partition("=")
        if name == "signature":
            signature = urllib.parse.unquote_plus(value)
            if not signature.isascii():
                # A hex digest is ASCII; hmac.compare_digest raises on a non-ASCII str.
                signature = ""
        else:
            kept.append(piece)
    return "&".join(kept), signature


def total_params(query: str, body: str) -> tuple[str, str | None]:
    """The signed payload of a request (query then body, signature removed) and the
    signature it carried (None if none)."""
    query_rest, query_signature = _without_signature(query)
    body_rest, body_signature = _without_signature(body)
    return query_rest + body_rest, query_signature or body_signature


def check_signature(payload: str, signature: str, secret: VerifyKey) -> bool:
    """True if ``signature`` signs ``payload``: hex HMAC-SHA256 of an API secret (constant
    time), or base64 Ed25519 for a key registered with its Ed25519 public key."""
    try:
        public = ed25519_public_key(secret)
    except (ValueError, CredentialsError):  # a malformed key verifies nothing
        return False
    if public is None:
        assert isinstance(secret, str)
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature.lower())
    try:
        raw = base64.b64decode(signature, validate=True)
        public.verify(raw, payload.encode())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def verify(query: str, body: str, secret: VerifyKey) -> bool:
    """True if the request's ``signature`` matches its total parameters (HMAC in constant
    time, or Ed25519 when ``secret`` is an Ed25519 public key)."""
    payload, signature = total_params(query, body)
    if signature is None:
        return False
    return check_signature(payload, signature, secret)


class SignatureError(ValueError):
    """A signed request was refused; ``code`` is the Binance error code to answer with."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def signed_params(query: str, body: str, secret: VerifyKey) -> dict[str, str]:
    """The parameters of a signed request, parsed from exactly the bytes its signature covers.

    Binance signs ``totalParams``, "the query string concatenated with the request body", and
    reads a parameter sent in both from the query string (USD-M futures "General API
    Information" / "SIGNED Endpoint Security",
    https://binance-docs.github.io/apidocs/futures/en/#signed-trade-and-user_data-endpoint-security,
    and https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-information-on-endpoints).
    The concatenation has no separator, so the signature does not say where the query ended:
    ``quantity=0.1`` + ``5&price=...`` carries the signature of ``quantity=0.15&price=...``
    but parses, query and body apart, as a 0.1 order. So a request whose signed parameters are
    split between the query string and the body is refused (-1022; the only unambiguous split
    is none, which every client of this venue sends), the parameters are parsed from the one
    verified string, a piece that is not ``name=value`` is refused (-1022) and a parameter
    given twice is refused (-1101), instead of one silently shadowing the other.
    """
    query_rest, query_signature = _without_signature(query)
    body_rest, body_signature = _without_signature(body)
    if query_signature is not None and body_signature is not None:
        raise SignatureError(-1022, "signature sent in both the query string and the body")
    signature = query_signature if query_signature is not None else body_signature
    if signature is None:
        raise SignatureError(-1102, "Mandatory parameter 'signature' was not sent.")
    payload = query_rest + body_rest
    if not check_signature(payload, signature, secret):
        raise SignatureError(-1022, "Signature for this request is not valid.")
    if query_rest and body_rest:
        raise SignatureError(
            -1022,
            "Signature for this request is not valid: signed parameters are split between the "
            "query string and the body (the signature covers their concatenation, which does "
            "not say where the split was); send them all in one of the two",
        )
    params: dict[str, str] = {}
    for piece in payload.split("&") if payload else []:
        name, sep, value = piece.partition("=")
        if not sep or not name or "=" in value:
            raise SignatureError(
                -1022, f"malformed signed parameter {piece!r}: expected name=value"
            )
        name = urllib.parse.unquote_plus(name)
        if name in params:
            raise SignatureError(-1101, f"Duplicate values for a parameter detected: {name!r}.")
        params[name] = urllib.parse.unquote_plus(value)
    return params


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"credentials file {path} has mode {stat.S_IMODE(mode):04o}; it must be readable by "
            f"its owner only: chmod 600 {path}"
        )


def _read_file(path: Path) -> Credentials:
    _check_private(path)
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise CredentialsError(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip()
    found = _from_values(values)
    if found is None:
        raise CredentialsError(
            f"{path}: missing {API_KEY_ENV} and {API_SECRET_ENV} (or {API_PRIVATE_KEY_FILE_ENV})"
        )
    return found


def _from_values(values: Mapping[str, str]) -> Credentials | None:
    """Credentials from NAME=value pairs (environment or file), or None if incomplete."""
    key = values.get(API_KEY_ENV)
    if not key:
        return None
    pem = values.get(API_PRIVATE_KEY_ENV, "")
    key_file = values.get(API_PRIVATE_KEY_FILE_ENV)
    if not pem and key_file:
        file = Path(key_file)
        if not file.exists():
            raise CredentialsError(f"private key file {file} not found")
        _check_private(file)
        pem = file.read_text()
    if pem:
        _private_key(pem)  # refuse a key that is not Ed25519 now, not at the first order
        return Credentials(key, values.get(API_SECRET_ENV, ""), pem)
    secret = values.get(API_SECRET_ENV)
    return Credentials(key, secret) if secret else None


def load_credentials(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from the environment if both variables are set, else from ``path``.

    Raises CredentialsError when neither source has them or the file is not private.
    """
    env = os.environ if environ is None else environ
    found = _from_values(env)
    if found is not None:
        return found
    if path is None:
        raise CredentialsError(
            f"no API credentials: set {API_KEY_ENV} and {API_SECRET_ENV}, or give a 0600 file"
        )
    file = Path(path)
    if not file.exists():
        raise CredentialsError(f"credentials file {file} not found")
    return _read_file(file)


def new_ed25519_key() -> tuple[str, str]:
    """A fresh Ed25519 key pair as PEM text: (private PKCS8, public SubjectPublicKeyInfo)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


def create_credentials_file(path: str | os.PathLike[str]) -> Credentials:
    """Writes fresh random credentials to a new 0600 file (for a local paper venue)."""
    file = Path(path)
    credentials = Credentials(secrets.token_hex(16), secrets.token_hex(32))
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            f"{API_KEY_ENV}={credentials.api_key}\n{API_SECRET_ENV}={credentials.api_secret}\n"
        )
    return credentials
