//! The ingest's connections to a venue: plain TCP for `ws://` and `http://` (the local venue on
//! loopback), TLS for `wss://` and `https://` (a real exchange: Binance's market streams are
//! `wss://fstream.binance.com`, its REST snapshots `https://fapi.binance.com`).
//!
//! TLS is rustls (the `ring` provider) through tokio-rustls. The trust anchors are the system's
//! (rustls-native-certs: the platform store, or the PEM bundle named by `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`, as OpenSSL reads them), loaded once per process; the server's name is checked
//! against the URL's host. Nothing here is configurable that could weaken verification.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A connection to the venue, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (readiness, socket options, `TIOCOUTQ`).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

/// Connects to `host:port` (TCP_NODELAY), then with `tls` completes a TLS handshake that
/// verifies the server's certificate for `host`. `configure` sees the TCP socket before the
/// handshake (socket options).
pub async fn connect(
    host: &str,
    port: u16,
    tls: bool,
    configure: impl FnOnce(&TcpStream),
) -> Result<Stream, String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    configure(&tcp);
    if !tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("TLS: {host:?} is not a server name: {e}"))?;
    let stream = connector()?
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// The process's TLS client configuration (system trust anchors), built on first use.
fn connector() -> Result<TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or("none found".to_string(), |e| e.to_string());
                return Err(format!(
                    "TLS: no trust anchors in the system store ({why}); set SSL_CERT_FILE to a PEM bundle"
                ));
            }
            // The `ring` provider: no C toolchain beyond `cc` (aws-lc-rs wants cmake), and the
            // classical key exchanges Binance offers.
            #[allow(deprecated)]
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map(TlsConnector::from)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
