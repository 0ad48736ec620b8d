//! Hyperliquid frames through the pipeline: each `\n`-separated line of the input, after the
//! prefix every Hyperliquid frame starts with (`{"channel":"`), is one frame (l2Book, trades,
//! bbo, errors...). The invariants of `twinfeed_fuzz::invariants` are checked after each input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinfeed_fuzz::push_venue_frames(b"{\"channel\":\"", data);
});
