//! Hyperliquid websocket subscriptions
//! (<https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket/subscriptions>):
//!
//! | channel | data | becomes |
//! |---|---|---|
//! | `l2Book` | `WsBook {coin, levels: [bids, asks], time}`, levels `{px, sz, n}` | [`VenueEvent::Book`], a snapshot (every message is the whole book) |
//! | `trades` | `WsTrade[] {coin, side, px, sz, hash, time, tid, users}` | [`VenueEvent::Trades`] |
//! | `bbo` | `WsBbo {coin, time, bbo: [bid \| null, ask \| null]}` | [`VenueEvent::Quote`] (a missing side: no quote) |
//!
//! `side` is the aggressor's: `"B"` (bid) a buy, `"A"` (ask) a sell. `subscriptionResponse`,
//! `pong` and every other channel are frames of no stream ([`Message::Unknown`]); `error` is a
//! decode error carrying Hyperliquid's text. The frames hftbacktest's collector records
//! (`hyperliquid/btcusd_20250126.gz`) are these, one per line, as received.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{
    check_event_ms, check_id, check_quote, check_trade, fixed, from_json, shown, BookAction,
    BookUpdate, DecodeError, Level, Message, Quote, Trade, Venue, VenueEvent,
};

pub const PREFIX: &str = "{\"channel\":";

#[derive(Deserialize)]
struct Frame<T> {
    data: T,
}

#[derive(Deserialize)]
struct WsLevel<'a> {
    px: &'a str,
    sz: &'a str,
    #[serde(default)]
    #[allow(dead_code)]
    n: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct WsBook<'a> {
    coin: &'a str,
    #[serde(borrow)]
    levels: (Vec<WsLevel<'a>>, Vec<WsLevel<'a>>),
    time: i64,
}

#[derive(Deserialize)]
struct WsTrade<'a> {
    coin: &'a str,
    side: &'a str,
    px: &'a str,
    sz: &'a str,
    time: i64,
    tid: u64,
}

#[derive(Deserialize)]
struct WsBbo<'a> {
    coin: &'a str,
    time: i64,
    #[serde(borrow)]
    bbo: (Option<WsLevel<'a>>, Option<WsLevel<'a>>),
}

fn error(what: &'static str, detail: String) -> DecodeError {
    DecodeError { what, detail }
}

fn levels(raw: &[WsLevel<'_>], what: &'static str, field: &str) -> Result<Vec<Level>, DecodeError> {
    raw.iter()
        .map(|level| {
            let parsed = (fixed(level.px, what, field)?, fixed(level.sz, what, field)?);
            if parsed.0 <= 0 || parsed.1 < 0 {
                return Err(error(
                    what,
                    format!(
                        "field `{field}`: level {{px: {:?}, sz: {:?}}}: expected a price > 0 and a size >= 0",
                        level.px, level.sz
                    ),
                ));
            }
            Ok(parsed)
        })
        .collect()
}

pub fn decode(frame: &str) -> Result<Message<'_>, DecodeError> {
    let frame = frame.trim_end();
    let rest = frame
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('"'))
        .ok_or_else(|| {
            error(
                "hyperliquid frame",
                "expected `{\"channel\":\"...` first".into(),
            )
        })?;
    let end = memchr::memchr(b'"', rest.as_bytes())
        .ok_or_else(|| error("hyperliquid frame", "unterminated `channel`".into()))?;
    let event = match &rest[..end] {
        "l2Book" => book(frame)?,
        "trades" => trades(frame)?,
        "bbo" => match bbo(frame)? {
            Some(quote) => quote,
            None => return Ok(Message::Unknown),
        },
        "error" => {
            #[derive(Deserialize)]
            struct ErrorFrame<'a> {
                #[serde(borrow)]
                data: &'a str,
            }
            let text = from_json::<ErrorFrame>(frame, "hyperliquid error")
                .map(|e| e.data)
                .unwrap_or("");
            return Err(error(
                "hyperliquid error",
                format!("Hyperliquid refused a request: {:?}", shown(text)),
            ));
        }
        _ => return Ok(Message::Unknown),
    };
    Ok(Message::Venue {
        venue: Venue::Hyperliquid,
        event,
    })
}

fn book(frame: &str) -> Result<VenueEvent<'_>, DecodeError> {
    const WHAT: &str = "hyperliquid l2Book";
    let book: Frame<WsBook> = from_json(frame, WHAT)?;
    let book = book.data;
    Ok(VenueEvent::Book {
        symbol: book.coin,
        update: BookUpdate {
            action: BookAction::Snapshot,
            seq_id: None,
            prev_seq_id: None,
            checksum: None,
            event_ms: check_event_ms(book.time, WHAT)?,
            bids: levels(&book.levels.0, WHAT, "levels[0]")?,
            asks: levels(&book.levels.1, WHAT, "levels[1]")?,
        },
    })
}

fn trades(frame: &str) -> Result<VenueEvent<'_>, DecodeError> {
    const WHAT: &str = "hyperliquid trades";
    let trades: Frame<Vec<WsTrade>> = from_json(frame, WHAT)?;
    let trades = trades
        .data
        .iter()
        .map(|t| {
            let buyer_is_maker = match t.side {
                "B" => false,
                "A" => true,
                other => {
                    return Err(error(
                        WHAT,
                        format!(
                            "field `side`: expected \"B\" or \"A\", got {:?}",
                            shown(other)
                        ),
                    ))
                }
            };
            check_trade(Trade {
                symbol: t.coin,
                trade_id: check_id(t.tid, WHAT, "tid")?,
                px: fixed(t.px, WHAT, "px")?,
                qty: fixed(t.sz, WHAT, "sz")?,
                buyer_is_maker,
                event_ms: t.time,
                aggregate: false,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VenueEvent::Trades(trades))
}

fn bbo(frame: &str) -> Result<Option<VenueEvent<'_>>, DecodeError> {
    const WHAT: &str = "hyperliquid bbo";
    let bbo: Frame<WsBbo> = from_json(frame, WHAT)?;
    let bbo = bbo.data;
    let (Some(bid), Some(ask)) = (bbo.bbo.0, bbo.bbo.1) else {
        return Ok(None);
    };
    let quote = Quote {
        symbol: bbo.coin,
        update_id: 0,
        bid_px: fixed(bid.px, WHAT, "bbo[0].px")?,
        bid_qty: fixed(bid.sz, WHAT, "bbo[0].sz")?,
        ask_px: fixed(ask.px, WHAT, "bbo[1].px")?,
        ask_qty: fixed(ask.sz, WHAT, "bbo[1].sz")?,
        event_ms: Some(check_event_ms(bbo.time, WHAT)?),
    };
    Ok(Some(VenueEvent::Quote(check_quote(quote)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_frame;

    #[test]
    fn reads_the_collector_frames() {
        let book = r#"{"channel":"l2Book","data":{"coin":"BTC","levels":[[{"n":5,"px":"105055.0","sz":"3.03622"},{"n":1,"px":"105054.0","sz":"0.1428"}],[{"n":13,"px":"105056.0","sz":"6.34472"}]],"time":1737918843542}}"#;
        let Ok(Message::Venue {
            venue: Venue::Hyperliquid,
            event: VenueEvent::Book { symbol, update },
        }) = decode_frame(book)
        else {
            panic!("{:?}", decode_frame(book))
        };
        assert_eq!(symbol, "BTC");
        assert_eq!(update.action, BookAction::Snapshot);
        assert_eq!(
            update.bids,
            vec![
                (10_505_500_000_000, 303_622_000),
                (10_505_400_000_000, 14_280_000)
            ]
        );
        assert_eq!(update.asks, vec![(10_505_600_000_000, 634_472_000)]);
        let trades = r#"{"channel":"trades","data":[{"coin":"BTC","hash":"0x00","px":"105056.0","side":"B","sz":"0.00219","tid":121451470284048,"time":1737918794873,"users":["a","b"]},{"coin":"BTC","hash":"0x01","px":"105055.0","side":"A","sz":"0.00035","tid":199015583806854,"time":1737918797023,"users":["a","b"]}]}"#;
        let Ok(Message::Venue {
            event: VenueEvent::Trades(t),
            ..
        }) = decode_frame(trades)
        else {
            panic!()
        };
        assert_eq!(t.len(), 2);
        assert!(!t[0].buyer_is_maker && t[1].buyer_is_maker);
        assert_eq!(t[1].trade_id, 199015583806854);
        let bbo = r#"{"channel":"bbo","data":{"coin":"ETH","time":1737918843542,"bbo":[{"px":"3300.1","sz":"2","n":1},{"px":"3300.2","sz":"1.5","n":2}]}}"#;
        let Ok(Message::Venue {
            event: VenueEvent::Quote(q),
            ..
        }) = decode_frame(bbo)
        else {
            panic!()
        };
        assert_eq!(
            (q.symbol, q.bid_px, q.ask_qty),
            ("ETH", 330_010_000_000, 150_000_000)
        );
        let one_sided = r#"{"channel":"bbo","data":{"coin":"ETH","time":1737918843542,"bbo":[null,{"px":"3300.2","sz":"1.5","n":2}]}}"#;
        assert_eq!(decode_frame(one_sided), Ok(Message::Unknown));
        assert_eq!(
            decode_frame(r#"{"channel":"subscriptionResponse","data":{"method":"subscribe"}}"#),
            Ok(Message::Unknown)
        );
        let e = decode_frame(r#"{"channel":"error","data":"Invalid subscription"}"#).unwrap_err();
        assert!(e.detail.contains("Invalid subscription"), "{e}");
        let e = decode_frame(&trades.replace("\"side\":\"B\"", "\"side\":\"X\"")).unwrap_err();
        assert!(e.detail.contains("side"), "{e}");
    }
}
