//! `twinfeed-venue`: replay a capture as a local Binance-compatible venue (see the crate docs).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use twinfeed_venue::capture::Capture;
use twinfeed_venue::faults::Faults;
use twinfeed_venue::replay::{self, Replay, Speed};
use twinfeed_venue::server::{self, Venue};

/// A local Binance-compatible market-data venue that replays a capture.
///
/// Websocket: /public/ws, /market/ws (+ /<stream>), /public/stream?streams=a/b,
/// /market/stream?streams=..., and the legacy /ws, /stream; live SUBSCRIBE. User data
/// (/private/..., /ws/<listenKey>) is spliced to --user-stream-upstream.
/// REST: /fapi/v1/depth, /api/v3/depth (the replayed book), /fapi/v1/ticker/bookTicker,
/// /fapi/v1/ping, /fapi/v1/time (the replay clock), and exchangeInfo (/fapi/v1, /api/v3,
/// /dapi/v1) from the capture's instruments line or --instruments.
/// Control: GET /_venue/status, POST /_venue/fault?..., POST /_venue/disconnect,
/// POST /_venue/user-stream?upstream=HOST:PORT.
/// The replay clock starts when the first websocket client subscribes; all clients share it.
#[derive(Parser, Debug)]
#[command(version = twinfeed_venue::VERSION, about, long_about)]
struct Args {
    /// Capture file (`<local_receive_ns> <frame>` lines; plain, gzip or zstd).
    #[arg(long)]
    capture: PathBuf,
    /// Port to listen on; 0 picks a free one (printed, and written to --ready-file).
    #[arg(long, default_value_t = 9443)]
    port: u16,
    /// Address to bind; keep the loopback default unless you mean it.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Replay speed: 1 = original timing, 10 = ten times faster, max = as fast as sockets take.
    #[arg(long, default_value = "1", value_parser = Speed::parse)]
    speed: Speed,
    /// Instead of --speed: send each client N of its messages per second, evenly spaced
    /// (capture order kept, captured timing ignored; each client on its own position).
    #[arg(long, value_name = "N", conflicts_with = "speed", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Start again from the first line when the capture is consumed.
    #[arg(long = "loop")]
    looping: bool,
    /// Write the listening port here once ready.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Keep the replay position in this JSON file (rewritten atomically every ~50 ms).
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Fault: reset the TCP connection after N messages.
    #[arg(long, value_name = "N")]
    drop_after: Option<u64>,
    /// Fault: stop sending for T ms (after --stall-after messages, default 0).
    #[arg(long, value_name = "T")]
    stall_ms: Option<u64>,
    /// Fault: the message count after which --stall-ms applies.
    #[arg(long, value_name = "N", requires = "stall_ms")]
    stall_after: Option<u64>,
    /// Fault: after every N messages send one frame that is not valid JSON.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    malformed_every: Option<u64>,
    /// Fault: never send the K-th depth update (a sequence gap).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    skip_depth: Option<u64>,
    /// Apply --drop-after, --stall-* and --skip-depth to every connection, not only the first.
    #[arg(long)]
    fault_every_connection: bool,
    /// exchangeInfo to serve where the capture has no `instruments` line: one exchangeInfo
    /// answer, or twinfeed's table ({"binance-usdm": {...}, ...}, as data/instruments/binance.json).
    #[arg(long, value_name = "FILE")]
    instruments: Option<PathBuf>,
    /// Splice user-data websockets (/private/..., /ws/<listenKey>) to this loopback
    /// HOST:PORT (the paper venue's websocket server); also settable at run time with
    /// POST /_venue/user-stream?upstream=HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = server::parse_upstream)]
    user_stream_upstream: Option<std::net::SocketAddr>,
    /// Serve diff-depth requests at any speed with the captured diffs, unmerged (named as
    /// requested): for parity checks, whose live path must see the capture's own diffs.
    /// Without it the venue merges a finer capture per window, as Binance builds its speeds.
    #[arg(long)]
    depth_as_captured: bool,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "expected a positive number of messages per second, got {text:?}"
        )),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let capture = Capture::load(&args.capture)
        .with_context(|| format!("cannot load capture {}", args.capture.display()))?;
    let counts = &capture.counts;
    eprintln!(
        "twinfeed-venue: {}: {} lines ({} frames, {} snapshots, {} control, {} ignored, {} torn) in {:.2} s; streams: {}",
        args.capture.display(),
        counts.lines,
        counts.frames,
        counts.snapshots,
        counts.control,
        counts.ignored,
        counts.torn,
        started.elapsed().as_secs_f64(),
        capture.streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let faults = Faults {
        drop_after: args.drop_after,
        stall_after: args.stall_after,
        stall_ms: args.stall_ms,
        malformed_every: args.malformed_every,
        skip_depth: args.skip_depth,
        every_connection: args.fault_every_connection,
    }
    .normalized();
    let speed = args.rate.map_or(args.speed, Speed::Rate);
    let replay = Arc::new(Replay::new(Arc::new(capture), speed, args.looping));
    // `--rate` wakes a connection for every message: one thread that owns the timer, the
    // socket and the task wakes once per message; worker threads would hand each wake-up
    // from one thread to another (measured: ~23 us of CPU per message at 50 k/s, most of a
    // core, against ~5 us on one thread).
    let runtime = if args.rate.is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    runtime
        .context("cannot start the async runtime")?
        .block_on(run(args, replay, faults))
}

async fn run(args: Args, replay: Arc<Replay>, faults: Faults) -> Result<()> {
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        eprintln!("twinfeed-venue: warning: listening on {address}, reachable beyond this machine");
    }
    let instruments = match &args.instruments {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --instruments {}", path.display()))?;
            twinfeed_venue::server::instruments_file(&text)
                .map_err(|e| anyhow::anyhow!("--instruments {}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let mut venue = Venue::new(replay.clone(), faults).with_instruments(instruments);
    venue.depth_as_captured = args.depth_as_captured;
    let venue = Arc::new(venue);
    *venue
        .user_upstream
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = args.user_stream_upstream;
    tokio::spawn(replay.clone().run_clock());
    if let Some(path) = &args.status_file {
        replay::write_atomically(path, replay.status_json().as_bytes())
            .with_context(|| format!("cannot write status file {}", path.display()))?;
        tokio::spawn(replay::write_status_forever(replay.clone(), path.clone()));
    }
    tokio::spawn(server::keep_books_current(venue.clone()));
    tokio::spawn(server::serve(venue.clone(), listener));
    if let Some(path) = &args.ready_file {
        replay::write_atomically(path, format!("{}\n", address.port()).as_bytes())
            .with_context(|| format!("cannot write ready file {}", path.display()))?;
    }
    println!("listening on {address}");
    std::io::stdout().flush()?;

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    // Tell connections to send a going-away close frame, and give them a moment.
    venue.commands.send_modify(|c| c.shutdown = true);
    let deadline = Instant::now() + Duration::from_millis(500);
    while replay.clients.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(path) = &args.status_file {
        let _ = replay::write_atomically(path, replay.status_json().as_bytes());
    }
    eprintln!(
        "twinfeed-venue: stopped at position {} after {} messages",
        replay.position(),
        replay.messages_sent.load(Ordering::Relaxed)
    );
    Ok(())
}
