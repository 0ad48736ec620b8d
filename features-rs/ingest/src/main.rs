//! # twinfeed-ingest: the live shell around the feature crate
//!
//! Binance combined websocket streams (or a capture file, with `--replay`) → capture file →
//! feature pipeline → shared-memory ring (`twinfeed-ring`), plus heartbeats, REST depth snapshots,
//! reconnects and a stats file. No feature logic lives here.
//!
//! Invariants:
//! - Every line that enters the pipeline is first written to the capture, with the `local_ns`
//!   the pipeline gets: venue frames, the ingest's control lines (`connected`, `subscribed`,
//!   `disconnected`, `heartbeat`) and REST snapshots. A batch run over the capture therefore
//!   reproduces the ring's records byte for byte.
//! - `local_ns` is CLOCK_REALTIME at receive; nothing else reads a clock except reconnect jitter.
//! - Decode errors are counted, never fatal. Capture write errors are fatal (parity would break).
//! - SIGINT/SIGTERM: a `disconnected` line, flush, ring marked closed, exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use twinfeed_features::capture::{capture_files, CaptureWriter};
use twinfeed_features::{FeatureConfig, Pipeline, SCHEMA_VERSION};
use twinfeed_ingest::capture_thread::CaptureThread;
use twinfeed_ring::{RingOptions, RingWriter, LAYOUT_VERSION};

use twinfeed_ingest::live::LiveSettings;
use twinfeed_ingest::rest::HttpBase;
use twinfeed_ingest::sink::Sink;
use twinfeed_ingest::{live, replay, rest};

/// Live ingest: websocket → capture + features → shared-memory ring.
#[derive(Parser, Debug)]
#[command(
    name = "twinfeed-ingest",
    disable_version_flag = true,
    after_help = "Environment: TWINFEED_STAGE_LOG=FILE writes per-line stage timestamps \
(received, started, captured, decoded, booked, published; the ring sequence) to FILE when \
the ingest finishes, for benchmarks/live_feed.py (see twinfeed_ingest::sink::StageLog)."
)]
struct Args {
    /// Feature config TOML (default: the built-in default config).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Websocket base url (overrides ingest.url), e.g. ws://127.0.0.1:9443.
    #[arg(long)]
    url: Option<String>,
    /// REST base url for depth snapshots (overrides ingest.rest_url; default: the websocket
    /// url with the http scheme).
    #[arg(long)]
    rest_url: Option<String>,
    /// Ring name (/dev/shm/twinfeed-NAME) or absolute path. Without it, only the capture is
    /// written.
    #[arg(long)]
    ring: Option<String>,
    /// Folder of the capture this run writes (capture-NNNNNN.txt, or .txt.zst with
    /// ingest.capture_compression = "zstd"; rotated by size).
    #[arg(long)]
    capture_dir: Option<PathBuf>,
    /// Symbols to subscribe to, comma-separated (default: the config's filter.symbols).
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    /// Run the pipeline over this capture file (or folder of capture-*.txt[.zst]) instead of a
    /// socket, then exit.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Rewrite this JSON stats file atomically about every 500 ms.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    /// Print version, build profile and the config's fingerprint, then exit.
    #[arg(long)]
    version: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twinfeed-ingest: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<FeatureConfig> {
    match path {
        Some(path) => Ok(FeatureConfig::from_toml_file(path)?),
        None => Ok(FeatureConfig::default()),
    }
}

fn version_line(config: &FeatureConfig, origin: Option<&Path>) -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let origin = origin.map_or("default config".to_string(), |p| p.display().to_string());
    format!(
        "twinfeed-ingest {} ({profile} build, git {}, record schema {SCHEMA_VERSION}, ring layout {LAYOUT_VERSION})\nfingerprint {} ({origin})",
        env!("CARGO_PKG_VERSION"),
        option_env!("TWINFEED_GIT_REVISION").unwrap_or("unknown"),
        config.fingerprint(),
    )
}

fn run(args: Args) -> Result<()> {
    let config = load_config(args.config.as_deref())?;
    if args.version {
        println!("{}", version_line(&config, args.config.as_deref()));
        return Ok(());
    }
    if cfg!(debug_assertions) {
        eprintln!("twinfeed-ingest: warning: debug build, do not benchmark it");
    }
    let Some(capture_dir) = args.capture_dir.clone() else {
        bail!("--capture-dir is required: every line the pipeline sees is captured");
    };
    let inputs = match &args.replay {
        Some(path) => Some(replay_inputs(path, &capture_dir)?),
        None => None,
    };
    let symbols: Vec<String> = if args.symbols.is_empty() {
        config.filter.symbols.clone()
    } else {
        args.symbols
            .iter()
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    };
    if inputs.is_none() && symbols.is_empty() {
        bail!("no symbols to subscribe to: set filter.symbols in the config or pass --symbols");
    }
    if !config.filter.symbols.is_empty() {
        for symbol in &symbols {
            if !config.filter.symbols.contains(symbol) {
                eprintln!("twinfeed-ingest: warning: {symbol} is not in the config's filter.symbols; its frames will be filtered out");
            }
        }
    }

    // Signals are caught from here on (live mode): a SIGTERM while the ring is being created
    // and populated stops the ingest in order once the loop starts.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let signals = if inputs.is_none() {
        Some(runtime.block_on(async { live::Signals::install() })?)
    } else {
        None
    };

    let capture = CaptureWriter::create_with(
        &capture_dir,
        config.ingest.rotate_bytes,
        config.ingest.capture_compression(),
    )
    .with_context(|| format!("cannot create a capture in {}", capture_dir.display()))?;
    let ring = match &args.ring {
        Some(name) => Some(RingWriter::create(
            name,
            &RingOptions {
                capacity: config.ingest.ring_slots,
                fingerprint: config.fingerprint(),
            },
        )?),
        None => None,
    };
    if let Some(ring) = &ring {
        eprintln!(
            "twinfeed-ingest: ring {} ({} slots), capture {}",
            ring.path().display(),
            ring.capacity(),
            capture.current_path().display()
        );
    }
    let capture = CaptureThread::start(capture).context("cannot start the capture thread")?;
    let mut sink = Sink::new(Pipeline::new(config.clone()), Some(capture), ring);

    if let Some(inputs) = inputs {
        return replay::run(&mut sink, &inputs, args.stats_file.as_ref());
    }

    let url = args.url.unwrap_or_else(|| config.ingest.url.clone());
    let rest_url = match args.rest_url {
        Some(url) => url,
        None if !config.ingest.rest_url.is_empty() => config.ingest.rest_url.clone(),
        None => rest::rest_url_from_ws(&url),
    };
    let settings = LiveSettings {
        url,
        rest: HttpBase::parse(&rest_url)?,
        market: config.ingest.market.clone(),
        symbols,
        streams: config.filter.streams.clone(),
        depth_stream: config.ingest.depth_stream(),
        heartbeat: Duration::from_millis(config.ingest.heartbeat_ms),
        backoff_initial: Duration::from_millis(config.ingest.backoff_initial_ms),
        backoff_max: Duration::from_millis(config.ingest.backoff_max_ms),
        snapshot_limit: config.ingest.snapshot_limit,
        write_stall: Duration::from_millis(config.ingest.write_stall_ms),
        stats_file: args.stats_file,
    };
    let signals = signals.context("signals are installed in live mode")?;
    runtime.block_on(live::run(sink, settings, signals))
}

/// The files a replay reads, refusing to read the folder it writes.
fn replay_inputs(path: &Path, capture_dir: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        if !path.exists() {
            bail!("--replay {}: no such file", path.display());
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let same = match (path.canonicalize(), capture_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        bail!(
            "--replay {} is the --capture-dir: the replay would read what it writes",
            path.display()
        );
    }
    let files = capture_files(path)?;
    if files.is_empty() {
        bail!("--replay {}: no capture-*.txt[.zst] files", path.display());
    }
    Ok(files)
}
