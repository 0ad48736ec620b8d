//! The ingest's websocket client (`twinfeed_ingest::ws`) against a loopback server sending
//! arbitrary bytes. First byte odd: the bytes after it are the whole handshake answer; even:
//! a correct `101` answer, then the bytes after it as frames. Must end (error, close or end of
//! stream) without a panic or a hang; every text message it yields is valid UTF-8 (a `&str`)
//! and is pushed through a pipeline as a frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let outcome = if mode & 1 == 1 {
        twinfeed_fuzz::ws_session(Some(rest), &[])
    } else {
        twinfeed_fuzz::ws_session(None, rest)
    };
    if mode & 1 == 0 {
        assert!(
            outcome.connected,
            "a correct handshake was refused: {:?}",
            outcome.error
        );
    }
    let mut pipeline = twinfeed_fuzz::default_pipeline();
    let mut out = Vec::new();
    for (i, text) in outcome.texts.iter().enumerate() {
        pipeline.push(1_723_161_255_088_169_167 + i as i64, text, &mut out);
    }
    twinfeed_fuzz::invariants::check(&pipeline, &out);
});
