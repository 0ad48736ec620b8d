//! The venue's trading rules into the capture: at start and after each reconnect the live loop
//! fetches `exchangeInfo` from the REST base (`/api/v3`, `/fapi/v1` or `/dapi/v1`), keeps only
//! the subscribed symbols and writes one `{"twinfeed":"instruments","market":...,"data":...}`
//! line through the [`crate::sink::Sink`] (so capture and ring agree), which the replay venue
//! serves again and research reads (`twinfeed.instruments.instruments_from_capture`).
//!
//! The fetch runs on its own task: a failure is counted, logged and retried with backoff, and
//! never holds up market data or heartbeats.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::rest::{self, HttpBase};
use twinfeed_features::decode::nesting;

/// Largest exchangeInfo body accepted: USD-M's is a few MB, spot's some 20 MB; bounded all the
/// same (a hostile venue costs a counted, retried failure).
pub const MAX_EXCHANGE_INFO: usize = 64 << 20;
/// The whole fetch (connect, request, body) must end within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest wait before refetching after a failure.
const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The capture's name of the config's market (`ingest.market`): `spot`, `usdm` or `coinm`.
pub fn market_label(market: &str) -> &'static str {
    match market {
        "spot" => "spot",
        "coinm" | "dapi" | "inverse" => "coinm",
        _ => "usdm",
    }
}

/// Path of the exchangeInfo endpoint for a market label of [`market_label`].
pub fn exchange_info_path(label: &str) -> &'static str {
    match label {
        "spot" => "/api/v3/exchangeInfo",
        "coinm" => "/dapi/v1/exchangeInfo",
        _ => "/fapi/v1/exchangeInfo",
    }
}

/// A JSON object's members in their order, each value unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[derive(Deserialize)]
struct SymbolName {
    symbol: String,
}

/// `body` (an exchangeInfo response) cut to the entries of `symbols` (upper case), one line of
/// JSON; each kept entry exactly as the venue wrote it (field order, number formats). Also
/// returns the subscribed symbols the venue did not list. An error says what is wrong.
pub fn cut(body: &str, symbols: &HashSet<String>) -> Result<(String, Vec<String>), String> {
    if let Some(path) = nesting::too_deep(body) {
        return Err(format!(
            "exchangeInfo: {}: JSON nested deeper than {} levels",
            if path.is_empty() {
                "the body".to_string()
            } else {
                format!("field `{path}`")
            },
            nesting::MAX_NESTING
        ));
    }
    let parsed: Members =
        serde_json::from_str(body).map_err(|e| format!("exchangeInfo: not a JSON object: {e}"))?;
    let Some(entries) = parsed.0.iter().find(|(key, _)| key == "symbols") else {
        return Err("exchangeInfo: no field `symbols`".into());
    };
    let entries: Vec<&RawValue> = serde_json::from_str(entries.1.get())
        .map_err(|e| format!("exchangeInfo: field `symbols`: expected an array: {e}"))?;
    let mut out = String::with_capacity(4096);
    out.push('{');
    for (key, value) in parsed.0.iter().filter(|(key, _)| key != "symbols") {
        out.push_str(&serde_json::to_string(key).unwrap());
        out.push(':');
        out.push_str(value.get());
        out.push(',');
    }
    out.push_str("\"symbols\":[");
    let mut found = HashSet::new();
    for entry in &entries {
        let name: SymbolName = serde_json::from_str(entry.get())
            .map_err(|e| format!("exchangeInfo: field `symbols`: entry without `symbol`: {e}"))?;
        if symbols.contains(&name.symbol) && found.insert(name.symbol) {
            if found.len() > 1 {
                out.push(',');
            }
            out.push_str(entry.get());
        }
    }
    out.push_str("]}");
    let mut missing: Vec<String> = symbols.difference(&found).cloned().collect();
    missing.sort();
    Ok((out, missing))
}

/// A finished fetch.
pub struct Fetched {
    pub epoch: u64,
    /// The line to capture, or why there is none.
    pub result: Result<String, String>,
}

/// Fetches exchangeInfo for the live loop, one fetch in flight at a time.
pub struct Fetcher {
    base: HttpBase,
    label: &'static str,
    symbols: HashSet<String>,
    tx: mpsc::UnboundedSender<Fetched>,
    pub rx: mpsc::UnboundedReceiver<Fetched>,
    in_flight: bool,
    failures: u32,
    pub requests: u64,
    pub errors: u64,
}

impl Fetcher {
    pub fn new(base: HttpBase, market: &str, symbols: &[String]) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetcher {
            base,
            label: market_label(market),
            symbols: symbols.iter().cloned().collect(),
            tx,
            rx,
            in_flight: false,
            failures: 0,
            requests: 0,
            errors: 0,
        }
    }

    /// A new connection (`epoch`): fetch now (unless a fetch is already on its way).
    pub fn on_connected(&mut self, epoch: u64) {
        self.failures = 0;
        self.request(epoch, Duration::ZERO);
    }

    fn request(&mut self, epoch: u64, delay: Duration) {
        if self.in_flight {
            return;
        }
        self.in_flight = true;
        self.requests += 1;
        let tx = self.tx.clone();
        let base = self.base.clone();
        let label = self.label;
        let symbols = self.symbols.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let path = exchange_info_path(label);
            let result = match rest::get_capped(&base, path, FETCH_TIMEOUT, MAX_EXCHANGE_INFO).await
            {
                Ok(body) => cut(&body, &symbols).map(|(info, missing)| {
                    if !missing.is_empty() {
                        eprintln!(
                            "twinfeed-ingest: GET {path}: the venue lists no {}",
                            missing.join(", ")
                        );
                    }
                    twinfeed_features::decode::control::instruments_line(label, &info)
                }),
                Err(e) => Err(format!("{e:#}")),
            };
            let _ = tx.send(Fetched { epoch, result });
        });
    }

    /// A fetch ended: the line to write if it is for the connection `epoch` and succeeded;
    /// otherwise counts, logs and schedules a retry (only for the current connection: the
    /// next one fetches anew).
    pub fn on_fetched(&mut self, done: Fetched, epoch: u64) -> Option<String> {
        self.in_flight = false;
        match done.result {
            Ok(line) if done.epoch == epoch => {
                self.failures = 0;
                Some(line)
            }
            // For an older connection: the current one needs its own.
            Ok(_) => {
                self.request(epoch, Duration::ZERO);
                None
            }
            Err(error) => {
                self.errors += 1;
                self.failures = self.failures.saturating_add(1);
                let retry = RETRY_MIN
                    .saturating_mul(1 << (self.failures - 1).min(16))
                    .min(RETRY_MAX);
                eprintln!(
                    "twinfeed-ingest: exchangeInfo fetch failed ({} in a row, {} in all), retrying in {retry:?}: {error}",
                    self.failures, self.errors
                );
                self.request(epoch, retry);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_the_subscribed_symbols_verbatim() {
        let body = r#"{"timezone":"UTC","serverTime":1,"symbols":[{"symbol":"ETHUSDT","filters":[]},{"symbol":"BTCUSDT","pricePrecision":2,"filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10"}]}],"rateLimits":[]}"#;
        let wanted: HashSet<String> = ["BTCUSDT".to_string(), "XYZUSDT".to_string()].into();
        let (info, missing) = cut(body, &wanted).unwrap();
        assert_eq!(
            info,
            r#"{"timezone":"UTC","serverTime":1,"rateLimits":[],"symbols":[{"symbol":"BTCUSDT","pricePrecision":2,"filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10"}]}]}"#
        );
        assert_eq!(missing, vec!["XYZUSDT".to_string()]);
        let deep = format!(
            r#"{{"symbols":[],"x":{}1{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        assert!(cut(&deep, &wanted).unwrap_err().contains("field `x`"));
        assert!(cut(r#"{"code":-1}"#, &wanted)
            .unwrap_err()
            .contains("symbols"));
    }

    #[test]
    fn paths_follow_the_market() {
        assert_eq!(
            exchange_info_path(market_label("futures")),
            "/fapi/v1/exchangeInfo"
        );
        assert_eq!(
            exchange_info_path(market_label("spot")),
            "/api/v3/exchangeInfo"
        );
        assert_eq!(
            exchange_info_path(market_label("coinm")),
            "/dapi/v1/exchangeInfo"
        );
    }
}
