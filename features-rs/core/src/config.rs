//! Feature configuration (TOML) and the fingerprint (contract 4).
//!
//! The fingerprint covers everything that can change a record: the record schema version, this
//! crate's version and the canonical form of the `[filter]`, `[downsample]` and `[features]`
//! sections. The `[ingest]` section (where to connect, how often to heartbeat) is transport and is
//! not fingerprinted: the records it causes (heartbeats, connection events) are capture lines.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::record::SCHEMA_VERSION;

/// The streams a pipeline can consume.
pub const STREAMS: [&str; 4] = ["bookTicker", "trade", "aggTrade", "depth"];
/// Depth snapshot sizes the venue's REST depth endpoint accepts (`ingest.snapshot_limit`).
pub const SNAPSHOT_LIMITS: [u32; 7] = [5, 10, 20, 50, 100, 500, 1000];
/// Largest `ingest.ring_slots`: 2^22 slots of 200 bytes are 800 MiB of shared memory.
pub const MAX_RING_SLOTS: u64 = 1 << 22;
/// Smallest `ingest.rotate_bytes` (a smaller one makes a file per write).
pub const MIN_ROTATE_BYTES: u64 = 64 << 10;
/// Longest bar and flow window: one day, in ms.
pub const MAX_SPAN_MS: u64 = 86_400_000;
/// Most book levels the imbalance can use (a snapshot has at most 1000 per side).
pub const MAX_BOOK_LEVELS: u64 = 1000;
/// Longest symbol name.
pub const MAX_SYMBOL_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Symbols to keep (case-insensitive); empty keeps every symbol, numbered in order of first
    /// appearance.
    pub symbols: Vec<String>,
    /// Streams to keep, from [`STREAMS`].
    pub streams: Vec<String>,
    /// Drop bookTicker updates whose best bid/ask and sizes equal the previous one.
    pub drop_unchanged_quotes: bool,
    /// With `symbols = []`: how many distinct symbols are numbered at most. Frames of further
    /// new symbols are counted (`Stats::over_symbol_cap`) and skipped with a message, so a
    /// flood of junk symbols cannot grow the table without bound. Left out of the canonical
    /// form (and so of the fingerprint) at its default, so fingerprints from before it existed
    /// still hold.
    #[serde(skip_serializing_if = "is_default_max_symbols")]
    pub max_symbols: u32,
    /// Venues whose frames are kept (`binance`, `okx`, `hyperliquid`); empty keeps every venue.
    /// Symbols of venues other than Binance are named `venue:symbol` (`okx:BTC-USDT`,
    /// `hyperliquid:BTC`) in `symbols` and in the output. Left out of the canonical form when
    /// empty, so fingerprints from before it existed still hold; a config that names venues
    /// (here or in `symbols`) has a fingerprint of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub venues: Vec<String>,
}

/// Default of [`FilterConfig::max_symbols`].
pub const DEFAULT_MAX_SYMBOLS: u32 = 1024;

fn is_default_max_symbols(value: &u32) -> bool {
    *value == DEFAULT_MAX_SYMBOLS
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            symbols: Vec::new(),
            streams: STREAMS.iter().map(|s| s.to_string()).collect(),
            drop_unchanged_quotes: true,
            max_symbols: DEFAULT_MAX_SYMBOLS,
            venues: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownsampleConfig {
    /// Event-time bar length in ms of exchange time; 0 disables bars.
    pub bar_ms: u64,
    /// Emit one quote record per this many (kept) bookTicker updates.
    pub quote_every_n: u32,
    /// Emit one book record per this many applied depth diffs.
    pub book_every_n: u32,
}

impl Default for DownsampleConfig {
    fn default() -> Self {
        DownsampleConfig {
            bar_ms: 1000,
            quote_every_n: 1,
            book_every_n: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeaturesConfig {
    /// Levels per side of the rebuilt book used for the imbalance.
    pub book_levels: u32,
    /// Trade-flow window in ms of exchange time.
    pub flow_window_ms: u64,
    /// EWMA weight of the newest bar return (and squared return) in (0, 1].
    pub ewma_alpha: f64,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            book_levels: 5,
            flow_window_ms: 1000,
            ewma_alpha: 0.1,
        }
    }
}

/// Transport settings of the live ingest. Not part of the fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Websocket base URL, e.g. `ws://127.0.0.1:9443`.
    pub url: String,
    /// REST base URL for depth snapshots; empty derives it from `url`.
    pub rest_url: String,
    /// `futures` (`/fapi/v1/depth`) or `spot` (`/api/v3/depth`).
    pub market: String,
    /// Heartbeat period in ms.
    pub heartbeat_ms: u64,
    /// Slots in the shared-memory ring (rounded up to a power of two).
    pub ring_slots: u64,
    /// Rotate the capture file after this many bytes.
    pub rotate_bytes: u64,
    /// Reconnect backoff: first delay and cap, in ms.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Depth snapshot size requested from REST.
    pub snapshot_limit: u32,
    /// Update speed of the diff-depth stream the live ingest subscribes, in ms; absent means
    /// the venue's documented default stream `<symbol>@depth` (see [`IngestConfig::depth_stream`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth_speed_ms: Option<u32>,
    /// A websocket connection whose written bytes (pongs) the venue has not taken for this
    /// long is dropped and reconnected, in ms.
    pub write_stall_ms: u64,
    /// How capture files are stored: `"none"` (plain text, `capture-NNNNNN.txt`) or `"zstd"`
    /// (`capture-NNNNNN.txt.zst`, one zstd frame per chunk the capture thread writes). Binance
    /// frames compress about 15x at level 1, and at millions of frames a second compressing is
    /// cheaper than copying the plain text into fresh page-cache pages.
    pub capture_compression: String,
    /// zstd level for `capture_compression = "zstd"` (1 is fast; negative levels are faster
    /// still and compress less).
    pub capture_zstd_level: i32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            url: "ws://127.0.0.1:9443".into(),
            rest_url: String::new(),
            market: "futures".into(),
            heartbeat_ms: 100,
            ring_slots: 1 << 16,
            rotate_bytes: 256 << 20,
            backoff_initial_ms: 100,
            backoff_max_ms: 5000,
            snapshot_limit: 1000,
            depth_speed_ms: None,
            write_stall_ms: 5000,
            capture_compression: "none".into(),
            capture_zstd_level: 1,
        }
    }
}

/// Diff-depth update speeds (ms) the venue offers, by `ingest.market`, and the one its plain
/// `<symbol>@depth` stream runs at. Binance documents USD-M futures `<symbol>@depth` (250 ms),
/// `@depth@500ms` and `@depth@100ms`
/// (<https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Diff-Book-Depth-Streams>);
/// `@depth@0ms` is not documented there, but it is what the real USD-M captures recorded
/// (hftbacktest's collector subscribes it). Spot offers `<symbol>@depth` (1000 ms) and
/// `@depth@100ms` ("Update Speed: 1000ms or 100ms" in Binance's own spot connector,
/// <https://docs.rs/binance_spot_connector_rust/latest/binance_spot_connector_rust/market_stream/diff_depth/struct.DiffDepthStream.html>).
pub const DEPTH_SPEEDS_FUTURES: [u32; 4] = [0, 100, 250, 500];
pub const DEPTH_SPEEDS_SPOT: [u32; 2] = [100, 1000];

impl IngestConfig {
    /// Update speeds `depth_speed_ms` may take on this market, and the plain stream's speed.
    pub fn depth_speeds(&self) -> (&'static [u32], u32) {
        if self.market == "spot" {
            (&DEPTH_SPEEDS_SPOT, 1000)
        } else {
            (&DEPTH_SPEEDS_FUTURES, 250)
        }
    }

    /// The diff-depth stream kind to subscribe (`depth`, `depth@100ms`, ...), after the symbol.
    pub fn depth_stream(&self) -> String {
        let (_, plain) = self.depth_speeds();
        match self.depth_speed_ms {
            Some(ms) if ms != plain => format!("depth@{ms}ms"),
            _ => "depth".into(),
        }
    }

    /// How the capture writer stores files (validated by [`FeatureConfig::from_toml_str`]).
    pub fn capture_compression(&self) -> crate::capture::Compression {
        match self.capture_compression.as_str() {
            "zstd" => crate::capture::Compression::Zstd(self.capture_zstd_level),
            _ => crate::capture::Compression::None,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureConfig {
    pub filter: FilterConfig,
    pub downsample: DownsampleConfig,
    pub features: FeaturesConfig,
    pub ingest: IngestConfig,
}

/// The fingerprinted part, in its canonical field order.
#[derive(Serialize)]
struct Canonical<'a> {
    filter: &'a FilterConfig,
    downsample: &'a DownsampleConfig,
    features: &'a FeaturesConfig,
}

impl FeatureConfig {
    /// Parses and validates TOML; `origin` (usually the path) names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let mut config: FeatureConfig =
            toml::from_str(text).map_err(|e| Error::config(origin, e.to_string()))?;
        config.normalize();
        config.validate(origin)?;
        Ok(config)
    }

    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serializes")
    }

    fn normalize(&mut self) {
        use crate::decode::Venue;
        for symbol in &mut self.filter.symbols {
            *symbol = match Venue::split(symbol) {
                (Venue::Binance, _) => symbol.to_ascii_uppercase(),
                // OKX instIds are upper case; Hyperliquid coins are case-sensitive (`kPEPE`).
                (Venue::Okx, id) => Venue::Okx.qualified(&id.to_ascii_uppercase()),
                (venue, id) => venue.qualified(id),
            };
        }
        for venue in &mut self.filter.venues {
            *venue = venue.to_ascii_lowercase();
        }
    }

    fn validate(&self, origin: &str) -> Result<()> {
        for stream in &self.filter.streams {
            if !STREAMS.contains(&stream.as_str()) {
                return Err(Error::config(
                    origin,
                    format!(
                        "filter.streams: unknown stream {stream:?}, expected one of {STREAMS:?}"
                    ),
                ));
            }
        }
        for venue in &self.filter.venues {
            if crate::decode::Venue::from_name(venue).is_none() {
                return Err(Error::config(
                    origin,
                    format!(
                        "filter.venues: unknown venue {venue:?}, expected one of \"binance\", \"okx\", \"hyperliquid\""
                    ),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for symbol in &self.filter.symbols {
            if !seen.insert(symbol) {
                return Err(Error::config(
                    origin,
                    format!("filter.symbols: {symbol} listed twice"),
                ));
            }
        }
        if self.filter.symbols.len() >= crate::record::NO_SYMBOL as usize {
            return Err(Error::config(origin, "filter.symbols: too many symbols"));
        }
        // Symbol ids are u16 and NO_SYMBOL is reserved.
        let max_ids = crate::record::NO_SYMBOL as u32;
        if !(1..=max_ids).contains(&self.filter.max_symbols) {
            return Err(Error::config(
                origin,
                format!(
                    "filter.max_symbols must be in 1..={max_ids}, got {}",
                    self.filter.max_symbols
                ),
            ));
        }
        if self.downsample.quote_every_n == 0 || self.downsample.book_every_n == 0 {
            return Err(Error::config(
                origin,
                "downsample.quote_every_n and book_every_n must be at least 1",
            ));
        }
        if self.features.book_levels == 0 {
            return Err(Error::config(
                origin,
                "features.book_levels must be at least 1",
            ));
        }
        let alpha = self.features.ewma_alpha;
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(Error::config(
                origin,
                format!("features.ewma_alpha must be in (0, 1], got {alpha}"),
            ));
        }
        if !matches!(self.ingest.market.as_str(), "futures" | "spot") {
            return Err(Error::config(
                origin,
                format!(
                    "ingest.market must be \"futures\" or \"spot\", got {:?}",
                    self.ingest.market
                ),
            ));
        }
        if !matches!(self.ingest.capture_compression.as_str(), "none" | "zstd") {
            return Err(Error::config(
                origin,
                format!(
                    "ingest.capture_compression must be \"none\" or \"zstd\", got {:?}",
                    self.ingest.capture_compression
                ),
            ));
        }
        let levels = zstd::compression_level_range();
        if !levels.contains(&self.ingest.capture_zstd_level) {
            return Err(Error::config(
                origin,
                format!(
                    "ingest.capture_zstd_level must be in {}..={}, got {}",
                    levels.start(),
                    levels.end(),
                    self.ingest.capture_zstd_level
                ),
            ));
        }
        if self.ingest.heartbeat_ms == 0 {
            return Err(Error::config(
                origin,
                "ingest.heartbeat_ms must be at least 1",
            ));
        }
        self.validate_ranges(origin)
    }

    /// Ranges of every numeric field (and the shapes the ingest relies on): a value that would
    /// wrap, spin, fill memory or that the venue refuses is an error at load, naming the field.
    fn validate_ranges(&self, origin: &str) -> Result<()> {
        let fail = |field: &str, expected: &str, got: &dyn std::fmt::Display| {
            Err(Error::config(
                origin,
                format!("{field} must be {expected}, got {got}"),
            ))
        };
        let check = |field: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
            if range.contains(&value) {
                Ok(())
            } else {
                fail(
                    field,
                    &format!("in {}..={}", range.start(), range.end()),
                    &value,
                )
            }
        };
        if self.filter.streams.is_empty() {
            return fail(
                "filter.streams",
                &format!("a non-empty list from {STREAMS:?}"),
                &"[]",
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for stream in &self.filter.streams {
            if !seen.insert(stream) {
                return fail("filter.streams", "a list without repeats", &stream);
            }
        }
        for symbol in &self.filter.symbols {
            // `venue:` (okx, hyperliquid) before the venue's own symbol.
            let (_, id) = crate::decode::Venue::split(symbol);
            let valid = (1..=MAX_SYMBOL_LEN).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return fail(
                    "filter.symbols",
                    &format!("names of 1 to {MAX_SYMBOL_LEN} letters, digits, '_' or '-' (after `okx:` or `hyperliquid:` for those venues)"),
                    &format!("{symbol:?}"),
                );
            }
        }
        // Bars and windows are multiplied to ns (i64); one day is far beyond any use and far
        // below a wrap.
        check("downsample.bar_ms", self.downsample.bar_ms, 0..=MAX_SPAN_MS)?;
        check(
            "features.flow_window_ms",
            self.features.flow_window_ms,
            1..=MAX_SPAN_MS,
        )?;
        check(
            "downsample.quote_every_n",
            self.downsample.quote_every_n.into(),
            1..=1_000_000,
        )?;
        check(
            "downsample.book_every_n",
            self.downsample.book_every_n.into(),
            1..=1_000_000,
        )?;
        check(
            "features.book_levels",
            self.features.book_levels.into(),
            1..=MAX_BOOK_LEVELS,
        )?;
        let ingest = &self.ingest;
        check("ingest.heartbeat_ms", ingest.heartbeat_ms, 1..=60_000)?;
        check("ingest.ring_slots", ingest.ring_slots, 2..=MAX_RING_SLOTS)?;
        check(
            "ingest.rotate_bytes",
            ingest.rotate_bytes,
            MIN_ROTATE_BYTES..=1 << 40,
        )?;
        check(
            "ingest.write_stall_ms",
            ingest.write_stall_ms,
            100..=600_000,
        )?;
        check(
            "ingest.backoff_initial_ms",
            ingest.backoff_initial_ms,
            1..=60_000,
        )?;
        check(
            "ingest.backoff_max_ms",
            ingest.backoff_max_ms,
            ingest.backoff_initial_ms..=600_000,
        )?;
        if !SNAPSHOT_LIMITS.contains(&ingest.snapshot_limit) {
            return fail(
                "ingest.snapshot_limit",
                &format!("one of {SNAPSHOT_LIMITS:?} (what the depth endpoint accepts)"),
                &ingest.snapshot_limit,
            );
        }
        if let Some(speed) = ingest.depth_speed_ms {
            let (speeds, plain) = ingest.depth_speeds();
            if !speeds.contains(&speed) {
                return fail(
                    "ingest.depth_speed_ms",
                    &format!(
                        "one of {speeds:?} on ingest.market = {:?} (the venue's diff-depth update speeds; omit it for the plain `<symbol>@depth` stream, {plain} ms)",
                        ingest.market
                    ),
                    &speed,
                );
            }
        }
        let has_host = |url: &str, schemes: [&str; 2]| {
            schemes.iter().any(|scheme| {
                url.strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty())
            })
        };
        if !has_host(&ingest.url, ["ws://", "wss://"]) {
            return fail(
                "ingest.url",
                "a ws://host[:port] or wss://host[:port] url",
                &format!("{:?}", ingest.url),
            );
        }
        if !ingest.rest_url.is_empty() && !has_host(&ingest.rest_url, ["http://", "https://"]) {
            return fail(
                "ingest.rest_url",
                "empty or an http(s)://host[:port] url",
                &format!("{:?}", ingest.rest_url),
            );
        }
        Ok(())
    }

    /// Canonical JSON of the fingerprinted sections (stable field order, shortest floats).
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(&Canonical {
            filter: &self.filter,
            downsample: &self.downsample,
            features: &self.features,
        })
        .expect("config serializes")
    }

    /// sha256 hex over (schema version, crate version, canonical config).
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"twinfeed-fingerprint\n");
        hasher.update(SCHEMA_VERSION.to_string().as_bytes());
        hasher.update(b"\n");
        hasher.update(crate::VERSION.as_bytes());
        hasher.update(b"\n");
        hasher.update(self.canonical_json().as_bytes());
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        assert_eq!(
            FeatureConfig::from_toml_str("", "t").unwrap(),
            FeatureConfig::default()
        );
    }

    #[test]
    fn fingerprint_ignores_ingest_and_formatting_but_not_features() {
        let base = FeatureConfig::default().fingerprint();
        let reformatted = FeatureConfig::from_toml_str(
            "[features]\nbook_levels = 5\n\n[ingest]\nheartbeat_ms = 7\n",
            "t",
        )
        .unwrap();
        assert_eq!(reformatted.fingerprint(), base);
        let changed = FeatureConfig::from_toml_str("[features]\nbook_levels = 6\n", "t").unwrap();
        assert_ne!(changed.fingerprint(), base);
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn max_symbols_is_checked_and_fingerprinted_only_when_not_the_default() {
        let base = FeatureConfig::default();
        // The canonical form (and so every fingerprint and golden) is what it was before.
        assert!(!base.canonical_json().contains("max_symbols"));
        let same = FeatureConfig::from_toml_str("[filter]\nmax_symbols = 1024\n", "t").unwrap();
        assert_eq!(same.fingerprint(), base.fingerprint());
        let two = FeatureConfig::from_toml_str("[filter]\nmax_symbols = 2\n", "t").unwrap();
        assert_eq!(two.filter.max_symbols, 2);
        assert_ne!(two.fingerprint(), base.fingerprint());
        assert_eq!(
            FeatureConfig::from_toml_str(&two.to_toml(), "t").unwrap(),
            two
        );
        for bad in ["0", "65536"] {
            let err =
                FeatureConfig::from_toml_str(&format!("[filter]\nmax_symbols = {bad}\n"), "m.toml")
                    .unwrap_err()
                    .to_string();
            assert!(
                err.contains("m.toml") && err.contains("filter.max_symbols"),
                "{err}"
            );
        }
    }

    #[test]
    fn capture_compression_is_checked_and_not_fingerprinted() {
        let base = FeatureConfig::default();
        assert_eq!(
            base.ingest.capture_compression(),
            crate::capture::Compression::None
        );
        let zstd = FeatureConfig::from_toml_str(
            "[ingest]\ncapture_compression = \"zstd\"\ncapture_zstd_level = -3\n",
            "z.toml",
        )
        .unwrap();
        assert_eq!(
            zstd.ingest.capture_compression(),
            crate::capture::Compression::Zstd(-3)
        );
        assert_eq!(zstd.fingerprint(), base.fingerprint());
        for (toml, field) in [
            (
                "capture_compression = \"lz4\"",
                "ingest.capture_compression",
            ),
            ("capture_zstd_level = 99", "ingest.capture_zstd_level"),
        ] {
            let err = FeatureConfig::from_toml_str(&format!("[ingest]\n{toml}\n"), "bad.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains("bad.toml") && err.contains(field), "{err}");
        }
    }

    #[test]
    fn depth_speed_picks_the_venue_stream() {
        let stream = |toml: &str| {
            FeatureConfig::from_toml_str(toml, "t.toml")
                .unwrap()
                .ingest
                .depth_stream()
        };
        // Absent: the venue's documented default stream.
        assert_eq!(stream(""), "depth");
        assert_eq!(stream("[ingest]\nmarket = \"spot\""), "depth");
        assert_eq!(stream("[ingest]\ndepth_speed_ms = 250"), "depth");
        assert_eq!(stream("[ingest]\ndepth_speed_ms = 0"), "depth@0ms");
        assert_eq!(stream("[ingest]\ndepth_speed_ms = 100"), "depth@100ms");
        assert_eq!(stream("[ingest]\ndepth_speed_ms = 500"), "depth@500ms");
        assert_eq!(
            stream("[ingest]\nmarket = \"spot\"\ndepth_speed_ms = 100"),
            "depth@100ms"
        );
        assert_eq!(
            stream("[ingest]\nmarket = \"spot\"\ndepth_speed_ms = 1000"),
            "depth"
        );
        let err = FeatureConfig::from_toml_str("[ingest]\ndepth_speed_ms = 1000\n", "live.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("live.toml")
                && err.contains("ingest.depth_speed_ms")
                && err.contains("[0, 100, 250, 500]"),
            "{err}"
        );
        // A transport setting: the fingerprint does not move.
        assert_eq!(
            FeatureConfig::from_toml_str("[ingest]\ndepth_speed_ms = 0", "t")
                .unwrap()
                .fingerprint(),
            FeatureConfig::default().fingerprint()
        );
    }

    #[test]
    fn absurd_values_are_refused_naming_file_and_field() {
        for (toml, field) in [
            ("[ingest]\nring_slots = 134217728", "ingest.ring_slots"),
            ("[ingest]\nring_slots = 1", "ingest.ring_slots"),
            (
                "[ingest]\nheartbeat_ms = 9223372036854775807",
                "ingest.heartbeat_ms",
            ),
            ("[ingest]\nrotate_bytes = 0", "ingest.rotate_bytes"),
            ("[ingest]\nsnapshot_limit = 0", "ingest.snapshot_limit"),
            ("[ingest]\nsnapshot_limit = 7", "ingest.snapshot_limit"),
            ("[ingest]\nsnapshot_limit = 5000", "ingest.snapshot_limit"),
            ("[ingest]\ndepth_speed_ms = 1000", "ingest.depth_speed_ms"),
            ("[ingest]\ndepth_speed_ms = 50", "ingest.depth_speed_ms"),
            (
                "[ingest]\nmarket = \"spot\"\ndepth_speed_ms = 0",
                "ingest.depth_speed_ms",
            ),
            ("[ingest]\ndepth_speed_ms = -1", "depth_speed_ms"),
            (
                "[ingest]\nbackoff_initial_ms = 0",
                "ingest.backoff_initial_ms",
            ),
            (
                "[ingest]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100",
                "ingest.backoff_max_ms",
            ),
            ("[ingest]\nurl = \"http://x\"", "ingest.url"),
            ("[ingest]\nrest_url = \"ftp://x\"", "ingest.rest_url"),
            ("[filter]\nstreams = []", "filter.streams"),
            (
                "[filter]\nstreams = [\"trade\", \"trade\"]",
                "filter.streams",
            ),
            ("[filter]\nsymbols = [\"\"]", "filter.symbols"),
            ("[filter]\nsymbols = [\"BTC USDT\"]", "filter.symbols"),
            // 9.3e12 ms * 1e6 wraps i64 ns.
            ("[downsample]\nbar_ms = 9300000000000", "downsample.bar_ms"),
            (
                "[downsample]\nbar_ms = 9223372036854775807",
                "downsample.bar_ms",
            ),
            (
                "[downsample]\nquote_every_n = 0",
                "downsample.quote_every_n",
            ),
            (
                "[features]\nflow_window_ms = 9300000000000",
                "features.flow_window_ms",
            ),
            ("[features]\nflow_window_ms = 0", "features.flow_window_ms"),
            ("[features]\nbook_levels = 100000", "features.book_levels"),
            ("[features]\newma_alpha = nan", "features.ewma_alpha"),
        ] {
            let err = FeatureConfig::from_toml_str(&format!("{toml}\n"), "dir/bad.toml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("dir/bad.toml") && err.contains(field),
                "{toml}: {err}"
            );
        }
        for good in [
            "[ingest]\nring_slots = 64\nsnapshot_limit = 5\nrotate_bytes = 524288",
            "[ingest]\nring_slots = 4194304\nheartbeat_ms = 60000",
            "[downsample]\nbar_ms = 0",
            "[downsample]\nbar_ms = 86400000",
            "[filter]\nsymbols = [\"btcusdt\", \"1000PEPEUSDT\", \"BTCUSD_PERP\"]",
        ] {
            FeatureConfig::from_toml_str(good, "good.toml").unwrap();
        }
    }

    #[test]
    fn errors_name_origin_and_field() {
        let err = FeatureConfig::from_toml_str("[filter]\nstreams = [\"kline\"]\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("my.toml") && err.contains("filter.streams"),
            "{err}"
        );
        let err = FeatureConfig::from_toml_str("[features]\nbook_levls = 3\n", "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("book_levls"), "{err}");
    }
}
