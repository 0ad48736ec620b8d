//! Capture lines that the ingest writes itself (contract 1): they start with `{"twinfeed":` and
//! are replayed like venue frames, so a replay reproduces heartbeats, reconnects and resyncs.
//!
//! | line | meaning |
//! |---|---|
//! | `{"twinfeed":"heartbeat"}` | the ingest is alive |
//! | `{"twinfeed":"connected","url":...}` | websocket connected |
//! | `{"twinfeed":"subscribed","streams":[...]}` | subscription sent |
//! | `{"twinfeed":"disconnected","reason":...}` | websocket lost; books are invalid |
//! | `{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{REST body}}` | depth snapshot fetched |

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

pub fn decode(frame: &str) -> Result<Message<'_>, DecodeError> {
    let line: ControlLine = from_json(frame, "twinfeed control line")?;
    Ok(match line.twinfeed {
        "heartbeat" => Message::Control(Control::Heartbeat),
        "connected" => Message::Control(Control::Connected),
        "disconnected" => Message::Control(Control::Disconnected),
        "subscribed" => Message::Control(Control::Subscribed),
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
