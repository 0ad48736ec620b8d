//! Capture lines that the ingest writes itself (contract 1): they start with `{"twinfeed":` and
//! are replayed like venue frames, so a replay reproduces heartbeats, reconnects and resyncs.
//!
//! | line | meaning |
//! |---|---|
//! | `{"twinfeed":"heartbeat"}` | the ingest is alive |
//! | `{"twinfeed":"connected","url":...}` | websocket connected |
//! | `{"twinfeed":"subscribed","streams":[...]}` | subscription sent |
//! | `{"twinfeed":"subscribed","url":...,"request":{...}}` | a subscribe request a third-party collector sent (cryptofeed `<url> <-` lines, imported verbatim) |
//! | `{"twinfeed":"disconnected","reason":...}` | websocket lost; books are invalid |
//! | `{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{REST body}}` | depth snapshot fetched |
//! | `{"twinfeed":"instruments","market":"usdm","data":{exchangeInfo}}` | the venue's trading rules |
//!
//! The `instruments` line carries the venue's `exchangeInfo` body (`/api/v3`, `/fapi/v1` or
//! `/dapi/v1`; `market` is `spot`, `usdm` or `coinm`) cut to the subscribed symbols, fetched at
//! start and after each reconnect. The pipeline makes no record of it (research and the replay
//! venue read it); its body is not parsed here beyond the nesting guard.

use serde::Deserialize;

use super::binance::SnapshotBody;
use super::{from_json, Control, DecodeError, Message};

pub const PREFIX: &str = "{\"twinfeed\":";

#[derive(Deserialize)]
struct ControlLine<'a> {
    twinfeed: &'a str,
    #[serde(default)]
    symbol: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<SnapshotBody<'a>>,
}

/// Start of an `instruments` line as the ingest writes it.
pub const INSTRUMENTS_PREFIX: &str = "{\"twinfeed\":\"instruments\"";

/// An `instruments` line: only the market is read; `data` (exchangeInfo, possibly large) is
/// skipped by the JSON library after the nesting guard of [`from_json`].
#[derive(Deserialize)]
struct InstrumentsLine<'a> {
    #[serde(borrow)]
    market: &'a str,
    #[serde(default)]
    data: Option<serde::de::IgnoredAny>,
}

pub fn decode(frame: &str) -> Result<Message<'_>, DecodeError> {
    if frame.starts_with(INSTRUMENTS_PREFIX) {
        return decode_instruments(frame);
    }
    // Snapshot lines are long (a REST body of up to thousands of levels): their usual shape
    // is read in place, straight to fixed point, as depth diffs are.
    if let Some(message) = super::positional::snapshot_line(frame.as_bytes()) {
        return message;
    }
    decode_general(frame)
}

/// Every control line through the JSON library (the positional snapshot route must agree).
pub(crate) fn decode_general(frame: &str) -> Result<Message<'_>, DecodeError> {
    let line: ControlLine = from_json(frame, "twinfeed control line")?;
    Ok(match line.twinfeed {
        "heartbeat" => Message::Control(Control::Heartbeat),
        "connected" => Message::Control(Control::Connected),
        "disconnected" => Message::Control(Control::Disconnected),
        "subscribed" => Message::Control(Control::Subscribed),
        // Written with other member orders by hand only; same checks as the fast path.
        "instruments" => return decode_instruments(frame),
        "snapshot" => {
            let (Some(symbol), Some(body)) = (line.symbol, line.data) else {
                return Err(DecodeError {
                    what: "twinfeed snapshot line",
                    detail: "expected fields `symbol` and `data`".into(),
                });
            };
            Message::Snapshot {
                symbol: Some(symbol),
                snapshot: body.into_snapshot()?,
            }
        }
        other => {
            return Err(DecodeError {
                what: "twinfeed control line",
                detail: format!("unknown kind {:?}", super::shown(other)),
            })
        }
    })
}

fn decode_instruments(frame: &str) -> Result<Message<'_>, DecodeError> {
    const WHAT: &str = "twinfeed instruments line";
    let line: InstrumentsLine = from_json(frame, WHAT)?;
    if !matches!(line.market, "spot" | "usdm" | "coinm") {
        return Err(DecodeError {
            what: WHAT,
            detail: format!(
                "field `market`: expected \"spot\", \"usdm\" or \"coinm\", got {:?}",
                super::shown(line.market)
            ),
        });
    }
    if line.data.is_none() {
        return Err(DecodeError {
            what: WHAT,
            detail: "expected field `data` (the exchangeInfo body)".into(),
        });
    }
    Ok(Message::Control(Control::Instruments))
}

/// Formats a control line (used by the ingest; kept here so reader and writer agree).
pub fn line(kind: &str, extra: &[(&str, &str)]) -> String {
    let mut out = format!("{{\"twinfeed\":{}", serde_json::to_string(kind).unwrap());
    for (key, value) in extra {
        out.push_str(&format!(
            ",{}:{}",
            serde_json::to_string(key).unwrap(),
            serde_json::to_string(value).unwrap()
        ));
    }
    out.push('}');
    out
}

/// A snapshot control line around a raw REST body.
pub fn snapshot_line(symbol: &str, rest_body: &str) -> String {
    format!(
        "{{\"twinfeed\":\"snapshot\",\"symbol\":{},\"data\":{}}}",
        serde_json::to_string(symbol).unwrap(),
        rest_body.trim()
    )
}

/// An instruments control line around an exchangeInfo body (already cut to the subscribed
/// symbols, one line of JSON).
pub fn instruments_line(market: &str, exchange_info: &str) -> String {
    format!(
        "{{\"twinfeed\":\"instruments\",\"market\":{},\"data\":{}}}",
        serde_json::to_string(market).unwrap(),
        exchange_info.trim()
    )
}
