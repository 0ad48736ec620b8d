//! What must hold for any input, however hostile: checked after every input of the pipeline
//! targets, so a fuzzer finds silent corruption as well as crashes.
//!
//! - Every line is counted exactly once (`lines = frames + blank + malformed + decode errors`),
//!   and `records` counts what was emitted.
//! - Records of one symbol (and the symbol-less ones) are numbered 1, 2, 3, ... with no gap, and
//!   `line` never goes back.
//! - Stamps are never negative: a receive stamp or event time the venue cannot send is refused
//!   at decode time, never wrapped into a record.
//! - Prices of quotes, trades and books are finite and positive; sizes finite and not negative;
//!   a quote is not crossed.
//! - Imbalances lie in [-1, 1]; a bar's volume is finite, at most the volume of the trades the
//!   pipeline emitted for its symbol, and its VWAP lies between their lowest and highest price.

use std::collections::HashMap;

use twinfeed_features::record::{Kind, NO_SYMBOL};
use twinfeed_features::{Pipeline, Record};

/// Relative slack for sums of decimals converted to f64.
const SLACK: f64 = 1e-9;

#[derive(Default)]
struct TradeSpan {
    low: f64,
    high: f64,
    volume: f64,
}

fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

fn size(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

fn unit(value: f64) -> bool {
    value.is_nan() || (-1.0 - SLACK..=1.0 + SLACK).contains(&value)
}

/// Panics (with the record) when `records`, all emitted by `pipeline` from a fresh start,
/// break an invariant.
pub fn check(pipeline: &Pipeline, records: &[Record]) {
    let stats = pipeline.stats();
    assert_eq!(
        stats.lines,
        stats.frames + stats.blank_lines + stats.malformed_lines + stats.decode_errors,
        "every line lands in exactly one counter: {stats:?}"
    );
    assert_eq!(stats.records, records.len() as u64, "records counted");
    let symbols = pipeline.symbols().len();
    let mut seq: HashMap<u16, u64> = HashMap::new();
    let mut trades: HashMap<u16, TradeSpan> = HashMap::new();
    let mut line = 0;
    for r in records {
        let kind = Kind::ALL
            .into_iter()
            .find(|k| *k as u8 == r.kind)
            .unwrap_or_else(|| panic!("unknown kind {}: {r:?}", r.kind));
        assert!(
            r.symbol_id == NO_SYMBOL || (r.symbol_id as usize) < symbols,
            "symbol id out of range: {r:?}"
        );
        let next = seq.entry(r.symbol_id).or_default();
        *next += 1;
        assert_eq!(r.seq, *next, "per-symbol sequence has a gap: {r:?}");
        assert!(r.line >= line && r.line <= stats.lines, "line order: {r:?}");
        line = r.line;
        assert!(r.local_ns >= 0, "negative local_ns: {r:?}");
        assert!(r.exchange_ns >= 0, "negative exchange_ns: {r:?}");
        assert!(unit(r.imbalance), "imbalance outside [-1, 1]: {r:?}");
        assert!(
            unit(r.flow_imbalance),
            "flow imbalance outside [-1, 1]: {r:?}"
        );
        match kind {
            Kind::Quote | Kind::Book => {
                assert!(
                    positive(r.bid_px) && positive(r.ask_px),
                    "{kind:?} price not finite and positive: {r:?}"
                );
                assert!(
                    size(r.bid_qty) && size(r.ask_qty),
                    "{kind:?} size negative or not finite: {r:?}"
                );
                assert!(r.spread.is_finite() && r.mid.is_finite(), "{kind:?}: {r:?}");
                if kind == Kind::Quote {
                    assert!(r.bid_px <= r.ask_px, "crossed quote emitted: {r:?}");
                }
            }
            Kind::Trade => {
                assert!(positive(r.trade_px), "trade price: {r:?}");
                assert!(r.trade_qty.is_finite(), "trade size: {r:?}");
                let span = trades.entry(r.symbol_id).or_insert(TradeSpan {
                    low: f64::INFINITY,
                    high: f64::NEG_INFINITY,
                    volume: 0.0,
                });
                span.low = span.low.min(r.trade_px);
                span.high = span.high.max(r.trade_px);
                span.volume += r.trade_qty.abs();
            }
            Kind::Bar => {
                assert!(size(r.volume), "bar volume: {r:?}");
                let span = trades.get(&r.symbol_id);
                let traded = span.map_or(0.0, |s| s.volume);
                assert!(
                    r.volume <= traded * (1.0 + SLACK) + SLACK,
                    "bar volume {} above the {traded} traded: {r:?}",
                    r.volume
                );
                if r.volume > 0.0 {
                    let span = span.expect("volume implies trades");
                    assert!(
                        r.vwap >= span.low * (1.0 - SLACK) && r.vwap <= span.high * (1.0 + SLACK),
                        "bar VWAP {} outside the traded prices [{}, {}]: {r:?}",
                        r.vwap,
                        span.low,
                        span.high
                    );
                }
            }
            Kind::Gap | Kind::Heartbeat | Kind::Status => {}
        }
    }
}
