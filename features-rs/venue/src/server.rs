//! The listener: HTTP requests and websocket upgrades on one port (TCP_NODELAY on every
//! accepted socket; HTTP/1.1 keep-alive unless the client asks `Connection: close`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /public/ws[/<stream>...]`, `/public/stream?streams=a/b` (upgrade) | USD-M's routed path for high-frequency streams (`@depth*`, `@bookTicker`, `@trade`); other streams subscribed here deliver nothing, as on Binance (see [`crate::streams`]) |
//! | `GET /market/ws[/<stream>...]`, `/market/stream?streams=a/b` (upgrade) | the routed path for every other market stream (`@aggTrade`, `@markPrice`, `@kline_*`, ...) |
//! | `GET /ws[/<stream>...]`, `/stream?streams=a/b` (upgrade) | the legacy paths: every stream (the venue is more lenient here than Binance, whose legacy path carries `/public` streams only) |
//! | `GET /private/...`, `/ws/<listenKey>`, `/stream?streams=<listenKey>` (upgrade; a name without `@`) | user data: spliced byte for byte to the user-stream upstream (the paper venue's websocket server); without one, 400 `-1125` |
//! | combined streams (`/stream`) | `{"stream":<subscribed name>,"data":{...}}`; raw streams (`/ws`) the bare `data` |
//! | `<sym>@depth@100ms`, `@depth@250ms`, `@depth` (250 ms), `@depth@500ms` | from the captured diff-depth stream, merged per window of event time when the capture is finer (see [`crate::frames`]) |
//! | `GET /fapi/v1/depth`, `/api/v3/depth` `?symbol=S&limit=N` | the book as replayed so far, in the capture's decimal strings, `lastUpdateId` continuing the diffs sent (see [`crate::book`]); fapi limits 5/10/20/50/100/500/1000 (default 500, else -1130), spot 1..5000 (default 100) |
//! | `GET /fapi/v1/ticker/bookTicker[?symbol=S]`, `/api/v3/ticker/bookTicker` | best bid/ask of the replayed book (one object, or an array of all symbols) |
//! | `GET /fapi/v1/exchangeInfo`, `/api/v3/exchangeInfo`, `/dapi/v1/exchangeInfo` | the capture's `instruments` line for that market (the newest at the replay position), else the `--instruments` file's, else 404 |
//! | `GET /fapi/v1/ping`, `/api/v3/ping` | `{}` |
//! | `GET /fapi/v1/time`, `/api/v3/time` | `{"serverTime":<the replay clock, ms>}` (see [`crate::replay`]) |
//! | `GET /_venue/status` | the status document |
//! | `POST /_venue/fault?drop_after=N&...` | replaces and re-arms the faults (see [`crate::faults`]) |
//! | `POST /_venue/disconnect` | resets every websocket connection now |
//! | `POST /_venue/user-stream?upstream=HOST:PORT` (loopback only; empty clears), `GET /_venue/user-stream` | sets / shows where user-data websockets are spliced (`--user-stream-upstream` at start) |

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::book::{Books, Flavour};
use crate::capture::Capture;
use crate::connection;
use crate::faults::{FaultState, Faults};
use crate::frames::{EncodingCache, Mode};
use crate::http::{self, Request};
use crate::replay::Replay;
use crate::streams::{self, Category};
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
    /// The replayed order books (REST depth and bookTicker).
    pub books: Books,
    pub encodings: EncodingCache,
    pub faults: FaultState,
    pub commands: watch::Sender<Command>,
    /// exchangeInfo bodies by market (`spot`, `usdm`, `coinm`) from `--instruments`, served
    /// when the capture has no `instruments` line of that market.
    pub instruments: Vec<(String, Vec<u8>)>,
    /// Where user-data websockets are spliced (`--user-stream-upstream`,
    /// `POST /_venue/user-stream?upstream=`).
    pub user_upstream: Mutex<Option<SocketAddr>>,
    /// `--depth-as-captured`: diff-depth requests at any speed get the captured diffs unmerged.
    pub depth_as_captured: bool,
}

impl Venue {
    pub fn new(replay: Arc<Replay>, faults: Faults) -> Self {
        Venue {
            books: Books::new(&replay.capture),
            encodings: EncodingCache::new(replay.capture.clone(), replay.lap_ms()),
            replay,
            faults: FaultState::new(faults),
            commands: watch::Sender::new(Command::default()),
            instruments: Vec::new(),
            user_upstream: Mutex::new(None),
            depth_as_captured: false,
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

/// Keeps the replayed books current in the background (off the async workers), so that a
/// REST depth request applies at most ~50 ms of diffs, however long nobody asked.
pub async fn keep_books_current(venue: Arc<Venue>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(50));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = (0, 0);
    loop {
        ticker.tick().await;
        let at = venue.replay.replayed();
        if at == last {
            continue;
        }
        last = at;
        let venue = venue.clone();
        let _ =
            tokio::task::spawn_blocking(move || venue.books.advance_all(&venue.replay.capture, at))
                .await;
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
    // Every answer leaves in one write; without Nagle it is not held for the client's ACK.
    let _ = stream.set_nodelay(true);
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

/// Where a websocket upgrade goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Market streams: framing, the routed path's category (`None`: legacy path), streams.
    Market(Mode, Option<Category>, Vec<String>),
    /// A user-data stream: spliced to the user-stream upstream.
    UserData,
}

/// The websocket target of an upgrade request's path, `None` for an unknown path.
fn websocket_target(path: &str, streams_param: Option<String>) -> Option<Target> {
    let (category, rest) = if let Some(rest) = path.strip_prefix("/public") {
        (Some(Category::Public), rest)
    } else if let Some(rest) = path.strip_prefix("/market") {
        (Some(Category::Market), rest)
    } else if path == "/private" || path.starts_with("/private/") {
        return Some(Target::UserData);
    } else {
        (None, path)
    };
    let (mode, names) = if rest == "/stream" {
        (
            Mode::Combined,
            streams::parse_list(&streams_param.unwrap_or_default()),
        )
    } else if rest == "/ws" || rest == "/ws/" {
        (Mode::Raw, Vec::new())
    } else {
        (Mode::Raw, streams::parse_list(rest.strip_prefix("/ws/")?))
    };
    // On the legacy paths a name without `@` is a listen key (`!bookTicker` is a stream).
    let listen_key = |name: &String| !name.contains('@') && !name.starts_with('!');
    if category.is_none() && !names.is_empty() && names.iter().all(listen_key) {
        return Some(Target::UserData);
    }
    Some(Target::Market(mode, category, names))
}

async fn upgrade(venue: Arc<Venue>, mut stream: TcpStream, request: Request, leftover: Vec<u8>) {
    let target = websocket_target(&request.path, request.param("streams"));
    let (Some(target), Some(key)) = (target, request.header("sec-websocket-key")) else {
        let body = http::error_body(
            -1,
            "websocket paths are /public/ws, /market/ws, /private/ws (and /ws, /stream?streams=..., /<path>/ws/<stream>)",
        );
        let _ = stream
            .write_all(&http::response(404, "application/json", &body, false))
            .await;
        return;
    };
    let (mode, category, names) = match target {
        Target::UserData => return splice(venue, stream, request, leftover).await,
        Target::Market(mode, category, names) => (mode, category, names),
    };
    if stream
        .write_all(&ws::handshake_response(key))
        .await
        .is_err()
    {
        return;
    }
    connection::serve(venue, stream, leftover, mode, category, names).await;
}

/// Forwards a user-data websocket to the upstream (the paper venue's websocket server): the
/// client's request bytes unchanged, then bytes both ways until either side ends.
async fn splice(venue: Arc<Venue>, mut stream: TcpStream, request: Request, leftover: Vec<u8>) {
    let upstream = *venue
        .user_upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let connected = match upstream {
        Some(address) => TcpStream::connect(address).await.ok(),
        None => None,
    };
    let Some(mut upstream) = connected else {
        // -1125 INVALID_LISTEN_KEY, "This listenKey does not exist." (Error Codes,
        // https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code)
        let body = http::error_body(-1125, "This listenKey does not exist.");
        let _ = stream
            .write_all(&http::response(400, "application/json", &body, false))
            .await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    let mut first = request.head;
    first.extend_from_slice(&request.body);
    first.extend_from_slice(&leftover);
    if upstream.write_all(&first).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}

/// Parses a user-stream upstream (`HOST:PORT`), loopback addresses only.
pub fn parse_upstream(text: &str) -> std::result::Result<SocketAddr, String> {
    let text = text.trim();
    let address: SocketAddr = match text.strip_prefix("localhost:") {
        Some(port) => SocketAddr::from((
            [127, 0, 0, 1],
            port.parse::<u16>()
                .map_err(|_| format!("upstream {text:?}: expected HOST:PORT"))?,
        )),
        None => text
            .parse()
            .map_err(|_| format!("upstream {text:?}: expected HOST:PORT with an IP address"))?,
    };
    if !address.ip().is_loopback() {
        return Err(format!(
            "upstream {address}: only loopback addresses are accepted"
        ));
    }
    Ok(address)
}

/// Answers a plain HTTP request: (status, JSON body).
fn route(venue: &Venue, request: &Request) -> (u16, Vec<u8>) {
    let path = request.path.as_str();
    match (request.method.as_str(), path) {
        ("GET", "/fapi/v1/depth") => depth(venue, request, Flavour::Futures),
        ("GET", "/api/v3/depth") => depth(venue, request, Flavour::Spot),
        ("GET", "/fapi/v1/ticker/bookTicker") => book_ticker(venue, request, Flavour::Futures),
        ("GET", "/api/v3/ticker/bookTicker") => book_ticker(venue, request, Flavour::Spot),
        ("GET", "/fapi/v1/exchangeInfo") => exchange_info(venue, "usdm"),
        ("GET", "/api/v3/exchangeInfo") => exchange_info(venue, "spot"),
        ("GET", "/dapi/v1/exchangeInfo") => exchange_info(venue, "coinm"),
        ("GET", "/fapi/v1/ping" | "/api/v3/ping") => (200, b"{}".to_vec()),
        // The replay clock, not the wall clock (see `crate::replay`).
        ("GET", "/fapi/v1/time" | "/api/v3/time") => (
            200,
            format!("{{\"serverTime\":{}}}", venue.replay.now_ms()).into_bytes(),
        ),
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
        ("GET", "/_venue/user-stream") => (200, user_stream_json(venue)),
        ("POST", "/_venue/user-stream") => {
            let upstream = request.param("upstream").unwrap_or_default();
            let parsed = if upstream.trim().is_empty() {
                Ok(None)
            } else {
                parse_upstream(&upstream).map(Some)
            };
            match parsed {
                Ok(address) => {
                    *venue
                        .user_upstream
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = address;
                    (200, user_stream_json(venue))
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

fn user_stream_json(venue: &Venue) -> Vec<u8> {
    let upstream = *venue
        .user_upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match upstream {
        Some(address) => format!("{{\"upstream\":\"{address}\"}}").into_bytes(),
        None => b"{\"upstream\":null}".to_vec(),
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

/// Valid `limit`s of `GET /fapi/v1/depth` ("Order Book",
/// https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Order-Book):
/// default 500; anything else is refused with -1130.
const FUTURES_DEPTH_LIMITS: [usize; 7] = [5, 10, 20, 50, 100, 500, 1000];

/// `GET /fapi/v1/depth` and `/api/v3/depth`: the book as replayed so far (see [`crate::book`]).
fn depth(venue: &Venue, request: &Request, flavour: Flavour) -> (u16, Vec<u8>) {
    let Some(symbol) = request.param("symbol").filter(|s| !s.is_empty()) else {
        return (
            400,
            http::error_body(
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            ),
        );
    };
    let limit = match (request.param("limit"), flavour) {
        (None, Flavour::Futures) => 500,
        (None, Flavour::Spot) => 100,
        (Some(text), _) => match text.parse::<usize>() {
            Ok(limit) if flavour == Flavour::Futures && FUTURES_DEPTH_LIMITS.contains(&limit) => {
                limit
            }
            // Spot: "Default 100; max 5000. If limit > 5000, the response truncates to 5000."
            // (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#order-book)
            Ok(limit) if flavour == Flavour::Spot && limit > 0 => limit.min(5000),
            Ok(_) => {
                return (
                    400,
                    http::error_body(-1130, "Data sent for parameter 'limit' is not valid."),
                )
            }
            Err(_) => {
                return (
                    400,
                    http::error_body(
                        -1100,
                        "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
                    ),
                )
            }
        },
    };
    let symbol = symbol.to_ascii_uppercase();
    let capture = venue.capture();
    let at = venue.replay.replayed();
    let (now_ms, shift_ms) = (venue.replay.now_ms(), venue.replay.shift_ms(at.1));
    match venue
        .books
        .depth_body(capture, &symbol, at, limit, flavour, now_ms, shift_ms)
    {
        Some(body) => (200, body),
        None => (400, http::error_body(-1121, "Invalid symbol.")),
    }
}

/// `GET /fapi/v1/ticker/bookTicker` (and `/api/v3/...`): the best bid and ask of the replayed
/// book, one symbol or all ("Symbol Order Book Ticker",
/// https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Symbol-Order-Book-Ticker:
/// `lastUpdateId`, `symbol`, `bidPrice`, `bidQty`, `askPrice`, `askQty`, `time`; spot has
/// neither `lastUpdateId` nor `time`).
fn book_ticker(venue: &Venue, request: &Request, flavour: Flavour) -> (u16, Vec<u8>) {
    let capture = venue.capture();
    let at = venue.replay.replayed();
    let shift_ms = venue.replay.shift_ms(at.1);
    let now_ms = venue.replay.now_ms();
    let entry = |symbol: &str| {
        let top = venue.books.top(capture, symbol, at)?;
        let (bid_price, bid_qty) = top.bid.unwrap_or_default();
        let (ask_price, ask_qty) = top.ask.unwrap_or_default();
        let mut value = serde_json::json!({
            "symbol": symbol,
            "bidPrice": bid_price,
            "bidQty": bid_qty,
            "askPrice": ask_price,
            "askQty": ask_qty,
        });
        if flavour == Flavour::Futures {
            value["lastUpdateId"] = top.last_update_id.into();
            value["time"] = top
                .transaction_ms
                .map_or(now_ms, |t| t.saturating_add(shift_ms))
                .into();
        }
        Some(value)
    };
    match request.param("symbol") {
        Some(symbol) => match entry(&symbol.to_ascii_uppercase()) {
            Some(value) => (200, value.to_string().into_bytes()),
            None => (400, http::error_body(-1121, "Invalid symbol.")),
        },
        None => {
            let all: Vec<serde_json::Value> = venue.books.symbols().filter_map(entry).collect();
            (200, serde_json::Value::from(all).to_string().into_bytes())
        }
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

    #[test]
    fn websocket_paths_route_as_binance_does() {
        let market = |mode, category, names: &[&str]| {
            Some(Target::Market(
                mode,
                category,
                names.iter().map(|n| n.to_string()).collect(),
            ))
        };
        let public = Some(Category::Public);
        assert_eq!(
            websocket_target("/public/ws", None),
            market(Mode::Raw, public, &[])
        );
        assert_eq!(
            websocket_target("/public/ws/0", None),
            market(Mode::Raw, public, &["0"]),
            "ccxt's stream index: a market connection, not a listen key"
        );
        assert_eq!(
            websocket_target("/market/stream", Some("btcusdt@aggTrade".into())),
            market(
                Mode::Combined,
                Some(Category::Market),
                &["btcusdt@aggTrade"]
            )
        );
        assert_eq!(
            websocket_target("/ws/btcusdt@trade", None),
            market(Mode::Raw, None, &["btcusdt@trade"])
        );
        assert_eq!(
            websocket_target("/ws/!bookTicker", None),
            market(Mode::Raw, None, &["!bookTicker"])
        );
        assert_eq!(websocket_target("/ws/abcKEY", None), Some(Target::UserData));
        assert_eq!(
            websocket_target("/stream", Some("abcKEY".into())),
            Some(Target::UserData)
        );
        assert_eq!(
            websocket_target("/private/ws", None),
            Some(Target::UserData)
        );
        assert_eq!(
            websocket_target("/private/stream", None),
            Some(Target::UserData)
        );
        assert_eq!(websocket_target("/other", None), None);
        assert_eq!(websocket_target("/public/other", None), None);
    }

    #[test]
    fn user_stream_upstreams_are_loopback_only() {
        assert_eq!(parse_upstream("127.0.0.1:9001").unwrap().port(), 9001);
        assert_eq!(parse_upstream("localhost:9001").unwrap().port(), 9001);
        assert!(parse_upstream("[::1]:9001").is_ok());
        assert!(parse_upstream("10.0.0.1:9001")
            .unwrap_err()
            .contains("loopback"));
        assert!(parse_upstream("example.com:80").is_err());
    }
}
