//! L2 order book rebuilt from a REST snapshot plus depth diffs, following Binance's documented
//! procedure:
//! - diffs that arrive before the snapshot are buffered and replayed against it;
//! - USD-M futures: drop diffs with `u < lastUpdateId`; the first kept diff must have
//!   `U <= lastUpdateId <= u`; each later diff's `pu` must equal the previous diff's `u`;
//! - spot: drop diffs with `u <= lastUpdateId`; the first kept diff must have
//!   `U <= lastUpdateId + 1 <= u`; each later diff's `U` must equal the previous `u + 1`.
//!
//! A break marks the book invalid (levels cleared) until the next snapshot; the caller turns the
//! returned [`Applied::Gap`] into a gap record. Keys are exact fixed-point prices.
//!
//! Ids never freeze the book: once in sync, a diff whose `u` goes backwards (below the last
//! applied id; an exact repeat of it is a harmless duplicate) breaks continuity like a hole
//! does, so one forged diff with a huge `u` costs a gap and a resync, not every later diff.
//! Venues that send their book over the websocket itself (OKX `books`, Hyperliquid `l2Book`)
//! take [`Book::apply_venue`] instead: a snapshot replaces the book and makes it valid at once;
//! an update changes levels, and must continue OKX's `seqId` chain (`prevSeqId` equal to the
//! last `seqId`) where the venue sends one; an OKX checksum is verified on the book after every
//! message that carries one. A break or a mismatch invalidates the book until the next
//! snapshot (OKX sends one after a resubscribe), and updates meanwhile are ignored.
//!
//! A snapshot that the stream cannot reach (more than [`MAX_SNAPSHOT_LEAD`] ids ahead of it, or
//! still ahead after [`MAX_STALE_DIFFS`] diffs) is a gap as well. Id arithmetic saturates.

use std::collections::VecDeque;

use crate::decode::{BookAction, BookUpdate, DepthDiff, Level, Snapshot};
use crate::ladder::Ladder;

/// Diffs kept while waiting for a snapshot; older ones are dropped (the straddle check then
/// reports the hole).
const MAX_BUFFERED: usize = 20_000;

/// How far (in update ids) a snapshot may be ahead of the diff stream. The stream lags a REST
/// snapshot by at most the few ids in flight while it was fetched; 2^32 ids is hours of the
/// busiest Binance stream, so a larger lead can only be a corrupt snapshot id.
pub const MAX_SNAPSHOT_LEAD: u64 = 1 << 32;

/// Diffs in a row that may be older than a fresh snapshot before it counts as unreachable.
pub const MAX_STALE_DIFFS: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No snapshot yet, or continuity was lost: diffs are buffered.
    Invalid,
    /// Snapshot applied; waiting for the diff that straddles it.
    AwaitingFirstDiff,
    /// In sync.
    Live,
}

/// Result of feeding the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The book changed and is valid.
    Updated,
    /// Nothing to emit: buffered, stale or duplicate diff.
    Ignored,
    /// Continuity broke; `missing` update ids if known (spot), else 0.
    Gap { missing: u64, after_snapshot: bool },
    /// The book after a venue message did not match the checksum it carried (OKX).
    ChecksumMismatch { expected: i32, computed: i32 },
}

/// The top of a book: [`Book::top`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top {
    pub best_bid: Option<Level>,
    pub best_ask: Option<Level>,
    /// Summed sizes of the best levels (exact units; i128, so no sum of i64 sizes overflows).
    pub bid_qty: i128,
    pub ask_qty: i128,
}

#[derive(Debug, Default)]
pub struct Book {
    bids: Ladder<true>,
    asks: Ladder<false>,
    state: Option<State>,
    last_update_id: u64,
    buffered: VecDeque<DepthDiff>,
    /// Diffs older than the snapshot seen in a row while awaiting the first diff.
    stale_diffs: u32,
    /// Diffs dropped from a full buffer.
    pub dropped_buffered: u64,
    pub snapshots: u64,
    /// Venue checksums that matched the rebuilt book ([`Book::apply_venue`]).
    pub checksums_verified: u64,
    /// The last venue sequence id applied (OKX `seqId`).
    last_seq: Option<i64>,
}

impl Book {
    pub fn is_valid(&self) -> bool {
        matches!(self.state, Some(State::Live | State::AwaitingFirstDiff))
    }

    pub fn has_snapshot(&self) -> bool {
        self.snapshots > 0
    }

    pub fn buffered_diffs(&self) -> usize {
        self.buffered.len()
    }

    /// Final update id of the last applied diff (or the snapshot's lastUpdateId).
    pub fn last_update_id(&self) -> u64 {
        self.last_update_id
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best()
    }

    /// The best `limit` levels of each side, best first (empty when the book is invalid).
    pub fn levels(&self, limit: usize) -> (Vec<Level>, Vec<Level>) {
        (
            self.bids.iter().take(limit).collect(),
            self.asks.iter().take(limit).collect(),
        )
    }

    /// Best bid, best ask and the summed sizes of the best `levels` of each side, in one walk
    /// per side (what the pipeline reads after every change).
    pub fn top(&self, levels: usize) -> Top {
        let (best_bid, bid_qty) = self.bids.top(levels);
        let (best_ask, ask_qty) = self.asks.top(levels);
        Top {
            best_bid,
            best_ask,
            bid_qty,
            ask_qty,
        }
    }

    /// Summed quantity of the best `levels` bids and asks (exact units; i128, so no sum of i64
    /// sizes can overflow).
    pub fn depth_qty(&self, levels: usize) -> (i128, i128) {
        (self.bids.top_qty(levels), self.asks.top_qty(levels))
    }

    /// Marks the book invalid (e.g. the connection dropped). Returns whether it was valid.
    pub fn invalidate(&mut self) -> bool {
        let was_valid = self.is_valid();
        self.state = Some(State::Invalid);
        self.last_seq = None;
        self.bids.clear();
        self.asks.clear();
        self.buffered.clear();
        was_valid
    }

    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Applied {
        self.snapshots += 1;
        self.bids.reset(&snapshot.bids);
        self.asks.reset(&snapshot.asks);
        self.last_update_id = snapshot.last_update_id;
        self.state = Some(State::AwaitingFirstDiff);
        self.stale_diffs = 0;
        let mut result = Applied::Updated;
        let buffered = std::mem::take(&mut self.buffered);
        for diff in buffered {
            // Buffered diffs older than the snapshot are expected, however many there are.
            match self.apply(diff, false) {
                Applied::Gap { missing, .. } => {
                    result = Applied::Gap {
                        missing,
                        after_snapshot: true,
                    }
                }
                Applied::Updated if result != Applied::Updated => {}
                _ => {}
            }
        }
        result
    }

    pub fn apply_diff(&mut self, diff: DepthDiff) -> Applied {
        self.apply(diff, true)
    }

    /// Applies a venue book message under snapshot-and-update rules (see the module docs).
    pub fn apply_venue(&mut self, update: &BookUpdate) -> Applied {
        match update.action {
            BookAction::Snapshot => {
                self.snapshots += 1;
                self.bids.reset(&update.bids);
                self.asks.reset(&update.asks);
                self.buffered.clear();
            }
            BookAction::Update => {
                if !self.is_valid() {
                    return Applied::Ignored;
                }
                // OKX: "prevSeqId" is the "seqId" of the previous message on this channel; a
                // message with no change repeats it (prevSeqId == seqId), and after a sequence
                // reset seqId may be below prevSeqId, but the chain still links.
                if let (Some(last), Some(previous)) = (self.last_seq, update.prev_seq_id) {
                    if previous != last {
                        self.invalidate();
                        return Applied::Gap {
                            missing: 0,
                            after_snapshot: false,
                        };
                    }
                }
                for &(px, qty) in &update.bids {
                    self.bids.set(px, qty);
                }
                for &(px, qty) in &update.asks {
                    self.asks.set(px, qty);
                }
                self.bids.follow_touch();
                self.asks.follow_touch();
            }
        }
        if let Some(seq) = update.seq_id {
            self.last_seq = Some(seq);
            self.last_update_id = u64::try_from(seq).unwrap_or(0);
        }
        self.state = Some(State::Live);
        if let Some(expected) = update.checksum {
            let computed = crate::decode::okx::checksum(self.bids.iter(), self.asks.iter());
            if computed != expected {
                self.invalidate();
                return Applied::ChecksumMismatch { expected, computed };
            }
            self.checksums_verified += 1;
        }
        Applied::Updated
    }

    fn apply(&mut self, diff: DepthDiff, live: bool) -> Applied {
        let state = self.state.unwrap_or(State::Invalid);
        if state == State::Invalid {
            if self.buffered.len() == MAX_BUFFERED {
                self.buffered.pop_front();
                self.dropped_buffered += 1;
            }
            self.buffered.push_back(diff);
            return Applied::Ignored;
        }
        let last = self.last_update_id;
        let futures = diff.previous_final_update_id.is_some();
        let next = last.saturating_add(1);
        let in_sync = match state {
            State::AwaitingFirstDiff => {
                let target = if futures { last } else { next };
                if diff.final_update_id < target {
                    // Older than the snapshot: normal for diffs in flight while it was fetched,
                    // unless the snapshot is further ahead than the stream can ever catch up.
                    self.stale_diffs += u32::from(live);
                    let lead = target - diff.final_update_id;
                    if lead <= MAX_SNAPSHOT_LEAD && self.stale_diffs <= MAX_STALE_DIFFS {
                        return Applied::Ignored;
                    }
                    false
                } else {
                    diff.first_update_id <= target
                }
            }
            _ => {
                if diff.final_update_id == last {
                    return Applied::Ignored; // duplicate
                }
                // Backwards (`u < last`) is never in sync: the book holds ids the stream has not
                // reached, or the stream went back.
                diff.final_update_id > last
                    && match diff.previous_final_update_id {
                        Some(previous) => previous == last,
                        None => diff.first_update_id == next,
                    }
            }
        };
        if !in_sync {
            let missing = if futures {
                0
            } else {
                diff.first_update_id.saturating_sub(next)
            };
            let after_snapshot = state == State::AwaitingFirstDiff;
            self.invalidate();
            self.buffered.push_back(diff);
            return Applied::Gap {
                missing,
                after_snapshot,
            };
        }
        for &(px, qty) in &diff.bids {
            self.bids.set(px, qty);
        }
        for &(px, qty) in &diff.asks {
            self.asks.set(px, qty);
        }
        self.bids.follow_touch();
        self.asks.follow_touch();
        self.last_update_id = diff.final_update_id;
        self.state = Some(State::Live);
        Applied::Updated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn okx(action: BookAction, seq: i64, prev: i64, bids: Vec<Level>) -> BookUpdate {
        BookUpdate {
            action,
            seq_id: Some(seq),
            prev_seq_id: Some(prev),
            checksum: None,
            event_ms: 1_652_459_225_000,
            bids,
            asks: vec![(200, 1)],
        }
    }

    #[test]
    fn okx_seq_chain_breaks_are_gaps_until_the_next_snapshot() {
        let mut book = Book::default();
        // Updates before any snapshot wait for it.
        assert_eq!(
            book.apply_venue(&okx(BookAction::Update, 5, 4, vec![])),
            Applied::Ignored
        );
        assert_eq!(
            book.apply_venue(&okx(BookAction::Snapshot, 10, -1, vec![(100, 1)])),
            Applied::Updated
        );
        assert_eq!(
            book.apply_venue(&okx(BookAction::Update, 12, 10, vec![(99, 2)])),
            Applied::Updated
        );
        // No change: OKX repeats the id (prevSeqId == seqId).
        assert_eq!(
            book.apply_venue(&okx(BookAction::Update, 12, 12, vec![])),
            Applied::Updated
        );
        // A sequence reset (seqId below prevSeqId) still links.
        assert_eq!(
            book.apply_venue(&okx(BookAction::Update, 3, 12, vec![(100, 0)])),
            Applied::Updated
        );
        assert_eq!(book.best_bid(), Some((99, 2)));
        assert_eq!(book.last_update_id(), 3);
        // A missed message.
        assert!(matches!(
            book.apply_venue(&okx(BookAction::Update, 9, 7, vec![])),
            Applied::Gap { .. }
        ));
        assert!(!book.is_valid());
        assert_eq!(
            book.apply_venue(&okx(BookAction::Update, 11, 9, vec![])),
            Applied::Ignored
        );
        assert_eq!(
            book.apply_venue(&okx(BookAction::Snapshot, 20, -1, vec![(101, 1)])),
            Applied::Updated
        );
        assert_eq!(book.best_bid(), Some((101, 1)));
    }

    #[test]
    fn a_checksum_that_does_not_match_invalidates_the_book() {
        let mut book = Book::default();
        let mut snapshot = okx(
            BookAction::Snapshot,
            1,
            -1,
            vec![(100_000_000, 100_000_000)],
        );
        // "1:1:0.000002:0.00000001"
        let good = crate::decode::okx::checksum(
            snapshot.bids.iter().copied(),
            snapshot.asks.iter().copied(),
        );
        assert_eq!(good, crc32fast::hash(b"1:1:0.000002:0.00000001") as i32);
        snapshot.checksum = Some(good);
        assert_eq!(book.apply_venue(&snapshot), Applied::Updated);
        assert_eq!(book.checksums_verified, 1);
        let mut update = okx(BookAction::Update, 2, 1, vec![(100_000_000, 300_000_000)]);
        update.checksum = Some(good);
        assert_eq!(
            book.apply_venue(&update),
            Applied::ChecksumMismatch {
                expected: good,
                computed: crc32fast::hash(b"1:3:0.000002:0.00000001") as i32
            }
        );
        assert!(!book.is_valid());
    }

    fn diff(first: u64, last: u64, pu: Option<u64>, bids: Vec<Level>) -> DepthDiff {
        DepthDiff {
            first_update_id: first,
            final_update_id: last,
            previous_final_update_id: pu,
            event_ms: 0,
            bids,
            asks: vec![(200, 1)],
        }
    }

    fn snapshot(id: u64) -> Snapshot {
        Snapshot {
            last_update_id: id,
            event_ms: None,
            bids: vec![(100, 5), (99, 1)],
            asks: vec![(201, 2)],
        }
    }

    #[test]
    fn buffered_futures_diff_straddling_the_snapshot_is_replayed() {
        let mut book = Book::default();
        assert_eq!(
            book.apply_diff(diff(1, 5, Some(0), vec![(98, 1)])),
            Applied::Ignored
        );
        assert_eq!(
            book.apply_diff(diff(6, 12, Some(5), vec![(100, 0), (101, 3)])),
            Applied::Ignored
        );
        assert!(!book.is_valid());
        assert_eq!(book.apply_snapshot(&snapshot(10)), Applied::Updated);
        assert!(book.is_valid());
        assert_eq!(book.best_bid(), Some((101, 3)));
        assert_eq!(book.last_update_id(), 12);
        assert_eq!(
            book.apply_diff(diff(13, 15, Some(12), vec![])),
            Applied::Updated
        );
        assert_eq!(
            book.apply_diff(diff(20, 22, Some(19), vec![])),
            Applied::Gap {
                missing: 0,
                after_snapshot: false
            }
        );
        assert!(!book.is_valid());
        assert_eq!(book.best_bid(), None);
    }

    #[test]
    fn spot_chain_and_gap_size() {
        let mut book = Book::default();
        book.apply_snapshot(&snapshot(10));
        assert_eq!(book.apply_diff(diff(5, 10, None, vec![])), Applied::Ignored);
        assert_eq!(book.apply_diff(diff(9, 14, None, vec![])), Applied::Updated);
        assert_eq!(
            book.apply_diff(diff(15, 16, None, vec![])),
            Applied::Updated
        );
        assert_eq!(
            book.apply_diff(diff(20, 21, None, vec![])),
            Applied::Gap {
                missing: 3,
                after_snapshot: false
            }
        );
        // The next snapshot resyncs from the buffered diff.
        assert_eq!(book.apply_snapshot(&snapshot(20)), Applied::Updated);
        assert!(book.is_valid());
        assert_eq!(book.last_update_id(), 21);
    }

    #[test]
    fn snapshot_newer_than_every_buffered_diff_waits_for_the_straddle() {
        let mut book = Book::default();
        book.apply_diff(diff(1, 5, None, vec![]));
        assert_eq!(book.apply_snapshot(&snapshot(10)), Applied::Updated);
        assert_eq!(
            book.apply_diff(diff(13, 15, None, vec![])),
            Applied::Gap {
                missing: 2,
                after_snapshot: true
            }
        );
    }

    #[test]
    fn a_forged_jump_costs_a_gap_and_a_resync_not_a_frozen_book() {
        // Futures: a diff chained to the book (`pu` = last) but with an absurd `u`.
        let mut book = Book::default();
        book.apply_snapshot(&snapshot(10));
        assert_eq!(
            book.apply_diff(diff(9, 12, Some(8), vec![])),
            Applied::Updated
        );
        let forged = (1u64 << 62) + 5;
        assert_eq!(
            book.apply_diff(diff(13, forged, Some(12), vec![(150, 1)])),
            Applied::Updated
        );
        // The real next diff goes backwards from the forged id: a gap, not "duplicate".
        assert_eq!(
            book.apply_diff(diff(13, 15, Some(12), vec![])),
            Applied::Gap {
                missing: 0,
                after_snapshot: false
            }
        );
        assert!(!book.is_valid());
        assert_eq!(book.best_bid(), None);
        // A fresh snapshot resyncs from the buffered diff; later diffs apply again.
        assert_eq!(book.apply_snapshot(&snapshot(14)), Applied::Updated);
        assert_eq!(book.last_update_id(), 15);
        assert_eq!(
            book.apply_diff(diff(16, 18, Some(15), vec![])),
            Applied::Updated
        );
        // An exact repeat of the last diff stays a harmless duplicate.
        assert_eq!(
            book.apply_diff(diff(16, 18, Some(15), vec![])),
            Applied::Ignored
        );
        assert!(book.is_valid());
    }

    #[test]
    fn a_snapshot_the_stream_cannot_reach_is_a_gap() {
        // Spot with lastUpdateId at the top of the id range: `last + 1` must not wrap.
        let mut book = Book::default();
        book.apply_snapshot(&snapshot(i64::MAX as u64));
        assert!(book.is_valid());
        assert_eq!(
            book.apply_diff(diff(20, 21, None, vec![])),
            Applied::Gap {
                missing: 0,
                after_snapshot: true
            }
        );
        assert!(!book.is_valid());
        // u64::MAX (the decoder refuses it; the book still must not overflow).
        let mut book = Book::default();
        book.apply_snapshot(&snapshot(u64::MAX));
        assert!(matches!(
            book.apply_diff(diff(20, 21, None, vec![])),
            Applied::Gap { .. }
        ));
        // A snapshot a little ahead: the stream catches up, or after MAX_STALE_DIFFS it is a gap.
        let mut book = Book::default();
        book.apply_snapshot(&snapshot(100_000));
        for i in 0..MAX_STALE_DIFFS as u64 {
            assert_eq!(
                book.apply_diff(diff(10 + i, 10 + i, Some(9 + i), vec![])),
                Applied::Ignored
            );
        }
        assert!(matches!(
            book.apply_diff(diff(5000, 5000, Some(4999), vec![])),
            Applied::Gap {
                after_snapshot: true,
                ..
            }
        ));
    }

    #[test]
    fn many_buffered_diffs_older_than_the_snapshot_are_not_a_gap() {
        let mut book = Book::default();
        let count = 3 * MAX_STALE_DIFFS as u64;
        for i in 0..count {
            book.apply_diff(diff(10 + i, 10 + i, Some(9 + i), vec![]));
        }
        assert_eq!(book.apply_snapshot(&snapshot(count)), Applied::Updated);
        assert_eq!(book.last_update_id(), count + 9);
        assert!(book.is_valid());
    }

    #[test]
    fn imbalance_depth() {
        let mut book = Book::default();
        book.apply_snapshot(&snapshot(1));
        assert_eq!(book.depth_qty(1), (5, 2));
        assert_eq!(book.depth_qty(10), (6, 2));
        let top = book.top(10);
        assert_eq!(
            (top.best_bid, top.best_ask),
            (Some((100, 5)), Some((201, 2)))
        );
        assert_eq!((top.bid_qty, top.ask_qty), (6, 2));
        assert_eq!(book.top(1).bid_qty, 5);
    }
}
