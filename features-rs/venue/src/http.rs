//! Just enough HTTP/1.1 for a REST venue and a websocket upgrade on one port.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (control endpoints take parameters, not documents).
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The request head as received (request line and headers, through the blank line), for
    /// forwarding a websocket upgrade unchanged.
    pub head: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameters, then form parameters of the body, percent-decoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut params = parse_query(&self.query);
        let is_form = self
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            params.extend(parse_query(&String::from_utf8_lossy(&self.body)));
        }
        params
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn is_websocket_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    pub fn keep_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

/// Reads one request from `reader`; `buffer` holds bytes read beyond it afterwards.
/// `Ok(None)` on a clean end of stream before any byte of a request.
pub async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> Result<Option<Request>, String> {
    let head_end = loop {
        if let Some(at) = memchr::memmem::find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        let mut chunk = [0u8; 8192];
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err("connection closed inside a request".into())
            };
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {request_line:?}"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut request = Request {
        method: method.to_string(),
        path: percent_decode(path),
        query: query.to_string(),
        headers,
        body: Vec::new(),
        head: buffer[..head_end].to_vec(),
    };
    buffer.drain(..head_end);
    let length: usize = request
        .header("content-length")
        .map(|v| v.parse().map_err(|_| format!("bad content-length {v:?}")))
        .transpose()?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err("request body too large".into());
    }
    while buffer.len() < length {
        let mut chunk = [0u8; 8192];
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed inside a request body".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    request.body = buffer.drain(..length).collect();
    Ok(Some(request))
}

/// A complete response with a JSON (or other) body.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A Binance-style error body `{"code":C,"msg":"..."}`.
pub fn error_body(code: i32, message: &str) -> Vec<u8> {
    format!(
        "{{\"code\":{code},\"msg\":{}}}",
        serde_json::to_string(message).unwrap_or_default()
    )
    .into_bytes()
}

pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_pipelined_requests_and_keeps_the_rest() {
        let wire = b"POST /_venue/fault?drop_after=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /fapi/v1/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\nConnection: close\r\n\r\n\x81";
        let mut reader = &wire[..];
        let mut buffer = Vec::new();
        let first = read_request(&mut reader, &mut buffer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.method, "POST");
        assert_eq!(first.param("drop_after").as_deref(), Some("5"));
        assert_eq!(first.body, b"abc");
        let second = read_request(&mut reader, &mut buffer)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.path, "/fapi/v1/depth");
        assert_eq!(second.param("limit").as_deref(), Some("5"));
        assert!(!second.keep_alive());
        assert_eq!(buffer, b"\x81");
    }

    #[tokio::test]
    async fn end_of_stream_is_not_a_request() {
        let mut reader = &b""[..];
        assert_eq!(read_request(&mut reader, &mut Vec::new()).await, Ok(None));
        let mut torn = &b"GET / HT"[..];
        assert!(read_request(&mut torn, &mut Vec::new()).await.is_err());
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(
            percent_decode("btcusdt%40trade%2Fbtcusdt%40depth"),
            "btcusdt@trade/btcusdt@depth"
        );
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
    }
}
