"""The ingest over TLS (`wss://` market streams, `https://` depth snapshots), as a real exchange
serves them: a loopback venue with a certificate from a test CA. Trust comes from the system's
anchors, which the ingest reads as OpenSSL does (`SSL_CERT_FILE`): with the test CA there it
connects and builds the book; without it the handshake is refused and nothing is read."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hostile_server import HostileServer, Market
from test_hostile_ingest import (  # noqa: F401 (kill_leftover_ingests: an autouse fixture)
    Run,
    book_after_snapshot_case,
    kill_leftover_ingests,
)
from twinfeed import KIND


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    ca_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
    return builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A CA bundle file and a server context with a `localhost` certificate it issued."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("twinfeed test CA", ca_key, None, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("localhost", server_key, ca.subject, ca_key)
    bundle = folder / "ca.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = folder / "server.pem"
    chain.write_bytes(
        server.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return bundle, context


@pytest.fixture
def tls_ring(request: pytest.FixtureRequest) -> Iterator[str]:
    tag = f"pytest-{os.getpid()}-{request.node.name}"[:120]
    yield tag
    (Path("/dev/shm") / f"twinfeed-{tag}").unlink(missing_ok=True)


def _venue(context: ssl.SSLContext) -> tuple[HostileServer, Market]:
    """Quotes and trades, then (once the snapshot went out over https) chained depth diffs."""
    return book_after_snapshot_case([], tls=context)


def test_wss_and_https_with_a_trusted_certificate(
    tls_ring: str,
    tmp_path: Path,
    test_ca: tuple[Path, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle, context = test_ca
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    server, market = _venue(context)
    with server:
        assert server.url.startswith("wss://")
        run = Run(server, tls_ring, tmp_path)
        run.wait_for_last_trade(market, "the last trade over wss://")
        run.process.stop()
    records = run.records()
    # The snapshot came over https and the diffs over wss: the book was rebuilt from both.
    assert server.rest_requests and server.rest_requests[0].startswith("/fapi/v1/depth")
    assert np.count_nonzero(records["kind"] == KIND["book"]) >= 10
    assert np.count_nonzero(records["kind"] == KIND["trade"]) == 22
    assert run.lost == 0
    assert not server.errors, server.errors


def test_an_untrusted_certificate_is_refused(
    tls_ring: str,
    tmp_path: Path,
    test_ca: tuple[Path, ssl.SSLContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _bundle, context = test_ca
    # The system's anchors (no test CA): the venue's certificate must not be accepted.
    monkeypatch.setenv("SSL_CERT_FILE", ssl.get_default_verify_paths().openssl_cafile)
    server, _market = _venue(context)
    with server:
        run = Run(server, tls_ring, tmp_path)
        deadline = time.monotonic() + 20
        while "TLS handshake" not in run.log.read_text() and time.monotonic() < deadline:
            run.poll()
            time.sleep(0.05)
        log = run.log.read_text()
        assert run.process.running(), log[-2000:]
        run.process.stop()
    assert "TLS handshake with localhost" in log, log[-2000:]
    assert server.ws_connections == 0
    records = run.records()
    assert np.count_nonzero(np.isin(records["kind"], [KIND["quote"], KIND["trade"]])) == 0
