//! One side of an L2 book as a price ladder: a window of [`WINDOW`] price ticks around the
//! touch, indexed by price, plus an ordered map for every level outside it.
//!
//! Why: on the real Binance captures a depth diff carries ~70 levels, spread over the first
//! thousands of ticks of each side, and the book holds thousands of levels per side. A
//! `BTreeMap` pays a pointer chase per level and a sorted vector a binary search (and a move on
//! insert or delete); the ladder finds a level in the window with one subtraction and one
//! division (the `depth_book` example measures all three on the real captures). The idea is
//! hftbacktest's `ROIVectorMarketDepth`, which drops levels outside its range of interest;
//! here nothing is dropped, so the book stays exact whatever the prices do.
//!
//! Invariants:
//! - every level is in exactly one place: in the window when its price is on the grid
//!   (`lo + i * tick`) with `i < WINDOW`, else in `outside`; a quantity of 0 is no level;
//! - every non-zero slot has an index below `top`, and `slots[top - 1]` is non-zero;
//! - no non-zero slot has an index below `low` (a bound, not always tight), so clearing zeroes
//!   `low..top` only: a venue that sends its whole book every message (Hyperliquid `l2Book`,
//!   a few dozen levels) then costs its levels, not the 24k-slot span below the touch;
//! - reads merge the window and `outside` in price order, so which levels sit where (the grid
//!   and the window's position, chosen from the data) changes speed, never a result.
//!
//! Keys are prices for bids and negated prices for asks, so on both sides a larger key is a
//! better price. The decoder admits only positive prices, so negating cannot overflow.

use std::collections::BTreeMap;
use std::iter::Peekable;

use crate::decode::Level;

/// Ticks in the window: 256 KiB of sizes per side, allocated at a symbol's first snapshot
/// (3,276 USD of BTCUSDT futures at a 0.1 tick, 327 USD of spot at 0.01). Measured with the
/// `depth_book` example: 2^13 ticks left most spot updates in the map (about 3x slower there);
/// 2^15 takes them in the window on both real captures.
pub const WINDOW: usize = 1 << 15;

/// Where the best price is put when the window moves: most levels and updates are behind the
/// touch, and the touch has room to move before the window must follow it.
const RECENTER_AT: usize = WINDOW * 3 / 4;

#[derive(Debug, Default)]
pub struct Ladder<const BID: bool> {
    /// Price units per slot (0: no grid yet, every level is in `outside`).
    tick: i64,
    /// Key of slot 0.
    lo: i64,
    /// Sizes by slot (allocated with the first grid).
    slots: Vec<i64>,
    /// One past the highest non-zero slot.
    top: usize,
    /// No non-zero slot lies below this index.
    low: usize,
    /// Levels off the grid or outside the window, by key.
    outside: BTreeMap<i64, i64>,
}

#[inline(always)]
fn key<const BID: bool>(px: i64) -> i64 {
    if BID {
        px
    } else {
        -px
    }
}

impl<const BID: bool> Ladder<BID> {
    /// The window slot of `key`, if it has one.
    #[inline(always)]
    fn slot(&self, key: i64) -> Option<usize> {
        if self.tick == 0 {
            return None;
        }
        let offset = key.checked_sub(self.lo)?;
        if offset < 0 {
            return None;
        }
        // Unsigned division: cheaper, and both operands are non-negative.
        let (index, rest) = (
            offset as u64 / self.tick as u64,
            offset as u64 % self.tick as u64,
        );
        (rest == 0 && index < WINDOW as u64).then_some(index as usize)
    }

    /// Sets the size at `px` (0 removes the level).
    #[inline]
    pub fn set(&mut self, px: i64, qty: i64) {
        let key = key::<BID>(px);
        match self.slot(key) {
            Some(index) => {
                self.slots[index] = qty;
                if qty != 0 {
                    self.top = self.top.max(index + 1);
                    self.low = self.low.min(index);
                } else if index + 1 == self.top {
                    self.shrink_top();
                }
            }
            None if qty == 0 => {
                self.outside.remove(&key);
            }
            None => {
                self.outside.insert(key, qty);
            }
        }
    }

    fn shrink_top(&mut self) {
        while self.top > 0 && self.slots[self.top - 1] == 0 {
            self.top -= 1;
        }
    }

    pub fn clear(&mut self) {
        if self.low < self.top {
            self.slots[self.low..self.top].fill(0);
        }
        self.top = 0;
        self.low = WINDOW;
        self.outside.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.top == 0 && self.outside.is_empty()
    }

    /// Replaces the side with `levels` (a snapshot), choosing the grid from their prices.
    pub fn reset(&mut self, levels: &[Level]) {
        self.clear();
        // The grid: the greatest common divisor of the price steps, anchored at the best price.
        let best = levels.iter().map(|l| key::<BID>(l.0)).max();
        if let Some(best) = best {
            let tick = levels
                .iter()
                .fold(0u64, |g, l| gcd(g, best.abs_diff(key::<BID>(l.0))));
            if let Ok(tick) = i64::try_from(tick) {
                if tick > 0 {
                    self.tick = tick;
                    if self.slots.is_empty() {
                        // Zeroed by the allocator (fresh pages, touched only where levels go)
                        // rather than written: most of the window is never used.
                        self.slots = vec![0; WINDOW];
                    }
                    // A placement that does not fit the key range leaves the grid where it was.
                    self.place(best);
                }
            }
        }
        for &(px, qty) in levels {
            self.set(px, qty);
        }
    }

    /// Moves the window so the best price sits at [`RECENTER_AT`] when it has strayed from
    /// there (out of the window, or near either end), moving levels between the window and
    /// `outside`. Called once per diff, not per level.
    pub fn follow_touch(&mut self) {
        if self.tick == 0 {
            return;
        }
        let window_best = self.top.checked_sub(1);
        let outside_best = self.outside.last_key_value().map(|(k, _)| *k);
        let best = match (window_best, outside_best) {
            (Some(index), outside) => {
                let in_band = (WINDOW / 4..WINDOW - WINDOW / 16).contains(&index);
                let window_key = self.lo + index as i64 * self.tick;
                if in_band && !outside.is_some_and(|k| k > window_key) {
                    return;
                }
                outside.map_or(window_key, |k| k.max(window_key))
            }
            (None, Some(outside)) => outside,
            (None, None) => return,
        };
        // An off-grid best cannot anchor the window: leave things as they are.
        if best.abs_diff(self.lo) % self.tick as u64 != 0 {
            return;
        }
        let old_lo = self.lo;
        if !self.place(best) || self.lo == old_lo {
            return;
        }
        // Everything in the old window goes to `outside`, then the new window takes its levels.
        let (tick, lo_then) = (self.tick, old_lo);
        for index in self.low.min(self.top)..self.top {
            let qty = std::mem::take(&mut self.slots[index]);
            if qty != 0 {
                self.outside.insert(lo_then + index as i64 * tick, qty);
            }
        }
        self.top = 0;
        self.low = WINDOW;
        let hi = self.lo.saturating_add((WINDOW as i64 - 1) * tick);
        let moving: Vec<(i64, i64)> = self
            .outside
            .range(self.lo..=hi)
            .filter(|(k, _)| self.slot(**k).is_some())
            .map(|(k, q)| (*k, *q))
            .collect();
        for (key, qty) in moving {
            self.outside.remove(&key);
            let index = self.slot(key).expect("on the grid and in the window");
            self.slots[index] = qty;
            self.top = self.top.max(index + 1);
            self.low = self.low.min(index);
        }
    }

    /// Sets `lo` so `best` is at [`RECENTER_AT`]; false (nothing changed) if that does not fit
    /// the key range. Only moves the grid: callers move the levels.
    fn place(&mut self, best: i64) -> bool {
        let span = (RECENTER_AT as i64).checked_mul(self.tick);
        let top = ((WINDOW - 1) as i64).checked_mul(self.tick);
        match (span.and_then(|s| best.checked_sub(s)), top) {
            (Some(lo), Some(top)) if lo.checked_add(top).is_some() => {
                self.lo = lo;
                true
            }
            _ => false,
        }
    }

    /// Levels best first, as (price, size).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = Level> + '_ {
        Merge {
            window: WindowLevels {
                ladder: self,
                next: self.top,
            },
            outside: self.outside.iter().rev().peekable(),
            pending: None,
        }
        .map(|(k, qty)| (key::<BID>(k), qty))
    }

    pub fn best(&self) -> Option<Level> {
        self.iter().next()
    }

    /// Summed size of the best `n` levels.
    #[inline]
    pub fn top_qty(&self, n: usize) -> i128 {
        self.top(n).1
    }

    /// The best level and the summed size of the best `n` levels, in one walk.
    #[inline]
    pub fn top(&self, n: usize) -> (Option<Level>, i128) {
        let mut levels = self.iter();
        let Some(best) = levels.next() else {
            return (None, 0);
        };
        let rest: i128 = levels
            .take(n.saturating_sub(1))
            .map(|(_, q)| q as i128)
            .sum();
        let first = if n == 0 { 0 } else { best.1 as i128 };
        (Some(best), first + rest)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The window's levels, best (highest key) first.
struct WindowLevels<'a, const BID: bool> {
    ladder: &'a Ladder<BID>,
    next: usize,
}

impl<const BID: bool> Iterator for WindowLevels<'_, BID> {
    type Item = (i64, i64);

    #[inline]
    fn next(&mut self) -> Option<(i64, i64)> {
        let slots = &self.ladder.slots[..self.next];
        let index = slots.iter().rposition(|&q| q != 0)?;
        self.next = index;
        Some((
            self.ladder.lo + index as i64 * self.ladder.tick,
            slots[index],
        ))
    }
}

/// Two descending (key, size) sequences with distinct keys, merged.
struct Merge<'a, const BID: bool, O: Iterator<Item = (&'a i64, &'a i64)>> {
    window: WindowLevels<'a, BID>,
    outside: Peekable<O>,
    pending: Option<(i64, i64)>,
}

impl<'a, const BID: bool, O: Iterator<Item = (&'a i64, &'a i64)>> Iterator for Merge<'a, BID, O> {
    type Item = (i64, i64);

    #[inline]
    fn next(&mut self) -> Option<(i64, i64)> {
        let window = self.pending.take().or_else(|| self.window.next());
        match (window, self.outside.peek()) {
            (Some(w), Some(&(&k, &q))) if k > w.0 => {
                self.pending = Some(w);
                self.outside.next();
                Some((k, q))
            }
            (Some(w), _) => Some(w),
            (None, Some(_)) => self.outside.next().map(|(k, q)| (*k, *q)),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a side must equal: a map of price to size, best first.
    fn model<const BID: bool>(levels: &BTreeMap<i64, i64>) -> Vec<Level> {
        let all = levels.iter().map(|(p, q)| (*p, *q));
        if BID {
            all.rev().collect()
        } else {
            all.collect()
        }
    }

    fn check<const BID: bool>(
        snapshot: &[Level],
        diffs: &[Vec<Level>],
    ) -> Result<(), TestCaseError> {
        let mut ladder = Ladder::<BID>::default();
        let mut expected = BTreeMap::new();
        ladder.reset(snapshot);
        for &(px, qty) in snapshot {
            if qty == 0 {
                expected.remove(&px);
            } else {
                expected.insert(px, qty);
            }
        }
        for (number, diff) in diffs.iter().enumerate() {
            // Every fourth diff is a whole new book instead (a venue that streams snapshots):
            // clearing must leave no level of the old one behind.
            if number % 4 == 3 {
                ladder.reset(diff);
                expected.clear();
            }
            for &(px, qty) in diff {
                ladder.set(px, qty);
                if qty == 0 {
                    expected.remove(&px);
                } else {
                    expected.insert(px, qty);
                }
            }
            ladder.follow_touch();
            let want = model::<BID>(&expected);
            prop_assert_eq!(ladder.iter().collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(ladder.best(), want.first().copied());
            let top: i128 = want.iter().take(5).map(|l| l.1 as i128).sum();
            prop_assert_eq!(ladder.top(5), (want.first().copied(), top));
            prop_assert_eq!(ladder.top(0), (want.first().copied(), 0));
            prop_assert_eq!(ladder.is_empty(), want.is_empty());
        }
        Ok(())
    }

    /// Prices on a tick of 10 around 100_000, with some far away, off the grid, and extreme.
    fn price() -> impl Strategy<Value = i64> {
        prop_oneof![
            8 => (9_000i64..11_000).prop_map(|t| t * 10),
            2 => (0i64..3 * WINDOW as i64).prop_map(|t| 100_000 + (t - WINDOW as i64) * 40),
            1 => 1i64..1_000_000,
            1 => proptest::sample::select(vec![1, i64::MAX, i64::MAX - 7, 1 << 62]),
        ]
    }

    fn levels() -> impl Strategy<Value = Vec<Level>> {
        proptest::collection::vec(
            (price(), prop_oneof![1 => Just(0i64), 3 => 1i64..1000]),
            0..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any snapshot and diffs (and snapshots between them): the ladder reads exactly as an
        /// ordered map of the same levels.
        #[test]
        fn reads_as_an_ordered_map(snapshot in levels(), diffs in proptest::collection::vec(levels(), 1..30)) {
            check::<true>(&snapshot, &diffs)?;
            check::<false>(&snapshot, &diffs)?;
        }
    }

    #[test]
    fn the_window_follows_the_touch_and_keeps_far_levels() {
        let mut bids = Ladder::<true>::default();
        bids.reset(&[(1_000, 1), (990, 2), (10, 3)]);
        assert_eq!(bids.tick, 10);
        // The touch runs far above the window: levels move between window and map, none lost.
        for step in 1..=3i64 {
            let px = 1_000 + step * 10 * WINDOW as i64;
            bids.set(px, step);
            bids.follow_touch();
            assert!(bids.slot(px).is_some(), "the window follows the best price");
        }
        let all: Vec<Level> = bids.iter().collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[3..], [(1_000, 1), (990, 2), (10, 3)]);
        assert!(all.windows(2).all(|w| w[0].0 > w[1].0));
    }
}
