//! The websocket protocol pieces the venue needs: the handshake and reading client frames.

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::frames::{OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG, OPCODE_TEXT};

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest client message accepted (clients send small JSON requests).
const MAX_CLIENT_MESSAGE: usize = 1 << 20;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The `101 Switching Protocols` response.
pub fn handshake_response(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    )
    .into_bytes()
}

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

/// Reads client frames (masked, possibly fragmented) from a stream.
pub struct ClientReader<R> {
    reader: R,
    buffer: Vec<u8>,
    fragments: Vec<u8>,
    fragment_opcode: u8,
}

impl<R: AsyncRead + Unpin> ClientReader<R> {
    /// `leftover`: bytes already read after the HTTP head.
    pub fn new(reader: R, leftover: Vec<u8>) -> Self {
        ClientReader {
            reader,
            buffer: leftover,
            fragments: Vec::new(),
            fragment_opcode: 0,
        }
    }

    /// The next message; `Ok(None)` when the client closed the TCP stream.
    pub async fn next(&mut self) -> Result<Option<ClientMessage>, String> {
        loop {
            while let Some((fin, opcode, payload)) = self.take_frame()? {
                match opcode {
                    OPCODE_CLOSE => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        return Ok(Some(ClientMessage::Close(code)));
                    }
                    OPCODE_PING => return Ok(Some(ClientMessage::Ping(payload))),
                    OPCODE_PONG => return Ok(Some(ClientMessage::Pong)),
                    0x0..=0x2 => {
                        if opcode != 0 {
                            self.fragments.clear();
                            self.fragment_opcode = opcode;
                        }
                        self.fragments.extend_from_slice(&payload);
                        if self.fragments.len() > MAX_CLIENT_MESSAGE {
                            return Err("client message too large".into());
                        }
                        if fin {
                            let message = std::mem::take(&mut self.fragments);
                            return Ok(Some(if self.fragment_opcode == OPCODE_TEXT {
                                ClientMessage::Text(message)
                            } else {
                                ClientMessage::Binary(message)
                            }));
                        }
                    }
                    other => return Err(format!("unknown opcode {other:#x}")),
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .reader
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// One complete frame from the buffer: (fin, opcode, unmasked payload).
    fn take_frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, String> {
        let b = &self.buffer;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap_or([0; 8])) as usize,
                10,
            ),
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if len > MAX_CLIENT_MESSAGE {
            return Err("client frame too large".into());
        }
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            at += 4;
            Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
        } else {
            None
        };
        if b.len() < at + len {
            return Ok(None);
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(mask) = mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
        }
        self.buffer.drain(..at + len);
        Ok(Some((fin, opcode, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn reads_masked_fragmented_and_control_frames() {
        let request = br#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}"#;
        let mut wire = masked(OPCODE_TEXT, false, &request[..10]);
        wire.extend(masked(OPCODE_PING, true, b"hi"));
        wire.extend(masked(0, true, &request[10..]));
        wire.extend(masked(OPCODE_TEXT, true, &vec![b'x'; 300]));
        wire.extend(masked(OPCODE_CLOSE, true, &1000u16.to_be_bytes()));
        let (head, rest) = wire.split_at(3);
        let mut reader = ClientReader::new(rest, head.to_vec());
        assert_eq!(
            reader.next().await,
            Ok(Some(ClientMessage::Ping(b"hi".to_vec())))
        );
        assert_eq!(
            reader.next().await,
            Ok(Some(ClientMessage::Text(request.to_vec())))
        );
        assert_eq!(
            reader.next().await,
            Ok(Some(ClientMessage::Text(vec![b'x'; 300])))
        );
        assert_eq!(
            reader.next().await,
            Ok(Some(ClientMessage::Close(Some(1000))))
        );
        assert_eq!(reader.next().await, Ok(None));
    }
}
