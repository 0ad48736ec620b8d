//! Structure-aware: real-shaped Binance frames with extreme numbers and deep nesting (see
//! `twinfeed_fuzz::hostile`) through `Pipeline::push_line`, invariants checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinfeed_fuzz::hostile::{ConfigChoice, Session};

fuzz_target!(|session: Session| {
    let mut pipeline = match session.config {
        ConfigChoice::Default => twinfeed_fuzz::default_pipeline(),
        ConfigChoice::Filtered => twinfeed_fuzz::filtered_pipeline(),
        ConfigChoice::Fine {
            bar_ms,
            quote_every_n,
            book_every_n,
            book_levels,
            flow_window_ms,
        } => twinfeed_fuzz::fine_pipeline(
            bar_ms as u64,
            quote_every_n as u32,
            book_every_n as u32,
            book_levels as u32,
            flow_window_ms as u64,
        ),
    };
    let text = session.render().join("\n");
    twinfeed_fuzz::push_lines(&mut pipeline, text.as_bytes());
});
