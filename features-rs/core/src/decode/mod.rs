//! Frame decoders, one module per venue. [`decode_frame`] is the single entry point, so the JSON
//! library behind it can be swapped and benchmarked in one place.

pub mod binance;
pub mod control;
pub mod flat;
pub mod hyperliquid;
pub mod nesting;
pub mod okx;
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
    /// The venue's trading rules (`{"twinfeed":"instruments",...}`): no record.
    Instruments,
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
    /// A frame of a venue other than Binance (OKX, Hyperliquid): its symbols are numbered per
    /// venue, so the same name on two venues is two symbols.
    Venue {
        venue: Venue,
        event: VenueEvent<'a>,
    },
    /// A well-formed frame of a stream the pipeline does not consume (kline, subscribe acks...).
    Unknown,
}

/// The venue a frame came from. Binance symbols keep their bare names (`BTCUSDT`); the others
/// are venue-qualified in the symbol table (`okx:BTC-USDT`, `hyperliquid:BTC`), so a capture
/// mixing venues is unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Venue {
    Binance,
    Okx,
    Hyperliquid,
}

impl Venue {
    pub const ALL: [Venue; 3] = [Venue::Binance, Venue::Okx, Venue::Hyperliquid];

    /// The name used in configs (`filter.venues`) and symbol prefixes.
    pub fn name(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::Okx => "okx",
            Venue::Hyperliquid => "hyperliquid",
        }
    }

    pub fn from_name(name: &str) -> Option<Venue> {
        Venue::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
    }

    /// The symbol-table name of `symbol` on this venue: bare for Binance (so every Binance
    /// output stays what it was), `venue:symbol` otherwise.
    pub fn qualified(self, symbol: &str) -> String {
        match self {
            Venue::Binance => symbol.to_string(),
            _ => format!("{}:{symbol}", self.name()),
        }
    }

    /// Splits a symbol-table name into its venue and the venue's own symbol.
    pub fn split(name: &str) -> (Venue, &str) {
        if let Some((prefix, rest)) = name.split_once(':') {
            if let Some(venue) = Venue::from_name(prefix) {
                if venue != Venue::Binance {
                    return (venue, rest);
                }
            }
        }
        (Venue::Binance, name)
    }
}

/// What a frame of a non-Binance venue carries.
#[derive(Debug, Clone, PartialEq)]
pub enum VenueEvent<'a> {
    /// Best bid/offer (OKX `bbo-tbt`, `tickers`; Hyperliquid `bbo`): the bookTicker stream.
    Quote(Quote<'a>),
    /// Public trades, in the venue's order (OKX and Hyperliquid batch them): the trade stream.
    Trades(Vec<Trade<'a>>),
    /// A book message under snapshot-and-update rules (OKX `books`, `books5`; Hyperliquid
    /// `l2Book`): the depth stream.
    Book { symbol: &'a str, update: BookUpdate },
}

/// Whether a [`BookUpdate`] replaces the book or changes some levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookAction {
    Snapshot,
    Update,
}

/// A venue book message: a whole book (snapshot) or changed levels (update, a size of 0
/// removes the level), with the venue's continuity data when it sends any.
#[derive(Debug, Clone, PartialEq)]
pub struct BookUpdate {
    pub action: BookAction,
    /// OKX `seqId` and `prevSeqId` (books channels since 2022; absent in older captures).
    pub seq_id: Option<i64>,
    pub prev_seq_id: Option<i64>,
    /// OKX `checksum`: CRC32 of the top 25 levels after this message is applied.
    pub checksum: Option<i32>,
    pub event_ms: i64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// Which stream of [`crate::config::STREAMS`] a message belongs to.
impl Message<'_> {
    pub fn stream(&self) -> Option<&'static str> {
        match self {
            Message::Quote(_) => Some("bookTicker"),
            Message::Trade(t) if t.aggregate => Some("aggTrade"),
            Message::Trade(_) => Some("trade"),
            Message::Depth { .. } | Message::Snapshot { .. } => Some("depth"),
            Message::Venue { event, .. } => Some(match event {
                VenueEvent::Quote(_) => "bookTicker",
                VenueEvent::Trades(_) => "trade",
                VenueEvent::Book { .. } => "depth",
            }),
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
    // Every venue's frames open differently: Binance `{"stream":` or `{"e":` (or a bare REST
    // body), OKX `{"arg":` / `{"event":` (and its `pong` text), Hyperliquid `{"channel":`.
    if okx::is_okx(frame) {
        return okx::decode(frame);
    }
    if frame.starts_with(hyperliquid::PREFIX) {
        return hyperliquid::decode(frame);
    }
    binance::decode(frame)
}

/// Typed JSON decoding, the one place that names the JSON library. Frames nested deeper than
/// [`nesting::MAX_NESTING`] never reach it (see [`nesting`]).
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
    what: &'static str,
) -> Result<T, DecodeError> {
    if let Some(path) = nesting::too_deep(text) {
        let field = if path.is_empty() {
            "the frame".to_string()
        } else {
            format!("field `{path}`")
        };
        return Err(DecodeError {
            what,
            detail: format!(
                "{field}: JSON nested deeper than {} levels",
                nesting::MAX_NESTING
            ),
        });
    }
    sonic_rs::from_str(text).map_err(|e| DecodeError {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn fixed(text: &str, what: &'static str, field: &str) -> Result<i64, DecodeError> {
    parse_fixed(text).ok_or_else(|| DecodeError {
        what,
        detail: format!(
            "field `{field}`: expected a decimal number, got {:?}",
            shown(text)
        ),
    })
}

/// At most the first 40 characters of frame text, for messages (a hostile frame can carry
/// megabytes in one member, and kept errors must stay small).
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(40) {
        None => text.into(),
        Some((end, _)) => format!("{}...", &text[..end]).into(),
    }
}

/// Price levels; a price must be positive and a quantity not negative (0 removes the level).
pub(crate) fn levels(
    raw: &[[&str; 2]],
    what: &'static str,
    field: &str,
) -> Result<Vec<Level>, DecodeError> {
    raw.iter()
        .map(|[px, qty]| {
            let level = (fixed(px, what, field)?, fixed(qty, what, field)?);
            if level.0 <= 0 || level.1 < 0 {
                return Err(out_of_range(
                    what,
                    field,
                    format!("level [{px:?}, {qty:?}]: expected a price > 0 and a quantity >= 0"),
                ));
            }
            Ok(level)
        })
        .collect()
}

// Range checks: values the venue cannot send are decode errors that name the field, never
// records. Every route (positional, flat, full parser) applies the same checks, so the route
// taken never changes the result.

/// Event times (ms) the venue can send: 2000-01-01 to 2100-01-01.
pub const EVENT_MS_RANGE: std::ops::RangeInclusive<i64> = 946_684_800_000..=4_102_444_800_000;

/// Largest update or trade id accepted: Binance ids are below 2^63 (Java longs).
pub const MAX_ID: u64 = i64::MAX as u64;

#[cold]
fn out_of_range(what: &'static str, field: &str, detail: String) -> DecodeError {
    DecodeError {
        what,
        detail: format!("field `{field}`: {detail}"),
    }
}

#[inline(always)]
pub fn check_id(id: u64, what: &'static str, field: &str) -> Result<u64, DecodeError> {
    if id > MAX_ID {
        return Err(out_of_range(
            what,
            field,
            format!("id {id} is beyond what the venue can send (at most {MAX_ID})"),
        ));
    }
    Ok(id)
}

#[inline(always)]
pub fn check_event_ms(ms: i64, what: &'static str) -> Result<i64, DecodeError> {
    if !EVENT_MS_RANGE.contains(&ms) {
        return Err(out_of_range(
            what,
            "E",
            format!("event time {ms} ms is outside the years 2000..2100"),
        ));
    }
    Ok(ms)
}

#[cold]
fn bad_quote(quote: &Quote<'_>) -> DecodeError {
    const WHAT: &str = "bookTicker";
    let text = crate::decimal::format_fixed;
    let (field, detail) = if quote.bid_px <= 0 {
        ("b", format!("bid price {} must be > 0", text(quote.bid_px)))
    } else if quote.ask_px <= 0 {
        ("a", format!("ask price {} must be > 0", text(quote.ask_px)))
    } else if quote.bid_qty < 0 {
        (
            "B",
            format!("bid quantity {} must be >= 0", text(quote.bid_qty)),
        )
    } else if quote.ask_qty < 0 {
        (
            "A",
            format!("ask quantity {} must be >= 0", text(quote.ask_qty)),
        )
    } else {
        (
            "b",
            format!(
                "crossed quote: bid {} is not below ask `a` {}",
                text(quote.bid_px),
                text(quote.ask_px)
            ),
        )
    };
    out_of_range(WHAT, field, detail)
}

/// A quote the venue can send: positive prices, sizes not negative, bid below ask (a central
/// order book is never crossed or locked at the top: such a quote is corrupt), event time and
/// update id in range.
#[inline(always)]
pub fn check_quote(quote: Quote<'_>) -> Result<Quote<'_>, DecodeError> {
    if quote.bid_px <= 0 || quote.bid_qty < 0 || quote.ask_qty < 0 || quote.bid_px >= quote.ask_px {
        return Err(bad_quote(&quote));
    }
    check_id(quote.update_id, "bookTicker", "u")?;
    if let Some(ms) = quote.event_ms {
        check_event_ms(ms, "bookTicker")?;
    }
    Ok(quote)
}

/// A trade the venue can send: positive price, quantity not negative, time and id in range.
#[inline(always)]
pub fn check_trade(trade: Trade<'_>) -> Result<Trade<'_>, DecodeError> {
    let what = if trade.aggregate { "aggTrade" } else { "trade" };
    if trade.px <= 0 {
        return Err(out_of_range(
            what,
            "p",
            format!(
                "price {} must be > 0",
                crate::decimal::format_fixed(trade.px)
            ),
        ));
    }
    if trade.qty < 0 {
        return Err(out_of_range(
            what,
            "q",
            format!(
                "quantity {} must be >= 0",
                crate::decimal::format_fixed(trade.qty)
            ),
        ));
    }
    check_id(
        trade.trade_id,
        what,
        if trade.aggregate { "a" } else { "t" },
    )?;
    check_event_ms(trade.event_ms, what)?;
    Ok(trade)
}

/// A depth diff the venue can send: ids in range, `U <= u`, event time in range (levels are
/// checked as they are parsed).
pub fn check_diff(diff: DepthDiff) -> Result<DepthDiff, DecodeError> {
    const WHAT: &str = "depthUpdate";
    check_id(diff.first_update_id, WHAT, "U")?;
    check_id(diff.final_update_id, WHAT, "u")?;
    if let Some(previous) = diff.previous_final_update_id {
        check_id(previous, WHAT, "pu")?;
    }
    if diff.first_update_id > diff.final_update_id {
        return Err(out_of_range(
            WHAT,
            "U",
            format!(
                "first update id {} is after the final one `u` {}",
                diff.first_update_id, diff.final_update_id
            ),
        ));
    }
    check_event_ms(diff.event_ms, WHAT)?;
    Ok(diff)
}
