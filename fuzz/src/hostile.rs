//! Structure-aware generator: real-shaped Binance frames (bookTicker, trade, aggTrade,
//! depthUpdate, REST snapshot, the ingest's control lines) whose numbers are drawn from the
//! values that broke decoders before (u64::MAX, 2^63, i64::MAX, 9e12 ms, negatives, 1e308,
//! 40-digit decimals, leading zeros, exponents, quoted and unquoted) and with JSON nested tens
//! of thousands of levels deep inserted at random places (an extra key of the payload or the
//! envelope, the value of any field, a level of `b`, before or after the frame; balanced or not).
//!
//! `arbitrary` turns the fuzzer's bytes into a [`Session`]; mutations of those bytes move
//! between shapes, so the fuzzer searches the space of nearly-valid frames instead of bytes
//! that mostly fail at the first brace.

use std::fmt::Write;

use arbitrary::Arbitrary;

/// Realistic bases, so small offsets give plausible values (2024-08-08, Binance USD-M).
const BASE_EVENT_MS: i64 = 1_723_161_256_313;
const BASE_LOCAL_NS: i64 = 1_723_161_255_088_169_167;
const BASE_UPDATE_ID: u64 = 5_123_107_839_020;
const BASE_TRADE_ID: u64 = 5_101_190_000;
/// Lines of one session that get their nesting.
pub const NESTED_LINES: usize = 3;

#[derive(Debug, Arbitrary)]
pub enum ConfigChoice {
    Default,
    Filtered,
    Fine {
        bar_ms: u16,
        quote_every_n: u8,
        book_every_n: u8,
        book_levels: u8,
        flow_window_ms: u16,
    },
}

#[derive(Debug, Arbitrary)]
pub struct Session {
    pub config: ConfigChoice,
    pub lines: Vec<Line>,
}

#[derive(Debug, Arbitrary)]
pub struct Line {
    pub stamp: Num,
    pub frame: Frame,
    /// Wrapped as `{"stream":...,"data":...}` (else the bare payload).
    pub combined: bool,
    pub nest: Option<Nest>,
}

#[derive(Debug, Arbitrary)]
pub enum Sym {
    Btc,
    Eth,
    Sushi,
    Lower,
    Empty,
    /// `SYMn`: many distinct symbols.
    Numbered(u32),
    Text(String),
}

impl Sym {
    fn name(&self) -> String {
        match self {
            Sym::Btc => "BTCUSDT".into(),
            Sym::Eth => "ETHUSDT".into(),
            Sym::Sushi => "SUSHIUSDT".into(),
            Sym::Lower => "btcusdt".into(),
            Sym::Empty => String::new(),
            Sym::Numbered(n) => format!("SYM{n}"),
            Sym::Text(text) => text.chars().take(64).collect(),
        }
    }
}

/// An integer field (ids, stamps).
#[derive(Debug, Arbitrary)]
pub enum Num {
    /// base + offset: the realistic case.
    Near(u16),
    Back(u16),
    Small(u8),
    Zero,
    U64Max,
    TwoTo63,
    I64Max,
    I64Min,
    Negative(u32),
    /// 9e12 ms and friends.
    Year2255,
    Float(u16, u8),
    Exponent(u16, i16),
    Digits40,
    LeadingZeros(u8, u16),
    Quoted(u16),
    Any(u64),
    AnyNegative(i64),
    Null,
    Bool(bool),
    Huge(u8),
}

impl Num {
    fn render(&self, base: i128, out: &mut String) {
        let _ = match self {
            Num::Near(d) => write!(out, "{}", base + *d as i128),
            Num::Back(d) => write!(out, "{}", base - *d as i128),
            Num::Small(v) => write!(out, "{v}"),
            Num::Zero => write!(out, "0"),
            Num::U64Max => write!(out, "{}", u64::MAX),
            Num::TwoTo63 => write!(out, "{}", 1u64 << 63),
            Num::I64Max => write!(out, "{}", i64::MAX),
            Num::I64Min => write!(out, "{}", i64::MIN),
            Num::Negative(v) => write!(out, "-{v}"),
            Num::Year2255 => write!(out, "9000000000000"),
            Num::Float(v, f) => write!(out, "{}.{}", base + *v as i128, f),
            Num::Exponent(m, e) => write!(out, "{m}e{e}"),
            Num::Digits40 => write!(out, "1234567890123456789012345678901234567890"),
            Num::LeadingZeros(n, v) => {
                write!(out, "{}{v}", "0".repeat(*n as usize % 32))
            }
            Num::Quoted(d) => write!(out, "\"{}\"", base + *d as i128),
            Num::Any(v) => write!(out, "{v}"),
            Num::AnyNegative(v) => write!(out, "{v}"),
            Num::Null => write!(out, "null"),
            Num::Bool(b) => write!(out, "{b}"),
            Num::Huge(n) => write!(out, "1{}", "0".repeat(*n as usize)),
        };
    }

    /// As a capture stamp: the bare digits the line starts with (or something that is not).
    fn stamp(&self, out: &mut String) {
        match self {
            Num::Quoted(_) | Num::Null | Num::Bool(_) => out.push_str("1723161255088169167"),
            other => other.render(BASE_LOCAL_NS as i128, out),
        }
    }
}

/// A decimal string field (prices and sizes are JSON strings on Binance).
#[derive(Debug, Arbitrary)]
pub enum Dec {
    /// base + cents.
    Near(u16),
    Back(u16),
    Tiny(u8),
    Zero,
    ZeroPadded,
    Negative(u16),
    U64Max,
    Max1e308,
    Beyond1e308,
    Digits40,
    Fraction40,
    LeadingZeros(u8, u16),
    Exponent(u16, i16),
    Empty,
    Dot,
    NaN,
    Inf,
    Unquoted(u16),
    Text(String),
}

impl Dec {
    fn render(&self, base: u32, out: &mut String) {
        let _ = match self {
            Dec::Near(c) => write!(out, "\"{}.{:02}\"", base + *c as u32 / 100, c % 100),
            Dec::Back(c) => write!(
                out,
                "\"{}.{:02}\"",
                base.saturating_sub(*c as u32 / 100),
                c % 100
            ),
            Dec::Tiny(v) => write!(out, "\"0.00{v}\""),
            Dec::Zero => write!(out, "\"0\""),
            Dec::ZeroPadded => write!(out, "\"0.00000000\""),
            Dec::Negative(v) => write!(out, "\"-{v}.5\""),
            Dec::U64Max => write!(out, "\"{}\"", u64::MAX),
            Dec::Max1e308 => write!(out, "\"1e308\""),
            Dec::Beyond1e308 => write!(out, "\"1{}.0\"", "0".repeat(320)),
            Dec::Digits40 => write!(out, "\"1234567890123456789012345678901234567890\""),
            Dec::Fraction40 => write!(out, "\"0.1234567890123456789012345678901234567890\""),
            Dec::LeadingZeros(n, v) => write!(out, "\"{}{v}.10\"", "0".repeat(*n as usize % 40)),
            Dec::Exponent(m, e) => write!(out, "\"{m}E{e}\""),
            Dec::Empty => write!(out, "\"\""),
            Dec::Dot => write!(out, "\".\""),
            Dec::NaN => write!(out, "\"NaN\""),
            Dec::Inf => write!(out, "\"inf\""),
            Dec::Unquoted(v) => write!(out, "{base}.{v}"),
            Dec::Text(text) => write!(out, "{}", serde_json::Value::from(text.as_str())),
        };
    }
}

#[derive(Debug, Arbitrary)]
pub struct Level {
    pub px: Dec,
    pub qty: Dec,
}

#[derive(Debug, Arbitrary)]
pub enum ControlKind {
    Heartbeat,
    Connected,
    Subscribed,
    Disconnected,
    Unknown,
}

#[derive(Debug, Arbitrary)]
pub enum Frame {
    BookTicker {
        sym: Sym,
        u: Num,
        event: Option<Num>,
        bid: Dec,
        bid_qty: Dec,
        ask: Dec,
        ask_qty: Dec,
    },
    Trade {
        sym: Sym,
        event: Num,
        id: Num,
        px: Dec,
        qty: Dec,
        maker: bool,
        aggregate: bool,
    },
    Depth {
        sym: Sym,
        event: Num,
        first: Num,
        last: Num,
        previous: Option<Num>,
        bids: Vec<Level>,
        asks: Vec<Level>,
    },
    /// A REST snapshot: bare (the hftbacktest form) or in the ingest's snapshot control line.
    Snapshot {
        sym: Option<Sym>,
        last_update_id: Num,
        event: Option<Num>,
        bids: Vec<Level>,
        asks: Vec<Level>,
    },
    Control(ControlKind),
    Raw(String),
}

/// Where nested JSON goes into a frame.
#[derive(Debug, Arbitrary, Clone, Copy)]
pub enum NestAt {
    /// An extra key in the payload.
    PayloadKey,
    /// An extra key in the `{"stream":..,"data":..}` envelope.
    EnvelopeKey,
    /// The value of the n-th field of the payload.
    Field(u8),
    /// A level of the first book side.
    Level,
    /// The whole frame.
    Frame,
    /// Before the frame (the line starts with it).
    Before,
    /// After the frame.
    After,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
pub enum Shape {
    Arrays,
    Objects,
    Alternating,
    /// Openings only (an unterminated document).
    Open,
    /// Closings only.
    Close,
}

#[derive(Debug, Arbitrary, Clone, Copy)]
pub struct Nest {
    pub at: NestAt,
    pub shape: Shape,
    /// Levels: up to 65,535 (the crash report used about 37,500) when the low four bits are
    /// zero (one input in 16), else the low ten bits (up to 1,023, well past the decoder's
    /// limit of 128). Scanning 65,535 levels costs about a millisecond under coverage
    /// tracing, so always drawing them held the target to ~1,200 inputs a second.
    pub depth: u16,
}

impl Nest {
    /// The number of levels [`Nest::depth`] stands for.
    pub fn levels(&self) -> usize {
        if self.depth & 0xF == 0 {
            self.depth as usize
        } else {
            (self.depth & 0x3FF) as usize
        }
    }

    fn render(&self) -> String {
        let depth = self.levels();
        let mut out = String::with_capacity(depth * 7 + 8);
        match self.shape {
            Shape::Arrays => {
                out.push_str(&"[".repeat(depth));
                out.push('1');
                out.push_str(&"]".repeat(depth));
            }
            Shape::Objects => {
                out.push_str(&"{\"a\":".repeat(depth));
                out.push('1');
                out.push_str(&"}".repeat(depth));
            }
            Shape::Alternating => {
                for i in 0..depth {
                    out.push_str(if i % 2 == 0 { "[" } else { "{\"k\":" });
                }
                out.push_str("null");
                for i in (0..depth).rev() {
                    out.push(if i % 2 == 0 { ']' } else { '}' });
                }
            }
            Shape::Open => out.push_str(&"[{\"x\":".repeat(depth / 2 + 1)),
            Shape::Close => out.push_str(&"]}".repeat(depth / 2 + 1)),
        }
        out
    }
}

/// One object's members as (key, raw JSON value).
type Members = Vec<(String, String)>;

fn object(members: &Members) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{key}\":{value}");
    }
    out.push('}');
    out
}

fn num(n: &Num, base: i128) -> String {
    let mut out = String::new();
    n.render(base, &mut out);
    out
}

fn dec(d: &Dec, base: u32) -> String {
    let mut out = String::new();
    d.render(base, &mut out);
    out
}

fn levels(levels: &[Level], base: u32, nest: Option<&str>) -> String {
    let mut out = String::from("[");
    for (i, level) in levels.iter().take(64).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[{},{}]", dec(&level.px, base), dec(&level.qty, 1));
    }
    if let Some(nest) = nest {
        if !levels.is_empty() {
            out.push(',');
        }
        out.push_str(nest);
    }
    out.push(']');
    out
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

impl Line {
    /// The capture line (`<stamp> <frame>`, no newline).
    pub fn render(&self, allow_nest: bool) -> String {
        let nest = self.nest.filter(|_| allow_nest).map(|n| (n.at, n.render()));
        let nest_at = |at: NestAt| match &nest {
            Some((where_, text))
                if std::mem::discriminant(where_) == std::mem::discriminant(&at) =>
            {
                Some(text.as_str())
            }
            _ => None,
        };
        let mut line = String::new();
        self.stamp.stamp(&mut line);
        line.push(' ');
        if let Some(text) = nest_at(NestAt::Before) {
            line.push_str(text);
        }
        let (stream, mut payload) = self.frame.members(nest_at(NestAt::Level));
        if let Some(text) = nest_at(NestAt::PayloadKey) {
            payload.push(("x".into(), text.to_string()));
        }
        if let Some((NestAt::Field(n), text)) = &nest {
            if !payload.is_empty() {
                let i = *n as usize % payload.len();
                payload[i].1 = text.clone();
            }
        }
        let body = match (&self.frame, payload.is_empty()) {
            (Frame::Raw(text), _) => text.clone(),
            (_, _) => object(&payload),
        };
        let frame = match (self.combined, stream) {
            (true, Some(stream)) => {
                let mut envelope: Members = vec![
                    ("stream".into(), json_string(&stream)),
                    ("data".into(), body),
                ];
                if let Some(text) = nest_at(NestAt::EnvelopeKey) {
                    envelope.push(("z".into(), text.to_string()));
                }
                object(&envelope)
            }
            _ => body,
        };
        match nest_at(NestAt::Frame) {
            Some(text) => line.push_str(text),
            None => line.push_str(&frame),
        }
        if let Some(text) = nest_at(NestAt::After) {
            line.push_str(text);
        }
        line
    }
}

impl Frame {
    /// The stream name (for the envelope) and the payload's members.
    fn members(&self, level_nest: Option<&str>) -> (Option<String>, Members) {
        let e = BASE_EVENT_MS as i128;
        match self {
            Frame::BookTicker {
                sym,
                u,
                event,
                bid,
                bid_qty,
                ask,
                ask_qty,
            } => {
                let name = sym.name();
                let mut m: Members = Vec::with_capacity(9);
                if event.is_some() {
                    m.push(("e".into(), "\"bookTicker\"".into()));
                }
                m.push(("u".into(), num(u, BASE_UPDATE_ID as i128)));
                m.push(("s".into(), json_string(&name)));
                m.push(("b".into(), dec(bid, 61800)));
                m.push(("B".into(), dec(bid_qty, 2)));
                m.push(("a".into(), dec(ask, 61801)));
                m.push(("A".into(), dec(ask_qty, 2)));
                if let Some(event) = event {
                    m.push(("T".into(), num(event, e)));
                    m.push(("E".into(), num(event, e)));
                }
                (Some(format!("{}@bookTicker", name.to_lowercase())), m)
            }
            Frame::Trade {
                sym,
                event,
                id,
                px,
                qty,
                maker,
                aggregate,
            } => {
                let name = sym.name();
                let kind = if *aggregate { "aggTrade" } else { "trade" };
                let mut m: Members = vec![
                    ("e".into(), json_string(kind)),
                    ("E".into(), num(event, e)),
                    ("T".into(), num(event, e)),
                    ("s".into(), json_string(&name)),
                    (
                        if *aggregate { "a" } else { "t" }.into(),
                        num(id, BASE_TRADE_ID as i128),
                    ),
                    ("p".into(), dec(px, 61800)),
                    ("q".into(), dec(qty, 0)),
                ];
                if *aggregate {
                    m.push(("f".into(), num(id, BASE_TRADE_ID as i128)));
                    m.push(("l".into(), num(id, BASE_TRADE_ID as i128)));
                } else {
                    m.push(("X".into(), "\"MARKET\"".into()));
                }
                m.push(("m".into(), maker.to_string()));
                (Some(format!("{}@{kind}", name.to_lowercase())), m)
            }
            Frame::Depth {
                sym,
                event,
                first,
                last,
                previous,
                bids,
                asks,
            } => {
                let name = sym.name();
                let id = BASE_UPDATE_ID as i128;
                let mut m: Members = vec![
                    ("e".into(), "\"depthUpdate\"".into()),
                    ("E".into(), num(event, e)),
                    ("T".into(), num(event, e)),
                    ("s".into(), json_string(&name)),
                    ("U".into(), num(first, id)),
                    ("u".into(), num(last, id)),
                ];
                if let Some(previous) = previous {
                    m.push(("pu".into(), num(previous, id)));
                }
                m.push(("b".into(), levels(bids, 61800, level_nest)));
                m.push(("a".into(), levels(asks, 61801, None)));
                (Some(format!("{}@depth@0ms", name.to_lowercase())), m)
            }
            Frame::Snapshot {
                sym,
                last_update_id,
                event,
                bids,
                asks,
            } => {
                let mut body: Members = vec![(
                    "lastUpdateId".into(),
                    num(last_update_id, BASE_UPDATE_ID as i128),
                )];
                if let Some(event) = event {
                    body.push(("E".into(), num(event, e)));
                    body.push(("T".into(), num(event, e)));
                }
                body.push(("bids".into(), levels(bids, 61800, level_nest)));
                body.push(("asks".into(), levels(asks, 61801, None)));
                match sym {
                    None => (None, body),
                    Some(sym) => (
                        None,
                        vec![
                            ("twinfeed".into(), "\"snapshot\"".into()),
                            ("symbol".into(), json_string(&sym.name())),
                            ("data".into(), object(&body)),
                        ],
                    ),
                }
            }
            Frame::Control(kind) => {
                let name = match kind {
                    ControlKind::Heartbeat => "heartbeat",
                    ControlKind::Connected => "connected",
                    ControlKind::Subscribed => "subscribed",
                    ControlKind::Disconnected => "disconnected",
                    ControlKind::Unknown => "reboot",
                };
                (None, vec![("twinfeed".into(), json_string(name))])
            }
            Frame::Raw(_) => (None, Vec::new()),
        }
    }
}

impl Session {
    /// The session as capture text, one line per frame.
    /// At most 256 lines, and nesting in the first [`NESTED_LINES`] lines that ask for it (one
    /// deep document already costs what a hundred ordinary lines do).
    pub fn render(&self) -> Vec<String> {
        let mut nested = 0;
        self.lines
            .iter()
            .take(256)
            .map(|line| {
                let allow = line.nest.is_some() && nested < NESTED_LINES;
                nested += allow as usize;
                line.render(allow)
            })
            .collect()
    }
}
