//! Websocket framing, done once: every subscription set gets one buffer of ready server frames.
//!
//! Server frames are unmasked (RFC 6455 5.1), so a frame is a 2/4/10-byte header plus the
//! payload. [`Encoded`] holds the frames of every capture line that a subscription set
//! receives, back to back, with indices from capture lines to messages and from messages to
//! byte offsets. Sending capture lines `a..b` is then one slice of one buffer.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::capture::{Capture, LineKind};

pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

/// How frames are wrapped: `/stream` sends the captured envelope, `/ws` the bare `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Combined,
    Raw,
}

/// Appends the header of an unmasked final frame.
pub fn push_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends one complete unmasked frame.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    push_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// A close frame with a status code and reason.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(120)]);
    let mut out = Vec::with_capacity(payload.len() + 2);
    push_frame(&mut out, OPCODE_CLOSE, &payload);
    out
}

/// The payload of the unmasked frame that starts `frame`.
pub fn payload_of(frame: &[u8]) -> &[u8] {
    let header = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    &frame[header..]
}

/// The pre-framed messages of one subscription set.
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Byte offset of each message in `bytes`, plus the end (`messages + 1` entries).
    pub message_offsets: Vec<usize>,
    /// Capture line index of each message.
    pub message_line: Vec<u32>,
    /// Number of messages before each capture line, plus the total (`lines + 1` entries).
    pub line_messages: Vec<u32>,
    /// Indices of the messages that are diff-depth updates.
    pub depth_messages: Vec<u32>,
}

impl Encoded {
    /// Frames every line of `capture` whose stream is in `streams`.
    pub fn build(capture: &Capture, streams: &[u32], mode: Mode) -> Self {
        let mut wanted = vec![false; capture.streams.len()];
        for &s in streams {
            wanted[s as usize] = true;
        }
        let mut encoded = Encoded {
            bytes: Vec::new(),
            message_offsets: vec![0],
            message_line: Vec::new(),
            line_messages: Vec::with_capacity(capture.len() + 1),
            depth_messages: Vec::new(),
        };
        for (line, kind) in capture.kinds.iter().enumerate() {
            encoded
                .line_messages
                .push(encoded.message_line.len() as u32);
            let LineKind::Frame {
                stream,
                frame,
                data,
            } = kind
            else {
                continue;
            };
            if !wanted[*stream as usize] {
                continue;
            }
            let payload = match mode {
                Mode::Combined => &capture.text[frame.clone()],
                Mode::Raw => &capture.text[data.clone()],
            };
            if capture.streams[*stream as usize].is_depth {
                encoded
                    .depth_messages
                    .push(encoded.message_line.len() as u32);
            }
            push_frame(&mut encoded.bytes, OPCODE_TEXT, payload);
            encoded.message_offsets.push(encoded.bytes.len());
            encoded.message_line.push(line as u32);
        }
        encoded
            .line_messages
            .push(encoded.message_line.len() as u32);
        encoded
    }

    pub fn messages(&self) -> usize {
        self.message_line.len()
    }

    /// The messages of capture lines `lines`.
    pub fn messages_of_lines(&self, lines: Range<usize>) -> Range<usize> {
        self.line_messages[lines.start] as usize..self.line_messages[lines.end] as usize
    }

    /// The framed bytes of `messages`.
    pub fn bytes_of(&self, messages: Range<usize>) -> &[u8] {
        &self.bytes[self.message_offsets[messages.start]..self.message_offsets[messages.end]]
    }

    /// The largest end `e` in `start + 1..=end` with `bytes_of(start..e)` at most `max_bytes`
    /// long (at least one message).
    pub fn chunk_end(&self, start: usize, end: usize, max_bytes: usize) -> usize {
        let limit = self.message_offsets[start] + max_bytes;
        let offsets = &self.message_offsets[start + 1..=end];
        start
            + 1
            + offsets[1..]
                .partition_point(|&o| o <= limit)
                .min(offsets.len() - 1)
    }

    /// The number of depth messages in `messages`.
    pub fn depth_count(&self, messages: Range<usize>) -> usize {
        let lo = self
            .depth_messages
            .partition_point(|&m| (m as usize) < messages.start);
        let hi = self
            .depth_messages
            .partition_point(|&m| (m as usize) < messages.end);
        hi - lo
    }

    /// The `n`-th (0-based) depth message at or after message `start`.
    pub fn nth_depth_from(&self, start: usize, n: usize) -> Option<usize> {
        let lo = self
            .depth_messages
            .partition_point(|&m| (m as usize) < start);
        self.depth_messages.get(lo + n).map(|&m| m as usize)
    }
}

/// A subscription set: framing mode and sorted captured stream ids.
type SetKey = (Mode, Vec<u32>);

/// Encodings built so far, by subscription set; a set is framed once however many clients ask.
pub struct EncodingCache {
    capture: Arc<Capture>,
    built: Mutex<HashMap<SetKey, Arc<Encoded>>>,
}

impl EncodingCache {
    pub fn new(capture: Arc<Capture>) -> Self {
        EncodingCache {
            capture,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The encoding of the captured streams `streams` (any order, duplicates allowed).
    pub fn get(&self, mode: Mode, streams: &[u32]) -> Arc<Encoded> {
        let mut key = streams.to_vec();
        key.sort_unstable();
        key.dedup();
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        built
            .entry((mode, key))
            .or_insert_with_key(|(mode, key)| Arc::new(Encoded::build(&self.capture, key, *mode)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn capture() -> Capture {
        let long = format!(r#"{{"u":1,"pad":"{}"}}"#, "x".repeat(300));
        let lines = [
            r#"1 {"stream":"btcusdt@depth@0ms","data":{"U":1}}"#.to_string(),
            r#"2 {"stream":"btcusdt@trade","data":{"t":1}}"#.to_string(),
            r#"3 {"lastUpdateId":1,"bids":[],"asks":[]}"#.to_string(),
            format!(r#"4 {{"stream":"btcusdt@bookTicker","data":{long}}}"#),
            r#"5 {"stream":"btcusdt@depth@0ms","data":{"U":2}}"#.to_string(),
        ];
        Capture::from_lines(Path::new("t"), lines.iter().map(String::as_str)).unwrap()
    }

    /// A minimal client-side parser of unmasked frames, independent of the encoder.
    fn parse(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[0] & 0x80, 0x80, "FIN set");
            assert_eq!(bytes[1] & 0x80, 0, "server frames are unmasked");
            let (len, header) = match bytes[1] & 0x7f {
                126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push((bytes[0] & 0x0f, bytes[header..header + len].to_vec()));
            bytes = &bytes[header + len..];
        }
        out
    }

    #[test]
    fn combined_frames_are_the_captured_envelopes() {
        let capture = capture();
        let all: Vec<u32> = (0..3).collect();
        let encoded = Encoded::build(&capture, &all, Mode::Combined);
        let frames = parse(&encoded.bytes);
        assert_eq!(frames.len(), 4);
        assert!(frames.iter().all(|(op, _)| *op == OPCODE_TEXT));
        assert_eq!(
            frames[0].1,
            br#"{"stream":"btcusdt@depth@0ms","data":{"U":1}}"#
        );
        assert!(frames[2].1.len() > 300, "a 16-bit length header");
        assert_eq!(encoded.line_messages, [0, 1, 2, 2, 3, 4]);
        assert_eq!(encoded.message_line, [0, 1, 3, 4]);
        assert_eq!(encoded.depth_messages, [0, 3]);
        assert_eq!(encoded.messages_of_lines(1..4), 1..3);
        assert_eq!(parse(encoded.bytes_of(1..3)).len(), 2);
        assert_eq!(payload_of(encoded.bytes_of(0..1)), &frames[0].1[..]);
    }

    #[test]
    fn raw_frames_are_the_bare_data_of_the_chosen_streams() {
        let capture = capture();
        let depth = capture.matching_streams("btcusdt@depth@100ms");
        let encoded = Encoded::build(&capture, &depth, Mode::Raw);
        let payloads: Vec<Vec<u8>> = parse(&encoded.bytes).into_iter().map(|f| f.1).collect();
        assert_eq!(payloads, [br#"{"U":1}"#.to_vec(), br#"{"U":2}"#.to_vec()]);
        assert_eq!(encoded.depth_count(0..2), 2);
        assert_eq!(encoded.nth_depth_from(1, 0), Some(1));
        assert_eq!(encoded.nth_depth_from(1, 1), None);
    }

    #[test]
    fn chunks_hold_whole_messages() {
        let capture = capture();
        let encoded = Encoded::build(&capture, &[0, 1, 2], Mode::Combined);
        assert_eq!(encoded.chunk_end(0, 4, 0), 1, "at least one message");
        assert_eq!(encoded.chunk_end(0, 4, 1 << 20), 4);
        let two = encoded.message_offsets[2] - encoded.message_offsets[0];
        assert_eq!(encoded.chunk_end(0, 4, two), 2);
        assert_eq!(encoded.chunk_end(0, 4, two + 1), 2);
    }

    #[test]
    fn headers_cover_all_length_classes() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let mut out = Vec::new();
            push_frame(&mut out, OPCODE_TEXT, &vec![b'a'; len]);
            let frames = parse(&out);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].1.len(), len);
        }
        let close = parse(&close_frame(1000, "bye"));
        assert_eq!(close[0], (OPCODE_CLOSE, b"\x03\xe8bye".to_vec()));
    }

    #[test]
    fn the_cache_frames_a_set_once() {
        let cache = EncodingCache::new(Arc::new(capture()));
        let a = cache.get(Mode::Combined, &[2, 0]);
        let b = cache.get(Mode::Combined, &[0, 2, 2]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &cache.get(Mode::Raw, &[0, 2])));
    }
}
