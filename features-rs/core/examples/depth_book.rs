//! Where the depth path's time goes, per price level, on real captures:
//! `cargo run --release -p twinfeed-features --example depth_book -- FILE...` (plain or .gz).
//!
//! For each capture it keeps the depth diffs and REST snapshots and times, best of a few runs:
//! - `decode`: `decode_frame` on each depth frame (JSON to fixed-point levels);
//! - `pipeline`: `Pipeline::push_line` on the depth lines only (decode, book, features, records);
//! - one row per book structure replaying the decoded diffs with the pipeline's reads after
//!   each (best bid and ask, summed size of the best `book_levels` levels): the BTreeMap the
//!   book used before, a sorted vector with the best price at the end, and the book's own
//!   structure ([`twinfeed_features::book`]).
//!
//! Figures are ns per price level carried by the diffs. Run it on a quiet machine.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use twinfeed_features::book::Book;
use twinfeed_features::decode::{decode_frame, DepthDiff, Level, Message, Snapshot};
use twinfeed_features::pipeline::split_line;
use twinfeed_features::{FeatureConfig, Pipeline};

const RUNS: usize = 5;
const TOP: usize = 5;

fn read(path: &str) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if path.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        out
    } else {
        raw
    }
}

/// One side of a book under test: prices in fixed point, `bids` keep the highest first.
trait Side: Default {
    fn set(&mut self, px: i64, qty: i64);
    fn clear(&mut self);
    fn best(&self) -> Option<Level>;
    fn top_qty(&self, n: usize) -> i128;
}

#[derive(Default)]
struct TreeSide<const BID: bool>(BTreeMap<i64, i64>);

impl<const BID: bool> Side for TreeSide<BID> {
    fn set(&mut self, px: i64, qty: i64) {
        if qty == 0 {
            self.0.remove(&px);
        } else {
            self.0.insert(px, qty);
        }
    }
    fn clear(&mut self) {
        self.0.clear()
    }
    fn best(&self) -> Option<Level> {
        if BID {
            self.0.iter().next_back()
        } else {
            self.0.iter().next()
        }
        .map(|(p, q)| (*p, *q))
    }
    fn top_qty(&self, n: usize) -> i128 {
        if BID {
            self.0.values().rev().take(n).map(|&q| q as i128).sum()
        } else {
            self.0.values().take(n).map(|&q| q as i128).sum()
        }
    }
}

/// Sorted so the best price is last (most updates are near it, so inserts move few levels).
#[derive(Default)]
struct VecSide<const BID: bool>(Vec<Level>);

impl<const BID: bool> VecSide<BID> {
    /// Index of `px`, or where it goes; ordered worst to best.
    fn find(&self, px: i64) -> Result<usize, usize> {
        if BID {
            self.0.binary_search_by(|l| l.0.cmp(&px))
        } else {
            self.0.binary_search_by(|l| px.cmp(&l.0))
        }
    }
}

impl<const BID: bool> Side for VecSide<BID> {
    fn set(&mut self, px: i64, qty: i64) {
        match (self.find(px), qty) {
            (Ok(i), 0) => {
                self.0.remove(i);
            }
            (Ok(i), q) => self.0[i].1 = q,
            (Err(_), 0) => {}
            (Err(i), q) => self.0.insert(i, (px, q)),
        }
    }
    fn clear(&mut self) {
        self.0.clear()
    }
    fn best(&self) -> Option<Level> {
        self.0.last().copied()
    }
    fn top_qty(&self, n: usize) -> i128 {
        self.0.iter().rev().take(n).map(|l| l.1 as i128).sum()
    }
}

#[derive(Default)]
struct TestBook<B: Side, A: Side> {
    bids: B,
    asks: A,
}

impl<B: Side, A: Side> TestBook<B, A> {
    fn snapshot(&mut self, s: &Snapshot) {
        self.bids.clear();
        self.asks.clear();
        s.bids.iter().for_each(|&(p, q)| self.bids.set(p, q));
        s.asks.iter().for_each(|&(p, q)| self.asks.set(p, q));
    }
    fn diff(&mut self, d: &DepthDiff) -> i128 {
        d.bids.iter().for_each(|&(p, q)| self.bids.set(p, q));
        d.asks.iter().for_each(|&(p, q)| self.asks.set(p, q));
        let touch = self.bids.best().map_or(0, |l| l.0) + self.asks.best().map_or(0, |l| l.0);
        touch as i128 + self.bids.top_qty(TOP) - self.asks.top_qty(TOP)
    }
}

enum Event {
    Snapshot(Snapshot),
    Diff(DepthDiff),
}

fn best_of(mut run: impl FnMut() -> i128) -> (f64, i128) {
    let mut best = f64::MAX;
    let mut check = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        check = std::hint::black_box(run());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, check)
}

fn replay<B: Side, A: Side>(events: &[Event]) -> i128 {
    let mut book = TestBook::<B, A>::default();
    let mut check = 0i128;
    for event in events {
        match event {
            Event::Snapshot(s) => book.snapshot(s),
            Event::Diff(d) => check = check.wrapping_add(book.diff(d)),
        }
    }
    check
}

fn replay_book(events: &[Event]) -> i128 {
    let mut book = Book::default();
    let mut check = 0i128;
    for event in events {
        match event {
            Event::Snapshot(s) => {
                book.apply_snapshot(s);
            }
            Event::Diff(d) => {
                book.apply_diff(d.clone());
                let touch = book.best_bid().map_or(0, |l| l.0) + book.best_ask().map_or(0, |l| l.0);
                let (bid, ask) = book.depth_qty(TOP);
                check = check.wrapping_add(touch as i128 + bid - ask);
            }
        }
    }
    check
}

/// `--digest LEVELS FILE...`: sha256 of every record the pipeline makes from each whole capture
/// with `features.book_levels = LEVELS`, and its counters, to compare builds byte for byte.
fn digest(levels: u32, paths: &[String]) {
    use sha2::Digest;
    for path in paths {
        let data = read(path);
        let mut config = FeatureConfig::default();
        config.features.book_levels = levels;
        let mut pipeline = Pipeline::new(config);
        let mut out = Vec::new();
        let mut sha = sha2::Sha256::new();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            pipeline.push_line(line, &mut out);
            let mut bytes = Vec::new();
            twinfeed_features::record::extend_bytes(&mut bytes, &out);
            sha.update(&bytes);
            out.clear();
        }
        println!(
            "{path} book_levels={levels}: {} {:?}",
            hex::encode(sha.finalize()),
            pipeline.stats()
        );
    }
}

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    assert!(
        !paths.is_empty(),
        "usage: depth_book [--digest LEVELS] FILE..."
    );
    if paths[0] == "--digest" {
        let levels = paths[1].parse().expect("LEVELS");
        return digest(levels, &paths[2..]);
    }
    for path in &paths {
        let data = read(path);
        let lines: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .filter(|line| {
                let frame = line.splitn(2, |b| *b == b' ').nth(1).unwrap_or(b"");
                memchr::memmem::find(frame, b"@depth").is_some()
                    || memchr::memmem::find(frame, b"\"lastUpdateId\"").is_some()
            })
            .collect();
        let frames: Vec<&str> = lines
            .iter()
            .map(|line| split_line(line).expect("line").expect("frame").1)
            .collect();
        let mut events = Vec::new();
        let mut levels = 0usize;
        for frame in &frames {
            match decode_frame(frame).expect("decodes") {
                Message::Depth { diff, .. } => {
                    levels += diff.bids.len() + diff.asks.len();
                    events.push(Event::Diff(diff));
                }
                Message::Snapshot { snapshot, .. } => events.push(Event::Snapshot(snapshot)),
                _ => {}
            }
        }
        // A diff replayed after the snapshot: the book structures see what the pipeline does.
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        println!(
            "{path}: {} depth lines, {levels} levels in diffs, {:.1} MB",
            lines.len(),
            bytes as f64 / 1e6
        );
        let per_level = |label: &str, secs: f64| {
            println!(
                "  {label:<22} {:>7.1} ns/level {:>8.0} k msg/s {:>6.0} MB/s",
                secs * 1e9 / levels as f64,
                lines.len() as f64 / secs / 1e3,
                bytes as f64 / secs / 1e6
            );
        };
        let (secs, _) = best_of(|| frames.iter().map(|f| decode_frame(f).is_ok() as i128).sum());
        per_level("decode", secs);
        let (secs, _) = best_of(|| {
            let mut pipeline = Pipeline::new(FeatureConfig::default());
            let mut out = Vec::with_capacity(1 << 14);
            for line in &lines {
                pipeline.push_line(line, &mut out);
                out.clear();
            }
            pipeline.stats().records as i128
        });
        per_level("pipeline", secs);
        let (secs, expected) = best_of(|| replay::<TreeSide<true>, TreeSide<false>>(&events));
        per_level("book: BTreeMap", secs);
        let (secs, check) = best_of(|| replay::<VecSide<true>, VecSide<false>>(&events));
        assert_eq!(check, expected, "sorted vector disagrees");
        per_level("book: sorted Vec", secs);
        let (secs, _) = best_of(|| replay_book(&events));
        per_level("book: Book (+clone)", secs);
    }
}
