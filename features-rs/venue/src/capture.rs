//! Loading a capture into memory and classifying its lines.
//!
//! | line | kind |
//! |---|---|
//! | `{"stream":"btcusdt@bookTicker","data":{...}}` | frame of that stream |
//! | `{"lastUpdateId":...,"bids":...,"asks":...}` (bare REST body, hftbacktest) | depth snapshot |
//! | `{"twinfeed":"snapshot","symbol":S,"data":{...}}` (twinfeed ingest) | depth snapshot of S |
//! | `{"twinfeed":"instruments","market":M,"data":{...}}` (twinfeed ingest) | exchangeInfo of market M (served by REST, not replayed) |
//! | other `{"twinfeed":...}` control lines | skipped (counted) |
//! | anything else, blank, torn or unparsable lines | ignored (counted) |
//!
//! A bare REST body names no symbol: it belongs to the capture's only symbol, or with several
//! symbols to the symbol of the nearest depth stream line before it (else after it).
//! Every line, whatever its kind, keeps its place and its `local_receive_ns`, so replay
//! positions are capture line indices and timing follows the original file.

use std::ops::Range;
use std::path::{Path, PathBuf};

use twinfeed_features::capture::{CaptureLine, CaptureReader};
use twinfeed_features::pipeline::split_line;

use crate::error::{Error, Result};
use crate::frames::Selector;
use crate::json;
use crate::streams;

/// What one capture line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// A combined-stream envelope; spans index [`Capture::text`].
    Frame {
        stream: u32,
        frame: Range<usize>,
        data: Range<usize>,
    },
    /// The index of a [`Snapshot`].
    Snapshot(u32),
    /// A twinfeed control line other than a snapshot.
    Control,
    /// Not replayed.
    Ignored,
}

/// A stream found in the capture.
#[derive(Debug, Clone)]
pub struct Stream {
    pub name: String,
    pub canonical: String,
    pub is_depth: bool,
    /// The update speed of a diff-depth stream (`@depth@0ms` -> 0, `@depth` -> 250).
    pub depth_speed: Option<u32>,
}

/// A REST depth snapshot found in the capture.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Capture line index (0-based).
    pub line: usize,
    /// Upper-case symbol, empty if it could not be attributed.
    pub symbol: String,
    /// The REST body's span in [`Capture::text`].
    pub body: Range<usize>,
}

/// An exchangeInfo body the ingest captured (`{"twinfeed":"instruments",...}`).
#[derive(Debug, Clone)]
pub struct Instruments {
    /// Capture line index (0-based).
    pub line: usize,
    /// `spot`, `usdm` or `coinm`.
    pub market: String,
    /// The exchangeInfo body's span in [`Capture::text`].
    pub body: Range<usize>,
}

/// Counts by line kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineCounts {
    pub lines: usize,
    pub frames: usize,
    pub snapshots: usize,
    pub control: usize,
    pub ignored: usize,
    pub torn: usize,
}

/// A whole capture, classified, in memory.
pub struct Capture {
    pub path: PathBuf,
    pub kinds: Vec<LineKind>,
    /// `local_receive_ns` of each line (a line without a readable stamp repeats the previous).
    pub local_ns: Vec<i64>,
    /// Nanoseconds from the first line, never decreasing (the replay schedule).
    pub offset_ns: Vec<u64>,
    /// Frames and snapshot bodies, as captured.
    pub text: Vec<u8>,
    pub streams: Vec<Stream>,
    pub snapshots: Vec<Snapshot>,
    /// Exchange time of each line: the largest event time `E` of the frames (and snapshots)
    /// up to it, never decreasing; lines before the first `E` take the first (0 without any).
    /// The venue's clock follows it (see [`crate::replay`]).
    pub event_ms: Vec<i64>,
    /// The captured exchangeInfo bodies, ordered by line.
    pub instruments: Vec<Instruments>,
    pub counts: LineCounts,
}

impl Capture {
    /// Reads and classifies every line of the capture at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let mut reader = CaptureReader::open(path)?;
        let mut builder = Builder::new(path);
        while let Some(line) = reader.next_line()? {
            match line {
                CaptureLine::Complete(line) => builder.push(line),
                CaptureLine::Torn(_) => builder.push_torn(),
            }
        }
        builder.finish()
    }

    /// Classifies lines given in memory (tests).
    pub fn from_lines<'a>(path: &Path, lines: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut builder = Builder::new(path);
        for line in lines {
            builder.push(line.as_bytes());
        }
        builder.finish()
    }

    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The distinct upper-case symbols of the captured streams, sorted.
    /// The exchangeInfo body of `market` in force at capture line `line` (the newest captured
    /// at or before it; before the first, the first), if the capture has one.
    pub fn instruments_at(&self, market: &str, line: Option<usize>) -> Option<&[u8]> {
        let of_market = self.instruments.iter().filter(|i| i.market == market);
        let first = of_market.clone().next()?;
        let chosen = match line {
            Some(line) => of_market
                .take_while(|i| i.line <= line)
                .last()
                .unwrap_or(first),
            None => first,
        };
        Some(&self.text[chosen.body.clone()])
    }

    pub fn symbols(&self) -> Vec<String> {
        let mut symbols: Vec<String> = self
            .streams
            .iter()
            .map(|s| streams::symbol(&s.name))
            .collect();
        symbols.extend(self.snapshots.iter().map(|s| s.symbol.clone()));
        symbols.retain(|s| !s.is_empty());
        symbols.sort();
        symbols.dedup();
        symbols
    }

    /// The captured streams a client's stream name matches (see [`streams::canonical`]).
    pub fn matching_streams(&self, requested: &str) -> Vec<u32> {
        let key = streams::canonical(requested);
        (0..self.streams.len() as u32)
            .filter(|&i| self.streams[i as usize].canonical == key)
            .collect()
    }

    /// What a client's stream name delivers. A diff-depth name at any speed (`@depth` is
    /// 250 ms) is served from the symbol's captured diff-depth stream: as captured when the
    /// speeds match, merged per window when the capture is finer and the requested speed a
    /// multiple of it, else (a coarser capture) at the captured speed; named as requested.
    /// Other names match the captured streams (see [`streams::canonical`]). With
    /// `as_captured` a diff-depth name at any speed gets the captured diffs unmerged (under
    /// the requested name): `--depth-as-captured`, for parity checks that must feed the live
    /// path the capture's own diffs.
    pub fn resolve(&self, requested: &str, as_captured: bool) -> Vec<Selector> {
        let name = requested.trim();
        if let Some((levels, speed)) = streams::partial_depth(name) {
            let captured = self.matching_streams(name);
            if !captured.is_empty() {
                return captured.into_iter().map(Selector::Captured).collect();
            }
            let symbol = streams::symbol(name);
            let finest = (0..self.streams.len() as u32)
                .filter(|&i| {
                    let stream = &self.streams[i as usize];
                    stream.depth_speed.is_some() && streams::symbol(&stream.name) == symbol
                })
                .min_by_key(|&i| self.streams[i as usize].depth_speed);
            return finest
                .map(|stream| Selector::Partial {
                    stream,
                    levels,
                    window_ms: speed,
                    name: name.to_string(),
                })
                .into_iter()
                .collect();
        }
        let Some(speed) = streams::depth_speed(name) else {
            return self
                .matching_streams(name)
                .into_iter()
                .map(Selector::Captured)
                .collect();
        };
        let symbol = streams::symbol(name);
        let captured: Vec<(u32, u32)> = (0..self.streams.len() as u32)
            .filter_map(|i| {
                let stream = &self.streams[i as usize];
                let s = stream.depth_speed?;
                (streams::symbol(&stream.name) == symbol).then_some((i, s))
            })
            .collect();
        let exact = captured.iter().find(|(_, s)| *s == speed || as_captured);
        let finer = captured
            .iter()
            .filter(|(_, s)| *s < speed && (*s == 0 || speed % *s == 0))
            .max_by_key(|(_, s)| *s);
        let selector = match (exact, finer, captured.first()) {
            (Some((i, _)), _, _) if self.streams[*i as usize].name == name => {
                Selector::Captured(*i)
            }
            (Some((i, _)), _, _) => Selector::Depth {
                stream: *i,
                window_ms: 0,
                name: name.to_string(),
            },
            (None, Some((i, _)), _) => Selector::Depth {
                stream: *i,
                window_ms: speed,
                name: name.to_string(),
            },
            (None, None, Some((i, _))) => Selector::Depth {
                stream: *i,
                window_ms: 0,
                name: name.to_string(),
            },
            (None, None, None) => return Vec::new(),
        };
        vec![selector]
    }

    /// The captured snapshot of `symbol` in force at replay line index `line`: the latest at or
    /// before it, else the first one. (The REST answer is the replayed book, see
    /// [`crate::book`]; this is its fallback before the book has a snapshot.)
    pub fn snapshot_at(&self, symbol: &str, line: Option<usize>) -> Option<&Snapshot> {
        let mut of_symbol = self.snapshots.iter().filter(|s| s.symbol == symbol);
        let first = of_symbol.clone().next()?;
        let latest = line.and_then(|line| of_symbol.rfind(|s| s.line <= line));
        Some(latest.unwrap_or(first))
    }

    /// The snapshot body with `bids` and `asks` cut to `limit` levels, other members untouched.
    pub fn depth_body(&self, snapshot: &Snapshot, limit: usize) -> Vec<u8> {
        truncate_levels(&self.text[snapshot.body.clone()], limit)
    }
}

/// Cuts the `bids` and `asks` arrays of a REST depth body to `limit` levels, byte-preserving.
pub fn truncate_levels(body: &[u8], limit: usize) -> Vec<u8> {
    let Some(members) = json::members(body) else {
        return body.to_vec();
    };
    let mut out = Vec::with_capacity(body.len().min(64 + limit * 48));
    out.push(b'{');
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(&body[member.key.clone()]);
        out.extend_from_slice(b"\":");
        let value = &body[member.value.clone()];
        let key = &body[member.key.clone()];
        match (key, json::array_elements(value)) {
            (b"bids" | b"asks", Some(levels)) => {
                out.push(b'[');
                for (j, level) in levels.into_iter().take(limit).enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&value[level]);
                }
                out.push(b']');
            }
            _ => out.extend_from_slice(value),
        }
    }
    out.push(b'}');
    out
}

/// The top-level `E` member of a JSON object, if it is an integer.
pub fn event_time(object: &[u8]) -> Option<i64> {
    let members = json::members(object)?;
    std::str::from_utf8(json::find(object, &members, "E")?)
        .ok()?
        .parse()
        .ok()
}

struct Builder {
    capture: Capture,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
    max_ns: i64,
    /// Snapshots whose symbol is decided at the end (bare REST bodies).
    unattributed: Vec<usize>,
}

impl Builder {
    fn new(path: &Path) -> Self {
        Builder {
            capture: Capture {
                path: path.to_path_buf(),
                kinds: Vec::new(),
                local_ns: Vec::new(),
                offset_ns: Vec::new(),
                text: Vec::new(),
                streams: Vec::new(),
                snapshots: Vec::new(),
                event_ms: Vec::new(),
                instruments: Vec::new(),
                counts: LineCounts::default(),
            },
            first_ns: None,
            last_ns: None,
            max_ns: i64::MIN,
            unattributed: Vec::new(),
        }
    }

    fn push_torn(&mut self) {
        self.capture.counts.torn += 1;
        self.push_kind(None, LineKind::Ignored);
    }

    fn push(&mut self, line: &[u8]) {
        let (local_ns, kind) = match split_line(line) {
            Ok(Some((local_ns, frame))) => (Some(local_ns), self.classify(frame.as_bytes())),
            Ok(None) | Err(_) => (None, LineKind::Ignored),
        };
        self.push_kind(local_ns, kind);
    }

    fn push_kind(&mut self, local_ns: Option<i64>, kind: LineKind) {
        let body = match &kind {
            LineKind::Frame { data, .. } => Some(data.clone()),
            LineKind::Snapshot(index) => Some(self.capture.snapshots[*index as usize].body.clone()),
            _ => None,
        };
        let event = body.and_then(|range| event_time(&self.capture.text[range]));
        let previous = self.capture.event_ms.last().copied().unwrap_or(i64::MIN);
        self.capture
            .event_ms
            .push(event.map_or(previous, |e| e.max(previous)));
        let counts = &mut self.capture.counts;
        counts.lines += 1;
        match kind {
            LineKind::Frame { .. } => counts.frames += 1,
            LineKind::Snapshot(_) => counts.snapshots += 1,
            LineKind::Control => counts.control += 1,
            LineKind::Ignored => counts.ignored += 1,
        }
        if let Some(ns) = local_ns {
            let first = *self.first_ns.get_or_insert(ns);
            self.max_ns = self.max_ns.max(ns).max(first);
            self.last_ns = Some(ns);
        }
        let offset = self
            .first_ns
            .map_or(0, |first| self.max_ns.saturating_sub(first).max(0) as u64);
        self.capture
            .local_ns
            .push(local_ns.or(self.last_ns).unwrap_or(0));
        self.capture.offset_ns.push(offset);
        self.capture.kinds.push(kind);
    }

    fn classify(&mut self, frame: &[u8]) -> LineKind {
        let frame = frame.trim_ascii();
        if !frame.starts_with(b"{") {
            return LineKind::Ignored;
        }
        let Some(members) = json::members(frame) else {
            return LineKind::Ignored;
        };
        if let Some(kind) = json::find(frame, &members, "twinfeed") {
            match json::plain_string(kind) {
                Some("snapshot") => {}
                Some("instruments") => {
                    let market = json::find(frame, &members, "market").and_then(json::plain_string);
                    let data = members.iter().find(|m| &frame[m.key.clone()] == b"data");
                    if let (Some(market), Some(data)) = (market, data) {
                        let start = self.capture.text.len();
                        let body = &frame[data.value.clone()];
                        self.capture.text.extend_from_slice(body);
                        self.capture.instruments.push(Instruments {
                            line: self.capture.kinds.len(),
                            market: market.to_string(),
                            body: start..start + body.len(),
                        });
                    }
                    return LineKind::Control;
                }
                _ => return LineKind::Control,
            }
            let symbol = json::find(frame, &members, "symbol").and_then(json::plain_string);
            let data = members.iter().find(|m| &frame[m.key.clone()] == b"data");
            return match (symbol, data) {
                (Some(symbol), Some(data)) => {
                    let symbol = symbol.to_ascii_uppercase();
                    self.snapshot(symbol, &frame[data.value.clone()])
                }
                _ => LineKind::Ignored,
            };
        }
        if let Some(stream) = json::find(frame, &members, "stream").and_then(json::plain_string) {
            let Some(data) = members.iter().find(|m| &frame[m.key.clone()] == b"data") else {
                return LineKind::Ignored;
            };
            let stream = self.stream_id(stream);
            let start = self.capture.text.len();
            self.capture.text.extend_from_slice(frame);
            return LineKind::Frame {
                stream,
                frame: start..start + frame.len(),
                data: start + data.value.start..start + data.value.end,
            };
        }
        if json::find(frame, &members, "lastUpdateId").is_some() {
            self.unattributed.push(self.capture.snapshots.len());
            return self.snapshot(String::new(), frame);
        }
        LineKind::Ignored
    }

    fn snapshot(&mut self, symbol: String, body: &[u8]) -> LineKind {
        let start = self.capture.text.len();
        self.capture.text.extend_from_slice(body);
        let index = self.capture.snapshots.len() as u32;
        self.capture.snapshots.push(Snapshot {
            line: self.capture.kinds.len(),
            symbol,
            body: start..start + body.len(),
        });
        LineKind::Snapshot(index)
    }

    fn stream_id(&mut self, name: &str) -> u32 {
        let streams = &mut self.capture.streams;
        if let Some(i) = streams.iter().position(|s| s.name == name) {
            return i as u32;
        }
        streams.push(Stream {
            name: name.to_string(),
            canonical: streams::canonical(name),
            is_depth: streams::is_depth(name),
            depth_speed: streams::depth_speed(name),
        });
        (streams.len() - 1) as u32
    }

    fn finish(mut self) -> Result<Capture> {
        let symbols: Vec<String> = {
            let mut s: Vec<String> = self
                .capture
                .streams
                .iter()
                .map(|s| streams::symbol(&s.name))
                .collect();
            s.sort();
            s.dedup();
            s
        };
        for index in std::mem::take(&mut self.unattributed) {
            let line = self.capture.snapshots[index].line;
            let symbol = if symbols.len() == 1 {
                symbols[0].clone()
            } else {
                self.nearest_depth_symbol(line).unwrap_or_default()
            };
            self.capture.snapshots[index].symbol = symbol;
        }
        // Lines before the first event time take the first one.
        let first = self
            .capture
            .event_ms
            .iter()
            .copied()
            .find(|&e| e != i64::MIN)
            .unwrap_or(0);
        for e in &mut self.capture.event_ms {
            if *e == i64::MIN {
                *e = first;
            }
        }
        if self.capture.counts.frames == 0 && self.capture.counts.snapshots == 0 {
            return Err(Error::EmptyCapture {
                path: self.capture.path,
                message: format!(
                    "no replayable lines (expected `<local_receive_ns> {{\"stream\":...,\"data\":...}}`); {} lines read",
                    self.capture.counts.lines
                ),
            });
        }
        Ok(self.capture)
    }

    fn nearest_depth_symbol(&self, line: usize) -> Option<String> {
        let kinds = &self.capture.kinds;
        let depth_symbol = |kind: &LineKind| match kind {
            LineKind::Frame { stream, .. } if self.capture.streams[*stream as usize].is_depth => {
                Some(streams::symbol(
                    &self.capture.streams[*stream as usize].name,
                ))
            }
            _ => None,
        };
        kinds[..line]
            .iter()
            .rev()
            .find_map(depth_symbol)
            .or_else(|| kinds[line..].iter().find_map(depth_symbol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: [&str; 7] = [
        r#"100 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","U":1,"u":2,"pu":0}}"#,
        r#"200 {"stream":"btcusdt@bookTicker","data":{"u":3,"b":"1.0"}}"#,
        r#"250 {"lastUpdateId":2,"bids":[["1.0","2"],["0.9","1"]],"asks":[["1.1","3"]]}"#,
        r#"300 {"twinfeed":"heartbeat"}"#,
        "garbage",
        r#"310 {"twinfeed":"snapshot","symbol":"btcusdt","data":{"lastUpdateId":9,"bids":[],"asks":[]}}"#,
        r#"290 {"stream":"btcusdt@trade","data":{"e":"trade","t":1}}"#,
    ];

    #[test]
    fn classifies_every_kind_of_line() {
        let capture = Capture::from_lines(Path::new("t"), LINES).unwrap();
        assert_eq!(
            capture.counts,
            LineCounts {
                lines: 7,
                frames: 3,
                snapshots: 2,
                control: 1,
                ignored: 1,
                torn: 0
            }
        );
        let names: Vec<&str> = capture.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["btcusdt@depth@0ms", "btcusdt@bookTicker", "btcusdt@trade"]
        );
        let LineKind::Frame { frame, data, .. } = &capture.kinds[1] else {
            panic!("expected a frame");
        };
        assert_eq!(&capture.text[frame.clone()], &LINES[1].as_bytes()[4..]);
        assert_eq!(&capture.text[data.clone()], br#"{"u":3,"b":"1.0"}"#);
        assert_eq!(capture.snapshots[0].symbol, "BTCUSDT");
        assert_eq!(capture.snapshots[0].line, 2);
        assert_eq!(capture.snapshots[1].symbol, "BTCUSDT");
        assert_eq!(capture.symbols(), ["BTCUSDT"]);
        // The garbage line repeats the previous stamp; the decreasing stamp keeps the schedule flat.
        assert_eq!(capture.local_ns[4], 300);
        assert_eq!(capture.offset_ns, [0, 100, 150, 200, 200, 210, 210]);
    }

    #[test]
    fn depth_requests_match_any_speed_and_snapshots_follow_position() {
        let capture = Capture::from_lines(Path::new("t"), LINES).unwrap();
        assert_eq!(capture.matching_streams("btcusdt@depth@100ms"), [0]);
        assert_eq!(capture.matching_streams("BTCUSDT@depth"), [0]);
        assert_eq!(capture.matching_streams("ethusdt@depth"), Vec::<u32>::new());
        assert_eq!(capture.snapshot_at("BTCUSDT", None).unwrap().line, 2);
        assert_eq!(capture.snapshot_at("BTCUSDT", Some(0)).unwrap().line, 2);
        assert_eq!(capture.snapshot_at("BTCUSDT", Some(4)).unwrap().line, 2);
        assert_eq!(capture.snapshot_at("BTCUSDT", Some(5)).unwrap().line, 5);
        assert!(capture.snapshot_at("ETHUSDT", Some(5)).is_none());
    }

    #[test]
    fn truncates_levels_byte_exactly() {
        let body =
            br#"{"lastUpdateId":2,"E":5,"bids":[["1.0","2"],["0.9","1"]],"asks":[["1.1","3"]]}"#;
        assert_eq!(
            truncate_levels(body, 1),
            br#"{"lastUpdateId":2,"E":5,"bids":[["1.0","2"]],"asks":[["1.1","3"]]}"#
        );
        assert_eq!(truncate_levels(body, 1000), body);
    }

    #[test]
    fn instruments_lines_are_kept_by_market_and_position() {
        let mut lines = LINES.to_vec();
        lines.insert(
            1,
            r#"150 {"twinfeed":"instruments","market":"usdm","data":{"symbols":[{"symbol":"BTCUSDT","n":1}]}}"#,
        );
        lines
            .push(r#"400 {"twinfeed":"instruments","market":"usdm","data":{"symbols":[{"n":2}]}}"#);
        let capture = Capture::from_lines(Path::new("t"), lines).unwrap();
        assert_eq!(capture.counts.control, 3);
        assert_eq!(capture.instruments.len(), 2);
        let first = br#"{"symbols":[{"symbol":"BTCUSDT","n":1}]}"#.as_slice();
        let second = br#"{"symbols":[{"n":2}]}"#.as_slice();
        assert_eq!(capture.instruments_at("usdm", None), Some(first));
        assert_eq!(capture.instruments_at("usdm", Some(0)), Some(first));
        assert_eq!(capture.instruments_at("usdm", Some(5)), Some(first));
        assert_eq!(capture.instruments_at("usdm", Some(8)), Some(second));
        assert_eq!(capture.instruments_at("spot", Some(8)), None);
    }

    #[test]
    fn a_capture_without_frames_is_an_error() {
        let error = Capture::from_lines(Path::new("empty.txt"), ["1 hello"])
            .err()
            .unwrap();
        assert!(error.to_string().contains("empty.txt"), "{error}");
    }
}
