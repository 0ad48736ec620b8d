//! # twinfeed-features: the feature definition
//!
//! One crate turns venue websocket frames into fixed-size binary records. The live ingest
//! binary and the Python batch binding both link it, so research and live compute features with
//! the same code.
//!
//! - [`capture`]: read and write capture files (`<local_receive_ns> <frame>` lines; plain, gzip
//!   or zstd). Torn and malformed lines are counted with their line numbers, never misread.
//! - [`decode`]: one module per venue (Binance USD-M and spot) plus the ingest's own control lines.
//! - [`book`]: L2 book from snapshot + diffs with Binance's sequence rules; gaps invalidate.
//!   Each side is a [`ladder`]: a price-indexed window around the touch plus an ordered map.
//! - [`features`]: top of book, microprice, imbalance, trade flow, bars, EWMA return, volatility.
//! - [`record`]: the one `#[repr(C)]` record layout and its schema version.
//! - [`config`]: TOML configuration and the fingerprint.
//! - [`pipeline`]: `Pipeline::push(local_ns, frame, &mut out)`.
//!
//! Invariants: no pyo3, no tokio, no clock. Output is a pure function of (config, lines).
//! Prices and sizes are exact fixed-point integers until a feature is emitted. No input line
//! crashes, hangs or silently corrupts the pipeline: JSON nesting is bounded before the JSON
//! library ([`decode::nesting`]), values the venue cannot send are decode errors naming the field
//! ([`decode::check_quote`] and friends), forged ids cost a gap rather than freezing a book, sums
//! cannot overflow, and the symbol table is capped (`filter.max_symbols`).

pub mod book;
pub mod capture;
pub mod config;
pub mod decimal;
pub mod decode;
pub mod digits;
pub mod error;
pub mod features;
pub mod ladder;
pub mod pipeline;
pub mod record;

pub use config::FeatureConfig;
pub use error::{Error, Result};
pub use pipeline::{Pipeline, Stats};
pub use record::{Kind, Record, RECORD_SIZE, SCHEMA_VERSION};

/// This crate's version; part of the fingerprint.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
