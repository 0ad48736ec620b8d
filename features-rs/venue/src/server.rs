//! The listener: HTTP requests and websocket upgrades on one port.
//!
//! | request | answer |
//! |---|---|
//! | `GET /stream?streams=a/b` (upgrade) | combined streams: captured envelopes |
//! | `GET /ws/<stream>[/<stream>...]`, `GET /ws` (upgrade) | raw streams: the bare `data` objects |
//! | `GET /fapi/v1/depth`, `/api/v3/depth` `?symbol=S&limit=N` | the snapshot at the replay position, `limit` levels (default 500 / 100) |
//! | `GET /fapi/v1/exchangeInfo`, `/api/v3/exchangeInfo`, `/dapi/v1/exchangeInfo` | the capture's `instruments` line for that market (the newest at the replay position), else the `--instruments` file's, else 404 |
//! | `GET /fapi/v1/ping`, `/api/v3/ping` | `{}` |
//! | `GET /fapi/v1/time`, `/api/v3/time` | `{"serverTime":<wall clock ms>}` |
//! | `GET /_venue/status` | the status document |
//! | `POST /_venue/fault?drop_after=N&...` | replaces and re-arms the faults (see [`crate::faults`]) |
//! | `POST /_venue/disconnect` | resets every websocket connection now |

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::capture::Capture;
use crate::connection;
use crate::faults::{FaultState, Faults};
use crate::frames::{EncodingCache, Mode};
use crate::http::{self, Request};
use crate::replay::Replay;
use crate::streams;
use crate::ws;

/// Venue-wide orders to the connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Command {
    /// Bumped by `POST /_venue/disconnect`.
    pub disconnects: u64,
    pub shutdown: bool,
}

/// Everything the connections share.
pub struct Venue {
    pub replay: Arc<Replay>,
    pub encodings: EncodingCache,
    pub faults: FaultState,
    pub commands: watch::Sender<Command>,
    /// exchangeInfo bodies by market (`spot`, `usdm`, `coinm`) from `--instruments`, served
    /// when the capture has no `instruments` line of that market.
    pub instruments: Vec<(String, Vec<u8>)>,
}

impl Venue {
    pub fn new(replay: Arc<Replay>, faults: Faults) -> Self {
        Venue {
            encodings: EncodingCache::new(replay.capture.clone()),
            replay,
            faults: FaultState::new(faults),
            commands: watch::Sender::new(Command::default()),
            instruments: Vec::new(),
        }
    }

    /// Serves `instruments` (see [`instruments_file`]) where the capture has none.
    pub fn with_instruments(mut self, instruments: Vec<(String, Vec<u8>)>) -> Self {
        self.instruments = instruments;
        self
    }

    fn capture(&self) -> &Capture {
        &self.replay.capture
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve(venue: Arc<Venue>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(handle(venue.clone(), stream));
    }
}

async fn handle(venue: Arc<Venue>, mut stream: TcpStream) {
    let mut buffer = Vec::new();
    loop {
        let request = match http::read_request(&mut stream, &mut buffer).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(message) => {
                let body = http::error_body(-1, &message);
                let _ = stream
                    .write_all(&http::response(400, "application/json", &body, false))
                    .await;
                return;
            }
        };
        if request.is_websocket_upgrade() {
            return upgrade(venue, stream, request, buffer).await;
        }
        let keep_alive = request.keep_alive();
        let (status, body) = route(&venue, &request);
        let response = http::response(status, "application/json", &body, keep_alive);
        if stream.write_all(&response).await.is_err() || !keep_alive {
            return;
        }
    }
}

async fn upgrade(venue: Arc<Venue>, mut stream: TcpStream, request: Request, leftover: Vec<u8>) {
    let target = if request.path == "/stream" {
        let list = request.param("streams").unwrap_or_default();
        Some((Mode::Combined, streams::parse_list(&list)))
    } else if request.path == "/ws" || request.path == "/ws/" {
        Some((Mode::Raw, Vec::new()))
    } else {
        request
            .path
            .strip_prefix("/ws/")
            .map(|list| (Mode::Raw, streams::parse_list(list)))
    };
    let (Some((mode, names)), Some(key)) = (target, request.header("sec-websocket-key")) else {
        let body = http::error_body(
            -1,
            "websocket paths are /stream?streams=... and /ws/<stream>",
        );
        let _ = stream
            .write_all(&http::response(404, "application/json", &body, false))
            .await;
        return;
    };
    if stream
        .write_all(&ws::handshake_response(key))
        .await
        .is_err()
    {
        return;
    }
    connection::serve(venue, stream, leftover, mode, names).await;
}

/// Answers a plain HTTP request: (status, JSON body).
fn route(venue: &Venue, request: &Request) -> (u16, Vec<u8>) {
    let path = request.path.as_str();
    match (request.method.as_str(), path) {
        ("GET", "/fapi/v1/depth") => depth(venue, request, 500),
        ("GET", "/api/v3/depth") => depth(venue, request, 100),
        ("GET", "/fapi/v1/exchangeInfo") => exchange_info(venue, "usdm"),
        ("GET", "/api/v3/exchangeInfo") => exchange_info(venue, "spot"),
        ("GET", "/dapi/v1/exchangeInfo") => exchange_info(venue, "coinm"),
        ("GET", "/fapi/v1/ping" | "/api/v3/ping") => (200, b"{}".to_vec()),
        ("GET", "/fapi/v1/time" | "/api/v3/time") => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            (200, format!("{{\"serverTime\":{now}}}").into_bytes())
        }
        ("GET", "/_venue/status") => (200, venue.replay.status_json().into_bytes()),
        ("GET", "/_venue/fault") => (200, venue.faults.configured().to_json().into_bytes()),
        ("POST", "/_venue/fault") => {
            let params = request.params();
            match Faults::from_params(params.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
                Ok(faults) => {
                    let body = faults.to_json().into_bytes();
                    venue.faults.set(faults);
                    (200, body)
                }
                Err(message) => (400, http::error_body(-1, &message)),
            }
        }
        ("POST", "/_venue/disconnect") => {
            venue.commands.send_modify(|c| c.disconnects += 1);
            (200, b"{}".to_vec())
        }
        _ => (
            404,
            http::error_body(-1, &format!("no such endpoint: {} {path}", request.method)),
        ),
    }
}

/// exchangeInfo in Binance's shape (field names and string-typed numbers as Binance sends
/// them; see https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information
/// and the spot and COIN-M counterparts): the captured body verbatim, else the file's.
fn exchange_info(venue: &Venue, market: &str) -> (u16, Vec<u8>) {
    let line = venue.replay.last_line().map(|(index, _)| index);
    if let Some(body) = venue.capture().instruments_at(market, line) {
        return (200, body.to_vec());
    }
    if let Some((_, body)) = venue
        .instruments
        .iter()
        .find(|(m, _)| m == market || m == "*")
    {
        return (200, body.clone());
    }
    (
        404,
        http::error_body(
            -1,
            &format!(
                "no exchange information for {market}: the capture has no instruments line and no --instruments file lists {market}"
            ),
        ),
    )
}

/// The exchangeInfo bodies of an `--instruments` file, by market: either one exchangeInfo
/// answer (an object with `symbols`; market `*`, served on every exchangeInfo path) or twinfeed's table shape
/// (`{"binance-usdm": {...}, "binance-spot": {...}, "binance-coinm": {...}}`, as
/// `data/instruments/binance.json`). Members starting with `_` (provenance) are dropped.
pub fn instruments_file(text: &str) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("expected a JSON object")?;
    let sections: Vec<(String, &serde_json::Value)> = if object.contains_key("symbols") {
        vec![("*".to_string(), &value)]
    } else {
        object
            .iter()
            .filter_map(|(key, body)| {
                let market = key.strip_prefix("binance-").unwrap_or(key);
                matches!(market, "spot" | "usdm" | "coinm").then(|| (market.to_string(), body))
            })
            .collect()
    };
    if sections.is_empty() {
        return Err(
            "expected an exchangeInfo answer (with `symbols`) or sections \"binance-usdm\", \"binance-spot\", \"binance-coinm\"".into(),
        );
    }
    sections
        .into_iter()
        .map(|(market, body)| {
            let mut body = body.clone();
            let Some(map) = body.as_object_mut() else {
                return Err(format!("section {market}: expected a JSON object"));
            };
            if !map.get("symbols").is_some_and(|s| s.is_array()) {
                return Err(format!("section {market}: expected a `symbols` array"));
            }
            strip_private(&mut body);
            Ok((market, serde_json::to_vec(&body).unwrap()))
        })
        .collect()
}

/// Drops members whose name starts with `_` (the table's provenance notes), at any depth.
fn strip_private(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|key, _| !key.starts_with('_'));
            map.values_mut().for_each(strip_private);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_private),
        _ => {}
    }
}

fn depth(venue: &Venue, request: &Request, default_limit: usize) -> (u16, Vec<u8>) {
    let Some(symbol) = request.param("symbol").filter(|s| !s.is_empty()) else {
        return (
            400,
            http::error_body(
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            ),
        );
    };
    let limit = match request.param("limit") {
        None => default_limit,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if limit > 0 => limit,
            _ => {
                return (
                    400,
                    http::error_body(-1100, "Illegal characters found in parameter 'limit'."),
                )
            }
        },
    };
    let symbol = symbol.to_ascii_uppercase();
    let capture = venue.capture();
    let line = venue.replay.last_line().map(|(index, _)| index);
    match capture.snapshot_at(&symbol, line) {
        Some(snapshot) => (200, capture.depth_body(snapshot, limit)),
        None if capture.symbols().contains(&symbol) => (
            400,
            http::error_body(
                -1121,
                &format!("Invalid symbol: the capture has no depth snapshot of {symbol}."),
            ),
        ),
        None => (400, http::error_body(-1121, "Invalid symbol.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruments_file_takes_an_answer_or_the_table_shape() {
        let answer = instruments_file(r#"{"timezone":"UTC","symbols":[{"symbol":"X"}]}"#).unwrap();
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0].0, "*");
        let table = instruments_file(
            r#"{"_provenance":"p","binance-usdm":{"symbols":[{"symbol":"BTCUSDT","_source":"s","filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10"}]}]},"binance-spot":{"symbols":[]}}"#,
        )
        .unwrap();
        let markets: Vec<&str> = table.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(markets.len(), 2);
        assert!(markets.contains(&"usdm") && markets.contains(&"spot"));
        let usdm = &table.iter().find(|(m, _)| m == "usdm").unwrap().1;
        let usdm = String::from_utf8(usdm.clone()).unwrap();
        assert!(
            !usdm.contains("_source") && usdm.contains(r#""tickSize":"0.10""#),
            "{usdm}"
        );
        assert!(instruments_file(r#"{"binance-usdm":{}}"#)
            .unwrap_err()
            .contains("symbols"));
        assert!(instruments_file("[]").unwrap_err().contains("object"));
    }
}
