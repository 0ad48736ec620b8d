//! The one replay position all clients share, and the clock that moves it.
//!
//! Positions count capture lines replayed, across laps: position `p` means lines `0..p` of the
//! (looped) capture are out, so line `p % lines` of lap `p / lines` is next.
//!
//! - Timed speeds (`--speed 1`, `10`, any factor): the clock starts when the first websocket
//!   client subscribes to something. Line `i` of lap `k` is due at
//!   `(k * lap_ns + offset_ns[i]) / speed` after that start, where `offset_ns` is the line's
//!   `local_receive_ns` minus the first line's and `lap_ns` is the capture's span plus 1 ms.
//!   The clock never pauses: clients that come and go see the market where it is now.
//! - `--rate N` works like `max` (each client on its own position), but each connection sends
//!   N of its messages per second, evenly spaced (see [`crate::pacer`]).
//! - `--speed max`: there is no clock; each client sends as fast as its socket takes, and the
//!   position is the furthest any client has got.
//!
//! A client that subscribes starts at the current position (as on a live venue).
//!
//! ## One clock
//! Venue time ([`Replay::now_ms`]: `/fapi/v1/time`, the REST depth `E`, bookTicker `time`) is
//! exchange time at the replay position: the capture's event time `E` of the last line
//! replayed (see [`Capture::event_ms`]), advancing with the replay speed until the next line is
//! due (never past that line's time), and never going back. Lap `k` of a `--loop` replay is
//! moved forward by `k * lap_ms` ([`Replay::shift_ms`]), `lap_ms` being the capture's span plus
//! the gap between laps; frames sent in lap `k` carry `E`/`T` moved by the same amount (see
//! [`crate::frames`]), so times never go back across laps either.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::capture::Capture;

/// How fast the capture is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Max,
    Factor(f64),
    /// `--rate N`: each connection on its own position, N messages per second (see `pacer`).
    Rate(f64),
}

impl Speed {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!("expected a positive number or `max`, got {text:?}")),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Speed::Max => "max".into(),
            Speed::Factor(f) => format!("{f}"),
            Speed::Rate(r) => format!("{r}/s"),
        }
    }

    /// Whether one clock on the captured timing releases lines to all clients (`--speed N`);
    /// otherwise each client keeps its own position (`max`, `--rate`).
    pub fn is_timed(&self) -> bool {
        matches!(self, Speed::Factor(_))
    }
}

/// A pause between laps so that a looped replay never releases a whole lap at once.
const LAP_GAP_NS: u64 = 1_000_000;

pub struct Replay {
    pub capture: Arc<Capture>,
    pub speed: Speed,
    pub looping: bool,
    position: AtomicU64,
    started: AtomicBool,
    start: Notify,
    released: watch::Sender<u64>,
    pub clients: AtomicUsize,
    pub messages_sent: AtomicU64,
    /// When a timed replay's clock started.
    origin: OnceLock<Instant>,
    /// The latest venue time handed out (venue time never goes back).
    clock_ms: AtomicI64,
}

impl Replay {
    pub fn new(capture: Arc<Capture>, speed: Speed, looping: bool) -> Self {
        Replay {
            capture,
            speed,
            looping,
            position: AtomicU64::new(0),
            started: AtomicBool::new(false),
            start: Notify::new(),
            released: watch::Sender::new(0),
            clients: AtomicUsize::new(0),
            messages_sent: AtomicU64::new(0),
            origin: OnceLock::new(),
            clock_ms: AtomicI64::new(i64::MIN),
        }
    }

    pub fn lines(&self) -> u64 {
        self.capture.len() as u64
    }

    /// The position where the replay ends (`u64::MAX` when looping).
    pub fn end(&self) -> u64 {
        if self.looping {
            u64::MAX
        } else {
            self.lines()
        }
    }

    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Starts the clock (first subscription); later calls do nothing.
    pub fn start(&self) {
        if !self.started.swap(true, Ordering::AcqRel) {
            self.start.notify_one();
        }
    }

    /// At `--speed max`: a client got to `position`.
    pub fn advance_to(&self, position: u64) {
        self.position
            .fetch_max(position.min(self.end()), Ordering::AcqRel);
    }

    /// Positions released by the clock (timed speeds only).
    pub fn released(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    /// Capture line index (0-based) and lap of the last line replayed, if any.
    pub fn last_line(&self) -> Option<(usize, u64)> {
        let position = self.position();
        let lines = self.lines();
        (position > 0 && lines > 0).then(|| {
            let last = position - 1;
            ((last % lines) as usize, last / lines)
        })
    }

    /// The end of the replayed part and its lap: capture lines `..end_line` of lap `lap` are
    /// out (`(0, 0)` before any).
    pub fn replayed(&self) -> (usize, u64) {
        match self.last_line() {
            Some((index, lap)) => (index + 1, lap),
            None => (0, 0),
        }
    }

    /// Venue milliseconds one lap moves time forward: the capture's span (schedule and event
    /// time, whichever is longer) plus the gap between laps.
    pub fn lap_ms(&self) -> i64 {
        let schedule = self.lap_ns().div_ceil(1_000_000) as i64;
        let events = match (self.capture.event_ms.first(), self.capture.event_ms.last()) {
            (Some(first), Some(last)) => last.saturating_sub(*first).saturating_add(1),
            _ => 0,
        };
        schedule.max(events)
    }

    /// How far lap `lap`'s times are moved forward.
    pub fn shift_ms(&self, lap: u64) -> i64 {
        (lap as i64).saturating_mul(self.lap_ms())
    }

    /// Venue time now (see the module docs), in milliseconds.
    pub fn now_ms(&self) -> i64 {
        let lines = self.lines();
        if lines == 0 {
            return 0;
        }
        let event = &self.capture.event_ms;
        let position = self.position();
        let value = match self.last_line() {
            None => event[0],
            Some((index, lap)) => {
                let shift = self.shift_ms(lap);
                let base = event[index].saturating_add(shift);
                match (self.speed, self.origin.get()) {
                    (Speed::Factor(speed), Some(origin)) if position < self.end() => {
                        let capture_ns = (origin.elapsed().as_nanos() as f64 * speed) as u64;
                        let since_ms =
                            capture_ns.saturating_sub(self.due_ns(position - 1)) / 1_000_000;
                        let next = if index + 1 < event.len() {
                            event[index + 1].saturating_add(shift)
                        } else {
                            event[0].saturating_add(self.shift_ms(lap.saturating_add(1)))
                        };
                        base.saturating_add(since_ms as i64).min(next.max(base))
                    }
                    _ => base,
                }
            }
        };
        self.clock_ms.fetch_max(value, Ordering::AcqRel).max(value)
    }

    fn lap_ns(&self) -> u64 {
        self.capture
            .offset_ns
            .last()
            .copied()
            .unwrap_or(0)
            .saturating_add(LAP_GAP_NS)
    }

    /// The position at `elapsed_ns` of capture time after the start.
    fn position_at(&self, elapsed_ns: u64) -> u64 {
        let lines = self.lines();
        let lap = elapsed_ns / self.lap_ns();
        let within = elapsed_ns % self.lap_ns();
        let index = self.capture.offset_ns.partition_point(|&o| o <= within) as u64;
        lap.saturating_mul(lines)
            .saturating_add(index)
            .min(self.end())
    }

    /// Capture time at which position `p`'s line is due.
    fn due_ns(&self, position: u64) -> u64 {
        let lines = self.lines();
        let lap = position / lines;
        let index = (position % lines) as usize;
        lap.saturating_mul(self.lap_ns())
            .saturating_add(self.capture.offset_ns[index])
    }

    /// Runs the clock of a timed replay until the capture is consumed (forever when looping).
    pub async fn run_clock(self: Arc<Self>) {
        let Speed::Factor(speed) = self.speed else {
            return;
        };
        if self.lines() == 0 {
            return;
        }
        if !self.started() {
            self.start.notified().await;
        }
        let origin = *self.origin.get_or_init(Instant::now);
        loop {
            let capture_ns = (origin.elapsed().as_nanos() as f64 * speed) as u64;
            let position = self.position_at(capture_ns);
            self.position.store(position, Ordering::Release);
            self.released.send_replace(position);
            if position >= self.end() {
                return;
            }
            let wait_ns = (self.due_ns(position).saturating_sub(capture_ns) as f64 / speed) as u64;
            // Timers have millisecond resolution; sleeping less only burns a core.
            tokio::time::sleep(Duration::from_nanos(wait_ns.max(500_000))).await;
        }
    }

    /// The status document (see the crate docs).
    pub fn status_json(&self) -> String {
        let (line_index, lap) = match self.last_line() {
            Some((index, lap)) => (index.to_string(), lap),
            None => ("null".into(), 0),
        };
        let local_ns = self.last_line().map_or("null".into(), |(index, _)| {
            self.capture.local_ns[index].to_string()
        });
        let finished = !self.looping && self.position() >= self.lines();
        format!(
            "{{\"version\":1,\"pid\":{},\"capture\":{},\"lines\":{},\"speed\":\"{}\",\"loop\":{},\"started\":{},\"finished\":{},\"position\":{},\"lap\":{},\"line_index\":{},\"local_ns\":{},\"clients\":{},\"messages_sent\":{},\"server_time_ms\":{},\"lap_ms\":{},\"time_offset_ms\":{}}}",
            std::process::id(),
            serde_json::to_string(&self.capture.path.display().to_string()).unwrap_or_default(),
            self.lines(),
            self.speed.label(),
            self.looping,
            self.started(),
            finished,
            self.position(),
            lap,
            line_index,
            local_ns,
            self.clients.load(Ordering::Relaxed),
            self.messages_sent.load(Ordering::Relaxed),
            self.now_ms(),
            self.lap_ms(),
            self.shift_ms(lap),
        )
    }
}

/// Rewrites `path` atomically (temporary file + rename) every 50 ms while the status changes.
pub async fn write_status_forever(replay: Arc<Replay>, path: std::path::PathBuf) {
    let mut last = String::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let status = replay.status_json();
        if status != last {
            if let Err(error) = write_atomically(&path, status.as_bytes()) {
                eprintln!("twinfeed-venue: cannot write status file: {error}");
            }
            last = status;
        }
    }
}

/// Writes `bytes` to `path` so that readers see the old or the new content, never a mix.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn replay(looping: bool) -> Replay {
        let lines = [
            r#"1000 {"stream":"a@trade","data":{}}"#,
            r#"1000 {"stream":"a@trade","data":{}}"#,
            r#"3000 {"stream":"a@trade","data":{}}"#,
        ];
        let capture = Capture::from_lines(Path::new("t"), lines).unwrap();
        Replay::new(Arc::new(capture), Speed::Factor(1.0), looping)
    }

    #[test]
    fn positions_follow_the_capture_schedule() {
        let replay = replay(false);
        assert_eq!(replay.position_at(0), 2);
        assert_eq!(replay.position_at(1999), 2);
        assert_eq!(replay.position_at(2000), 3);
        assert_eq!(replay.position_at(u64::MAX / 2), 3, "capped without --loop");
        assert_eq!(replay.due_ns(2), 2000);
    }

    #[test]
    fn loops_continue_after_a_gap() {
        let replay = replay(true);
        let lap = 2000 + LAP_GAP_NS;
        assert_eq!(replay.due_ns(3), lap);
        assert_eq!(replay.position_at(lap - 1), 3);
        assert_eq!(replay.position_at(lap), 5);
        assert_eq!(replay.position_at(lap + 2000), 6);
    }

    #[test]
    fn status_reports_the_last_line_replayed() {
        let replay = replay(false);
        assert!(replay.status_json().contains("\"line_index\":null"));
        replay.advance_to(2);
        let status: serde_json::Value = serde_json::from_str(&replay.status_json()).unwrap();
        assert_eq!(status["line_index"], 1);
        assert_eq!(status["local_ns"], 1000);
        assert_eq!(status["position"], 2);
        replay.advance_to(99);
        assert_eq!(replay.position(), 3);
        assert!(replay.status_json().contains("\"finished\":true"));
        assert_eq!(Speed::parse("MAX").unwrap(), Speed::Max);
        assert_eq!(Speed::parse("10").unwrap(), Speed::Factor(10.0));
        assert!(Speed::parse("0").is_err());
        assert_eq!(Speed::Rate(50_000.0).label(), "50000/s");
        assert!(!Speed::Rate(1.0).is_timed() && Speed::Factor(1.0).is_timed());
    }

    #[test]
    fn the_clock_is_capture_time_and_laps_move_it_forward() {
        let lines = [
            r#"1000000 {"stream":"a@trade","data":{"E":500}}"#,
            r#"2000000 {"stream":"a@trade","data":{"E":400}}"#,
            r#"3000000 {"stream":"a@trade","data":{"E":502}}"#,
        ];
        let capture = Capture::from_lines(Path::new("t"), lines).unwrap();
        assert_eq!(capture.event_ms, [500, 500, 502], "never decreasing");
        let replay = Replay::new(Arc::new(capture), Speed::Max, true);
        assert_eq!(
            replay.now_ms(),
            500,
            "before the first line: the first time"
        );
        // Schedule span 2 ms + 1 ms gap = 3 ms, event span 2 ms + 1.
        assert_eq!(replay.lap_ms(), 3);
        replay.advance_to(3);
        assert_eq!(replay.now_ms(), 502);
        replay.advance_to(4);
        assert_eq!(replay.replayed(), (1, 1));
        assert_eq!(replay.now_ms(), 503, "lap 1 starts after lap 0 ends");
        assert_eq!(replay.shift_ms(1), 3);
        let status: serde_json::Value = serde_json::from_str(&replay.status_json()).unwrap();
        assert_eq!(status["lap"], 1);
        assert_eq!(status["time_offset_ms"], 3);
        assert_eq!(status["server_time_ms"], 503);
    }

    #[test]
    fn hostile_times_saturate_instead_of_wrapping() {
        // Event times across the range of i64 (a hostile or corrupt capture): the lap shifts
        // and venue time saturate. They overflowed (a panic with overflow checks, a
        // negative venue time without; found by the venue_book fuzz target).
        let lines = [
            r#"1000000 {"stream":"a@trade","data":{"E":1}}"#,
            r#"2000000 {"stream":"a@trade","data":{"E":9223372036854775000}}"#,
        ];
        let capture = Capture::from_lines(Path::new("t"), lines).unwrap();
        let replay = Replay::new(Arc::new(capture), Speed::Max, true);
        assert_eq!(replay.lap_ms(), 9_223_372_036_854_775_000);
        replay.advance_to(5);
        assert_eq!(replay.replayed(), (1, 2));
        assert_eq!(replay.now_ms(), i64::MAX);
        let status: serde_json::Value = serde_json::from_str(&replay.status_json()).unwrap();
        assert_eq!(status["server_time_ms"], i64::MAX);
    }
}
