//! The venue's capture loader (`twinfeed_venue::capture::Capture`): arbitrary bytes as capture
//! lines, classified (stream frames, REST snapshots, control lines) with the venue's own JSON
//! scanner, then what serving asks of it: symbols, matching streams, the snapshot at each line
//! and its body cut to a few levels.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use twinfeed_venue::capture::Capture;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(capture) = Capture::from_lines(Path::new("fuzz.txt"), text.split('\n')) else {
        return;
    };
    let lines = capture.len();
    for symbol in capture.symbols() {
        let stream = format!("{}@depth@100ms", symbol.to_lowercase());
        let _ = capture.matching_streams(&stream);
        for line in [None, Some(0), Some(lines / 2), Some(lines)] {
            if let Some(snapshot) = capture.snapshot_at(&symbol, line) {
                for limit in [0, 1, 5, 1000] {
                    let _ = capture.depth_body(snapshot, limit);
                }
            }
        }
    }
    let _ = twinfeed_venue::capture::truncate_levels(data, 3);
});
