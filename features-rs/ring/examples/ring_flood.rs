//! Writes synthetic records into a ring as fast as it can (or at RATE records/s), for
//! measuring the transport alone: `ring_flood NAME COUNT [BATCH] [SLOTS] [RATE]`.
//! Pair it with `benchmarks/ring_throughput.py`, which reads the ring from Python.

use std::time::Instant;

use twinfeed_features::record::{Kind, Record};
use twinfeed_ring::{RingOptions, RingWriter};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: ring_flood NAME COUNT [BATCH=64] [SLOTS=65536] [RATE=0 (unlimited)]");
        std::process::exit(2);
    }
    let name = &args[1];
    let count: u64 = args[2].parse().expect("COUNT");
    let batch: u64 = args.get(3).map_or(64, |s| s.parse().expect("BATCH"));
    let slots: u64 = args.get(4).map_or(1 << 16, |s| s.parse().expect("SLOTS"));
    let rate: f64 = args.get(5).map_or(0.0, |s| s.parse().expect("RATE"));
    let mut writer = RingWriter::create(
        name,
        &RingOptions {
            capacity: slots,
            fingerprint: "0".repeat(64),
        },
    )
    .expect("create ring");
    // Give the reader a moment to attach before the flood starts.
    std::thread::sleep(std::time::Duration::from_millis(
        std::env::var("RING_FLOOD_DELAY_MS").map_or(300, |v| v.parse().unwrap_or(300)),
    ));
    let mut record = Record::empty(Kind::Quote);
    record.symbol_id = 0;
    let start = Instant::now();
    let mut i = 0;
    while i < count {
        if rate > 0.0 {
            // Pace by busy-waiting: the writer's schedule, not the reader, sets the rate.
            let due = start + std::time::Duration::from_secs_f64(i as f64 / rate);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        let end = (i + batch).min(count);
        while i < end {
            record.seq = i;
            record.local_ns = i as i64;
            writer.push(&record);
            i += 1;
        }
        writer.publish();
    }
    writer.close();
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!(
        "ring_flood: wrote {count} records in {elapsed:.3} s ({:.2} M records/s)",
        count as f64 / elapsed / 1e6
    );
}
