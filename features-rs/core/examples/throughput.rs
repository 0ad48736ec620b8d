//! Where the time goes: reading lines, decoding frames, the whole pipeline.
//! `cargo run --release --example throughput -- FILE` (plain capture file).

use std::time::Instant;

use twinfeed_features::decode::decode_frame;
use twinfeed_features::pipeline::split_line;
use twinfeed_features::{FeatureConfig, Pipeline};

fn main() {
    let path = std::env::args().nth(1).expect("usage: throughput FILE");
    let data = std::fs::read(&path).expect("read");
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let n = lines.len() as f64;
    let mb = data.len() as f64 / 1e6;
    let report = |label: &str, secs: f64| {
        println!(
            "{label:<12} {:>6.2} M lines/s {:>7.0} MB/s",
            n / secs / 1e6,
            mb / secs
        );
    };
    for _ in 0..2 {
        let t = Instant::now();
        let mut ok = 0usize;
        for line in &lines {
            if let Ok(Some((_, frame))) = split_line(line) {
                ok += decode_frame(frame).is_ok() as usize;
            }
        }
        report("decode", t.elapsed().as_secs_f64());
        assert!(ok > 0);
        let t = Instant::now();
        let mut pipeline = Pipeline::new(FeatureConfig::default());
        let mut out = Vec::with_capacity(1 << 16);
        for line in &lines {
            pipeline.push_line(line, &mut out);
            if out.len() > 60_000 {
                out.clear();
            }
        }
        report("pipeline", t.elapsed().as_secs_f64());
    }
}
