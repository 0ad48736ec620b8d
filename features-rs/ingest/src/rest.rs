//! REST depth snapshots over plain HTTP/1.1 (a small GET is all the ingest needs; loopback
//! venues speak plain HTTP). `https` is refused with a clear message rather than half-supported.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted (a 1000-level snapshot is about 60 KB).
const MAX_RESPONSE: usize = 32 << 20;

/// `http://host[:port][/prefix]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpBase {
    pub host: String,
    pub port: u16,
    pub prefix: String,
}

impl HttpBase {
    pub fn parse(url: &str) -> Result<Self> {
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            bail!("REST url {url:?}: https is not supported (the ingest speaks plain HTTP to loopback venues)");
        } else {
            bail!("REST url {url:?}: expected http://host[:port]");
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => (
                host,
                port.parse()
                    .with_context(|| format!("REST url {url:?}: bad port {port:?}"))?,
            ),
            _ => (authority, 80),
        };
        if host.is_empty() {
            bail!("REST url {url:?}: no host");
        }
        Ok(HttpBase {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            prefix: prefix.to_string(),
        })
    }
}

/// The REST base derived from a websocket url: same host and port, http scheme, no path.
pub fn rest_url_from_ws(ws_url: &str) -> String {
    let rest = ws_url
        .strip_prefix("ws://")
        .map(|r| ("http://", r))
        .or_else(|| ws_url.strip_prefix("wss://").map(|r| ("https://", r)));
    match rest {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}{authority}")
        }
        None => ws_url.to_string(),
    }
}

/// Path of the depth snapshot endpoint for a market.
pub fn depth_path(market: &str, symbol: &str, limit: u32) -> String {
    let endpoint = if market == "spot" {
        "/api/v3/depth"
    } else {
        "/fapi/v1/depth"
    };
    format!("{endpoint}?symbol={symbol}&limit={limit}")
}

/// GETs `base.prefix + path` and returns the body of a 200 response.
pub async fn get(base: &HttpBase, path: &str, timeout: Duration) -> Result<String> {
    tokio::time::timeout(timeout, get_inner(base, path))
        .await
        .map_err(|_| anyhow!("GET {path}: no answer within {timeout:?}"))?
}

async fn get_inner(base: &HttpBase, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .with_context(|| format!("cannot connect to {}:{}", base.host, base.port))?;
    let request = format!(
        "GET {}{} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: twinfeed-ingest/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        base.prefix,
        path,
        base.host,
        base.port,
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::with_capacity(64 << 10);
    loop {
        let n = stream.read_buf(&mut response).await?;
        if n == 0 {
            break;
        }
        if response.len() > MAX_RESPONSE {
            bail!("GET {path}: response larger than {MAX_RESPONSE} bytes");
        }
        // With Content-Length we can stop without waiting for the server to close.
        if let Some(Ok(body)) = complete_body(&response, false) {
            return finish(path, body);
        }
    }
    match complete_body(&response, true) {
        Some(result) => finish(path, result?),
        None => bail!("GET {path}: connection closed before a complete response"),
    }
}

fn finish(path: &str, (status, body): (u16, Vec<u8>)) -> Result<String> {
    let body = String::from_utf8(body).with_context(|| format!("GET {path}: body is not UTF-8"))?;
    if status != 200 {
        let start: String = body.chars().take(200).collect();
        bail!("GET {path}: HTTP {status}: {start}");
    }
    Ok(body)
}

/// Parses a response once it is complete: `None` while more bytes are needed (a response
/// without length or chunking is complete only at `eof`), `Some(Err)` if it is malformed.
fn complete_body(data: &[u8], eof: bool) -> Option<Result<(u16, Vec<u8>)>> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = match std::str::from_utf8(&data[..end]) {
        Ok(head) => head,
        Err(_) => return Some(Err(anyhow!("response head is not UTF-8"))),
    };
    let body = &data[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
    {
        Some(status) if status_line.starts_with("HTTP/1.") => status,
        _ => return Some(Err(anyhow!("bad HTTP status line {status_line:?}"))),
    };
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    if chunked {
        return dechunk(body).map(|r| r.map(|body| (status, body)));
    }
    match length {
        Some(n) if body.len() >= n => Some(Ok((status, body[..n].to_vec()))),
        Some(_) => None,
        None if eof => Some(Ok((status, body.to_vec()))),
        None => None,
    }
}

/// Decodes a chunked body; `None` until the final chunk arrived.
fn dechunk(mut data: &[u8]) -> Option<Result<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = match usize::from_str_radix(size_text, 16) {
            Ok(size) => size,
            Err(_) => return Some(Err(anyhow!("bad chunk size {size_text:?}"))),
        };
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(Ok(out));
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bases_and_derives_them_from_ws_urls() {
        assert_eq!(
            HttpBase::parse("http://127.0.0.1:9443").unwrap(),
            HttpBase {
                host: "127.0.0.1".into(),
                port: 9443,
                prefix: String::new()
            }
        );
        assert_eq!(HttpBase::parse("http://h/api/").unwrap().prefix, "/api");
        assert_eq!(HttpBase::parse("http://h").unwrap().port, 80);
        assert!(HttpBase::parse("https://h")
            .unwrap_err()
            .to_string()
            .contains("https"));
        assert_eq!(
            rest_url_from_ws("ws://127.0.0.1:9443/stream"),
            "http://127.0.0.1:9443"
        );
        assert_eq!(
            depth_path("spot", "BTCUSDT", 5),
            "/api/v3/depth?symbol=BTCUSDT&limit=5"
        );
    }

    #[test]
    fn reads_content_length_and_chunked_responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}{}";
        assert_eq!(
            complete_body(r, false).unwrap().unwrap(),
            (200, b"{}{}".to_vec())
        );
        assert!(complete_body(&r[..r.len() - 1], false).is_none());
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n4\r\na\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(
            complete_body(r, false).unwrap().unwrap().1,
            b"{\"a\":1}".to_vec()
        );
        let r = b"HTTP/1.0 404 Not Found\r\n\r\nnope";
        assert!(complete_body(r, false).is_none());
        assert_eq!(
            complete_body(r, true).unwrap().unwrap(),
            (404, b"nope".to_vec())
        );
    }
}
