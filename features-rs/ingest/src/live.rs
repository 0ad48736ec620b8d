//! The live loop: websocket frames, heartbeats, REST snapshots, reconnects and signals, all on
//! one current-thread runtime. Everything that reaches the pipeline goes through [`Sink`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::FutureExt;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use crate::clock::{now_ns, Jitter};
use crate::instruments::{Fetched, Fetcher};
use crate::rest::{self, HttpBase};
use crate::sink::{write_stats_file, Sink};
use crate::ws::{self, Frame, WsClient};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole REST snapshot fetch (connect, request, body) must end within this.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that delivered no byte for this long is dropped and reconnected. Longer than
/// Binance's ping period (3 minutes), so a quiet but healthy connection never trips it.
pub const READ_IDLE: Duration = Duration::from_secs(240);
/// Shortest wait before refetching a failed snapshot.
const SNAPSHOT_RETRY_MIN: Duration = Duration::from_millis(100);
const STATS_PERIOD: Duration = Duration::from_millis(500);
/// Frames taken from the socket without yielding when more are already buffered; they share
/// one capture write, one ring publish and one counter update.
const MAX_BATCH: usize = 1024;

/// What the live loop needs besides the sink.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Websocket base url, e.g. `ws://127.0.0.1:9443`.
    pub url: String,
    pub rest: HttpBase,
    /// `futures` or `spot`.
    pub market: String,
    /// Upper-case symbols to subscribe to.
    pub symbols: Vec<String>,
    /// Streams from the config's `filter.streams`.
    pub streams: Vec<String>,
    /// The diff-depth stream kind subscribed for `depth` (`depth`, `depth@0ms`, ...), from
    /// `ingest.depth_speed_ms` ([`twinfeed_features::config::IngestConfig::depth_stream`]).
    pub depth_stream: String,
    pub heartbeat: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub snapshot_limit: u32,
    /// A connection whose written bytes (pongs) the venue has not taken for this long is
    /// dropped and reconnected: the venue is not reading, and the socket cannot be trusted.
    pub write_stall: Duration,
    pub stats_file: Option<PathBuf>,
}

impl LiveSettings {
    /// Combined-stream names: `<symbol>@<stream>`, depth as `<symbol>@<depth_stream>`.
    pub fn stream_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for symbol in &self.symbols {
            let symbol = symbol.to_ascii_lowercase();
            for stream in &self.streams {
                names.push(match stream.as_str() {
                    "depth" => format!("{symbol}@{}", self.depth_stream),
                    other => format!("{symbol}@{other}"),
                });
            }
        }
        names
    }

    pub fn stream_url(&self) -> String {
        format!(
            "{}/stream?streams={}",
            self.url.trim_end_matches('/'),
            self.stream_names().join("/")
        )
    }

    fn wants_snapshots(&self) -> bool {
        self.streams.iter().any(|s| s == "depth")
    }
}

struct SnapshotDone {
    epoch: u64,
    symbol: String,
    result: Result<String>,
}

enum Event {
    Heartbeat,
    Stats,
    Stop(&'static str),
    Snapshot(SnapshotDone),
    Instruments(Fetched),
}

enum SessionEnd {
    Stop(&'static str),
    Lost { frames: u64 },
}

/// How a batch of received frames ended.
enum Taken {
    /// No whole frame left: read the socket.
    Drained,
    /// The batch is full and more frames are waiting.
    More,
    /// The connection is over, for this reason.
    End(String),
}

struct Live {
    sink: Sink,
    settings: LiveSettings,
    heartbeat: Interval,
    stats: Interval,
    sigint: Signal,
    sigterm: Signal,
    snapshots_tx: mpsc::UnboundedSender<SnapshotDone>,
    snapshots_rx: mpsc::UnboundedReceiver<SnapshotDone>,
    /// exchangeInfo into the capture, per connection.
    instruments: Fetcher,
    /// Connection number; snapshots fetched for an older connection are dropped unseen.
    epoch: u64,
    in_flight: BTreeSet<String>,
    /// Consecutive gaps per symbol without a book record in between (spaces out refetches).
    gap_streak: BTreeMap<String, u32>,
    /// Consecutive failed snapshot fetches per symbol (spaces out retries).
    snapshot_failures: BTreeMap<String, u32>,
    /// The symbols subscribed to: the only ones snapshots are fetched for, so per-symbol state
    /// stays bounded however many symbols a venue sends.
    subscribed: HashSet<String>,
    jitter: Jitter,
    started_ns: i64,
    /// The receive stamp of the frames being taken: when the socket read that completed them
    /// returned (so time a frame spends queued behind others in the ingest counts as
    /// latency, and one clock read serves a whole read's frames).
    received_ns: i64,
}

/// SIGINT and SIGTERM, caught from the moment this is made (inside a tokio runtime): make it
/// before slow setup (creating and populating the ring), so a signal then is honoured once the
/// loop starts, in order, instead of killing the process half-way (which left a temporary ring
/// file of the full size behind).
pub struct Signals {
    sigint: Signal,
    sigterm: Signal,
}

impl Signals {
    pub fn install() -> Result<Self> {
        Ok(Signals {
            sigint: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            sigterm: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }
}

/// Runs until SIGINT or SIGTERM; then writes a `disconnected` line, flushes and returns.
pub async fn run(sink: Sink, settings: LiveSettings, signals: Signals) -> Result<()> {
    let start = Instant::now();
    let mut heartbeat = interval_at(start + settings.heartbeat, settings.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stats = interval_at(start + STATS_PERIOD, STATS_PERIOD);
    stats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (snapshots_tx, snapshots_rx) = mpsc::unbounded_channel();
    let mut live = Live {
        sink,
        heartbeat,
        stats,
        sigint: signals.sigint,
        sigterm: signals.sigterm,
        snapshots_tx,
        snapshots_rx,
        instruments: Fetcher::new(settings.rest.clone(), &settings.market, &settings.symbols),
        epoch: 0,
        in_flight: BTreeSet::new(),
        gap_streak: BTreeMap::new(),
        snapshot_failures: BTreeMap::new(),
        subscribed: settings.symbols.iter().cloned().collect(),
        jitter: Jitter::new(),
        started_ns: now_ns(),
        received_ns: 0,
        settings,
    };
    let url = live.settings.stream_url();
    let mut attempt: u32 = 0;
    loop {
        let seed = live.jitter.below(u64::MAX);
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, ws::connect(url.as_str(), seed));
        tokio::pin!(connecting);
        let connected = loop {
            tokio::select! {
                result = &mut connecting => break result,
                event = live.event() => if let Some(reason) = live.handle(event)? {
                    return live.stop(reason);
                },
            }
        };
        match connected {
            Ok(Ok(ws)) => match live.session(ws, &url).await? {
                SessionEnd::Stop(reason) => return live.stop(reason),
                SessionEnd::Lost { frames } if frames > 0 => attempt = 0,
                SessionEnd::Lost { .. } => {}
            },
            Ok(Err(e)) => {
                live.sink.counters.disconnects += 1;
                eprintln!("twinfeed-ingest: cannot connect to {url}: {e}");
            }
            Err(_) => {
                live.sink.counters.disconnects += 1;
                eprintln!("twinfeed-ingest: cannot connect to {url}: no answer within {CONNECT_TIMEOUT:?}");
            }
        }
        let delay = live.backoff(attempt);
        attempt = attempt.saturating_add(1);
        eprintln!("twinfeed-ingest: reconnecting in {delay:?}");
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                event = live.event() => if let Some(reason) = live.handle(event)? {
                    return live.stop(reason);
                },
            }
        }
    }
}

impl Live {
    /// The next timer, signal or snapshot event (all cancel-safe).
    async fn event(&mut self) -> Event {
        tokio::select! {
            biased;
            _ = self.sigint.recv() => Event::Stop("SIGINT"),
            _ = self.sigterm.recv() => Event::Stop("SIGTERM"),
            _ = self.heartbeat.tick() => Event::Heartbeat,
            Some(done) = self.snapshots_rx.recv() => Event::Snapshot(done),
            Some(done) = self.instruments.rx.recv() => Event::Instruments(done),
            _ = self.stats.tick() => Event::Stats,
        }
    }

    /// Handles an event; `Some(reason)` means stop.
    fn handle(&mut self, event: Event) -> Result<Option<&'static str>> {
        match event {
            Event::Heartbeat => {
                self.sink.heartbeat(now_ns())?;
                self.sink.flush();
                self.after_lines();
            }
            Event::Stats => {
                self.sink.flush();
                self.write_stats();
            }
            Event::Stop(reason) => return Ok(Some(reason)),
            Event::Snapshot(done) => self.on_snapshot(done)?,
            Event::Instruments(done) => {
                let line = self.instruments.on_fetched(done, self.epoch);
                self.sink.counters.instruments_requests = self.instruments.requests;
                self.sink.counters.instruments_errors = self.instruments.errors;
                if let Some(line) = line {
                    self.sink.line(now_ns(), &line)?;
                    self.after_lines();
                }
            }
        }
        Ok(None)
    }

    /// One websocket connection, from `connected` to `disconnected`.
    async fn session(&mut self, mut ws: WsClient, url: &str) -> Result<SessionEnd> {
        self.epoch += 1;
        self.in_flight.clear();
        self.gap_streak.clear();
        self.snapshot_failures.clear();
        if self.epoch > 1 {
            self.sink.counters.reconnects += 1;
        }
        self.sink.counters.connected = true;
        eprintln!("twinfeed-ingest: connected to {url}");
        self.sink.control(now_ns(), "connected", &[("url", url)])?;
        let streams = self.settings.stream_names().join(",");
        self.sink
            .control(now_ns(), "subscribed", &[("streams", &streams)])?;
        self.after_lines();
        self.instruments.on_connected(self.epoch);
        self.sink.counters.instruments_requests = self.instruments.requests;
        // Frames that came with the handshake response.
        self.received_ns = now_ns();
        if self.settings.wants_snapshots() {
            for symbol in self.settings.symbols.clone() {
                self.request_snapshot(symbol, Duration::ZERO);
            }
        }
        let mut frames = 0u64;
        let mut last_read = Instant::now();
        let reason = 'session: loop {
            // Whole frames already received first, a batch at a time (they share one capture
            // hand-over and one counter update); timers and signals get a look between
            // batches; the socket is awaited only when no whole frame is left.
            match self.take_frames(&mut ws, &mut frames).await? {
                Taken::End(reason) => break 'session reason,
                Taken::More => {
                    if let Some(event) = self.event().now_or_never() {
                        if let Some(reason) = self.handle(event)? {
                            return self.shutdown(&mut ws, reason).await;
                        }
                        if let Some(reason) =
                            unhealthy(&mut ws, last_read, self.settings.write_stall)
                        {
                            break 'session reason;
                        }
                        // The event's line (heartbeat, snapshot) was stamped now; the frames
                        // after it may not go back in time.
                        self.received_ns = now_ns();
                    }
                    continue;
                }
                Taken::Drained => {}
            }
            tokio::select! {
                read = ws.fill() => match read {
                    Ok(0) => break 'session "connection ended".to_string(),
                    Ok(_) => {
                        self.received_ns = now_ns();
                        last_read = Instant::now();
                    }
                    Err(e) => break 'session e.to_string(),
                },
                event = self.event() => {
                    if let Some(reason) = self.handle(event)? {
                        return self.shutdown(&mut ws, reason).await;
                    }
                    if let Some(reason) = unhealthy(&mut ws, last_read, self.settings.write_stall) {
                        break 'session reason;
                    }
                }
            }
        };
        self.sink.counters.disconnects += 1;
        eprintln!("twinfeed-ingest: disconnected from {url}: {reason}");
        self.disconnected(&reason)?;
        Ok(SessionEnd::Lost { frames })
    }

    async fn shutdown(&mut self, ws: &mut WsClient, reason: &'static str) -> Result<SessionEnd> {
        self.disconnected(&format!("shutdown ({reason})"))?;
        ws.close(Duration::from_millis(200)).await;
        Ok(SessionEnd::Stop(reason))
    }

    /// Captures and pushes up to [`MAX_BATCH`] whole frames already received.
    async fn take_frames(&mut self, ws: &mut WsClient, frames: &mut u64) -> Result<Taken> {
        let mut taken = 0;
        let end = loop {
            if taken == MAX_BATCH {
                break Taken::More;
            }
            match ws.next_message() {
                Ok(Some(Frame::Text(text))) => {
                    *frames += 1;
                    self.sink.line(self.received_ns, text)?;
                }
                Ok(Some(Frame::Binary)) => self.sink.counters.binary_frames += 1,
                Ok(Some(Frame::Close(reason))) => {
                    ws.close(Duration::from_millis(200)).await;
                    break Taken::End(reason);
                }
                Ok(None) => break Taken::Drained,
                Err(e) => break Taken::End(format!("websocket protocol error: {e}")),
            }
            taken += 1;
        };
        if taken > 0 {
            self.after_lines();
        }
        // Pongs for the pings just read, as far as the socket takes them now.
        if let Err(e) = ws.flush_replies() {
            if !matches!(end, Taken::End(_)) {
                return Ok(Taken::End(format!("cannot write to the venue: {e}")));
            }
        }
        Ok(end)
    }

    fn disconnected(&mut self, reason: &str) -> Result<()> {
        self.sink.counters.connected = false;
        self.sink
            .control(now_ns(), "disconnected", &[("reason", reason)])?;
        // The gap records of a disconnect need no refetch: the next connection fetches all.
        self.sink.flush();
        self.after_lines();
        Ok(())
    }

    /// Publishes what the last lines produced, and schedules a snapshot for every symbol that
    /// had a gap record (spaced out if gaps repeat without a book in between).
    fn after_lines(&mut self) {
        self.sink.flush_batch();
        let (gaps, books) = self.sink.take_book_events();
        for symbol in books {
            self.gap_streak.remove(&symbol);
        }
        if !self.sink.counters.connected || !self.settings.wants_snapshots() {
            return;
        }
        for symbol in gaps {
            if !self.subscribed.contains(&symbol) {
                continue; // not ours: no snapshot, no per-symbol state
            }
            let streak = self.gap_streak.entry(symbol.clone()).or_insert(0);
            let delay = match *streak {
                0 => Duration::ZERO,
                n => self
                    .settings
                    .backoff_initial
                    .saturating_mul(1 << (n - 1).min(16)),
            }
            .min(self.settings.backoff_max);
            *streak += 1;
            self.request_snapshot(symbol, delay);
        }
    }

    fn request_snapshot(&mut self, symbol: String, delay: Duration) {
        if !self.in_flight.insert(symbol.clone()) {
            return;
        }
        self.sink.counters.snapshot_requests += 1;
        let tx = self.snapshots_tx.clone();
        let base = self.settings.rest.clone();
        let path = rest::depth_path(&self.settings.market, &symbol, self.settings.snapshot_limit);
        let epoch = self.epoch;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let result = rest::get(&base, &path, SNAPSHOT_TIMEOUT).await;
            let _ = tx.send(SnapshotDone {
                epoch,
                symbol,
                result,
            });
        });
    }

    fn on_snapshot(&mut self, done: SnapshotDone) -> Result<()> {
        if done.epoch != self.epoch || !self.sink.counters.connected {
            return Ok(());
        }
        self.in_flight.remove(&done.symbol);
        let error = match done.result {
            Ok(body) => match rest::check_snapshot(&body) {
                Ok(()) => {
                    self.snapshot_failures.remove(&done.symbol);
                    self.sink.snapshot(now_ns(), &done.symbol, &body)?;
                    self.after_lines();
                    return Ok(());
                }
                Err(e) => format!("not a depth snapshot: {e}"),
            },
            Err(e) => format!("{e:#}"),
        };
        self.sink.counters.snapshot_errors += 1;
        let failures = self
            .snapshot_failures
            .entry(done.symbol.clone())
            .or_insert(0);
        *failures = failures.saturating_add(1);
        let retry = self
            .settings
            .backoff_initial
            .max(SNAPSHOT_RETRY_MIN)
            .saturating_mul(1 << (*failures - 1).min(16))
            .min(self.settings.backoff_max.max(SNAPSHOT_RETRY_MIN));
        eprintln!(
            "twinfeed-ingest: depth snapshot for {} failed ({} in a row, {} in all), retrying in {retry:?}: {error}",
            done.symbol, failures, self.sink.counters.snapshot_errors
        );
        self.request_snapshot(done.symbol, retry);
        Ok(())
    }

    /// Exponential backoff with jitter in [delay/2, delay].
    fn backoff(&mut self, attempt: u32) -> Duration {
        let initial = self.settings.backoff_initial.as_millis() as u64;
        let max = self.settings.backoff_max.as_millis() as u64;
        let delay = initial.saturating_mul(1 << attempt.min(20)).min(max).max(1);
        Duration::from_millis(delay / 2 + self.jitter.below(delay / 2 + 1))
    }

    fn write_stats(&self) {
        let Some(path) = &self.settings.stats_file else {
            return;
        };
        let run = serde_json::json!({
            "mode": "live",
            "url": self.settings.url,
            "streams": self.settings.stream_names(),
            "started_ns": self.started_ns,
            "connection": self.epoch,
        });
        if let Err(e) = write_stats_file(path, &self.sink.stats_json(run)) {
            eprintln!("twinfeed-ingest: {e:#}");
        }
    }

    fn stop(&mut self, reason: &str) -> Result<()> {
        eprintln!("twinfeed-ingest: {reason}, stopping");
        if self.sink.counters.connected {
            self.disconnected(&format!("shutdown ({reason})"))?;
        }
        self.sink.finish()?;
        self.write_stats();
        Ok(())
    }
}

/// Why a connection should be dropped although it is open: the venue has not read what we
/// wrote for `write_stall`, or has sent nothing for [`READ_IDLE`]. Checked after every timer
/// event (at least once per heartbeat).
fn unhealthy(ws: &mut WsClient, last_read: Instant, write_stall: Duration) -> Option<String> {
    if let Some(stalled) = ws.write_stalled_for() {
        if stalled >= write_stall {
            return Some(format!(
                "the venue has not read for {stalled:?} ({} pings received; reconnecting)",
                ws.pings()
            ));
        }
    }
    let idle = last_read.elapsed();
    (idle >= READ_IDLE).then(|| format!("nothing received for {idle:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_url_uses_lowercase_symbols_and_config_streams() {
        let settings = LiveSettings {
            url: "ws://127.0.0.1:9/".into(),
            rest: HttpBase::parse("http://127.0.0.1:9").unwrap(),
            market: "futures".into(),
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            streams: vec!["bookTicker".into(), "depth".into()],
            depth_stream: "depth@100ms".into(),
            heartbeat: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            snapshot_limit: 1000,
            write_stall: Duration::from_secs(5),
            stats_file: None,
        };
        assert_eq!(
            settings.stream_url(),
            "ws://127.0.0.1:9/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms/ethusdt@bookTicker/ethusdt@depth@100ms"
        );
        assert!(settings.wants_snapshots());
    }
}
