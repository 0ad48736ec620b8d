//! REST depth snapshots over plain HTTP/1.1 (a small GET is all the ingest needs; loopback
//! venues speak plain HTTP). `https` is refused with a clear message rather than half-supported.
//!
//! The response is read by [`ResponseReader`], an incremental, synchronous parser (no I/O, so
//! fuzz targets and tests drive it with any bytes): the head by `httparse`, the body by
//! `Content-Length`, chunked transfer coding (chunk sizes by `httparse::parse_chunk_size`, all
//! size arithmetic checked) or until EOF. Every byte is looked at once, however it is split into
//! reads, and the body is capped ([`MAX_BODY`]): a hostile or broken server costs a counted,
//! retried snapshot failure, never a panic, a quadratic rescan or unbounded memory.
//! [`read_response`] drives it from any `AsyncRead`; [`parse_response`] from a byte slice.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Largest body accepted. A 1000-level depth snapshot is about 60 KB; 8 MiB is generous and
/// still bounded.
pub const MAX_BODY: usize = 8 << 20;
/// Largest response head (status line and headers).
pub const MAX_HEAD: usize = 16 << 10;
/// Longest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 64;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("bad Content-Length {0:?}")]
    ContentLength(String),
    #[error("unsupported Transfer-Encoding {0:?}")]
    TransferEncoding(String),
    #[error("bad chunk size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("chunk-size or trailer line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("connection closed before a complete response")]
    Truncated,
    #[error("bytes after the end of the response")]
    TrailingBytes,
    #[error("{0}")]
    Io(String),
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still expected with `Content-Length`.
    Length(u64),
    /// Chunked: waiting for a chunk-size line.
    ChunkSize,
    /// Chunked: bytes left in the current chunk.
    ChunkData(u64),
    /// Chunked: the CRLF after a chunk's data.
    ChunkCrlf,
    /// Chunked: trailer lines after the last chunk, up to an empty line.
    Trailers,
    /// Body until the connection closes.
    UntilEof,
    Done,
}

/// Incremental HTTP/1.x response parser with a body cap. Feed it bytes as they arrive with
/// [`ResponseReader::feed`]; it returns the response once complete, and [`ResponseReader::eof`]
/// ends a body delimited by the connection closing.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    /// The head so far, or a partial chunk-size, chunk-end or trailer line.
    pending: Vec<u8>,
    status: u16,
    body: Vec<u8>,
    max_body: usize,
}

impl ResponseReader {
    pub fn new(max_body: usize) -> Self {
        ResponseReader {
            state: State::Head,
            pending: Vec::new(),
            status: 0,
            body: Vec::new(),
            max_body,
        }
    }

    /// Takes the next bytes of the stream; `Ok(Some)` once the response is complete (bytes
    /// after its end are an error: the request asked the server to close).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Option<Response>, HttpError> {
        while !bytes.is_empty() {
            match self.state {
                State::Done => return Err(HttpError::TrailingBytes),
                State::Length(left) => {
                    let n = take(bytes.len(), left);
                    self.push_body(&bytes[..n])?;
                    bytes = &bytes[n..];
                    self.state = match left - n as u64 {
                        0 => State::Done,
                        left => State::Length(left),
                    };
                }
                State::ChunkData(left) => {
                    let n = take(bytes.len(), left);
                    self.push_body(&bytes[..n])?;
                    bytes = &bytes[n..];
                    self.state = match left - n as u64 {
                        0 => State::ChunkCrlf,
                        left => State::ChunkData(left),
                    };
                }
                State::UntilEof => {
                    self.push_body(bytes)?;
                    bytes = &[];
                }
                State::Head | State::ChunkSize | State::ChunkCrlf | State::Trailers => {
                    // Line-oriented states: one line at a time into `pending`, so it never
                    // holds body bytes and stays short.
                    let line = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |i| i + 1);
                    let limit = match self.state {
                        State::Head => MAX_HEAD,
                        _ => MAX_LINE,
                    };
                    if self.pending.len() + line > limit {
                        return Err(match self.state {
                            State::Head => HttpError::HeadTooLong,
                            _ => HttpError::LineTooLong,
                        });
                    }
                    self.pending.extend_from_slice(&bytes[..line]);
                    bytes = &bytes[line..];
                    self.advance_line()?;
                }
            }
        }
        if self.state == State::Done {
            return Ok(Some(self.take_response()));
        }
        Ok(None)
    }

    /// The connection closed: the response if it was complete or delimited by EOF.
    pub fn eof(&mut self) -> Result<Response, HttpError> {
        match self.state {
            State::Done | State::UntilEof => Ok(self.take_response()),
            _ => Err(HttpError::Truncated),
        }
    }

    fn take_response(&mut self) -> Response {
        self.state = State::Done;
        Response {
            status: self.status,
            body: std::mem::take(&mut self.body),
        }
    }

    fn push_body(&mut self, bytes: &[u8]) -> Result<(), HttpError> {
        if bytes.len() > self.max_body - self.body.len() {
            return Err(HttpError::BodyTooLarge {
                limit: self.max_body,
            });
        }
        self.body.extend_from_slice(bytes);
        Ok(())
    }

    /// Consumes `pending` if it holds a whole line (or, in the head, the whole head).
    fn advance_line(&mut self) -> Result<(), HttpError> {
        if !self.pending.ends_with(b"\n") {
            return match self.state {
                State::ChunkCrlf if self.pending != b"\r" => Err(HttpError::ChunkEnd),
                _ => Ok(()),
            };
        }
        let line = std::mem::take(&mut self.pending);
        match self.state {
            State::Head if !line.ends_with(b"\r\n\r\n") => self.pending = line,
            State::Head => {
                self.state = match self.parse_head(&line)? {
                    State::Length(0) => State::Done,
                    state => state,
                };
            }
            State::ChunkSize => match httparse::parse_chunk_size(&line) {
                // httparse reads an empty size as 0; a size needs at least one digit.
                Ok(httparse::Status::Complete((used, size)))
                    if used == line.len() && line[0].is_ascii_hexdigit() =>
                {
                    if size > (self.max_body - self.body.len()) as u64 {
                        return Err(HttpError::BodyTooLarge {
                            limit: self.max_body,
                        });
                    }
                    self.state = match size {
                        0 => State::Trailers,
                        size => State::ChunkData(size),
                    };
                }
                _ => return Err(HttpError::ChunkSize),
            },
            State::ChunkCrlf if line == b"\r\n" => self.state = State::ChunkSize,
            State::ChunkCrlf => return Err(HttpError::ChunkEnd),
            State::Trailers if line == b"\r\n" => self.state = State::Done,
            State::Trailers => {} // a trailer field, ignored
            // Only line-oriented states call this.
            _ => {}
        }
        Ok(())
    }

    /// The status and how the body is delimited.
    fn parse_head(&mut self, head: &[u8]) -> Result<State, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HttpError::Head("incomplete".into())),
            Err(e) => return Err(HttpError::Head(e.to_string())),
        }
        self.status = response.code.unwrap_or_default();
        let mut length: Option<u64> = None;
        let mut chunked = false;
        for header in response.headers.iter() {
            let value = String::from_utf8_lossy(header.value);
            let value = value.trim();
            if header.name.eq_ignore_ascii_case("content-length") {
                let parsed = value
                    .parse::<u64>()
                    .map_err(|_| HttpError::ContentLength(value.to_string()))?;
                if length.is_some_and(|l| l != parsed) {
                    return Err(HttpError::ContentLength(value.to_string()));
                }
                length = Some(parsed);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                if !value.eq_ignore_ascii_case("chunked") {
                    return Err(HttpError::TransferEncoding(value.to_string()));
                }
                chunked = true;
            }
        }
        if chunked {
            // Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
            return Ok(State::ChunkSize);
        }
        match length {
            Some(n) if n > self.max_body as u64 => Err(HttpError::BodyTooLarge {
                limit: self.max_body,
            }),
            Some(n) => {
                self.body.reserve(n as usize);
                Ok(State::Length(n))
            }
            None if matches!(self.status, 204 | 304) || self.status < 200 => Ok(State::Done),
            None => Ok(State::UntilEof),
        }
    }
}

/// `min(available, left)` without overflow.
fn take(available: usize, left: u64) -> usize {
    usize::try_from(left).map_or(available, |left| available.min(left))
}

/// Parses a whole response from `bytes` (the connection closed after them).
pub fn parse_response(bytes: &[u8], max_body: usize) -> Result<Response, HttpError> {
    let mut reader = ResponseReader::new(max_body);
    match reader.feed(bytes)? {
        Some(response) => Ok(response),
        None => reader.eof(),
    }
}

/// Reads one response from `stream` (any `AsyncRead`) until it is complete or the stream ends.
/// No timeout of its own: wrap it in one.
pub async fn read_response<R: AsyncRead + Unpin>(
    stream: &mut R,
    max_body: usize,
) -> Result<Response, HttpError> {
    let mut reader = ResponseReader::new(max_body);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        if n == 0 {
            return reader.eof();
        }
        if let Some(response) = reader.feed(&buf[..n])? {
            return Ok(response);
        }
    }
}

/// `http[s]://host[:port][/prefix]`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpBase {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// `https`: TLS, verified against the system's trust anchors ([`crate::tls`]).
    pub tls: bool,
}

impl HttpBase {
    pub fn parse(url: &str) -> Result<Self> {
        let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            bail!("REST url {url:?}: expected http://host[:port] or https://host[:port]");
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
            _ => (authority, if tls { 443 } else { 80 }),
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
            tls,
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

/// GETs `base.prefix + path` and returns the body of a 200 response (at most [`MAX_BODY`]
/// bytes, all within `timeout`, connecting included).
pub async fn get(base: &HttpBase, path: &str, timeout: Duration) -> Result<String> {
    get_capped(base, path, timeout, MAX_BODY).await
}

/// [`get`] with another body cap (exchangeInfo is megabytes, a snapshot kilobytes).
pub async fn get_capped(
    base: &HttpBase,
    path: &str,
    timeout: Duration,
    max_body: usize,
) -> Result<String> {
    tokio::time::timeout(timeout, get_inner(base, path, max_body))
        .await
        .map_err(|_| anyhow!("GET {path}: no complete answer within {timeout:?}"))?
}

async fn get_inner(base: &HttpBase, path: &str, max_body: usize) -> Result<String> {
    let mut stream = crate::tls::connect(&base.host, base.port, base.tls, |_| {})
        .await
        .map_err(|e| anyhow!("cannot connect to {}:{}: {e}", base.host, base.port))?;
    let request = format!(
        "GET {}{} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: twinfeed-ingest/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        base.prefix,
        path,
        base.host,
        base.port,
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(request.as_bytes()).await?;
    let response = read_response(&mut stream, max_body)
        .await
        .with_context(|| format!("GET {path}"))?;
    let body = String::from_utf8(response.body)
        .with_context(|| format!("GET {path}: body is not UTF-8"))?;
    if response.status != 200 {
        let start: String = body.chars().take(200).collect();
        bail!("GET {path}: HTTP {}: {start}", response.status);
    }
    Ok(body)
}

/// Checks that a REST body is a depth snapshot the pipeline can use: one JSON object with an
/// integer `lastUpdateId` and `bids` and `asks` arrays of `[price, quantity]` string pairs.
/// Anything else is a failed fetch (counted and retried), never a capture line. serde_json
/// stops at 128 levels of nesting, so a deeply nested body is an error, not a stack overflow.
pub fn check_snapshot(body: &str) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    match object.get("lastUpdateId") {
        Some(id) if id.is_u64() => {}
        Some(other) => return Err(format!("lastUpdateId is not an unsigned integer: {other}")),
        None => return Err("no lastUpdateId".into()),
    }
    for side in ["bids", "asks"] {
        let levels = object
            .get(side)
            .and_then(|v| v.as_array())
            .ok_or_else(|| format!("{side} is missing or not an array"))?;
        let pair = |level: &serde_json::Value| match level.as_array().map(Vec::as_slice) {
            Some([price, qty]) => price.is_string() && qty.is_string(),
            _ => false,
        };
        if let Some(bad) = levels.iter().find(|l| !pair(l)) {
            let text: String = bad.to_string().chars().take(80).collect();
            return Err(format!(
                "{side}: level {text} is not a [price, quantity] pair"
            ));
        }
    }
    Ok(())
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
                prefix: String::new(),
                tls: false,
            }
        );
        assert_eq!(HttpBase::parse("http://h/api/").unwrap().prefix, "/api");
        assert_eq!(HttpBase::parse("http://h").unwrap().port, 80);
        let secure = HttpBase::parse("https://fapi.binance.com").unwrap();
        assert!(secure.tls && secure.port == 443 && secure.host == "fapi.binance.com");
        assert!(HttpBase::parse("ftp://h").is_err());
        assert_eq!(
            rest_url_from_ws("ws://127.0.0.1:9443/stream"),
            "http://127.0.0.1:9443"
        );
        assert_eq!(
            depth_path("spot", "BTCUSDT", 5),
            "/api/v3/depth?symbol=BTCUSDT&limit=5"
        );
    }

    /// Feeds `bytes` in pieces of `step` and returns the result (EOF after the last).
    fn feed_in_pieces(bytes: &[u8], step: usize, max: usize) -> Result<Response, HttpError> {
        let mut reader = ResponseReader::new(max);
        for piece in bytes.chunks(step.max(1)) {
            if let Some(done) = reader.feed(piece)? {
                return Ok(done);
            }
        }
        reader.eof()
    }

    #[test]
    fn reads_content_length_chunked_and_eof_responses_however_split() {
        let ok = |status, body: &[u8]| {
            Ok(Response {
                status,
                body: body.to_vec(),
            })
        };
        let cases: [(&[u8], Result<Response, HttpError>); 4] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}{}", ok(200, b"{}{}")),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n4;ext=1\r\na\":1\r\n1\r\n}\r\n0\r\nX-T: 1\r\n\r\n",
                ok(200, b"{\"a\":1}"),
            ),
            (b"HTTP/1.0 404 Not Found\r\n\r\nnope", ok(404, b"nope")),
            (b"HTTP/1.1 204 No Content\r\n\r\n", ok(204, b"")),
        ];
        for (bytes, want) in cases {
            for step in [1, 2, 3, 7, bytes.len()] {
                assert_eq!(feed_in_pieces(bytes, step, 1 << 20), want, "step {step}");
            }
        }
        // Complete with Content-Length: no need to wait for EOF.
        let mut reader = ResponseReader::new(100);
        assert!(reader
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap()
            .is_some());
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}", 100),
            Err(HttpError::Truncated)
        );
    }

    #[test]
    fn hostile_responses_are_errors_not_panics_or_allocations() {
        let chunked = |size: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nabc\r\n0\r\n\r\n"
            )
        };
        // The chunk size of issue 13 finding 2 (used to panic on `size + 2`).
        for size in [
            "fffffffffffffffe",
            "ffffffffffffffff",
            "10000000000000000",
            "zz",
            "",
        ] {
            let got = parse_response(chunked(size).as_bytes(), MAX_BODY);
            assert!(got.is_err(), "{size}: {got:?}");
        }
        assert_eq!(
            parse_response(chunked("fffffffffffffffe").as_bytes(), MAX_BODY),
            Err(HttpError::BodyTooLarge { limit: MAX_BODY })
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
                1000
            ),
            Err(HttpError::BodyTooLarge { limit: 1000 })
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 1000).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            1000
        )
        .is_err());
        // A body that grows past the cap through many small chunks, and one without length.
        let mut many = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..300 {
            many.extend_from_slice(b"4\r\nabcd\r\n");
        }
        assert_eq!(
            feed_in_pieces(&many, 5, 1000),
            Err(HttpError::BodyTooLarge { limit: 1000 })
        );
        let mut eof = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        eof.extend(std::iter::repeat(b'x').take(1001));
        assert_eq!(
            parse_response(&eof, 1000),
            Err(HttpError::BodyTooLarge { limit: 1000 })
        );
        // Endless head, endless chunk extension, chunk data without its CRLF, bad status line.
        let endless = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(parse_response(&endless, 1000), Err(HttpError::HeadTooLong));
        let mut ext = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        ext.extend(vec![b'e'; 5000]);
        assert_eq!(parse_response(&ext, 1000), Err(HttpError::LineTooLong));
        let no_crlf = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd";
        assert_eq!(parse_response(no_crlf, 1000), Err(HttpError::ChunkEnd));
        assert!(parse_response(b"SPDY 200\r\n\r\n", 1000).is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 1000).is_err()
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", 1000),
            Err(HttpError::TrailingBytes)
        );
    }

    #[test]
    fn snapshot_shape_is_checked() {
        assert_eq!(
            check_snapshot(r#" {"lastUpdateId":1,"E":2,"bids":[["1.0","2"]],"asks":[]}"#),
            Ok(())
        );
        for bad in [
            "<html>",
            "{\"a\":",
            "[]",
            r#"{"bids":[],"asks":[]}"#,
            r#"{"lastUpdateId":-1,"bids":[],"asks":[]}"#,
            r#"{"lastUpdateId":"1","bids":[],"asks":[]}"#,
            r#"{"lastUpdateId":1,"bids":{},"asks":[]}"#,
            r#"{"lastUpdateId":1,"bids":[["1.0"]],"asks":[]}"#,
            r#"{"lastUpdateId":1,"bids":[],"asks":[[1.0,2.0]]}"#,
            r#"{"code":-1121,"msg":"Invalid symbol."}"#,
        ] {
            assert!(check_snapshot(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(check_snapshot(&deep).is_err());
    }

    #[tokio::test]
    async fn reads_from_any_async_reader() {
        let mut bytes: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let response = read_response(&mut bytes, 100).await.unwrap();
        assert_eq!(response.body, b"{}");
    }
}
