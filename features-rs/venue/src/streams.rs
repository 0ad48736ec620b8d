//! Stream names and how a client's request matches the captured streams.
//!
//! Binance stream names are `<symbol>@<kind>[@<options>]` with a lower-case symbol. A diff-depth
//! stream is one stream whatever its update speed, so `btcusdt@depth`, `btcusdt@depth@100ms` and
//! `btcusdt@depth@0ms` all match a capture of any of them; the frames still carry the captured
//! name. Partial-book streams (`depth5`, `depth20@100ms`) are different streams.

/// The key two stream names share when they are the same stream.
pub fn canonical(name: &str) -> String {
    let name = name.trim();
    let (symbol, rest) = name.split_once('@').unwrap_or((name, ""));
    let symbol = symbol.to_ascii_lowercase();
    if rest.is_empty() {
        return symbol;
    }
    let kind = rest.split('@').next().unwrap_or("");
    if kind == "depth" {
        return format!("{symbol}@depth");
    }
    format!("{symbol}@{rest}")
}

/// The upper-case symbol of a stream name (`btcusdt@trade` -> `BTCUSDT`).
pub fn symbol(name: &str) -> String {
    name.split('@').next().unwrap_or("").to_ascii_uppercase()
}

/// True for diff-depth streams (the ones with `U`/`u`/`pu` sequence numbers).
pub fn is_depth(name: &str) -> bool {
    name.split('@').nth(1) == Some("depth")
}

/// The stream names of a request path's list (`a/b/c`, as in `?streams=` or `/ws/a/b`).
pub fn parse_list(list: &str) -> Vec<String> {
    list.split('/')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_speeds_are_one_stream() {
        assert_eq!(canonical("btcusdt@depth@0ms"), "btcusdt@depth");
        assert_eq!(canonical("BTCUSDT@depth@100ms"), "btcusdt@depth");
        assert_eq!(canonical("btcusdt@depth"), "btcusdt@depth");
        assert_eq!(canonical("btcusdt@depth5@100ms"), "btcusdt@depth5@100ms");
        assert_eq!(canonical("btcusdt@bookTicker"), "btcusdt@bookTicker");
        assert!(is_depth("btcusdt@depth@0ms"));
        assert!(!is_depth("btcusdt@depth20"));
        assert_eq!(symbol("btcusdt@trade"), "BTCUSDT");
        assert_eq!(
            parse_list("btcusdt@trade//btcusdt@depth@100ms"),
            vec!["btcusdt@trade", "btcusdt@depth@100ms"]
        );
    }
}
