//! The ingest's websocket frame reader (`twinfeed_ingest::ws::FrameReader`): arbitrary bytes as
//! what the server sends after the handshake, received in pieces cut at places taken from the
//! first byte (the whole at once when it is 0). Must end (a message, an error, a close, more
//! bytes needed) without a panic; every text message is valid UTF-8 within the size cap, every
//! pong at most 125 bytes, and text messages go through a pipeline as frames. A first byte of
//! 0xFF instead sends the rest as the whole handshake answer to the real client
//! (`twinfeed_ingest::ws::connect`) over loopback.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches the cap (the ingest's is 16 MiB).
const MAX_MESSAGE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == 0xFF {
        twinfeed_fuzz::ws_session(Some(rest), &[]);
        return;
    }
    let outcome = twinfeed_fuzz::ws_frames(rest, mode, MAX_MESSAGE);
    let mut pipeline = twinfeed_fuzz::default_pipeline();
    let mut out = Vec::new();
    for (i, text) in outcome.texts.iter().enumerate() {
        pipeline.push(1_723_161_255_088_169_167 + i as i64, text, &mut out);
    }
    twinfeed_fuzz::invariants::check(&pipeline, &out);
});
