//! The venue's replayed depth (`twinfeed_venue::book`, `frames`, `replay`): arbitrary bytes as
//! capture lines, then what serving a replay asks of them: REST depth and the touch from the
//! book brought to several lines of two laps (a lap change rebuilds it), the diff-depth stream
//! merged per 100/250/500 ms window, partial depth built from the book, and the replay clock
//! (lap length, lap shifts, venue time, the status line) at every position of a looped replay.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use twinfeed_venue::book::{Books, Flavour};
use twinfeed_venue::capture::Capture;
use twinfeed_venue::frames::{depth_messages, partial_depth_messages};
use twinfeed_venue::replay::{Replay, Speed};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(capture) = Capture::from_lines(Path::new("fuzz.txt"), text.split('\n')) else {
        return;
    };
    let capture = Arc::new(capture);
    let lines = capture.len();
    let books = Books::new(&capture);
    for symbol in capture.symbols() {
        for lap in [0u64, 1] {
            for line in [0, 1, lines / 2, lines, lines + 1] {
                for (limit, flavour) in [(5, Flavour::Futures), (1000, Flavour::Spot)] {
                    let _ = books.depth_body(&capture, &symbol, (line, lap), limit, flavour, 0, 7);
                }
                let _ = books.top(&capture, &symbol, (line, lap));
            }
        }
    }
    books.advance_all(&capture, (lines, 2));
    for (index, stream) in capture.streams.iter().enumerate() {
        if stream.depth_speed.is_some() {
            for window in [0, 100, 250, 500] {
                let _ = depth_messages(&capture, index as u32, window);
            }
            for levels in [5, 20] {
                let _ = partial_depth_messages(&capture, index as u32, levels, 100);
            }
        }
    }
    let replay = Replay::new(capture.clone(), Speed::Max, true);
    let _ = replay.lap_ms();
    for position in [0, 1, lines as u64, lines as u64 + 1, 3 * lines as u64 + 2] {
        replay.advance_to(position);
        let _ = replay.now_ms();
        let _ = replay.shift_ms(u64::MAX);
        let _ = replay.status_json();
    }
});
