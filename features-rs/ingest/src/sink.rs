//! Where every line goes: into the capture, through the pipeline with the same `local_ns`, and
//! its records straight to the ring (published per line, so a reader sees a record about a
//! microsecond after its frame arrived). Keeping these three in one place is what makes parity
//! hold: a batch run over the capture reproduces the ring's records byte for byte. The capture
//! is written by its own thread ([`CaptureThread`]), off the path from socket to ring.

use crate::capture_thread::CaptureThread;
use crate::clock::now_ns;
use anyhow::{Context, Result};
use twinfeed_features::decode::control;
use twinfeed_features::record::{Kind, Record};
use twinfeed_features::Pipeline;
use twinfeed_ring::{Counter, RingWriter};

/// Captured bytes that make [`Sink::flush_batch`] hand the lines to the capture thread.
const BATCH_HANDOVER_BYTES: usize = 256 << 10;

/// The ingest's own counters (the pipeline counts the rest).
#[derive(Debug, Default, Clone)]
pub struct IngestCounters {
    pub reconnects: u64,
    pub disconnects: u64,
    pub snapshot_requests: u64,
    pub snapshot_errors: u64,
    /// exchangeInfo fetches started, and those that failed (see `crate::instruments`).
    pub instruments_requests: u64,
    pub instruments_errors: u64,
    pub binary_frames: u64,
    pub skipped_lines: u64,
    pub heartbeats: u64,
    pub connected: bool,
    pub last_heartbeat_ns: i64,
    pub last_line_ns: i64,
}

pub struct Sink {
    pipeline: Pipeline,
    capture: Option<CaptureThread>,
    ring: Option<RingWriter>,
    records: Vec<Record>,
    /// Symbol ids with a gap record, and with a book record, since the last [`Sink::take_book_events`].
    gap_symbols: Vec<u16>,
    book_symbols: Vec<u16>,
    /// Symbol names by id, as far as [`Sink::take_book_events`] needed them (refreshed only
    /// when an id is past the end: listing every symbol per call would cost O(symbols) per
    /// batch once a venue has sent thousands of them).
    names: Vec<String>,
    heartbeat_line: String,
    cleaned: String,
    pub counters: IngestCounters,
    stages: Option<StageLog>,
}

/// Per-line stage timestamps for `benchmarks/live_feed.py`, asked for with the environment
/// variable [`STAGE_LOG_ENV`] (a file path; written when the ingest finishes). One row per line
/// that published records, as seven little-endian i64: the ring's write sequence after the
/// line's records were published, then CLOCK_REALTIME stamps: received (the socket read that
/// completed the frame returned; the records' `local_ns`), started (the line's turn came:
/// frames before it in the same read are done), captured (handed to the capture thread's
/// buffer), decoded (the frame parsed into levels and fields), booked (book and features
/// updated, records made), published (records in the ring and the readers woken). At most
/// [`STAGE_LOG_ROWS`] rows are kept (the first ones); stamping costs about 0.1 us per line.
pub struct StageLog {
    path: std::path::PathBuf,
    rows: Vec<[i64; 7]>,
}

pub const STAGE_LOG_ENV: &str = "TWINFEED_STAGE_LOG";
pub const STAGE_LOG_ROWS: usize = 4 << 20;

impl StageLog {
    /// The log the environment asks for, if any.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(STAGE_LOG_ENV).filter(|p| !p.is_empty())?;
        Some(StageLog {
            path: path.into(),
            rows: Vec::with_capacity(1 << 16),
        })
    }

    fn has_room(&self) -> bool {
        self.rows.len() < STAGE_LOG_ROWS
    }

    fn write(&self) -> Result<()> {
        let mut bytes = Vec::with_capacity(self.rows.len() * 56);
        for row in &self.rows {
            for value in row {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        let mut tmp = self.path.as_os_str().to_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, &bytes)
            .with_context(|| format!("cannot write the stage log {}", self.path.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write the stage log {}", self.path.display()))
    }
}

impl Sink {
    pub fn new(
        pipeline: Pipeline,
        capture: Option<CaptureThread>,
        ring: Option<RingWriter>,
    ) -> Self {
        Sink {
            pipeline,
            capture,
            ring,
            records: Vec::with_capacity(4096),
            gap_symbols: Vec::new(),
            book_symbols: Vec::new(),
            names: Vec::new(),
            heartbeat_line: control::line("heartbeat", &[]),
            cleaned: String::new(),
            counters: IngestCounters::default(),
            stages: StageLog::from_env(),
        }
    }

    /// Captures and pushes one line. A frame with raw CR/LF (pretty-printed JSON; never seen
    /// from Binance) has them turned into spaces first, which keeps it the same JSON and one
    /// capture line, and the pipeline sees exactly what the capture holds.
    pub fn line(&mut self, local_ns: i64, frame: &str) -> Result<()> {
        let frame = if memchr::memchr2(b'\n', b'\r', frame.as_bytes()).is_some() {
            self.cleaned.clear();
            self.cleaned.extend(
                frame
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
            );
            self.cleaned.as_str()
        } else {
            frame
        };
        // Stage stamps only while a stage log is asked for and has room (the benchmark's).
        let staged = self.stages.as_ref().is_some_and(StageLog::has_room);
        let started_ns = if staged { now_ns() } else { 0 };
        if let Some(capture) = &mut self.capture {
            capture.write_line(local_ns, frame);
        }
        self.records.clear();
        let mut stamps = [0i64; 3];
        if staged {
            stamps[0] = now_ns();
            let mut decoded_ns = 0;
            self.pipeline
                .push_with(local_ns, frame, &mut self.records, &mut || {
                    decoded_ns = now_ns()
                });
            stamps[1] = decoded_ns;
            stamps[2] = now_ns();
        } else {
            self.pipeline.push(local_ns, frame, &mut self.records);
        }
        for record in &self.records {
            if record.kind == Kind::Gap as u8 {
                self.gap_symbols.push(record.symbol_id);
            } else if record.kind == Kind::Book as u8 {
                self.book_symbols.push(record.symbol_id);
            }
        }
        if let Some(ring) = &mut self.ring {
            if !self.records.is_empty() {
                for record in &self.records {
                    ring.push(record);
                }
                ring.publish();
            }
        }
        if staged && !self.records.is_empty() {
            let written = self.ring.as_ref().map_or(0, |r| r.written());
            if let Some(stages) = &mut self.stages {
                let [captured_ns, decoded_ns, booked_ns] = stamps;
                stages.rows.push([
                    written as i64,
                    local_ns,
                    started_ns,
                    captured_ns,
                    decoded_ns,
                    booked_ns,
                    now_ns(),
                ]);
            }
        }
        self.counters.last_line_ns = local_ns;
        Ok(())
    }

    /// A control line (`connected`, `subscribed`, `disconnected`) of the ingest itself.
    pub fn control(&mut self, local_ns: i64, kind: &str, extra: &[(&str, &str)]) -> Result<()> {
        let line = control::line(kind, extra);
        self.line(local_ns, &line)
    }

    pub fn heartbeat(&mut self, local_ns: i64) -> Result<()> {
        let line = std::mem::take(&mut self.heartbeat_line);
        let result = self.line(local_ns, &line);
        self.heartbeat_line = line;
        self.counters.heartbeats += 1;
        self.counters.last_heartbeat_ns = local_ns;
        result
    }

    pub fn snapshot(&mut self, local_ns: i64, symbol: &str, rest_body: &str) -> Result<()> {
        let line = control::snapshot_line(symbol, rest_body);
        self.line(local_ns, &line)
    }

    /// Hands the captured lines to the capture thread and refreshes the ring's counters
    /// (records are already published, line by line).
    pub fn flush(&mut self) {
        if let Some(capture) = &mut self.capture {
            capture.flush();
        }
        self.publish_counters();
    }

    /// After a burst of frames: refreshes the ring's counters, and hands the captured lines
    /// over only once there are enough of them to be worth waking the capture thread (which
    /// would otherwise compete with the receive loop for a core after every burst). Timers
    /// call [`Sink::flush`], so lines wait at most one heartbeat interval.
    pub fn flush_batch(&mut self) {
        if let Some(capture) = &mut self.capture {
            capture.flush_if_at_least(BATCH_HANDOVER_BYTES);
        }
        self.publish_counters();
    }

    fn publish_counters(&self) {
        let Some(ring) = &self.ring else { return };
        let stats = self.pipeline.stats();
        let c = &self.counters;
        let values = [
            (Counter::Lines, stats.lines),
            (Counter::Frames, stats.frames),
            (Counter::Bytes, stats.bytes),
            (Counter::DecodeErrors, stats.decode_errors),
            (Counter::Records, stats.records),
            (Counter::Gaps, stats.gaps),
            (Counter::Snapshots, stats.snapshots),
            (Counter::Heartbeats, c.heartbeats),
            (Counter::Reconnects, c.reconnects),
            (Counter::Disconnects, c.disconnects),
            (Counter::SnapshotRequests, c.snapshot_requests),
            (Counter::SnapshotErrors, c.snapshot_errors),
            (Counter::BinaryFrames, c.binary_frames),
            (
                Counter::CaptureLines,
                self.capture.as_ref().map_or(0, |w| w.lines),
            ),
            (Counter::SkippedLines, c.skipped_lines),
            (Counter::Connected, c.connected as u64),
            (Counter::LastHeartbeatNs, c.last_heartbeat_ns as u64),
            (Counter::LastLineNs, c.last_line_ns as u64),
        ];
        for (counter, value) in values {
            ring.set_counter(counter, value);
        }
    }

    /// Names of the symbols that had a gap record, and of those that had a book record, since
    /// the last call (each symbol once, in order of id).
    pub fn take_book_events(&mut self) -> (Vec<String>, Vec<String>) {
        if self.gap_symbols.is_empty() && self.book_symbols.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let highest = self
            .gap_symbols
            .iter()
            .chain(&self.book_symbols)
            .copied()
            .max()
            .unwrap_or(0);
        if highest as usize >= self.names.len() {
            self.names = self
                .pipeline
                .symbols()
                .into_iter()
                .map(str::to_string)
                .collect();
        }
        let names = &self.names;
        let resolve = |ids: &mut Vec<u16>| {
            ids.sort_unstable();
            ids.dedup();
            let out = ids
                .iter()
                .filter_map(|&id| names.get(id as usize).cloned())
                .collect();
            ids.clear();
            out
        };
        let gaps = resolve(&mut self.gap_symbols);
        let books = resolve(&mut self.book_symbols);
        (gaps, books)
    }

    /// Flushes everything, syncs the capture and marks the ring closed.
    pub fn finish(&mut self) -> Result<()> {
        self.flush();
        if let Some(capture) = &mut self.capture {
            capture.finish().context("cannot finish the capture")?;
        }
        if let Some(ring) = &mut self.ring {
            ring.close();
        }
        if let Some(stages) = &self.stages {
            stages.write()?;
        }
        Ok(())
    }

    /// The stats file's content.
    pub fn stats_json(&self, extra: serde_json::Value) -> serde_json::Value {
        let stats = self.pipeline.stats();
        let c = &self.counters;
        let errors: Vec<_> = stats
            .errors
            .iter()
            .rev()
            .take(10)
            .map(|e| serde_json::json!({"line": e.line, "message": e.message}))
            .collect();
        serde_json::json!({
            "pid": std::process::id(),
            "version": twinfeed_features::VERSION,
            "fingerprint": self.pipeline.fingerprint(),
            "updated_ns": crate::clock::now_ns(),
            "connected": c.connected,
            "counters": {
                "lines": stats.lines,
                "frames": stats.frames,
                "bytes": stats.bytes,
                "decode_errors": stats.decode_errors,
                "malformed_lines": stats.malformed_lines,
                "unknown_frames": stats.unknown_frames,
                "filtered": stats.filtered,
                "records": stats.records,
                "gaps": stats.gaps,
                "snapshots": stats.snapshots,
                "heartbeats": c.heartbeats,
                "reconnects": c.reconnects,
                "disconnects": c.disconnects,
                "snapshot_requests": c.snapshot_requests,
                "snapshot_errors": c.snapshot_errors,
                "instruments_requests": c.instruments_requests,
                "instruments_errors": c.instruments_errors,
                "binary_frames": c.binary_frames,
                "skipped_lines": c.skipped_lines,
                "last_heartbeat_ns": c.last_heartbeat_ns,
                "last_line_ns": c.last_line_ns,
            },
            "symbols": self.pipeline.symbols(),
            "last_errors": errors,
            "ring": self.ring.as_ref().map(|r| serde_json::json!({
                "path": r.path(),
                "capacity": r.capacity(),
                "write_seq": r.written(),
            })),
            "capture": self.capture.as_ref().map(|w| serde_json::json!({
                "path": w.current_path(),
                "lines": w.lines,
            })),
            "run": extra,
        })
    }
}

/// Writes `value` to `path` atomically (temporary file, then rename).
pub fn write_stats_file(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
