//! Binance USD-M futures and spot market streams.
//!
//! Accepts combined-stream envelopes (`{"stream":"btcusdt@trade","data":{...}}`) and bare
//! frames (raw `/ws/<stream>` connections, REST depth bodies). The stream kind comes from the
//! envelope's stream name, or from the `"e"` field of a bare frame; spot bookTicker frames carry
//! no `"e"` and are recognised by their shape.

use serde::Deserialize;

use super::{
    check_diff, check_event_ms, check_id, check_quote, check_trade, fixed, from_json, levels,
    DecodeError, DepthDiff, Message, Quote, Snapshot, Trade,
};

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct BookTickerBody<'a> {
    u: u64,
    s: &'a str,
    b: &'a str,
    #[serde(rename = "B")]
    bid_qty: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    ask_qty: &'a str,
    #[serde(rename = "E", default)]
    event_ms: Option<i64>,
}

#[derive(Deserialize)]
struct TradeBody<'a> {
    #[serde(rename = "E")]
    event_ms: i64,
    s: &'a str,
    t: u64,
    p: &'a str,
    q: &'a str,
    m: bool,
}

#[derive(Deserialize)]
struct AggTradeBody<'a> {
    #[serde(rename = "E")]
    event_ms: i64,
    s: &'a str,
    a: u64,
    p: &'a str,
    q: &'a str,
    m: bool,
}

#[derive(Deserialize)]
struct DepthBody<'a> {
    #[serde(rename = "E")]
    event_ms: i64,
    s: &'a str,
    #[serde(rename = "U")]
    first: u64,
    u: u64,
    #[serde(default)]
    pu: Option<u64>,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
}

#[derive(Deserialize)]
pub(crate) struct SnapshotBody<'a> {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    #[serde(rename = "E", default)]
    event_ms: Option<i64>,
    #[serde(borrow)]
    bids: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    asks: Vec<[&'a str; 2]>,
}

impl SnapshotBody<'_> {
    pub(crate) fn into_snapshot(self) -> Result<Snapshot, DecodeError> {
        const WHAT: &str = "depth snapshot";
        Ok(Snapshot {
            last_update_id: check_id(self.last_update_id, WHAT, "lastUpdateId")?,
            event_ms: self
                .event_ms
                .map(|ms| check_event_ms(ms, WHAT))
                .transpose()?,
            bids: levels(&self.bids, WHAT, "bids")?,
            asks: levels(&self.asks, WHAT, "asks")?,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stream {
    BookTicker,
    Trade,
    AggTrade,
    Depth,
    Snapshot,
    Unknown,
}

fn stream_from_name(name: &str) -> Stream {
    let kind = name.split_once('@').map_or(name, |(_, rest)| rest);
    match kind {
        "bookTicker" => Stream::BookTicker,
        "trade" => Stream::Trade,
        "aggTrade" => Stream::AggTrade,
        "depth" | "depth@100ms" | "depth@250ms" | "depth@500ms" | "depth@0ms" => Stream::Depth,
        _ => Stream::Unknown,
    }
}

fn stream_from_event(event: &str) -> Stream {
    match event {
        "bookTicker" => Stream::BookTicker,
        "trade" => Stream::Trade,
        "aggTrade" => Stream::AggTrade,
        "depthUpdate" => Stream::Depth,
        _ => Stream::Unknown,
    }
}

/// The string value following `key` (e.g. `"e":"`) in `text`, if any.
fn string_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = memchr::memmem::find(text.as_bytes(), key.as_bytes())? + key.len();
    let len = memchr::memchr(b'"', &text.as_bytes()[start..])?;
    Some(&text[start..start + len])
}

const ENVELOPE_PREFIX: &str = "{\"stream\":\"";

/// The general path for a bare REST snapshot body (what the positional route must agree with).
#[cfg(test)]
pub(crate) fn decode_general_snapshot(body: &str) -> Result<Message<'_>, DecodeError> {
    decode_body(body.trim_end(), Stream::Snapshot, false)
}

/// The general path only (no positional fast path): what the fast paths must agree with.
#[cfg(test)]
pub(crate) fn decode_general(frame: &str) -> Result<Message<'_>, DecodeError> {
    let trimmed = frame.trim_end();
    let rest = trimmed.strip_prefix(ENVELOPE_PREFIX).unwrap();
    let end = memchr::memchr(b'"', rest.as_bytes()).unwrap();
    decode_body(trimmed, stream_from_name(&rest[..end]), true)
}

/// The fastest route, on raw bytes before any UTF-8 check: a combined-stream bookTicker frame
/// in Binance's exact layout. `None` means "not this shape": decode the frame with [`decode`]
/// (after checking it is UTF-8), which then gives the very same result a match would have.
#[inline(always)]
pub fn book_ticker_envelope(frame: &[u8]) -> Option<Result<Quote<'_>, DecodeError>> {
    let rest = frame.strip_prefix(ENVELOPE_PREFIX.as_bytes())?;
    // A plain ASCII name (anything else: the general route decides).
    let end = crate::digits::ascii_string_end(rest, 0)?;
    if rest[end] != b'"' {
        return None;
    }
    let name = &rest[..end];
    // `<symbol>@bookTicker` with no other `@`: what `stream_from_name` calls a bookTicker.
    let at = name.len().checked_sub(11)?;
    if !<&[u8; 11]>::try_from(&name[at..]).is_ok_and(|s| s == b"@bookTicker")
        || crate::digits::find(name, 0, b'@') != Some(at)
    {
        return None;
    }
    let body_start = ENVELOPE_PREFIX.len() + end;
    if !frame[body_start..].starts_with(b"\",\"data\":") {
        return None;
    }
    super::positional::book_ticker(frame, body_start + 9, b"}")
}

/// The depth twin of [`book_ticker_envelope`]: a combined-stream diff-depth frame in Binance's
/// exact layout, decoded from bytes before any UTF-8 check (the positional decoder checks the
/// strings it takes; everything else it accepts is ASCII). `None` means "not this shape":
/// [`decode`] then gives the very same result a match would have.
#[inline]
pub fn depth_envelope(frame: &[u8]) -> Option<Result<Message<'_>, DecodeError>> {
    let rest = frame.strip_prefix(ENVELOPE_PREFIX.as_bytes())?;
    let end = crate::digits::ascii_string_end(rest, 0)?;
    if rest[end] != b'"' || stream_from_name(super::ascii(&rest[..end])) != Stream::Depth {
        return None;
    }
    let body_start = ENVELOPE_PREFIX.len() + end;
    if !frame[body_start..].starts_with(b"\",\"data\":") {
        return None;
    }
    super::positional::depth(frame, body_start + 9, b"}")
        .map(|diff| diff.map(|(symbol, diff)| Message::Depth { symbol, diff }))
}

pub fn decode(frame: &str) -> Result<Message<'_>, DecodeError> {
    let trimmed = frame.trim_end();
    if let Some(rest) = trimmed.strip_prefix(ENVELOPE_PREFIX) {
        let end = memchr::memchr(b'"', rest.as_bytes()).ok_or_else(|| DecodeError {
            what: "stream envelope",
            detail: "unterminated `stream` name".into(),
        })?;
        let stream = stream_from_name(&rest[..end]);
        let body_start = ENVELOPE_PREFIX.len() + end;
        if stream == Stream::BookTicker && trimmed[body_start..].starts_with("\",\"data\":") {
            if let Some(quote) =
                super::positional::book_ticker(trimmed.as_bytes(), body_start + 9, b"}")
            {
                return quote.map(Message::Quote);
            }
        }
        if stream == Stream::Depth && trimmed[body_start..].starts_with("\",\"data\":") {
            if let Some(diff) = super::positional::depth(trimmed.as_bytes(), body_start + 9, b"}") {
                return diff.map(|(symbol, diff)| Message::Depth { symbol, diff });
            }
        }
        if let Some(message) = trimmed[body_start..]
            .strip_prefix("\",\"data\":")
            .and_then(|_| fast_path(trimmed, body_start + 9, stream, true))
        {
            return message;
        }
        return decode_body(trimmed, stream, true);
    }
    let stream = if let Some(event) = string_after(trimmed, "\"e\":\"") {
        stream_from_event(event)
    } else if trimmed.contains("\"lastUpdateId\"") {
        Stream::Snapshot
    } else if trimmed.contains("\"b\":\"") && trimmed.contains("\"u\":") {
        Stream::BookTicker
    } else if trimmed.starts_with('{') || trimmed.starts_with('[') {
        Stream::Unknown
    } else {
        return Err(DecodeError {
            what: "frame",
            detail: "not a JSON object".into(),
        });
    };
    if stream == Stream::Snapshot {
        // A REST snapshot body: up to thousands of levels, read in place as diffs are.
        if let Some(snapshot) = super::positional::snapshot(trimmed.as_bytes(), 0, b"") {
            return snapshot.map(|snapshot| Message::Snapshot {
                symbol: None,
                snapshot,
            });
        }
    }
    if stream == Stream::Depth {
        if let Some(diff) = super::positional::depth(trimmed.as_bytes(), 0, b"") {
            return diff.map(|(symbol, diff)| Message::Depth { symbol, diff });
        }
    }
    if let Some(message) = fast_path(trimmed, 0, stream, false) {
        return message;
    }
    decode_body(trimmed, stream, false)
}

/// Members of a bookTicker or trade body, filled by the flat scanner.
#[derive(Default)]
struct FlatBody<'a> {
    u: Option<u64>,
    s: Option<&'a str>,
    b: Option<&'a str>,
    bid_qty: Option<&'a str>,
    a: Option<&'a str>,
    ask_qty: Option<&'a str>,
    a_id: Option<u64>,
    event_ms: Option<i64>,
    t: Option<u64>,
    p: Option<&'a str>,
    q: Option<&'a str>,
    m: Option<bool>,
    /// A member had an unexpected type: leave the frame to the full parser.
    invalid: bool,
}

/// The flat-object fast path for bookTicker and trade frames. `None` means "not handled here";
/// the full parser then decides, so results never depend on which path ran.
fn fast_path(
    text: &str,
    body_start: usize,
    stream: Stream,
    enveloped: bool,
) -> Option<Result<Message<'_>, DecodeError>> {
    use super::flat::scan_object;
    if !matches!(
        stream,
        Stream::BookTicker | Stream::Trade | Stream::AggTrade
    ) {
        return None;
    }
    let mut body = FlatBody::default();
    let end = scan_object(text, body_start, |key, value| {
        // A repeated known key or a wrong type: the full parser decides.
        fn set<T>(slot: &mut Option<T>, value: Option<T>, invalid: &mut bool) {
            match value {
                Some(v) if slot.is_none() => *slot = Some(v),
                _ => *invalid = true,
            }
        }
        let invalid = &mut body.invalid;
        match (stream, key) {
            (_, "s") => set(&mut body.s, value.as_str(), invalid),
            (_, "E") => set(&mut body.event_ms, value.as_i64(), invalid),
            (_, "p") => set(&mut body.p, value.as_str(), invalid),
            (_, "q") => set(&mut body.q, value.as_str(), invalid),
            (_, "m") => set(&mut body.m, value.as_bool(), invalid),
            (Stream::BookTicker, "u") => set(&mut body.u, value.as_u64(), invalid),
            (Stream::BookTicker, "b") => set(&mut body.b, value.as_str(), invalid),
            (Stream::BookTicker, "B") => set(&mut body.bid_qty, value.as_str(), invalid),
            (Stream::BookTicker, "a") => set(&mut body.a, value.as_str(), invalid),
            (Stream::BookTicker, "A") => set(&mut body.ask_qty, value.as_str(), invalid),
            (Stream::Trade, "t") => set(&mut body.t, value.as_u64(), invalid),
            (Stream::AggTrade, "a") => set(&mut body.a_id, value.as_u64(), invalid),
            _ => {}
        }
    })?;
    let rest = &text[end..];
    let complete = if enveloped {
        rest == "}"
    } else {
        rest.is_empty()
    };
    if !complete || body.invalid {
        return None;
    }
    let message = match stream {
        Stream::BookTicker => {
            const WHAT: &str = "bookTicker";
            let (u, s, b, bq, a, aq) = (
                body.u?,
                body.s?,
                body.b?,
                body.bid_qty?,
                body.a?,
                body.ask_qty?,
            );
            (|| {
                check_quote(Quote {
                    symbol: s,
                    update_id: u,
                    bid_px: fixed(b, WHAT, "b")?,
                    bid_qty: fixed(bq, WHAT, "B")?,
                    ask_px: fixed(a, WHAT, "a")?,
                    ask_qty: fixed(aq, WHAT, "A")?,
                    event_ms: body.event_ms,
                })
                .map(Message::Quote)
            })()
        }
        _ => {
            let aggregate = stream == Stream::AggTrade;
            let what = if aggregate { "aggTrade" } else { "trade" };
            let trade_id = if aggregate { body.a_id? } else { body.t? };
            let (s, p, q, m, event_ms) = (body.s?, body.p?, body.q?, body.m?, body.event_ms?);
            (|| {
                check_trade(Trade {
                    symbol: s,
                    trade_id,
                    px: fixed(p, what, "p")?,
                    qty: fixed(q, what, "q")?,
                    buyer_is_maker: m,
                    event_ms,
                    aggregate,
                })
                .map(Message::Trade)
            })()
        }
    };
    Some(message)
}

fn parse<'a, T: Deserialize<'a>>(
    text: &'a str,
    enveloped: bool,
    what: &'static str,
) -> Result<T, DecodeError> {
    if enveloped {
        from_json::<Envelope<T>>(text, what).map(|e| e.data)
    } else {
        from_json::<T>(text, what)
    }
}

fn decode_body(text: &str, stream: Stream, enveloped: bool) -> Result<Message<'_>, DecodeError> {
    Ok(match stream {
        Stream::BookTicker => {
            const WHAT: &str = "bookTicker";
            let body: BookTickerBody = parse(text, enveloped, WHAT)?;
            Message::Quote(check_quote(Quote {
                symbol: body.s,
                update_id: body.u,
                bid_px: fixed(body.b, WHAT, "b")?,
                bid_qty: fixed(body.bid_qty, WHAT, "B")?,
                ask_px: fixed(body.a, WHAT, "a")?,
                ask_qty: fixed(body.ask_qty, WHAT, "A")?,
                event_ms: body.event_ms,
            })?)
        }
        Stream::Trade => {
            const WHAT: &str = "trade";
            let body: TradeBody = parse(text, enveloped, WHAT)?;
            Message::Trade(check_trade(Trade {
                symbol: body.s,
                trade_id: body.t,
                px: fixed(body.p, WHAT, "p")?,
                qty: fixed(body.q, WHAT, "q")?,
                buyer_is_maker: body.m,
                event_ms: body.event_ms,
                aggregate: false,
            })?)
        }
        Stream::AggTrade => {
            const WHAT: &str = "aggTrade";
            let body: AggTradeBody = parse(text, enveloped, WHAT)?;
            Message::Trade(check_trade(Trade {
                symbol: body.s,
                trade_id: body.a,
                px: fixed(body.p, WHAT, "p")?,
                qty: fixed(body.q, WHAT, "q")?,
                buyer_is_maker: body.m,
                event_ms: body.event_ms,
                aggregate: true,
            })?)
        }
        Stream::Depth => {
            const WHAT: &str = "depthUpdate";
            let body: DepthBody = parse(text, enveloped, WHAT)?;
            Message::Depth {
                symbol: body.s,
                diff: check_diff(DepthDiff {
                    first_update_id: body.first,
                    final_update_id: body.u,
                    previous_final_update_id: body.pu,
                    event_ms: body.event_ms,
                    bids: levels(&body.b, WHAT, "b")?,
                    asks: levels(&body.a, WHAT, "a")?,
                })?,
            }
        }
        Stream::Snapshot => {
            let body: SnapshotBody = parse(text, enveloped, "depth snapshot")?;
            Message::Snapshot {
                symbol: None,
                snapshot: body.into_snapshot()?,
            }
        }
        Stream::Unknown => {
            // Still insist on JSON, so garbage is an error and not an "unknown stream".
            from_json::<sonic_rs::value::Value>(text, "frame")?;
            Message::Unknown
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_frame;

    const USDM_TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#;
    const SPOT_TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
    const USDM_TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#;
    const AGG_TRADE: &str = r#"{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true}"#;
    const USDM_DEPTH: &str = r#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSDT","U":5123107837801,"u":5123107842679,"pu":5123107837557,"b":[["1000.00","606.675"],["61700.20","0.000"]],"a":[["61800.30","1.5"]]}}"#;
    const SPOT_DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[]}}"#;
    const REST: &str = r#"{"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"]],"asks":[["61837.64000000","1.54698000"]]}"#;

    #[test]
    fn usdm_book_ticker() {
        let Message::Quote(q) = decode_frame(USDM_TICKER).unwrap() else {
            panic!()
        };
        assert_eq!(q.symbol, "BTCUSDT");
        assert_eq!(q.update_id, 5123107839020);
        assert_eq!((q.bid_px, q.bid_qty), (6_180_020_000_000, 250_700_000));
        assert_eq!((q.ask_px, q.ask_qty), (6_180_030_000_000, 251_000_000));
        assert_eq!(q.event_ms, Some(1723161256313));
    }

    #[test]
    fn spot_book_ticker_without_event_time_and_bare() {
        let Message::Quote(q) = decode_frame(SPOT_TICKER).unwrap() else {
            panic!()
        };
        assert_eq!((q.event_ms, q.update_id), (None, 50093239212));
        let bare = r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        let Message::Quote(q) = decode_frame(bare).unwrap() else {
            panic!()
        };
        assert_eq!(q.symbol, "BNBUSDT");
    }

    #[test]
    fn trades() {
        let Message::Trade(t) = decode_frame(USDM_TRADE).unwrap() else {
            panic!()
        };
        assert_eq!(
            (t.trade_id, t.px, t.qty, t.buyer_is_maker),
            (5266583935, 6_180_030_000_000, 600_000, false)
        );
        let Message::Trade(t) = decode_frame(AGG_TRADE).unwrap() else {
            panic!()
        };
        assert_eq!(
            (t.trade_id, t.buyer_is_maker, t.qty),
            (12345, true, 10_000_000_000)
        );
    }

    #[test]
    fn depth_diffs_and_snapshot() {
        let Message::Depth { diff, .. } = decode_frame(USDM_DEPTH).unwrap() else {
            panic!()
        };
        assert_eq!(diff.previous_final_update_id, Some(5123107837557));
        assert_eq!(
            diff.bids,
            vec![(100_000_000_000, 60_667_500_000), (6_170_020_000_000, 0)]
        );
        let Message::Depth { diff, .. } = decode_frame(SPOT_DEPTH).unwrap() else {
            panic!()
        };
        assert_eq!(diff.previous_final_update_id, None);
        assert!(diff.asks.is_empty());
        let Message::Snapshot { symbol, snapshot } = decode_frame(REST).unwrap() else {
            panic!()
        };
        assert_eq!((symbol, snapshot.last_update_id), (None, 50093239218));
    }

    #[test]
    fn unknown_streams_and_errors() {
        let kline = r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}"#;
        assert_eq!(decode_frame(kline).unwrap(), Message::Unknown);
        assert_eq!(
            decode_frame(r#"{"result":null,"id":1}"#).unwrap(),
            Message::Unknown
        );
        let err =
            decode_frame(&USDM_TICKER.replace("\"b\":\"61800.20\"", "\"b\":\"61x\"")).unwrap_err();
        assert!(err.to_string().contains("field `b`"), "{err}");
        let err = decode_frame(&USDM_TICKER[..80]).unwrap_err();
        assert_eq!(err.what, "bookTicker");
        assert!(decode_frame("garbage").is_err());
        assert!(decode_frame("{\"twinfeed\":\"nope\"}").is_err());
    }

    #[test]
    fn control_lines() {
        use crate::decode::control;
        assert_eq!(
            decode_frame(&control::line("heartbeat", &[])).unwrap(),
            Message::Control(crate::decode::Control::Heartbeat)
        );
        let line = control::snapshot_line("BTCUSDT", REST);
        let Message::Snapshot { symbol, .. } = decode_frame(&line).unwrap() else {
            panic!()
        };
        assert_eq!(symbol, Some("BTCUSDT"));
    }
}
