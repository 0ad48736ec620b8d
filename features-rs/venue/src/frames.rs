//! Websocket framing, done once: every subscription set gets one buffer of ready server frames.
//!
//! Server frames are unmasked (RFC 6455 5.1), so a frame is a 2/4/10-byte header plus the
//! payload. [`Encoded`] holds the frames of every capture line that a subscription set
//! receives, back to back, with indices from capture lines to messages and from messages to
//! byte offsets. Sending capture lines `a..b` is then one slice of one buffer.
//!
//! A subscription is a [`Selector`]: a captured stream as captured, or a diff-depth stream at
//! another speed. A diff-depth request slower than the captured stream is served by merging the
//! captured diffs of each window of event time (`E` div window) as Binance builds its slower
//! streams ("Diff. Book Depth Streams",
//! https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Diff-Book-Depth-Streams):
//! `U` and `pu` of the window's first diff, `u`, `E` and `T` of its last, and the last quantity
//! per price (zero included), sides sorted by price as captured. Such frames carry the
//! subscribed stream name in the combined envelope. Lap `k` of a looped replay is encoded
//! apart with its top-level `E` and `T` moved forward by the lap's shift (see
//! [`crate::replay`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::book::levels_of;
use crate::capture::{Capture, LineKind};
use crate::json;

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

/// Messages a selector derives: `data` objects and the capture line each goes out with.
pub type Derived = Vec<(usize, Vec<u8>)>;

/// What one subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// A captured stream's frames, as captured.
    Captured(u32),
    /// A captured diff-depth stream under the subscribed `name`, its diffs merged per
    /// `window_ms` of event time (0: one frame per captured diff).
    Depth {
        stream: u32,
        window_ms: u32,
        name: String,
    },
    /// Partial depth (`<sym>@depth<levels>[@<speed>ms]`) from diff-depth stream `stream` and the
    /// symbol's captured snapshots: the best `levels` of the replayed book at the end of each
    /// `window_ms` window of event time.
    Partial {
        stream: u32,
        levels: usize,
        window_ms: u32,
        name: String,
    },
}

impl Encoded {
    /// Frames every line of `capture` that `selectors` deliver, top-level `E`/`T` moved by
    /// `shift_ms`.
    pub fn build(capture: &Capture, selectors: &[Selector], mode: Mode, shift_ms: i64) -> Self {
        let mut wanted = vec![false; capture.streams.len()];
        let mut derived: Vec<(Derived, &str)> = Vec::new();
        for selector in selectors {
            match selector {
                Selector::Captured(s) => wanted[*s as usize] = true,
                Selector::Depth {
                    stream,
                    window_ms,
                    name,
                } => derived.push((depth_messages(capture, *stream, *window_ms), name)),
                Selector::Partial {
                    stream,
                    levels,
                    window_ms,
                    name,
                } => derived.push((
                    partial_depth_messages(capture, *stream, *levels, *window_ms),
                    name,
                )),
            }
        }
        let mut next_derived = vec![0usize; derived.len()];
        let mut encoded = Encoded {
            bytes: Vec::new(),
            message_offsets: vec![0],
            message_line: Vec::new(),
            line_messages: Vec::with_capacity(capture.len() + 1),
            depth_messages: Vec::new(),
        };
        let mut scratch = Vec::new();
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
            if wanted[*stream as usize] {
                let shifted = shift_times(&capture.text[data.clone()], shift_ms);
                let payload: &[u8] = match (mode, &shifted) {
                    (Mode::Raw, _) => &shifted,
                    (Mode::Combined, Cow::Borrowed(_)) => &capture.text[frame.clone()],
                    (Mode::Combined, Cow::Owned(data_bytes)) => {
                        scratch.clear();
                        scratch.extend_from_slice(&capture.text[frame.start..data.start]);
                        scratch.extend_from_slice(data_bytes);
                        scratch.extend_from_slice(&capture.text[data.end..frame.end]);
                        &scratch
                    }
                };
                encoded.push(payload, line, capture.streams[*stream as usize].is_depth);
            }
            for (index, (messages, name)) in derived.iter().enumerate() {
                while let Some((at, data)) = messages.get(next_derived[index]) {
                    if *at != line {
                        break;
                    }
                    next_derived[index] += 1;
                    let data = shift_times(data, shift_ms);
                    let payload: &[u8] = match mode {
                        Mode::Raw => &data,
                        Mode::Combined => {
                            scratch.clear();
                            scratch.extend_from_slice(b"{\"stream\":");
                            scratch.extend_from_slice(
                                serde_json::to_string(name).unwrap_or_default().as_bytes(),
                            );
                            scratch.extend_from_slice(b",\"data\":");
                            scratch.extend_from_slice(&data);
                            scratch.push(b'}');
                            &scratch
                        }
                    };
                    encoded.push(payload, line, true);
                }
            }
        }
        encoded
            .line_messages
            .push(encoded.message_line.len() as u32);
        encoded
    }

    fn push(&mut self, payload: &[u8], line: usize, is_depth: bool) {
        if is_depth {
            self.depth_messages.push(self.message_line.len() as u32);
        }
        push_frame(&mut self.bytes, OPCODE_TEXT, payload);
        self.message_offsets.push(self.bytes.len());
        self.message_line.push(line as u32);
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

/// The `data` objects of diff-depth stream `stream` and the capture line each goes out with:
/// every captured diff (`window_ms` 0), or one merged diff per window of event time, sent
/// with the window's last captured diff.
pub fn depth_messages(capture: &Capture, stream: u32, window_ms: u32) -> Derived {
    let mut out = Vec::new();
    let mut window: Option<Window> = None;
    for (line, kind) in capture.kinds.iter().enumerate() {
        let LineKind::Frame {
            stream: s, data, ..
        } = kind
        else {
            continue;
        };
        if *s != stream {
            continue;
        }
        let text = &capture.text[data.clone()];
        if window_ms == 0 {
            out.push((line, text.to_vec()));
            continue;
        }
        let Some(members) = json::members(text) else {
            continue;
        };
        let value = |key: &str| json::find(text, &members, key);
        let Some(event) = value("E")
            .and_then(|e| std::str::from_utf8(e).ok())
            .and_then(|e| e.parse::<i64>().ok())
        else {
            continue;
        };
        let key = event.div_euclid(i64::from(window_ms));
        if window.as_ref().is_some_and(|w| w.key != key) {
            out.extend(window.take().map(|w| w.merged(capture)));
        }
        let current = window.get_or_insert_with(|| Window {
            key,
            first_update: value("U").map(<[u8]>::to_vec),
            first_previous: value("pu").map(<[u8]>::to_vec),
            ..Window::default()
        });
        for (member, side) in [("b", &mut current.bids), ("a", &mut current.asks)] {
            if let Some(m) = members
                .iter()
                .find(|m| &text[m.key.clone()] == member.as_bytes())
            {
                let base = data.start + m.value.start;
                for (price, p, q) in levels_of(&text[m.value.clone()], base) {
                    side.insert(price, (p, q));
                }
            }
        }
        current.last = data.clone();
        current.line = line;
    }
    out.extend(window.map(|w| w.merged(capture)));
    out
}

/// Partial-depth `data` objects ("Partial Book Depth Streams",
/// https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Partial-Book-Depth-Streams):
/// at the end of each window of event time, the best `levels` bids and asks of the book built
/// from the symbol's captured snapshot and diffs, with `E`, `T`, `s`, `u` of the window's last
/// diff and `U`, `pu` of its first. Nothing before the book has a snapshot.
pub fn partial_depth_messages(
    capture: &Capture,
    stream: u32,
    levels: usize,
    window_ms: u32,
) -> Derived {
    let symbol = crate::streams::symbol(&capture.streams[stream as usize].name);
    let text = &capture.text;
    let mut book: Option<crate::book::Levels> = None;
    // This stream's diffs so far (spans), for a snapshot that arrives after some of them.
    let mut seen: Vec<Range<usize>> = Vec::new();
    let mut out = Vec::new();
    // (window key, first diff's data span, last diff's data span, last line)
    let mut window: Option<(i64, Range<usize>, Range<usize>, usize)> = None;
    let emit = |book: &crate::book::Levels, first: &Range<usize>, last: &Range<usize>| {
        let first_members = json::members(&text[first.clone()])?;
        let last_members = json::members(&text[last.clone()])?;
        let of_first = |key| json::find(&text[first.clone()], &first_members, key);
        let of_last = |key| json::find(&text[last.clone()], &last_members, key);
        let mut data = b"{\"e\":\"depthUpdate\"".to_vec();
        for (key, value) in [
            ("E", of_last("E")),
            ("T", of_last("T")),
            ("s", of_last("s")),
            ("U", of_first("U")),
            ("u", of_last("u")),
            ("pu", of_first("pu")),
        ] {
            if let Some(value) = value {
                data.extend_from_slice(format!(",\"{key}\":").as_bytes());
                data.extend_from_slice(value);
            }
        }
        data.push(b',');
        book.push_top(&mut data, text, levels);
        data.push(b'}');
        Some(data)
    };
    for (line, kind) in capture.kinds.iter().enumerate() {
        match kind {
            LineKind::Snapshot(index) => {
                let snapshot = &capture.snapshots[*index as usize];
                if snapshot.symbol == symbol && book.as_ref().map_or(true, |b| b.broken) {
                    book = crate::book::load_snapshot(
                        text,
                        snapshot.body.clone(),
                        seen.iter().rev().cloned(),
                    );
                }
            }
            LineKind::Frame {
                stream: s, data, ..
            } if *s == stream => {
                seen.push(data.clone());
                let Some(event) = crate::capture::event_time(&text[data.clone()]) else {
                    continue;
                };
                let key = event.div_euclid(i64::from(window_ms.max(1)));
                if window.as_ref().is_some_and(|w| w.0 != key) {
                    if let (Some((_, first, last, at)), Some(levels)) = (window.take(), &book) {
                        out.extend(emit(levels, &first, &last).map(|d| (at, d)));
                    }
                }
                let Some(levels) = book.as_mut() else {
                    continue;
                };
                crate::book::apply_diff(levels, text, data.clone());
                match &mut window {
                    Some((_, _, last, at)) => {
                        *last = data.clone();
                        *at = line;
                    }
                    None => window = Some((key, data.clone(), data.clone(), line)),
                }
            }
            _ => {}
        }
    }
    if let (Some((_, first, last, at)), Some(levels)) = (&window, &book) {
        out.extend(emit(levels, first, last).map(|d| (*at, d)));
    }
    out
}

/// The diffs of one window being merged.
#[derive(Default)]
struct Window {
    key: i64,
    first_update: Option<Vec<u8>>,
    first_previous: Option<Vec<u8>>,
    /// Last (price, quantity) string spans per fixed-point price.
    bids: BTreeMap<i64, (Range<usize>, Range<usize>)>,
    asks: BTreeMap<i64, (Range<usize>, Range<usize>)>,
    /// The last diff's `data` span and line.
    last: Range<usize>,
    line: usize,
}

impl Window {
    /// The last diff with `U`, `pu`, `b` and `a` replaced; other members as captured.
    fn merged(self, capture: &Capture) -> (usize, Vec<u8>) {
        let text = &capture.text[self.last.clone()];
        let Some(members) = json::members(text) else {
            return (self.line, text.to_vec());
        };
        let mut out = Vec::with_capacity(text.len() * 2);
        out.push(b'{');
        for (i, member) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let key = &text[member.key.clone()];
            out.push(b'"');
            out.extend_from_slice(key);
            out.extend_from_slice(b"\":");
            match key {
                b"U" if self.first_update.is_some() => {
                    out.extend_from_slice(self.first_update.as_deref().unwrap_or_default())
                }
                b"pu" if self.first_previous.is_some() => {
                    out.extend_from_slice(self.first_previous.as_deref().unwrap_or_default())
                }
                b"b" | b"a" => {
                    let side = if key == b"b" { &self.bids } else { &self.asks };
                    out.push(b'[');
                    for (j, (price, quantity)) in side.values().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"[\"");
                        out.extend_from_slice(&capture.text[price.clone()]);
                        out.extend_from_slice(b"\",\"");
                        out.extend_from_slice(&capture.text[quantity.clone()]);
                        out.extend_from_slice(b"\"]");
                    }
                    out.push(b']');
                }
                _ => out.extend_from_slice(&text[member.value.clone()]),
            }
        }
        out.push(b'}');
        (self.line, out)
    }
}

/// `object` with its top-level integer `E` and `T` members moved by `shift_ms` (borrowed when
/// the shift is 0 or there is nothing to move).
pub fn shift_times(object: &[u8], shift_ms: i64) -> Cow<'_, [u8]> {
    if shift_ms == 0 {
        return Cow::Borrowed(object);
    }
    let Some(members) = json::members(object) else {
        return Cow::Borrowed(object);
    };
    let mut out = Vec::with_capacity(object.len() + 8);
    let mut copied = 0;
    for member in &members {
        if !matches!(&object[member.key.clone()], b"E" | b"T") {
            continue;
        }
        let Some(value) = std::str::from_utf8(&object[member.value.clone()])
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
        else {
            continue;
        };
        out.extend_from_slice(&object[copied..member.value.start]);
        out.extend_from_slice(value.saturating_add(shift_ms).to_string().as_bytes());
        copied = member.value.end;
    }
    if copied == 0 {
        return Cow::Borrowed(object);
    }
    out.extend_from_slice(&object[copied..]);
    Cow::Owned(out)
}

/// A subscription set: framing mode, sorted selectors, lap.
type SetKey = (Mode, Vec<Selector>, u64);

/// Encodings built so far, by subscription set and lap; a set is framed once per lap however
/// many clients ask (laps before the previous one are forgotten).
pub struct EncodingCache {
    capture: Arc<Capture>,
    /// Time shift per lap (`Replay::lap_ms`).
    lap_ms: i64,
    built: Mutex<HashMap<SetKey, Arc<Encoded>>>,
}

impl EncodingCache {
    pub fn new(capture: Arc<Capture>, lap_ms: i64) -> Self {
        EncodingCache {
            capture,
            lap_ms,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The encoding of `selectors` (any order, duplicates allowed) for lap `lap`.
    pub fn get(&self, mode: Mode, selectors: &[Selector], lap: u64) -> Arc<Encoded> {
        let mut key = selectors.to_vec();
        key.sort_unstable();
        key.dedup();
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if lap > 1 {
            built.retain(|(_, _, l), _| *l + 1 >= lap);
        }
        let shift = (lap as i64).saturating_mul(self.lap_ms);
        built
            .entry((mode, key, lap))
            .or_insert_with_key(|(mode, key, _)| {
                Arc::new(Encoded::build(&self.capture, key, *mode, shift))
            })
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
        let all: Vec<Selector> = all.into_iter().map(Selector::Captured).collect();
        let encoded = Encoded::build(&capture, &all, Mode::Combined, 0);
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
        let depth: Vec<Selector> = capture
            .matching_streams("btcusdt@depth@100ms")
            .into_iter()
            .map(Selector::Captured)
            .collect();
        let encoded = Encoded::build(&capture, &depth, Mode::Raw, 0);
        let payloads: Vec<Vec<u8>> = parse(&encoded.bytes).into_iter().map(|f| f.1).collect();
        assert_eq!(payloads, [br#"{"U":1}"#.to_vec(), br#"{"U":2}"#.to_vec()]);
        assert_eq!(encoded.depth_count(0..2), 2);
        assert_eq!(encoded.nth_depth_from(1, 0), Some(1));
        assert_eq!(encoded.nth_depth_from(1, 1), None);
    }

    #[test]
    fn chunks_hold_whole_messages() {
        let capture = capture();
        let all: Vec<Selector> = (0..3).map(Selector::Captured).collect();
        let encoded = Encoded::build(&capture, &all, Mode::Combined, 0);
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
        let cache = EncodingCache::new(Arc::new(capture()), 1000);
        let (s0, s2) = (Selector::Captured(0), Selector::Captured(2));
        let a = cache.get(Mode::Combined, &[s2.clone(), s0.clone()], 0);
        let b = cache.get(Mode::Combined, &[s0.clone(), s2.clone(), s2.clone()], 0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(
            &a,
            &cache.get(Mode::Raw, &[s0.clone(), s2.clone()], 0)
        ));
        let lap1 = cache.get(Mode::Raw, &[s0], 1);
        assert_eq!(
            payload_of(lap1.bytes_of(0..1)),
            br#"{"U":1}"#,
            "no E/T to move"
        );
    }

    fn depth_capture() -> Capture {
        let diff = |ns: u64,
                    e: u64,
                    first: u64,
                    last: u64,
                    previous: u64,
                    bids: &str,
                    asks: &str| {
            format!(
                r#"{ns} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{e},"T":{e},"s":"BTCUSDT","U":{first},"u":{last},"pu":{previous},"b":[{bids}],"a":[{asks}]}}}}"#
            )
        };
        let lines = [
            diff(1, 1000, 10, 12, 9, r#"["99.0","1"]"#, r#"["101.0","2"]"#),
            r#"2 {"stream":"btcusdt@trade","data":{"E":1010,"T":1009}}"#.to_string(),
            diff(3, 1050, 13, 15, 12, r#"["98.50","3"],["99.0","0.000"]"#, ""),
            diff(4, 1100, 16, 20, 15, "", r#"["101.0","5"]"#),
        ];
        Capture::from_lines(Path::new("t"), lines.iter().map(String::as_str)).unwrap()
    }

    #[test]
    fn slower_depth_merges_each_window_as_binance_does() {
        let capture = depth_capture();
        let merged = depth_messages(&capture, 0, 100);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].0, 2, "sent with the window's last diff");
        assert_eq!(
            std::str::from_utf8(&merged[0].1).unwrap(),
            r#"{"e":"depthUpdate","E":1050,"T":1050,"s":"BTCUSDT","U":10,"u":15,"pu":9,"b":[["98.50","3"],["99.0","0.000"]],"a":[["101.0","2"]]}"#
        );
        assert_eq!(merged[1].0, 3);
        assert!(std::str::from_utf8(&merged[1].1)
            .unwrap()
            .contains(r#""U":16,"u":20,"pu":15"#));
        assert_eq!(
            depth_messages(&capture, 0, 0).len(),
            3,
            "window 0: every diff"
        );
        // Served under the subscribed name, as combined frames.
        let selectors = capture.resolve("btcusdt@depth@100ms", false);
        assert_eq!(
            selectors,
            vec![Selector::Depth {
                stream: 0,
                window_ms: 100,
                name: "btcusdt@depth@100ms".into()
            }]
        );
        let encoded = Encoded::build(&capture, &selectors, Mode::Combined, 0);
        let frames = parse(&encoded.bytes);
        assert_eq!(frames.len(), 2);
        let first: serde_json::Value = serde_json::from_slice(&frames[0].1).unwrap();
        assert_eq!(first["stream"], "btcusdt@depth@100ms");
        assert_eq!(first["data"]["U"], 10);
        assert_eq!(encoded.depth_messages, [0, 1]);
        assert_eq!(
            capture.resolve("btcusdt@depth@0ms", false),
            vec![Selector::Captured(0)]
        );
        assert!(matches!(
            capture.resolve("btcusdt@depth", false)[0],
            Selector::Depth { window_ms: 250, .. }
        ));
        assert!(capture.resolve("ethusdt@depth", false).is_empty());
        assert_eq!(
            capture.resolve("btcusdt@depth@100ms", true),
            vec![Selector::Depth {
                stream: 0,
                window_ms: 0,
                name: "btcusdt@depth@100ms".into()
            }],
            "--depth-as-captured: the captured diffs, renamed"
        );
    }

    #[test]
    fn later_laps_move_event_and_transaction_times() {
        assert_eq!(
            shift_times(br#"{"e":"trade","E":1000,"T":999,"p":"1"}"#, 5).as_ref(),
            br#"{"e":"trade","E":1005,"T":1004,"p":"1"}"#
        );
        assert!(matches!(shift_times(br#"{"E":1}"#, 0), Cow::Borrowed(_)));
        let capture = depth_capture();
        let trade = [Selector::Captured(1)];
        let lap1 = Encoded::build(&capture, &trade, Mode::Combined, 7);
        assert_eq!(
            payload_of(lap1.bytes_of(0..1)),
            br#"{"stream":"btcusdt@trade","data":{"E":1017,"T":1016}}"#
        );
    }

    #[test]
    fn partial_depth_is_the_top_of_the_replayed_book_per_window() {
        let lines = [
            r#"1 {"lastUpdateId":10,"bids":[["100.0","1"],["99.0","2"],["98.0","3"]],"asks":[["101.0","1"],["102.0","2"]]}"#,
            r#"2 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1000,"T":999,"s":"BTCUSDT","U":9,"u":12,"pu":8,"b":[["100.0","0"]],"a":[]}}"#,
            r#"3 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1050,"T":1049,"s":"BTCUSDT","U":13,"u":14,"pu":12,"b":[["99.50","4"]],"a":[]}}"#,
            r#"4 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1100,"T":1100,"s":"BTCUSDT","U":15,"u":16,"pu":14,"b":[],"a":[["100.5","7"]]}}"#,
        ];
        let capture = Capture::from_lines(Path::new("t"), lines).unwrap();
        assert!(
            capture.resolve("btcusdt@depth2@100ms", false).is_empty(),
            "depth2 is not a Binance level count"
        );
        let messages = partial_depth_messages(&capture, 0, 2, 100);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].0, 2);
        assert_eq!(
            std::str::from_utf8(&messages[0].1).unwrap(),
            r#"{"e":"depthUpdate","E":1050,"T":1049,"s":"BTCUSDT","U":9,"u":14,"pu":8,"b":[["99.50","4"],["99.0","2"]],"a":[["101.0","1"],["102.0","2"]]}"#
        );
        assert!(std::str::from_utf8(&messages[1].1)
            .unwrap()
            .contains(r#""a":[["100.5","7"],["101.0","1"]]"#));
        assert!(matches!(
            capture.resolve("btcusdt@depth5@100ms", false)[0],
            Selector::Partial {
                levels: 5,
                window_ms: 100,
                ..
            }
        ));
        assert!(matches!(
            capture.resolve("btcusdt@depth20", false)[0],
            Selector::Partial {
                levels: 20,
                window_ms: 250,
                ..
            }
        ));
    }
}
