//! OKX frames through the pipeline: each `\n`-separated line of the input, after the prefix
//! every OKX channel frame starts with (`{"arg":{"channel":"`), is one frame, so the fuzzer
//! spends its time inside `decode::okx` and the venue book rules (snapshot, update, seqId
//! chain, checksum) rather than finding the prefix. The invariants of
//! `twinfeed_fuzz::invariants` are checked after each input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    twinfeed_fuzz::push_venue_frames(b"{\"arg\":{\"channel\":\"", data);
});
