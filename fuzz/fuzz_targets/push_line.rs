//! Arbitrary bytes as capture lines (split at `\n`) through `Pipeline::push_line`, with the
//! default configuration and with fixed `filter.symbols`; the invariants of
//! `twinfeed_fuzz::invariants` are checked after each input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinfeed_fuzz::push_lines(&mut twinfeed_fuzz::default_pipeline(), data);
    twinfeed_fuzz::push_lines(&mut twinfeed_fuzz::filtered_pipeline(), data);
});
