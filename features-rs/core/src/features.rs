//! Per-symbol feature state: trade-flow window, event-time bars, EWMA return and realized
//! volatility. Sums are exact fixed-point integers, so the order of additions and removals
//! cannot change a result; floats are derived from them at emission time.
//!
//! Overflow: sizes are i64 (the decoder refuses negative ones), and their sums are i128, which
//! no run can overflow (2^64 maximal terms). Notional (price × size, each i64) sums saturate at
//! the i128 range, which only absurd inputs reach. Durations from the config saturate.

use std::collections::VecDeque;

use crate::decimal::{to_f64, SCALE};

/// Signed trade flow over a sliding window of exchange time.
#[derive(Debug)]
pub struct FlowWindow {
    window_ns: i64,
    trades: VecDeque<(i64, i64)>,
    buy: i128,
    sell: i128,
    /// `values()`, recomputed only when the sums change.
    values: (f64, f64),
}

impl FlowWindow {
    pub fn new(window_ms: u64) -> Self {
        let mut flow = FlowWindow {
            window_ns: ms_to_ns(window_ms),
            trades: VecDeque::new(),
            buy: 0,
            sell: 0,
            values: (0.0, f64::NAN),
        };
        flow.update_values();
        flow
    }

    /// Forgets trades at or before `now_ns - window`.
    pub fn advance(&mut self, now_ns: i64) {
        let horizon = now_ns.saturating_sub(self.window_ns);
        let mut changed = false;
        while let Some(&(ts, signed)) = self.trades.front() {
            if ts > horizon {
                break;
            }
            if signed > 0 {
                self.buy -= signed as i128;
            } else {
                self.sell += signed as i128;
            }
            self.trades.pop_front();
            changed = true;
        }
        if changed {
            self.update_values();
        }
    }

    /// Adds a trade; `signed_qty` > 0 when the buyer was the aggressor.
    pub fn add(&mut self, ts_ns: i64, signed_qty: i64) {
        self.advance(ts_ns);
        if signed_qty > 0 {
            self.buy += signed_qty as i128;
        } else {
            self.sell -= signed_qty as i128;
        }
        self.trades.push_back((ts_ns, signed_qty));
        self.update_values();
    }

    /// (buy - sell volume, (buy - sell) / (buy + sell)); imbalance is NaN with no trades.
    #[inline]
    pub fn values(&self) -> (f64, f64) {
        self.values
    }

    fn update_values(&mut self) {
        self.values = self.compute_values();
    }

    fn compute_values(&self) -> (f64, f64) {
        let total = self.buy + self.sell;
        let flow = wide_to_f64(self.buy - self.sell);
        let imbalance = if total == 0 {
            f64::NAN
        } else {
            exact_f64(self.buy - self.sell) / exact_f64(total)
        };
        (flow, imbalance)
    }
}

/// A bar that just closed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedBar {
    pub end_ns: i64,
    pub trades: u64,
    pub volume: f64,
    pub signed_volume: f64,
    pub vwap: f64,
    pub close_mid: f64,
    pub ret_ewma: f64,
    pub realized_vol: f64,
}

/// Event-time bars with an EWMA of log mid returns between bar closes.
#[derive(Debug)]
pub struct Bars {
    bar_ns: i64,
    alpha: f64,
    current: Option<i64>,
    /// Start of the bar after `current`: events before it cannot close a bar, so most need no
    /// division.
    next_start: i64,
    trades: u64,
    volume: i128,
    signed_volume: i128,
    notional: i128,
    last_mid: f64,
    previous_close_mid: f64,
    ewma: f64,
    ewma_sq: f64,
    /// `ewma_sq.sqrt()`, kept so every record does not take a square root.
    vol: f64,
}

impl Bars {
    pub fn new(bar_ms: u64, alpha: f64) -> Self {
        Bars {
            bar_ns: ms_to_ns(bar_ms),
            alpha,
            current: None,
            next_start: i64::MIN,
            trades: 0,
            volume: 0,
            signed_volume: 0,
            notional: 0,
            last_mid: f64::NAN,
            previous_close_mid: f64::NAN,
            ewma: f64::NAN,
            ewma_sq: f64::NAN,
            vol: f64::NAN,
        }
    }

    pub fn enabled(&self) -> bool {
        self.bar_ns > 0
    }

    /// Moves event time to `ts_ns`; returns the bar it closes, if any. Time never moves a bar
    /// backwards: a late event counts into the current bar.
    pub fn advance(&mut self, ts_ns: i64) -> Option<ClosedBar> {
        if !self.enabled() || ts_ns <= 0 || (self.current.is_some() && ts_ns < self.next_start) {
            return None;
        }
        let index = ts_ns.div_euclid(self.bar_ns);
        let closed = match self.current {
            None => None,
            Some(current) if index > current => Some(self.close(current)),
            _ => return None,
        };
        self.current = Some(index);
        self.next_start = index.saturating_add(1).saturating_mul(self.bar_ns);
        closed
    }

    fn close(&mut self, index: i64) -> ClosedBar {
        let mid = self.last_mid;
        if mid.is_finite() && self.previous_close_mid.is_finite() && self.previous_close_mid > 0.0 {
            let ret = (mid / self.previous_close_mid).ln();
            if self.ewma.is_nan() {
                self.ewma = ret;
                self.ewma_sq = ret * ret;
            } else {
                self.ewma = self.alpha * ret + (1.0 - self.alpha) * self.ewma;
                self.ewma_sq = self.alpha * ret * ret + (1.0 - self.alpha) * self.ewma_sq;
            }
        }
        self.vol = self.ewma_sq.sqrt();
        if mid.is_finite() {
            self.previous_close_mid = mid;
        }
        let vwap = if self.volume == 0 {
            f64::NAN
        } else {
            (exact_f64(self.notional) / exact_f64(self.volume)) / SCALE as f64
        };
        let closed = ClosedBar {
            end_ns: index.saturating_add(1).saturating_mul(self.bar_ns),
            trades: self.trades,
            volume: wide_to_f64(self.volume),
            signed_volume: wide_to_f64(self.signed_volume),
            vwap,
            close_mid: mid,
            ret_ewma: self.ewma,
            realized_vol: self.vol,
        };
        self.trades = 0;
        self.volume = 0;
        self.signed_volume = 0;
        self.notional = 0;
        closed
    }

    pub fn set_mid(&mut self, mid: f64) {
        self.last_mid = mid;
    }

    pub fn add_trade(&mut self, px: i64, qty: i64, buyer_aggressor: bool) {
        let qty_wide = qty as i128;
        self.trades += 1;
        self.volume += qty_wide;
        self.signed_volume += if buyer_aggressor { qty_wide } else { -qty_wide };
        self.notional = self.notional.saturating_add(px as i128 * qty_wide);
    }

    pub fn ret_ewma(&self) -> f64 {
        self.ewma
    }

    pub fn realized_vol(&self) -> f64 {
        self.vol
    }
}

/// Config milliseconds to nanoseconds, saturating (absurd durations never wrap).
fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .unwrap_or(i64::MAX)
}

/// [`to_f64`] of a wide sum: bit for bit the same value when the sum fits an i64.
#[inline(always)]
fn wide_to_f64(units: i128) -> f64 {
    exact_f64(units) / SCALE as f64
}

/// Size-weighted mid (the mid when both sizes are zero), exact in fixed point, then rounded.
#[inline(always)]
fn microprice(bid_px: i64, bid_qty: i64, ask_px: i64, ask_qty: i64, mid: f64) -> f64 {
    let depth = bid_qty as i128 + ask_qty as i128;
    if depth > 0 {
        let weighted = bid_px as i128 * ask_qty as i128 + ask_px as i128 * bid_qty as i128;
        exact_f64(weighted) / exact_f64(depth) / SCALE as f64
    } else {
        mid
    }
}

/// Top-of-book features from exact prices and sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopOfBook {
    pub bid_px: f64,
    pub bid_qty: f64,
    pub ask_px: f64,
    pub ask_qty: f64,
    pub mid: f64,
    pub spread: f64,
    pub spread_bps: f64,
    pub microprice: f64,
}

/// `value as f64` (correctly rounded, bit for bit the same) without the slow software i128
/// conversion: values that fit an i64 use the hardware conversion; larger ones keep their top
/// 64 bits plus a sticky bit for everything below (so ties round exactly as the full value
/// would), convert those, and scale by a power of two, which is exact.
#[inline(always)]
pub fn exact_f64(value: i128) -> f64 {
    if let Ok(small) = i64::try_from(value) {
        return small as f64;
    }
    let magnitude = value.unsigned_abs();
    let shift = 64 - magnitude.leading_zeros();
    let top = (magnitude >> shift) as u64;
    let sticky = (magnitude & ((1u128 << shift) - 1) != 0) as u64;
    let scaled = (top | sticky) as f64 * f64::from_bits((1023 + shift as u64) << 52);
    if value < 0 {
        -scaled
    } else {
        scaled
    }
}

impl TopOfBook {
    pub fn new(bid_px: i64, bid_qty: i64, ask_px: i64, ask_qty: i64) -> Self {
        let (bp, bq, ap, aq) = (
            to_f64(bid_px),
            to_f64(bid_qty),
            to_f64(ask_px),
            to_f64(ask_qty),
        );
        // Exact in fixed point, then one rounding each.
        // Sums and products are converted from i64 when they fit (the same exact integer, so
        // the same f64), from i128 only when they do not: software i128 conversion is slow.
        let mid = exact_f64(bid_px as i128 + ask_px as i128) / (2 * SCALE) as f64;
        let spread = to_f64(ask_px - bid_px);
        let spread_bps = if mid > 0.0 {
            spread / mid * 10_000.0
        } else {
            f64::NAN
        };
        let microprice = microprice(bid_px, bid_qty, ask_px, ask_qty, mid);
        TopOfBook {
            bid_px: bp,
            bid_qty: bq,
            ask_px: ap,
            ask_qty: aq,
            mid,
            spread,
            spread_bps,
            microprice,
        }
    }

    /// The same as `new` with these prices and sizes, for `self` computed from the same
    /// prices: only the size-dependent values are computed again.
    #[inline]
    pub fn with_sizes(&self, bid_px: i64, bid_qty: i64, ask_px: i64, ask_qty: i64) -> Self {
        TopOfBook {
            bid_qty: to_f64(bid_qty),
            ask_qty: to_f64(ask_qty),
            microprice: microprice(bid_px, bid_qty, ask_px, ask_qty, self.mid),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_window_expires_by_event_time() {
        let mut flow = FlowWindow::new(1000);
        flow.add(1_000_000_000, 3 * SCALE);
        flow.add(1_500_000_000, -SCALE);
        assert_eq!(flow.values(), (2.0, 0.5));
        flow.advance(2_000_000_000);
        assert_eq!(flow.values(), (-1.0, -1.0));
        flow.advance(2_600_000_000);
        let (value, imbalance) = flow.values();
        assert_eq!(value, 0.0);
        assert!(imbalance.is_nan());
    }

    #[test]
    fn bars_close_on_event_time_with_vwap() {
        let mut bars = Bars::new(1000, 0.5);
        assert!(bars.advance(1_000_000_000).is_none());
        bars.set_mid(100.0);
        bars.add_trade(100 * SCALE, SCALE, true);
        bars.add_trade(102 * SCALE, 3 * SCALE, false);
        assert!(bars.advance(1_999_999_999).is_none());
        let bar = bars.advance(2_000_000_000).unwrap();
        assert_eq!(
            (bar.end_ns, bar.trades, bar.volume, bar.signed_volume),
            (2_000_000_000, 2, 4.0, -2.0)
        );
        assert_eq!(bar.vwap, 101.5);
        bars.set_mid(110.0);
        let bar = bars.advance(5_000_000_000).unwrap();
        assert_eq!(bar.ret_ewma, (1.1f64).ln());
        assert!(bar.vwap.is_nan());
    }

    #[test]
    fn huge_sizes_neither_wrap_volume_nor_vwap() {
        let mut bars = Bars::new(1000, 0.5);
        bars.advance(1_000_000_000);
        let huge = i64::MAX;
        bars.add_trade(60_000 * SCALE, huge, true);
        bars.add_trade(60_000 * SCALE, huge, true);
        let bar = bars.advance(2_000_000_000).unwrap();
        assert_eq!(bar.volume, 2.0 * to_f64(huge));
        assert_eq!(bar.vwap, 60_000.0);
        let mut flow = FlowWindow::new(1000);
        flow.add(1, huge);
        flow.add(2, huge);
        assert_eq!(flow.values(), (2.0 * to_f64(huge), 1.0));
        // Absurd config durations saturate instead of wrapping negative.
        assert!(Bars::new(u64::MAX, 0.5).enabled());
        let mut flow = FlowWindow::new(u64::MAX);
        flow.add(1, SCALE);
        flow.advance(i64::MAX);
        assert_eq!(flow.values().0, 1.0);
    }

    #[test]
    fn microprice_leans_to_the_thin_side() {
        let top = TopOfBook::new(100 * SCALE, 3 * SCALE, 101 * SCALE, SCALE);
        assert_eq!(top.mid, 100.5);
        assert_eq!(top.microprice, 100.75);
        assert_eq!(top.spread, 1.0);
    }

    proptest::proptest! {
        #[test]
        fn exact_f64_is_the_i128_conversion(value in proptest::num::i128::ANY, bits in 0u32..127) {
            let narrowed = value >> bits; // every magnitude, not just huge ones
            proptest::prop_assert_eq!(exact_f64(narrowed).to_bits(), (narrowed as f64).to_bits());
            proptest::prop_assert_eq!(exact_f64(value).to_bits(), (value as f64).to_bits());
        }
    }

    #[test]
    fn exact_f64_rounds_ties_like_i128() {
        for value in [
            (1i128 << 64) + (1 << 11),
            (1i128 << 64) + (1 << 11) + 1,
            (1i128 << 64) + (3 << 11),
            i128::MIN,
            i128::MAX,
            1i128 << 63,
            -(1i128 << 63) - 1,
        ] {
            assert_eq!(
                exact_f64(value).to_bits(),
                (value as f64).to_bits(),
                "{value}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn with_sizes_equals_new(px in 1i64..1 << 50, spread in 0i64..1 << 20, sizes in proptest::array::uniform4(0i64..1 << 40)) {
            let (bid, ask) = (px, px + spread);
            let first = TopOfBook::new(bid, sizes[0], ask, sizes[1]);
            let next = first.with_sizes(bid, sizes[2], ask, sizes[3]);
            let fresh = TopOfBook::new(bid, sizes[2], ask, sizes[3]);
            proptest::prop_assert_eq!(format!("{next:?}"), format!("{fresh:?}"));
        }
    }
}
