//! The ingest's websocket client: the opening handshake (key and accept from tungstenite,
//! response headers by httparse), then server frames read straight out of one receive buffer.
//!
//! Why not tungstenite for the frames as well: at full speed it cost a quarter of the ingest's
//! CPU per frame (a future per frame, a `Bytes` split and drop, zeroing its read buffer before
//! every read, its own UTF-8 pass), and the ingest needs none of its generality. Server frames
//! are never masked, so a text frame's payload is used where it lies. RFC 6455 rules that
//! matter to a client are enforced: no reserved bits, no masked server frames, control frames
//! short and unfragmented, fragments in order, text valid UTF-8, a size limit.
//!
//! The frame parser is [`FrameReader`]: synchronous, no socket, fed from any `AsyncRead`
//! ([`FrameReader::fill_from`]) or from bytes ([`FrameReader::push`]), so fuzz targets drive it
//! directly. [`WsClient`] adds the socket and the replies.
//!
//! Cancel safety: the only await that reads is [`WsClient::fill`] (`read_buf`, cancel safe), so
//! the caller can race it against timers in `select!`; frames are then taken synchronously.
//!
//! Writes never block the caller: a ping only records its payload (RFC 6455 5.5.3 allows
//! answering just the latest one), and [`WsClient::flush_replies`] writes the pong with
//! `try_write` when the socket takes it. A server that floods pings and never reads therefore
//! costs one pending pong, not a blocked loop; [`WsClient::write_stalled_for`] tells the caller
//! how long a reply has waited, so it can drop such a connection.

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::tls::Stream;
use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;
use tungstenite::http::Uri;

/// Largest message accepted (Binance frames are a few KiB; depth snapshots never come this way).
/// A frame header announcing more is a protocol error before anything is allocated for it.
pub const MAX_MESSAGE: usize = 16 << 20;
/// Bytes asked of the socket per read at least: at full speed, fewer and larger reads.
const READ_CHUNK: usize = 1 << 20;
const MAX_RESPONSE_HEAD: usize = 16 << 10;

/// A message from the server, borrowed from the receive buffer until the next call.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    Text(&'a str),
    Binary,
    /// The server closed: its reason, for the log.
    Close(String),
}

/// The websocket frame parser: bytes in, whole messages out. Control frames are checked and
/// their replies left in [`Replies`]; fragments are joined; sizes are capped at `max_message`.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// A fragmented message being assembled: (is text, bytes so far).
    partial: Option<(bool, Vec<u8>)>,
    /// A whole message taken out of `partial`, kept so a `Frame::Text` can borrow it.
    message: Vec<u8>,
    max_message: usize,
}

/// What the server's control frames ask of the client.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replies {
    /// The payload of the latest ping not answered yet.
    pub pong: Option<Vec<u8>>,
    /// The status code to echo in a close frame, once the server closed.
    pub close: Option<Vec<u8>>,
    /// Pings received.
    pub pings: u64,
}

pub struct WsClient {
    stream: Stream,
    reader: FrameReader,
    replies: Replies,
    /// An encoded frame being written, and how much of it has been.
    out: Vec<u8>,
    out_written: usize,
    /// Since when written bytes have been waiting (see [`WsClient::write_stalled_for`]).
    stalled_since: Option<Instant>,
    mask_seed: u64,
}

/// Connects to a `ws://` or `wss://` URL (TLS verified against the system's trust anchors, see
/// [`crate::tls`]) and completes the opening handshake.
pub async fn connect(url: &str, mask_seed: u64) -> Result<WsClient, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        Some(other) => return Err(format!("{url}: expected ws:// or wss://, not {other}://")),
        None => return Err(format!("{url}: no scheme (expected ws:// or wss://)")),
    };
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // `[::1]` in a URL is `::1` to the resolver.
    let address = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = crate::tls::connect(address, port, tls, limit_send_buffer).await?;
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send handshake: {e}"))?;
    // Byte by byte, so no frame that follows the response is read into the wrong buffer.
    let mut head = Vec::with_capacity(512);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err("handshake response headers too long".into());
        }
        match stream.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(e) => return Err(format!("handshake response: {e}")),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response
        .parse(&head)
        .map_err(|e| format!("handshake response: {e}"))?;
    if response.code != Some(101) {
        let first = String::from_utf8_lossy(&head[..head.len().min(200)]).into_owned();
        return Err(format!(
            "handshake refused: {}",
            first.lines().next().unwrap_or("")
        ));
    }
    let accept = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Err("handshake: wrong or missing Sec-WebSocket-Accept".into());
    }
    Ok(WsClient {
        stream,
        reader: FrameReader::new(MAX_MESSAGE),
        replies: Replies::default(),
        out: Vec::new(),
        out_written: 0,
        stalled_since: None,
        mask_seed: mask_seed | 1,
    })
}

/// Kernel send buffer of the websocket socket. The client only ever writes its handshake, pongs
/// and a close frame, so a small fixed buffer is plenty; it also bounds the kernel memory a venue
/// that never reads can pin, and lets [`WsClient::write_stalled_for`] notice such a venue
/// after a few pongs rather than megabytes of them.
const SEND_BUFFER: libc::c_int = 16 << 10;

fn limit_send_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size = SEND_BUFFER;
    // SAFETY: SO_SNDBUF takes one int; the descriptor is the open socket. A failure only keeps
    // the kernel's default.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One frame's header: FIN, opcode, where its payload lies and where the frame ends.
#[derive(Debug, PartialEq)]
struct Header {
    fin: bool,
    opcode: u8,
    payload: std::ops::Range<usize>,
}

/// The frame at the start of `bytes`, `Ok(None)` if it is not complete yet.
fn parse_header(bytes: &[u8], max_message: usize) -> Result<Option<Header>, String> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("frame with reserved bits set (no extension was negotiated)".into());
    }
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server".into());
    }
    let (len, at) = match b1 & 0x7F {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as u64, 4),
        127 if bytes.len() >= 10 => (
            u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")),
            10,
        ),
        126 | 127 => return Ok(None),
        short => (short as u64, 2),
    };
    if len > max_message as u64 {
        return Err(format!("frame of {len} bytes (limit {max_message})"));
    }
    let end = at + len as usize;
    if bytes.len() < end {
        return Ok(None);
    }
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        payload: at..end,
    }))
}

/// What one frame amounts to, once control frames are answered and fragments joined.
enum Step {
    /// A whole message at this range of `buf` (or in `message` when it was fragmented).
    Data {
        text: bool,
        at: Option<std::ops::Range<usize>>,
    },
    Close(String),
    /// Nothing for the caller (a ping answered, a pong, a fragment kept).
    Nothing,
}

impl FrameReader {
    pub fn new(max_message: usize) -> Self {
        FrameReader {
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            partial: None,
            message: Vec::new(),
            max_message,
        }
    }

    /// Makes room for a read: drops consumed bytes once they are half the buffer.
    fn compact(&mut self) {
        if self.start > 0 && (self.start == self.buf.len() || self.start >= self.buf.len() / 2) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Reads more from `reader`; `Ok(0)` at its end. Cancel safe (one `read_buf`). The buffer
    /// holds at most one incomplete frame (capped) plus one read.
    pub async fn fill_from<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> std::io::Result<usize> {
        self.compact();
        self.buf.reserve(READ_CHUNK);
        reader.read_buf(&mut self.buf).await
    }

    /// The next whole message already received, `Ok(None)` when more bytes are needed. Pings
    /// and closes leave their replies in `replies`.
    pub fn next(&mut self, replies: &mut Replies) -> Result<Option<Frame<'_>>, String> {
        loop {
            let Some(header) = parse_header(&self.buf[self.start..], self.max_message)? else {
                return Ok(None);
            };
            let payload = self.start + header.payload.start..self.start + header.payload.end;
            self.start = payload.end;
            match self.step(&header, payload, replies)? {
                Step::Nothing => continue,
                Step::Close(reason) => return Ok(Some(Frame::Close(reason))),
                Step::Data { text: false, .. } => return Ok(Some(Frame::Binary)),
                Step::Data { text: true, at } => {
                    let bytes = match at {
                        Some(range) => &self.buf[range],
                        None => &self.message[..],
                    };
                    return match simdutf8::basic::from_utf8(bytes) {
                        Ok(text) => Ok(Some(Frame::Text(text))),
                        Err(_) => Err("text frame that is not UTF-8".into()),
                    };
                }
            }
        }
    }

    fn step(
        &mut self,
        header: &Header,
        payload: std::ops::Range<usize>,
        replies: &mut Replies,
    ) -> Result<Step, String> {
        let control = header.opcode & 0x08 != 0;
        if control && (!header.fin || payload.len() > 125) {
            return Err("fragmented or oversized control frame".into());
        }
        match (header.opcode, self.partial.is_some()) {
            (0x1 | 0x2, false) if header.fin => Ok(Step::Data {
                text: header.opcode == 0x1,
                at: Some(payload),
            }),
            (0x1 | 0x2, false) => {
                self.partial = Some((header.opcode == 0x1, self.buf[payload].to_vec()));
                Ok(Step::Nothing)
            }
            (0x1 | 0x2, true) => Err("new message inside a fragmented one".into()),
            (0x0, false) => Err("continuation frame without a message".into()),
            (0x0, true) => {
                let (text, mut bytes) = self.partial.take().expect("checked");
                if bytes.len() + payload.len() > self.max_message {
                    return Err(format!("message over {} bytes", self.max_message));
                }
                bytes.extend_from_slice(&self.buf[payload]);
                if !header.fin {
                    self.partial = Some((text, bytes));
                    return Ok(Step::Nothing);
                }
                self.message = bytes;
                Ok(Step::Data { text, at: None })
            }
            (0x8, _) => {
                let body = &self.buf[payload];
                let reason = match body {
                    [] => "closed by the venue".to_string(),
                    [hi, lo, rest @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        match String::from_utf8_lossy(rest) {
                            r if r.is_empty() => format!("closed by the venue (code {code})"),
                            r => format!("closed by the venue (code {code}: {r})"),
                        }
                    }
                    [_] => return Err("close frame with a one-byte body".into()),
                };
                // Echo the status code, as RFC 6455 asks; the connection ends either way.
                replies.close = Some(body.get(..2).unwrap_or(&[]).to_vec());
                Ok(Step::Close(reason))
            }
            (0x9, _) => {
                // Only the latest ping needs an answer (RFC 6455 5.5.3).
                let pong = replies.pong.get_or_insert_with(Vec::new);
                pong.clear();
                pong.extend_from_slice(&self.buf[payload]);
                replies.pings += 1;
                Ok(Step::Nothing)
            }
            (0xA, _) => Ok(Step::Nothing),
            (opcode, _) => Err(format!("unknown opcode {opcode:#x}")),
        }
    }
}

impl WsClient {
    /// Reads more from the socket; `Ok(0)` when the server closed the connection. While it
    /// waits, a pending reply is written whenever the socket takes it. Cancel safe (readiness
    /// is awaited; reads and writes are non-blocking attempts).
    pub async fn fill(&mut self) -> std::io::Result<usize> {
        loop {
            let interest = if self.wants_write() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if matches!(self.stream, Stream::Tls(_)) {
                return self.fill_tls().await;
            }
            let ready = self.stream.tcp().ready(interest).await?;
            if ready.is_writable() && self.wants_write() {
                self.flush_replies()?;
            }
            if ready.is_readable() || ready.is_read_closed() {
                self.reader.compact();
                self.reader.buf.reserve(READ_CHUNK);
                match self.stream.tcp().try_read_buf(&mut self.reader.buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// The next whole message already received, `Ok(None)` when more bytes are needed. Pings
    /// are noted for [`WsClient::flush_replies`]; nothing here waits.
    pub fn next_message(&mut self) -> Result<Option<Frame<'_>>, String> {
        self.reader.next(&mut self.replies)
    }

    /// [`WsClient::fill`] over TLS: rustls keeps what it decrypted, so a read returns that
    /// before the socket is waited for. Replies go out first, as far as they can without
    /// waiting. Cancel safe (`read_buf` on a TLS stream is).
    async fn fill_tls(&mut self) -> std::io::Result<usize> {
        if self.wants_write() {
            self.flush_replies()?;
        }
        let Stream::Tls(tls) = &mut self.stream else {
            unreachable!("called for TLS streams only");
        };
        let tls = tls.as_mut();
        if let Some(flushed) = tls.flush().now_or_never() {
            flushed?;
        }
        self.reader.compact();
        self.reader.buf.reserve(READ_CHUNK);
        tls.read_buf(&mut self.reader.buf).await
    }

    /// Pings received on this connection.
    pub fn pings(&self) -> u64 {
        self.replies.pings
    }

    /// Whether a reply waits to be written.
    pub fn wants_write(&self) -> bool {
        self.out_written < self.out.len() || self.replies.pong.is_some()
    }

    /// How long, as seen by the calls so far, bytes we wrote have been waiting without a
    /// break: a reply not taken by the socket, or bytes in the kernel's send queue the venue
    /// has not acknowledged (`TIOCOUTQ`). A venue that reads empties that queue within a
    /// round trip; one that never reads leaves it full. `None` when nothing waits.
    pub fn write_stalled_for(&mut self) -> Option<Duration> {
        use std::os::fd::AsRawFd;
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int; the descriptor is the open socket.
        let fd = self.stream.tcp().as_raw_fd();
        let ok = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } == 0;
        if self.wants_write() || (ok && queued > 0) {
            let since = *self.stalled_since.get_or_insert_with(Instant::now);
            Some(since.elapsed())
        } else {
            self.stalled_since = None;
            None
        }
    }

    /// Writes the pending reply (the latest pong) as far as the socket takes it, without
    /// waiting. A frame partly written is finished before the next one is started.
    pub fn flush_replies(&mut self) -> std::io::Result<()> {
        loop {
            if self.out_written == self.out.len() {
                let Some(payload) = self.replies.pong.take() else {
                    self.stalled_since = None;
                    return Ok(());
                };
                self.encode(0xA, &payload);
            }
            let written = match &mut self.stream {
                Stream::Plain(tcp) => tcp.try_write(&self.out[self.out_written..]),
                // One attempt without waiting: rustls takes the bytes (and sends what the
                // socket takes) or is pending, which counts as "would block".
                Stream::Tls(tls) => tls
                    .write(&self.out[self.out_written..])
                    .now_or_never()
                    .unwrap_or_else(|| Err(std::io::ErrorKind::WouldBlock.into())),
            };
            match written {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Encodes a final frame with `opcode` and `payload` (at most 125 bytes) into `out`,
    /// masked as clients must.
    fn encode(&mut self, opcode: u8, payload: &[u8]) {
        let payload = &payload[..payload.len().min(125)];
        // xorshift: masks only need to be unpredictable to intermediaries, not secret.
        self.mask_seed ^= self.mask_seed << 13;
        self.mask_seed ^= self.mask_seed >> 7;
        self.mask_seed ^= self.mask_seed << 17;
        let mask = (self.mask_seed as u32).to_be_bytes();
        self.out.clear();
        self.out_written = 0;
        self.out
            .extend_from_slice(&[0x80 | opcode, 0x80 | payload.len() as u8]);
        self.out.extend_from_slice(&mask);
        self.out
            .extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    }

    /// Sends a close frame (the server's status code echoed if it closed, else 1000) after
    /// whatever reply is half written, waiting at most `wait` for the socket to take it.
    pub async fn close(&mut self, wait: Duration) {
        let code = self
            .replies
            .close
            .take()
            .unwrap_or_else(|| 1000u16.to_be_bytes().to_vec());
        let _ = tokio::time::timeout(wait, async {
            // Finish a partly written frame first, so the close frame is not spliced into it.
            if self.out_written < self.out.len() {
                self.stream.write_all(&self.out[self.out_written..]).await?;
            }
            self.encode(0x8, &code);
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(fin as u8) << 7 | opcode];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn headers_of_every_length_form_and_incomplete_frames() {
        for len in [0, 5, 125, 126, 300, 65535, 65536, 70000] {
            let bytes = frame(true, 1, &vec![b'x'; len]);
            let header = parse_header(&bytes, MAX_MESSAGE).unwrap().unwrap();
            assert_eq!(header.payload.len(), len);
            assert_eq!(header.payload.end, bytes.len());
            for cut in [0, 1, bytes.len() - 1] {
                if cut < bytes.len() {
                    assert_eq!(
                        parse_header(&bytes[..cut], MAX_MESSAGE).unwrap(),
                        None,
                        "{len} cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn protocol_errors() {
        assert!(
            parse_header(&[0x81 | 0x40, 0], MAX_MESSAGE).is_err(),
            "reserved bit"
        );
        assert!(
            parse_header(&[0x81, 0x80, 0, 0, 0, 0], MAX_MESSAGE).is_err(),
            "masked"
        );
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(parse_header(&huge, MAX_MESSAGE).is_err(), "size limit");
        // A 2 GiB length header alone: refused at once, nothing allocated for the payload.
        let mut reader = FrameReader::new(MAX_MESSAGE);
        let mut two_gb = vec![0x81, 127];
        two_gb.extend_from_slice(&(2u64 << 30).to_be_bytes());
        reader.push(&two_gb);
        let err = reader.next(&mut Replies::default()).unwrap_err();
        assert!(err.contains("limit"), "{err}");
        assert!(reader.buf.capacity() < 4 << 20);
    }

    /// A loopback server that sends `bytes` after a minimal handshake and returns what the
    /// client wrote after it.
    async fn serve(bytes: Vec<u8>) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/stream", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(socket.read_u8().await.unwrap());
            }
            let text = String::from_utf8(head).unwrap();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            let accept = derive_accept_key(key.trim().as_bytes());
            let mut reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            reply.extend_from_slice(&bytes); // frames in the same write as the response
            socket.write_all(&reply).await.unwrap();
            socket.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest).await;
            rest
        });
        (url, server)
    }

    async fn messages(ws: &mut WsClient) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        loop {
            while let Some(frame) = ws.next_message()? {
                out.push(match frame {
                    Frame::Text(t) => t.to_string(),
                    Frame::Binary => "<binary>".into(),
                    Frame::Close(reason) => {
                        out.push(reason);
                        ws.close(Duration::from_secs(1)).await;
                        return Ok(out);
                    }
                });
                ws.flush_replies().map_err(|e| e.to_string())?;
            }
            if ws.fill().await.map_err(|e| e.to_string())? == 0 {
                return Ok(out);
            }
        }
    }

    #[tokio::test]
    async fn texts_fragments_pings_and_close_over_loopback() {
        let mut bytes = frame(true, 1, b"{\"a\":1}");
        bytes.extend(frame(false, 1, b"{\"fr"));
        bytes.extend(frame(true, 9, b"hi")); // a ping between fragments
        bytes.extend(frame(true, 0, b"ag\":2}"));
        bytes.extend(frame(true, 2, &[0, 1, 2]));
        bytes.extend(frame(true, 1, "é".as_bytes()));
        bytes.extend(frame(true, 8, &[0x03, 0xE8, b'b', b'y', b'e']));
        let (url, server) = serve(bytes).await;
        let mut ws = connect(&url, 7).await.unwrap();
        let got = messages(&mut ws).await.unwrap();
        assert_eq!(
            got,
            [
                "{\"a\":1}",
                "{\"frag\":2}",
                "<binary>",
                "é",
                "closed by the venue (code 1000: bye)"
            ]
        );
        drop(ws);
        let written = server.await.unwrap();
        // A masked pong with the ping's payload, then the masked close echo.
        assert_eq!(written[0], 0x8A);
        assert_eq!(written[1], 0x80 | 2);
        let mask = &written[2..6];
        assert_eq!([written[6] ^ mask[0], written[7] ^ mask[1]], *b"hi");
        assert_eq!(written[8], 0x88);
    }

    #[test]
    fn ping_floods_leave_one_pong_to_send() {
        let mut reader = FrameReader::new(MAX_MESSAGE);
        for i in 0..10_000u32 {
            reader.push(&frame(true, 9, &i.to_be_bytes()));
        }
        reader.push(&frame(true, 1, b"{}"));
        let mut replies = Replies::default();
        assert_eq!(reader.next(&mut replies).unwrap(), Some(Frame::Text("{}")));
        assert_eq!(replies.pings, 10_000);
        assert_eq!(replies.pong, Some(9_999u32.to_be_bytes().to_vec()));
    }

    #[tokio::test]
    async fn invalid_utf8_and_stray_continuations_end_the_session() {
        for bad in [frame(true, 1, &[0xFF, 0xFE]), frame(true, 0, b"x")] {
            let (url, _server) = serve(bad).await;
            let mut ws = connect(&url, 7).await.unwrap();
            assert!(messages(&mut ws).await.is_err());
        }
    }
}
