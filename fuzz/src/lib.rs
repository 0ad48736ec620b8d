//! Shared pieces of the fuzz targets (`fuzz_targets/*.rs`): the pipelines they drive, the
//! invariants every record must keep, the loopback servers that feed the ingest's websocket and
//! REST readers, and the structure-aware generator of hostile Binance frames ([`hostile`]).
//!
//! The ingest's websocket frame reader and HTTP response reader are pure (bytes in, messages or
//! a response out), so their targets feed them in memory, cut into pieces as the network
//! would ([`ws_frames`], [`rest_response`]); the websocket handshake is driven through the real
//! client over a TCP connection on 127.0.0.1 to a server task on the same current-thread tokio
//! runtime ([`ws_session`]).

pub mod hostile;
pub mod invariants;

use std::cell::RefCell;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use twinfeed_features::{FeatureConfig, Pipeline, Record};

/// Longest a loopback session may take before the target calls it a hang. The server always
/// closes its side after writing the input, so a reader that is still waiting is stuck.
pub const SESSION_LIMIT: Duration = Duration::from_secs(20);

/// The pipeline configurations the targets exercise.
pub fn default_pipeline() -> Pipeline {
    Pipeline::new(FeatureConfig::default())
}

/// `filter.symbols = ["BTCUSDT", "ETHUSDT"]`: fixed symbol ids, other symbols filtered.
pub fn filtered_pipeline() -> Pipeline {
    let mut config = FeatureConfig::default();
    config.filter.symbols = vec!["BTCUSDT".into(), "ETHUSDT".into()];
    Pipeline::new(config)
}

/// Small windows and every downsampling path taken often.
pub fn fine_pipeline(
    bar_ms: u64,
    quote_every_n: u32,
    book_every_n: u32,
    levels: u32,
    flow_ms: u64,
) -> Pipeline {
    let mut config = FeatureConfig::default();
    config.downsample.bar_ms = bar_ms;
    config.downsample.quote_every_n = quote_every_n.max(1);
    config.downsample.book_every_n = book_every_n.max(1);
    config.features.book_levels = levels.max(1);
    config.features.flow_window_ms = flow_ms.max(1);
    config.filter.drop_unchanged_quotes = bar_ms.is_multiple_of(2);
    Pipeline::new(config)
}

/// Pushes every `\n`-separated line of `data` through `pipeline`, checking the invariants.
pub fn push_lines(pipeline: &mut Pipeline, data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        pipeline.push_line(line, &mut out);
    }
    invariants::check(pipeline, &out);
    out
}

/// Pushes every `\n`-separated line of `data`, after `prefix` and a receive stamp, through a
/// default and a venue-filtered pipeline, checking the invariants (the OKX and Hyperliquid
/// targets).
pub fn push_venue_frames(prefix: &[u8], data: &[u8]) {
    let mut okx_only = FeatureConfig::default();
    okx_only.filter.venues = vec!["okx".into()];
    okx_only.filter.symbols = vec!["okx:BTC-USDT".into(), "hyperliquid:BTC".into()];
    for mut pipeline in [default_pipeline(), Pipeline::new(okx_only)] {
        let mut out = Vec::new();
        let mut line = Vec::new();
        for (i, frame) in data.split(|&b| b == b'\n').enumerate() {
            line.clear();
            line.extend_from_slice(format!("{} ", 1_652_459_225_000_000_000u64 + i as u64).as_bytes());
            line.extend_from_slice(prefix);
            line.extend_from_slice(frame);
            pipeline.push_line(&line, &mut out);
        }
        invariants::check(&pipeline, &out);
    }
}

struct Loopback {
    runtime: Runtime,
    listener: TcpListener,
    port: u16,
}

thread_local! {
    static LOOPBACK: RefCell<Option<Loopback>> = const { RefCell::new(None) };
}

/// A current-thread runtime (IO and timers) for targets that only need `block_on`.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}

/// Runs `client(port)` against a server that accepts one connection on 127.0.0.1:`port` and
/// hands it to `server`. Both run on one current-thread runtime, so a session is deterministic.
fn with_loopback<S, C, SF, CF>(server: S, client: C)
where
    S: FnOnce(tokio::net::TcpStream) -> SF,
    SF: std::future::Future<Output = ()> + 'static,
    C: FnOnce(u16) -> CF,
    CF: std::future::Future<Output = ()>,
{
    LOOPBACK.with(|cell| {
        let mut cell = cell.borrow_mut();
        let lb = cell.get_or_insert_with(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let listener = runtime
                .block_on(TcpListener::bind("127.0.0.1:0"))
                .expect("bind 127.0.0.1");
            let port = listener.local_addr().expect("local addr").port();
            Loopback {
                runtime,
                listener,
                port,
            }
        });
        let port = lb.port;
        let listener = &lb.listener;
        lb.runtime.block_on(async {
            let session = async {
                let accept = async {
                    if let Ok((stream, _)) = listener.accept().await {
                        server(stream).await;
                    }
                };
                tokio::join!(accept, client(port));
            };
            if tokio::time::timeout(SESSION_LIMIT, session).await.is_err() {
                panic!("loopback session hung for {SESSION_LIMIT:?}");
            }
        });
    });
}

/// Reads a request head (up to `\r\n\r\n`, at most 64 KiB) from `stream`.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    head
}

/// Reads until the peer hangs up, so the client closes first and no data is cut by a reset.
async fn drain(stream: &mut tokio::net::TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// What a websocket session looked like from the client.
#[derive(Debug, Default)]
pub struct WsOutcome {
    pub connected: bool,
    pub texts: Vec<String>,
    pub error: Option<String>,
}

/// One websocket session of the ingest's client against a server that answers the handshake
/// with `handshake` (or a correct `101` when `None`), then sends `wire` and closes.
pub fn ws_session(handshake: Option<&[u8]>, wire: &[u8]) -> WsOutcome {
    let handshake = handshake.map(<[u8]>::to_vec);
    let wire = wire.to_vec();
    let mut outcome = WsOutcome::default();
    with_loopback(
        move |mut stream| async move {
            let head = read_head(&mut stream).await;
            let response = handshake.unwrap_or_else(|| {
                let head = String::from_utf8_lossy(&head);
                let key = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("sec-websocket-key")
                            .then(|| value.trim().to_string())
                    })
                    .unwrap_or_default();
                twinfeed_venue::ws::handshake_response(&key)
            });
            let _ = stream.write_all(&response).await;
            let _ = stream.write_all(&wire).await;
            let _ = stream.shutdown().await;
            // Take whatever the client answers (pongs, close) until it hangs up.
            drain(&mut stream).await;
        },
        |port| {
            let outcome = &mut outcome;
            async move {
                let url = format!("ws://127.0.0.1:{port}/stream?streams=btcusdt@bookTicker");
                let mut client = match twinfeed_ingest::ws::connect(&url, 0x9e37_79b9).await {
                    Ok(client) => client,
                    Err(e) => {
                        outcome.error = Some(e);
                        return;
                    }
                };
                outcome.connected = true;
                loop {
                    match client.next_message() {
                        Ok(Some(twinfeed_ingest::ws::Frame::Text(text))) => {
                            outcome.texts.push(text.to_string())
                        }
                        Ok(Some(twinfeed_ingest::ws::Frame::Binary)) => {}
                        Ok(Some(twinfeed_ingest::ws::Frame::Close(_))) => break,
                        Ok(None) => match client.fill().await {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) => {
                                outcome.error = Some(e.to_string());
                                break;
                            }
                        },
                        Err(e) => {
                            outcome.error = Some(e);
                            break;
                        }
                    }
                }
            }
        },
    );
    outcome
}

/// What the live ingest does with a REST body: embed it in a snapshot control line (if it is
/// one JSON object) and push that line through the pipeline.
pub fn snapshot_body_through_pipeline(body: &str) {
    let trimmed = body.trim();
    let is_object = trimmed.starts_with('{')
        && trimmed.ends_with('}')
        && serde_json::from_str::<serde_json::Value>(trimmed).is_ok();
    if !is_object {
        return;
    }
    let line = twinfeed_features::decode::control::snapshot_line("BTCUSDT", body);
    let mut pipeline = default_pipeline();
    let mut data = b"1723161255319702566 ".to_vec();
    data.extend_from_slice(line.as_bytes());
    // A diff after the snapshot, so the book is used, not only stored.
    data.extend_from_slice(
        b"\n1723161255319702567 {\"stream\":\"btcusdt@depth@0ms\",\"data\":{\"e\":\"depthUpdate\",\"E\":1723161256501,\"T\":1723161256493,\"s\":\"BTCUSDT\",\"U\":5123107852940,\"u\":5123107852950,\"pu\":5123107852939,\"b\":[[\"61800.20\",\"1.000\"]],\"a\":[[\"61800.30\",\"2.000\"]]}}",
    );
    push_lines(&mut pipeline, &data);
}

/// Splits `data` into pieces whose sizes come from `seed` (1 to 256 bytes, or all at once when
/// `seed` is 0), so readers see frames and lines cut at every possible place.
pub fn pieces(data: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![data];
    }
    let mut state = seed as u32 | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 256 + 1).min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// The ingest's websocket frame parser (`twinfeed_ingest::ws::FrameReader`) over `wire`,
/// received in `pieces(wire, seed)`: the messages it yields until it ends or fails.
pub fn ws_frames(wire: &[u8], seed: u8, max_message: usize) -> WsOutcome {
    use twinfeed_ingest::ws::{Frame, FrameReader, Replies};
    let mut reader = FrameReader::new(max_message);
    let mut replies = Replies::default();
    let mut outcome = WsOutcome {
        connected: true,
        ..WsOutcome::default()
    };
    for piece in pieces(wire, seed) {
        reader.push(piece);
        loop {
            match reader.next(&mut replies) {
                Ok(Some(Frame::Text(text))) => {
                    assert!(text.len() <= max_message, "message over the cap");
                    outcome.texts.push(text.to_string());
                }
                Ok(Some(Frame::Binary)) => {}
                Ok(Some(Frame::Close(_))) => return outcome,
                Ok(None) => break,
                Err(e) => {
                    outcome.error = Some(e);
                    return outcome;
                }
            }
            if let Some(pong) = &replies.pong {
                assert!(pong.len() <= 125, "a pong carries at most 125 bytes");
            }
        }
    }
    outcome
}

/// The ingest's HTTP response reader (`twinfeed_ingest::rest::ResponseReader`) over `bytes`
/// received in `pieces(bytes, seed)` and then the end of the stream; checked against the
/// one-shot `parse_response` of the same bytes (the framing must not change the answer).
pub fn rest_response(bytes: &[u8], seed: u8, max_body: usize) -> Option<(u16, Vec<u8>)> {
    use twinfeed_ingest::rest::{parse_response, ResponseReader};
    let mut reader = ResponseReader::new(max_body);
    let mut result = None;
    let mut fed = 0;
    for piece in pieces(bytes, seed) {
        fed += piece.len();
        match reader.feed(piece) {
            Ok(Some(response)) => {
                result = Some(Ok(response));
                break;
            }
            Ok(None) => {}
            Err(e) => {
                result = Some(Err(e));
                break;
            }
        }
    }
    let result = result.unwrap_or_else(|| reader.eof());
    let whole = parse_response(bytes, max_body);
    match (&result, &whole) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "pieces and whole give the same response"),
        (Err(_), Err(_)) => {}
        // A response complete before its last piece: the whole parse sees the trailing bytes.
        (Ok(_), Err(_)) if fed < bytes.len() => {}
        _ => panic!("pieces gave {result:?}, the whole response {whole:?}"),
    }
    let response = result.ok()?;
    assert!(response.body.len() <= max_body, "body over the cap");
    Some((response.status, response.body))
}
