//! `--replay`: the same sink over capture files instead of a socket, as fast as the pipeline
//! goes. Lines keep their recorded `local_ns`, so the capture written is the input minus lines
//! that could not enter the pipeline (blank, malformed or torn), which are counted and skipped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use twinfeed_features::capture::{CaptureLine, CaptureReader};
use twinfeed_features::pipeline::split_line;

use crate::sink::{write_stats_file, Sink};

/// Lines between ring publishes.
const BATCH_LINES: usize = 512;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT/SIGTERM end the replay cleanly (ring closed, capture synced) instead of killing it.
fn install_stop_handler() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

pub fn run(sink: &mut Sink, inputs: &[PathBuf], stats_file: Option<&PathBuf>) -> Result<()> {
    install_stop_handler();
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let write_stats = |sink: &Sink, done: bool| -> Result<()> {
        if let Some(path) = stats_file {
            let run = serde_json::json!({
                "mode": "replay",
                "inputs": inputs,
                "done": done,
                "elapsed_s": started.elapsed().as_secs_f64(),
            });
            write_stats_file(path, &sink.stats_json(run))?;
        }
        Ok(())
    };
    'files: for path in inputs {
        let mut reader = CaptureReader::open(path)
            .with_context(|| format!("cannot replay {}", path.display()))?;
        let mut pending = 0;
        while let Some(line) = reader.next_line()? {
            match line {
                CaptureLine::Complete(bytes) => match split_line(bytes) {
                    Ok(Some((local_ns, frame))) => sink.line(local_ns, frame)?,
                    Ok(None) => sink.counters.skipped_lines += 1,
                    Err(message) => {
                        sink.counters.skipped_lines += 1;
                        eprintln!(
                            "twinfeed-ingest: {}:{}: skipped: {message}",
                            path.display(),
                            reader.line_number()
                        );
                    }
                },
                CaptureLine::Torn(bytes) => {
                    let torn = bytes.len();
                    sink.counters.skipped_lines += 1;
                    eprintln!(
                        "twinfeed-ingest: {}:{}: torn last line ({torn} bytes without a newline), skipped",
                        path.display(),
                        reader.line_number(),
                    );
                }
            }
            pending += 1;
            if pending >= BATCH_LINES {
                pending = 0;
                sink.flush();
                if STOP.load(Ordering::Relaxed) {
                    eprintln!("twinfeed-ingest: signal received, replay stopped early");
                    break 'files;
                }
                if last_stats.elapsed() >= Duration::from_millis(500) {
                    last_stats = Instant::now();
                    write_stats(sink, false)?;
                }
            }
        }
    }
    sink.finish()?;
    write_stats(sink, true)?;
    Ok(())
}
