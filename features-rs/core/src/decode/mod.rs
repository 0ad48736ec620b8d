//! Frame decoders, one module per venue. [`decode_frame`] is the single entry point, so the JSON
//! library behind it can be swapped and benchmarked in one place.

pub mod binance;
pub mod control;
pub mod flat;
pub mod positional;

use crate::decimal::parse_fixed;

/// A price level: (price, quantity) in fixed-point units (see [`crate::decimal`]).
pub type Level = (i64, i64);

/// Best bid/offer update.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote<'a> {
    pub symbol: &'a str,
    pub update_id: u64,
    pub bid_px: i64,
    pub bid_qty: i64,
    pub ask_px: i64,
    pub ask_qty: i64,
    /// Event time in ms, when the venue sends one (USD-M does, spot does not).
    pub event_ms: Option<i64>,
}

/// One public trade.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade<'a> {
    pub symbol: &'a str,
    pub trade_id: u64,
    pub px: i64,
    pub qty: i64,
    /// The buyer was the maker, i.e. the aggressor sold.
    pub buyer_is_maker: bool,
    pub event_ms: i64,
    /// From the aggTrade stream (one aggregate of fills) rather than the trade stream.
    pub aggregate: bool,
}

/// Incremental depth update.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthDiff {
    pub first_update_id: u64,
    pub final_update_id: u64,
    /// USD-M futures carry the previous diff's final id (`pu`); spot does not.
    pub previous_final_update_id: Option<u64>,
    pub event_ms: i64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// Full depth snapshot (REST).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub last_update_id: u64,
    pub event_ms: Option<i64>,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// What the ingest writes into a capture besides venue frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Heartbeat,
    Connected,
    Disconnected,
    Subscribed,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    Quote(Quote<'a>),
    Trade(Trade<'a>),
    Depth {
        symbol: &'a str,
        diff: DepthDiff,
    },
    /// A snapshot; `symbol` is `None` for the bare REST body of hftbacktest captures.
    Snapshot {
        symbol: Option<&'a str>,
        snapshot: Snapshot,
    },
    Control(Control),
    /// A well-formed frame of a stream the pipeline does not consume (kline, subscribe acks...).
    Unknown,
}

/// Which stream of [`crate::config::STREAMS`] a message belongs to.
impl Message<'_> {
    pub fn stream(&self) -> Option<&'static str> {
        match self {
            Message::Quote(_) => Some("bookTicker"),
            Message::Trade(t) if t.aggregate => Some("aggTrade"),
            Message::Trade(_) => Some("trade"),
            Message::Depth { .. } | Message::Snapshot { .. } => Some("depth"),
            _ => None,
        }
    }
}

/// Why a frame could not be decoded: the stream and the field, for the error message.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub what: &'static str,
    pub detail: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}

/// `bytes`, which the caller has found to be ASCII (checked again in debug builds), as text.
#[inline(always)]
pub(crate) fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: ASCII bytes are valid UTF-8 (callers only pass what `ascii_string_end` scanned).
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// `bytes` as text if they are UTF-8. Short ASCII members (symbols, stream names) are the
/// common case and skip the general validator, whose setup dominates on a few bytes.
#[inline(always)]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Decodes one frame of venue or ingest text.
pub fn decode_frame(frame: &str) -> Result<Message<'_>, DecodeError> {
    if frame.starts_with(control::PREFIX) {
        return control::decode(frame);
    }
    binance::decode(frame)
}

/// Typed JSON decoding, the one place that names the JSON library.
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
    what: &'static str,
) -> Result<T, DecodeError> {
    sonic_rs::from_str(text).map_err(|e| DecodeError {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn fixed(text: &str, what: &'static str, field: &str) -> Result<i64, DecodeError> {
    parse_fixed(text).ok_or_else(|| DecodeError {
        what,
        detail: format!("field `{field}`: expected a decimal number, got {text:?}"),
    })
}

pub(crate) fn levels(
    raw: &[[&str; 2]],
    what: &'static str,
    field: &str,
) -> Result<Vec<Level>, DecodeError> {
    raw.iter()
        .map(|[px, qty]| Ok((fixed(px, what, field)?, fixed(qty, what, field)?)))
        .collect()
}
