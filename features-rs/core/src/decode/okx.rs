//! OKX v5 public websocket channels (<https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel>
//! and the neighbouring trades, tickers and bbo-tbt sections).
//!
//! | channel | frame | becomes |
//! |---|---|---|
//! | `books` | `{"arg":{..},"action":"snapshot"\|"update","data":[{asks,bids,ts,checksum,seqId?,prevSeqId?}]}` | [`VenueEvent::Book`] with its checksum |
//! | `books5` | `{"arg":{..},"data":[{asks,bids,ts}]}` (the whole top 5 each time) | [`VenueEvent::Book`], a snapshot |
//! | `bbo-tbt` | `{"arg":{..},"data":[{asks:[[px,sz,..]],bids:[[..]],ts,seqId?}]}` | [`VenueEvent::Quote`] |
//! | `tickers` | `{"arg":{..},"data":[{instId,bidPx,bidSz,askPx,askSz,ts,..}]}` | [`VenueEvent::Quote`] |
//! | `trades` | `{"arg":{..},"data":[{instId,tradeId,px,sz,side,ts}]}` | [`VenueEvent::Trades`] |
//!
//! Levels are `[price, size, "0" (deprecated liquidated orders), orders]`; only the first two
//! are read. `{"event":"subscribe"|"unsubscribe",..}` acks and the `pong` keep-alive text are
//! well-formed frames of no stream ([`Message::Unknown`]); `{"event":"error",..}` is a decode
//! error carrying OKX's code and message, so a refused subscription shows in the report.
//! The channel is read from `arg.channel` (always the first member OKX sends) before the one
//! typed parse of the frame.

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::{
    check_event_ms, check_id, check_quote, check_trade, fixed, from_json, shown, BookAction,
    BookUpdate, DecodeError, Level, Message, Quote, Trade, Venue, VenueEvent,
};

const ARG_PREFIX: &str = "{\"arg\":{\"channel\":\"";

/// Whether `frame` is OKX's (the router in [`super::decode_frame`] asks before Binance's).
#[inline]
pub fn is_okx(frame: &str) -> bool {
    frame.starts_with("{\"arg\":") || frame.starts_with("{\"event\":") || frame == "pong"
}

/// `[px, sz, ...]`: the first two strings, the rest skipped.
struct OkxLevel<'a>(&'a str, &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for OkxLevel<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = OkxLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a level [price, size, ...] of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let px: &str = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let sz: &str = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(OkxLevel(px, sz))
            }
        }
        deserializer.deserialize_seq(LevelVisitor)
    }
}

#[derive(Deserialize)]
struct Arg<'a> {
    #[serde(rename = "instId", borrow)]
    inst_id: &'a str,
}

#[derive(Deserialize)]
struct Frame<'a, T> {
    #[serde(borrow)]
    arg: Arg<'a>,
    #[serde(default)]
    action: Option<&'a str>,
    data: Vec<T>,
}

#[derive(Deserialize)]
struct BookData<'a> {
    #[serde(borrow)]
    asks: Vec<OkxLevel<'a>>,
    #[serde(borrow)]
    bids: Vec<OkxLevel<'a>>,
    ts: &'a str,
    #[serde(default)]
    checksum: Option<i64>,
    #[serde(rename = "seqId", default)]
    seq_id: Option<i64>,
    #[serde(rename = "prevSeqId", default)]
    prev_seq_id: Option<i64>,
}

#[derive(Deserialize)]
struct TickerData<'a> {
    #[serde(rename = "instId")]
    inst_id: &'a str,
    #[serde(rename = "bidPx")]
    bid_px: &'a str,
    #[serde(rename = "bidSz")]
    bid_sz: &'a str,
    #[serde(rename = "askPx")]
    ask_px: &'a str,
    #[serde(rename = "askSz")]
    ask_sz: &'a str,
    ts: &'a str,
}

#[derive(Deserialize)]
struct TradeData<'a> {
    #[serde(rename = "instId")]
    inst_id: &'a str,
    #[serde(rename = "tradeId")]
    trade_id: &'a str,
    px: &'a str,
    sz: &'a str,
    side: &'a str,
    ts: &'a str,
}

#[derive(Deserialize)]
struct EventFrame<'a> {
    event: &'a str,
    #[serde(default)]
    code: Option<&'a str>,
    #[serde(default)]
    msg: Option<&'a str>,
}

fn error(what: &'static str, detail: String) -> DecodeError {
    DecodeError { what, detail }
}

/// OKX sends millisecond times and ids as decimal strings.
fn integer(text: &str, what: &'static str, field: &str) -> Result<u64, DecodeError> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            what,
            format!(
                "field `{field}`: expected a decimal integer string, got {:?}",
                shown(text)
            ),
        ));
    }
    text.parse::<u64>()
        .map_err(|_| error(what, format!("field `{field}`: {text} is out of range")))
}

fn event_ms(text: &str, what: &'static str) -> Result<i64, DecodeError> {
    let ms = integer(text, what, "ts")?;
    check_event_ms(i64::try_from(ms).unwrap_or(i64::MAX), what)
}

fn levels(
    raw: &[OkxLevel<'_>],
    what: &'static str,
    field: &str,
) -> Result<Vec<Level>, DecodeError> {
    raw.iter()
        .map(|OkxLevel(px, sz)| {
            let level = (fixed(px, what, field)?, fixed(sz, what, field)?);
            if level.0 <= 0 || level.1 < 0 {
                return Err(error(
                    what,
                    format!(
                        "field `{field}`: level [{px:?}, {sz:?}]: expected a price > 0 and a size >= 0"
                    ),
                ));
            }
            Ok(level)
        })
        .collect()
}

/// The one element of `data` (OKX sends exactly one for these channels).
fn single<T>(data: Vec<T>, what: &'static str) -> Result<T, DecodeError> {
    let count = data.len();
    let mut data = data.into_iter();
    match (data.next(), count) {
        (Some(one), 1) => Ok(one),
        _ => Err(error(
            what,
            format!("field `data`: expected exactly one element, got {count}"),
        )),
    }
}

pub fn decode(frame: &str) -> Result<Message<'_>, DecodeError> {
    let frame = frame.trim_end();
    if frame == "pong" {
        return Ok(Message::Unknown);
    }
    let Some(rest) = frame.strip_prefix(ARG_PREFIX) else {
        return decode_event(frame);
    };
    let end = memchr::memchr(b'"', rest.as_bytes())
        .ok_or_else(|| error("okx frame", "unterminated `arg.channel`".into()))?;
    let event = match &rest[..end] {
        "books" | "books-l2-tbt" | "books50-l2-tbt" => book(frame, "okx books", false)?,
        "books5" => book(frame, "okx books5", true)?,
        "bbo-tbt" => bbo(frame)?,
        "tickers" => match ticker(frame)? {
            Some(quote) => quote,
            None => return Ok(Message::Unknown),
        },
        "trades" => trades(frame)?,
        _ => return Ok(Message::Unknown),
    };
    Ok(Message::Venue {
        venue: Venue::Okx,
        event,
    })
}

fn decode_event(frame: &str) -> Result<Message<'_>, DecodeError> {
    const WHAT: &str = "okx event";
    let event: EventFrame = from_json(frame, WHAT)?;
    if event.event == "error" {
        return Err(error(
            WHAT,
            format!(
                "OKX refused a request: code {} {:?}",
                event.code.unwrap_or("?"),
                shown(event.msg.unwrap_or(""))
            ),
        ));
    }
    Ok(Message::Unknown)
}

fn book<'a>(
    frame: &'a str,
    what: &'static str,
    whole: bool,
) -> Result<VenueEvent<'a>, DecodeError> {
    let parsed: Frame<BookData> = from_json(frame, what)?;
    let action = match (whole, parsed.action) {
        (true, _) | (false, Some("snapshot")) => BookAction::Snapshot,
        (false, Some("update")) => BookAction::Update,
        (false, other) => {
            return Err(error(
                what,
                format!(
                    "field `action`: expected \"snapshot\" or \"update\", got {:?}",
                    other.map(shown)
                ),
            ))
        }
    };
    let symbol = parsed.arg.inst_id;
    let data = single(parsed.data, what)?;
    let checksum = data
        .checksum
        .map(|c| {
            i32::try_from(c).map_err(|_| {
                error(
                    what,
                    format!("field `checksum`: {c} is not a signed 32-bit integer"),
                )
            })
        })
        .transpose()?;
    Ok(VenueEvent::Book {
        symbol,
        update: BookUpdate {
            action,
            seq_id: data.seq_id,
            prev_seq_id: data.prev_seq_id,
            checksum,
            event_ms: event_ms(data.ts, what)?,
            bids: levels(&data.bids, what, "bids")?,
            asks: levels(&data.asks, what, "asks")?,
        },
    })
}

fn bbo(frame: &str) -> Result<VenueEvent<'_>, DecodeError> {
    const WHAT: &str = "okx bbo-tbt";
    let parsed: Frame<BookData> = from_json(frame, WHAT)?;
    let symbol = parsed.arg.inst_id;
    let data = single(parsed.data, WHAT)?;
    let (Some(bid), Some(ask)) = (data.bids.first(), data.asks.first()) else {
        return Err(error(
            WHAT,
            "fields `bids` and `asks`: expected one level each".into(),
        ));
    };
    let quote = Quote {
        symbol,
        update_id: check_id(data.seq_id.map_or(0, |s| s.max(0) as u64), WHAT, "seqId")?,
        bid_px: fixed(bid.0, WHAT, "bids")?,
        bid_qty: fixed(bid.1, WHAT, "bids")?,
        ask_px: fixed(ask.0, WHAT, "asks")?,
        ask_qty: fixed(ask.1, WHAT, "asks")?,
        event_ms: Some(event_ms(data.ts, WHAT)?),
    };
    Ok(VenueEvent::Quote(check_quote(quote)?))
}

/// `None` when a side is empty: OKX sends `""` for the price and size of a side with no orders.
fn ticker(frame: &str) -> Result<Option<VenueEvent<'_>>, DecodeError> {
    const WHAT: &str = "okx tickers";
    let parsed: Frame<TickerData> = from_json(frame, WHAT)?;
    let data = single(parsed.data, WHAT)?;
    if data.inst_id != parsed.arg.inst_id {
        return Err(error(
            WHAT,
            format!(
                "field `instId`: {:?} in data but {:?} in arg",
                shown(data.inst_id),
                shown(parsed.arg.inst_id)
            ),
        ));
    }
    if [data.bid_px, data.bid_sz, data.ask_px, data.ask_sz].contains(&"") {
        return Ok(None);
    }
    let quote = Quote {
        symbol: data.inst_id,
        // Tickers carry no sequence number.
        update_id: 0,
        bid_px: fixed(data.bid_px, WHAT, "bidPx")?,
        bid_qty: fixed(data.bid_sz, WHAT, "bidSz")?,
        ask_px: fixed(data.ask_px, WHAT, "askPx")?,
        ask_qty: fixed(data.ask_sz, WHAT, "askSz")?,
        event_ms: Some(event_ms(data.ts, WHAT)?),
    };
    Ok(Some(VenueEvent::Quote(check_quote(quote)?)))
}

fn trades(frame: &str) -> Result<VenueEvent<'_>, DecodeError> {
    const WHAT: &str = "okx trades";
    let parsed: Frame<TradeData> = from_json(frame, WHAT)?;
    let trades = parsed
        .data
        .iter()
        .map(|t| {
            // `side` is the taker's: a "sell" means the buyer was the maker.
            let buyer_is_maker = match t.side {
                "buy" => false,
                "sell" => true,
                other => {
                    return Err(error(
                        WHAT,
                        format!(
                            "field `side`: expected \"buy\" or \"sell\", got {:?}",
                            shown(other)
                        ),
                    ))
                }
            };
            check_trade(Trade {
                symbol: t.inst_id,
                trade_id: check_id(integer(t.trade_id, WHAT, "tradeId")?, WHAT, "tradeId")?,
                px: fixed(t.px, WHAT, "px")?,
                qty: fixed(t.sz, WHAT, "sz")?,
                buyer_is_maker,
                event_ms: event_ms(t.ts, WHAT)?,
                aggregate: false,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VenueEvent::Trades(trades))
}

/// OKX's book checksum: CRC32 (IEEE) of `bid1px:bid1sz:ask1px:ask1sz:bid2px:...` over the best
/// 25 levels of each side, interleaved while both sides have levels and then the longer side's
/// rest, as a signed 32-bit integer. The prices and sizes are the strings OKX sent; OKX sends
/// them in shortest form (no trailing zeros), which is what [`crate::decimal::push_fixed`]
/// writes back from the exact fixed-point values (every one of the 290 book messages of the
/// real capture `cryptofeed/OKX.ws.1.0` checks out this way).
pub fn checksum(bids: impl Iterator<Item = Level>, asks: impl Iterator<Item = Level>) -> i32 {
    let mut text = Vec::with_capacity(25 * 4 * 12);
    let (mut bids, mut asks) = (bids.take(25), asks.take(25));
    loop {
        let (bid, ask) = (bids.next(), asks.next());
        if bid.is_none() && ask.is_none() {
            break;
        }
        for (px, qty) in [bid, ask].into_iter().flatten() {
            if !text.is_empty() {
                text.push(b':');
            }
            crate::decimal::push_fixed(&mut text, px);
            text.push(b':');
            crate::decimal::push_fixed(&mut text, qty);
        }
    }
    crc32fast::hash(&text) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_frame;

    const SNAPSHOT: &str = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],"ts":"1597026383085","checksum":-855196043}]}"#;

    #[test]
    fn reads_a_books_snapshot_and_its_checksum() {
        let Ok(Message::Venue {
            venue: Venue::Okx,
            event: VenueEvent::Book { symbol, update },
        }) = decode_frame(SNAPSHOT)
        else {
            panic!("{:?}", decode_frame(SNAPSHOT))
        };
        assert_eq!(symbol, "BTC-USDT");
        assert_eq!(update.action, BookAction::Snapshot);
        assert_eq!(update.bids[0], (847_697_000_000, 25_600_000_000));
        assert_eq!(update.asks[1], (847_700_000_000, 700_000_000));
        assert_eq!(update.event_ms, 1_597_026_383_085);
        // The text OKX documents for this book: "8476.97:256:8476.98:415:8475.55:101:8477:7".
        let expected = crc32fast::hash(b"8476.97:256:8476.98:415:8475.55:101:8477:7") as i32;
        assert_eq!(
            checksum(update.bids.iter().copied(), update.asks.iter().copied()),
            expected
        );
    }

    #[test]
    fn the_longer_side_continues_alone_after_the_shorter_ends() {
        let bids = [(300_000_000, 100_000_000)];
        let asks = [(400_000_000, 100_000_000), (500_000_000, 250_000_000)];
        assert_eq!(
            checksum(bids.into_iter(), asks.into_iter()),
            crc32fast::hash(b"3:1:4:1:5:2.5") as i32
        );
    }

    #[test]
    fn reads_trades_tickers_and_events() {
        let trades = r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"338476307","px":"30236","sz":"0.0002","side":"sell","ts":"1652459224818"}]}"#;
        let Ok(Message::Venue {
            event: VenueEvent::Trades(t),
            ..
        }) = decode_frame(trades)
        else {
            panic!()
        };
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].trade_id, 338476307);
        assert!(t[0].buyer_is_maker);
        assert_eq!(t[0].qty, 20_000);
        let ticker = r#"{"arg":{"channel":"tickers","instId":"UNI-USD-SWAP"},"data":[{"instType":"SWAP","instId":"UNI-USD-SWAP","last":"5.123","lastSz":"100","askPx":"5.142","askSz":"25","bidPx":"5.134","bidSz":"96","open24h":"4.799","ts":"1652459223143"}]}"#;
        let Ok(Message::Venue {
            event: VenueEvent::Quote(q),
            ..
        }) = decode_frame(ticker)
        else {
            panic!()
        };
        assert_eq!((q.bid_px, q.ask_qty), (513_400_000, 2_500_000_000));
        let no_bids = ticker.replace(
            r#""bidPx":"5.134","bidSz":"96""#,
            r#""bidPx":"","bidSz":"""#,
        );
        assert_eq!(decode_frame(&no_bids), Ok(Message::Unknown));
        assert_eq!(
            decode_frame(r#"{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}"#),
            Ok(Message::Unknown)
        );
        assert_eq!(decode_frame("pong"), Ok(Message::Unknown));
        let refused = decode_frame(r#"{"event":"error","code":"60012","msg":"Invalid request"}"#)
            .unwrap_err();
        assert!(refused.detail.contains("60012"), "{refused}");
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = SNAPSHOT.replace(r#""8477","7""#, r#""8477","x7""#);
        let e = decode_frame(&bad).unwrap_err();
        assert!(e.detail.contains("asks") && e.detail.contains("x7"), "{e}");
        let bad = SNAPSHOT.replace("\"snapshot\"", "\"partial\"");
        assert!(decode_frame(&bad).unwrap_err().detail.contains("action"));
        let bad = SNAPSHOT.replace("-855196043", "4294967296");
        assert!(decode_frame(&bad).unwrap_err().detail.contains("checksum"));
    }
}
