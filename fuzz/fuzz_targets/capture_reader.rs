//! Capture files: arbitrary bytes written to a file and read by `CaptureReader` (format
//! detected from the first bytes), every line pushed through a pipeline. The first byte picks
//! how the rest is stored:
//! 0 plain, 1 gzip, 2 zstd, 3 gzip then the raw tail (garbage after the last member),
//! 4 zstd then the raw tail, 5 gzip cut short, 6 zstd cut short, 7 two gzip members,
//! anything else the bytes as they are (which may or may not be a valid compressed stream).
#![no_main]

use std::io::Write;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use twinfeed_features::capture::{CaptureLine, CaptureReader};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 1).expect("in memory")
}

fn path() -> PathBuf {
    std::env::temp_dir().join(format!("twinfeed-fuzz-capture-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let half = rest.len() / 2;
    let file = match mode {
        0 => rest.to_vec(),
        1 => gzip(rest),
        2 => zstd(rest),
        3 => [gzip(&rest[..half]), rest[half..].to_vec()].concat(),
        4 => [zstd(&rest[..half]), rest[half..].to_vec()].concat(),
        5 => {
            let whole = gzip(rest);
            whole[..whole.len() * 3 / 4].to_vec()
        }
        6 => {
            let whole = zstd(rest);
            whole[..whole.len() * 3 / 4].to_vec()
        }
        7 => [gzip(&rest[..half]), gzip(&rest[half..])].concat(),
        _ => data.to_vec(),
    };
    let path = path();
    std::fs::write(&path, &file).expect("write the capture");
    let mut reader = match CaptureReader::open(&path) {
        Ok(reader) => reader,
        Err(_) => return,
    };
    let mut pipeline = twinfeed_fuzz::default_pipeline();
    let mut out = Vec::new();
    let mut lines = 0u64;
    loop {
        match reader.next_line() {
            Ok(Some(CaptureLine::Complete(line))) => pipeline.push_line(line, &mut out),
            Ok(Some(CaptureLine::Torn(_))) => pipeline.skip_line("torn".into()),
            Ok(None) | Err(_) => break,
        }
        lines += 1;
        assert_eq!(
            reader.line_number(),
            lines,
            "line numbers follow the lines read"
        );
    }
    twinfeed_fuzz::invariants::check(&pipeline, &out);
    let compressed_magic =
        rest.starts_with(&[0x1f, 0x8b]) || rest.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if mode == 0 && !compressed_magic {
        // Plain text: every byte is read back, and the lines are exactly the file's.
        let expected = rest.split(|&b| b == b'\n').count() as u64
            - u64::from(rest.is_empty() || rest.ends_with(b"\n"));
        assert_eq!(lines, expected, "plain capture line count");
    }
});
