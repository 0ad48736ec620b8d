use std::path::PathBuf;
use std::time::{Duration, Instant};

use twinfeed_features::record::{extend_bytes, Kind, Record, RECORD_SIZE};

use super::*;

const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A unique absolute ring path (removed on drop).
struct TempRing(PathBuf);

impl TempRing {
    fn new(name: &str) -> Self {
        let dir = if std::path::Path::new(SHM_DIR).is_dir() {
            PathBuf::from(SHM_DIR)
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("twinfeed-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempRing(path)
    }

    fn name(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempRing {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn options(capacity: u64) -> RingOptions {
    RingOptions {
        capacity,
        fingerprint: FINGERPRINT.into(),
    }
}

/// A record whose every word is derived from `i`, so a torn copy cannot pass `check`.
fn record(i: u64) -> Record {
    let mut record = Record::empty(Kind::Quote);
    record.seq = i;
    record.line = i ^ 0x5555;
    record.local_ns = i as i64 * 3;
    record.exchange_ns = i as i64 * 5;
    record.update_id = !i;
    record.bid_px = i as f64;
    record.count = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    record
}

fn check(bytes: &[u8]) -> u64 {
    let r = Record::from_bytes(bytes);
    let i = r.seq;
    assert_eq!(
        r.to_bytes(),
        record(i).to_bytes(),
        "torn or corrupt record {i}"
    );
    i
}

#[test]
fn names_map_to_dev_shm_or_absolute_paths() {
    assert_eq!(
        ring_path("btc").unwrap(),
        PathBuf::from("/dev/shm/twinfeed-btc")
    );
    assert_eq!(ring_path("/tmp/x").unwrap(), PathBuf::from("/tmp/x"));
    assert!(matches!(ring_path("a/b"), Err(Error::InvalidName { .. })));
    assert!(ring_path("").is_err());
}

#[test]
fn records_round_trip_byte_for_byte() {
    let ring = TempRing::new("roundtrip");
    let mut writer = RingWriter::create(ring.name(), &options(16)).unwrap();
    let records: Vec<Record> = (0..10).map(record).collect();
    writer.write(&records[..4]);
    let mut reader = RingReader::open(ring.name()).unwrap();
    writer.write(&records[4..]);
    assert_eq!(reader.info().capacity, 16);
    assert_eq!(reader.fingerprint(), FINGERPRINT);
    assert_eq!(reader.writer_pid(), std::process::id());
    let mut out = Vec::new();
    let outcome = reader.read(&mut out, 1000);
    assert_eq!(
        outcome,
        ReadOutcome {
            records: 10,
            lost: 0
        }
    );
    let mut expected = Vec::new();
    extend_bytes(&mut expected, &records);
    assert_eq!(out, expected);
    assert_eq!(reader.read(&mut out, 1000), ReadOutcome::default());
    assert_eq!(reader.backlog(), 0);
}

#[test]
fn capacity_rounds_up_and_latest_skips_history() {
    let ring = TempRing::new("latest");
    let mut writer = RingWriter::create(ring.name(), &options(5)).unwrap();
    assert_eq!(writer.capacity(), 8);
    writer.write(&[record(0), record(1)]);
    let mut reader = RingReader::open_with(
        ring.name(),
        &ReaderOptions {
            start: Start::Latest,
            ..Default::default()
        },
    )
    .unwrap();
    writer.write(&[record(2)]);
    let mut out = Vec::new();
    assert_eq!(reader.read(&mut out, 10).records, 1);
    assert_eq!(check(&out), 2);
}

#[test]
fn overrun_reports_the_exact_loss_and_never_spans_it() {
    let ring = TempRing::new("overrun");
    let mut writer = RingWriter::create(ring.name(), &options(8)).unwrap();
    let mut reader = RingReader::open(ring.name()).unwrap();
    let mut out = Vec::new();
    writer.write(&(0..3).map(record).collect::<Vec<_>>());
    assert_eq!(
        reader.read(&mut out, 2),
        ReadOutcome {
            records: 2,
            lost: 0
        }
    );
    // 20 more: the reader (at 2) is lapped; records 2..15 are gone, 15..23 remain.
    writer.write(&(3..23).map(record).collect::<Vec<_>>());
    out.clear();
    let outcome = reader.read(&mut out, 100);
    assert_eq!(
        outcome,
        ReadOutcome {
            records: 8,
            lost: 13
        }
    );
    let seqs: Vec<u64> = out.chunks_exact(RECORD_SIZE).map(check).collect();
    assert_eq!(seqs, (15..23).collect::<Vec<_>>());
    assert_eq!(reader.lost_total(), 13);
    // Reading in small batches, a loss discovered mid-way ends the batch first.
    writer.write(&(23..25).map(record).collect::<Vec<_>>());
    out.clear();
    assert_eq!(
        reader.read(&mut out, 1),
        ReadOutcome {
            records: 1,
            lost: 0
        }
    );
    writer.write(&(25..40).map(record).collect::<Vec<_>>());
    out.clear();
    // cursor 24, head 40, capacity 8: records 24..32 lost.
    assert_eq!(
        reader.read(&mut out, 3),
        ReadOutcome {
            records: 3,
            lost: 8
        }
    );
    assert_eq!(check(&out[..RECORD_SIZE]), 32);
}

#[test]
fn header_mismatches_name_the_field_and_both_values() {
    let ring = TempRing::new("mismatch");
    let writer = RingWriter::create(ring.name(), &options(4)).unwrap();
    let other = "f".repeat(64);
    let err = RingReader::open_with(
        ring.name(),
        &ReaderOptions {
            expected_fingerprint: Some(other.clone()),
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("fingerprint") && err.contains(&other) && err.contains(FINGERPRINT),
        "{err}"
    );
    drop(writer);
    let mut bytes = std::fs::read(&ring.0).unwrap();
    bytes[12..16].copy_from_slice(&99u32.to_ne_bytes());
    std::fs::write(&ring.0, &bytes).unwrap();
    let err = RingReader::open(ring.name()).err().unwrap().to_string();
    assert!(
        err.contains("schema_version") && err.contains("99"),
        "{err}"
    );
    bytes[0] = b'X';
    std::fs::write(&ring.0, &bytes).unwrap();
    let err = RingReader::open(ring.name()).err().unwrap().to_string();
    assert!(err.contains("magic"), "{err}");
    std::fs::write(&ring.0, b"short").unwrap();
    assert!(RingReader::open(ring.name()).is_err());
    std::fs::remove_file(&ring.0).unwrap();
    let err = RingReader::open(ring.name()).err().unwrap();
    assert!(err.is_retryable(), "{err}");
}

#[test]
fn a_running_writer_is_not_replaced_but_a_dead_one_is() {
    let ring = TempRing::new("inuse");
    let writer = RingWriter::create(ring.name(), &options(4)).unwrap();
    std::mem::forget(writer); // leaves the ring "running", as a killed writer would
    let mut bytes = std::fs::read(&ring.0).unwrap();
    bytes[36..40].copy_from_slice(&1u32.to_ne_bytes()); // pid 1 is always alive
    std::fs::write(&ring.0, &bytes).unwrap();
    let err = RingWriter::create(ring.name(), &options(4)).err().unwrap();
    assert!(matches!(err, Error::InUse { pid: 1, .. }), "{err}");
    bytes[36..40].copy_from_slice(&(i32::MAX as u32).to_ne_bytes()); // no such process
    std::fs::write(&ring.0, &bytes).unwrap();
    let old = RingReader::open(ring.name()).unwrap();
    assert!(!old.writer_alive() && !old.writer_closed());
    let _writer = RingWriter::create(ring.name(), &options(4)).unwrap();
    assert!(old.replaced());
}

#[test]
fn a_sleeping_reader_is_woken_and_sees_close() {
    let ring = TempRing::new("wake");
    let mut writer = RingWriter::create(ring.name(), &options(64)).unwrap();
    let mut reader = RingReader::open(ring.name()).unwrap();
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        let mut out = Vec::new();
        let outcome = reader.read_wait(&mut out, 10, Duration::from_secs(10));
        let first = (outcome, start.elapsed());
        let start = Instant::now();
        out.clear();
        let outcome = reader.read_wait(&mut out, 10, Duration::from_secs(10));
        (first, (outcome, start.elapsed()), reader.writer_closed())
    });
    std::thread::sleep(Duration::from_millis(200));
    writer.write(&[record(0)]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(writer.counter(Counter::Wakeups) >= 1);
    drop(writer);
    let ((first, first_wait), (second, second_wait), closed) = waiter.join().unwrap();
    assert_eq!(
        first,
        ReadOutcome {
            records: 1,
            lost: 0
        }
    );
    assert!(first_wait < Duration::from_secs(5), "{first_wait:?}");
    assert_eq!(second, ReadOutcome::default());
    assert!(second_wait < Duration::from_secs(5), "{second_wait:?}");
    assert!(closed);
}

#[test]
fn wait_times_out_without_a_writer() {
    let ring = TempRing::new("timeout");
    let writer = RingWriter::create(ring.name(), &options(4)).unwrap();
    let reader = RingReader::open(ring.name()).unwrap();
    let start = Instant::now();
    assert!(!reader.wait(Duration::from_millis(50)));
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(writer);
}

#[test]
fn counters_are_visible_to_readers() {
    let ring = TempRing::new("counters");
    let writer = RingWriter::create(ring.name(), &options(4)).unwrap();
    writer.set_counter(Counter::Frames, 42);
    writer.set_counter(Counter::Reconnects, 3);
    let reader = RingReader::open(ring.name()).unwrap();
    assert_eq!(reader.counter(Counter::Frames), 42);
    let counters = reader.counters();
    assert_eq!(counters.len(), COUNTER_NAMES.len());
    assert!(counters.contains(&("reconnects", 3)));
}

/// A writer racing a reader through a small ring: every record returned is whole and in order,
/// and returned + lost accounts for every record written.
#[test]
fn two_thread_stress_never_returns_a_torn_record() {
    const TOTAL: u64 = 400_000;
    let ring = TempRing::new("stress");
    let mut writer = RingWriter::create(ring.name(), &options(256)).unwrap();
    let mut reader = RingReader::open(ring.name()).unwrap();
    let producer = std::thread::spawn(move || {
        let mut batch = Vec::new();
        let mut i = 0;
        while i < TOTAL {
            batch.clear();
            let n = 1 + (i % 37);
            batch.extend((i..(i + n).min(TOTAL)).map(record));
            writer.write(&batch);
            i += batch.len() as u64;
            if i % 4096 < 37 {
                std::thread::yield_now();
            }
        }
    });
    let mut out = Vec::new();
    let (mut received, mut lost, mut next) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < TOTAL {
        assert!(Instant::now() < deadline, "stalled at {next}");
        out.clear();
        let outcome = reader.read_wait(&mut out, 100, Duration::from_millis(100));
        lost += outcome.lost;
        next += outcome.lost;
        for chunk in out.chunks_exact(RECORD_SIZE) {
            assert_eq!(check(chunk), next);
            next += 1;
            received += 1;
        }
    }
    producer.join().unwrap();
    assert_eq!(received + lost, TOTAL);
    assert_eq!(reader.lost_total(), lost);
    assert!(received > 0);
    eprintln!("stress: received {received}, lost {lost}");
}

#[test]
fn a_ring_file_cut_short_under_a_reader_is_an_error_not_sigbus() {
    let ring = TempRing::new("shrunk");
    let mut writer = RingWriter::create(ring.name(), &options(1024)).unwrap();
    let records: Vec<Record> = (0..100).map(record).collect();
    writer.write(&records);
    let mut reader = RingReader::open(ring.name()).unwrap();
    let mut out = Vec::new();
    assert_eq!(reader.read(&mut out, 10).records, 10);
    assert!(reader.check().is_ok());
    drop(writer);
    // Header only: the next slot the reader touches lies past the end of the file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&ring.0)
        .unwrap()
        .set_len(HEADER_SIZE as u64)
        .unwrap();
    out.clear();
    let outcome = reader.read(&mut out, 1000);
    assert_eq!(
        (outcome.records, out.len()),
        (0, 0),
        "zeros are never records"
    );
    let err = reader.check().unwrap_err();
    assert!(matches!(err, Error::Shrunk { .. }), "{err}");
    assert!(
        err.to_string().contains("the file is now 4096 bytes"),
        "{err}"
    );
}

#[test]
fn a_ring_larger_than_the_free_space_is_refused_up_front() {
    // 2^30 slots are 200 GiB: more than any test machine's /dev/shm (or temp dir) has free.
    let ring = TempRing::new("no-room");
    let error = RingWriter::create(
        ring.name(),
        &RingOptions {
            capacity: crate::layout::MAX_CAPACITY,
            fingerprint: FINGERPRINT.into(),
        },
    )
    .err()
    .expect("refused");
    assert!(error.to_string().contains("does not fit"), "{error}");
    let dir = ring.0.parent().unwrap();
    let prefix = ring.0.file_name().unwrap().to_str().unwrap().to_string();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
