//! Stream names and how a client's request matches the captured streams.
//!
//! Binance stream names are `<symbol>@<kind>[@<options>]` with a lower-case symbol. A diff-depth
//! stream is one stream at several update speeds (`btcusdt@depth` = 250 ms, `@depth@100ms`,
//! `@depth@500ms`, and the captured `@depth@0ms`): a request at any speed is served from the
//! captured diff-depth stream of that symbol (merged per window when the capture is finer, see
//! [`crate::frames`]). Partial-book streams (`depth5`, `depth20@100ms`) are different streams.
//!
//! USD-M futures routes streams by path (developers.binance.com, "Market Data Streams",
//! "USD-M Futures routes streams by path"): `/public` carries the high-frequency streams
//! (`@depth`, `@bookTicker`, `@trade`, `@rpiDepth`, as ccxt 4.5.90's `get_future_ws_category`
//! has them), `/market` every other market stream, `/private` user data. A stream subscribed on
//! the other path is accepted and silently delivers nothing, as on Binance.

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

/// Which routed path (`/public` or `/market`) serves a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Public,
    Market,
}

/// The routed path of stream `name`.
pub fn category(name: &str) -> Category {
    // `<symbol>@<kind>...`, or an all-market stream `!<kind>[@arr]`.
    let kind = match name.strip_prefix('!') {
        Some(all) => all.split('@').next().unwrap_or(""),
        None => name.split('@').nth(1).unwrap_or(""),
    };
    let kind = kind.split('_').next().unwrap_or(kind);
    if kind.starts_with("depth") || matches!(kind, "bookTicker" | "trade" | "rpiDepth") {
        Category::Public
    } else {
        Category::Market
    }
}

/// The update speed of a diff-depth stream name in milliseconds (`@depth` is 250 ms), or
/// `None` for any other stream (partial depth `@depth5` included) or an unknown speed.
pub fn depth_speed(name: &str) -> Option<u32> {
    let mut parts = name.trim().split('@');
    let _symbol = parts.next()?;
    if parts.next()? != "depth" {
        return None;
    }
    let speed = match parts.next() {
        None => 250,
        Some(option) => option.strip_suffix("ms")?.parse().ok()?,
    };
    parts.next().is_none().then_some(speed)
}

/// Levels and update speed of a partial-depth stream name (`btcusdt@depth5@100ms` -> (5, 100);
/// without a speed 250 ms), or `None`.
pub fn partial_depth(name: &str) -> Option<(usize, u32)> {
    let mut parts = name.trim().split('@');
    let _symbol = parts.next()?;
    let levels = match parts.next()? {
        "depth5" => 5,
        "depth10" => 10,
        "depth20" => 20,
        _ => return None,
    };
    let speed = match parts.next() {
        None => 250,
        Some(option) => option.strip_suffix("ms")?.parse().ok()?,
    };
    parts.next().is_none().then_some((levels, speed))
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
        assert_eq!(depth_speed("btcusdt@depth"), Some(250));
        assert_eq!(depth_speed("btcusdt@depth@100ms"), Some(100));
        assert_eq!(depth_speed("btcusdt@depth@0ms"), Some(0));
        assert_eq!(depth_speed("btcusdt@depth5"), None);
        assert_eq!(depth_speed("btcusdt@depth@fast"), None);
        assert_eq!(partial_depth("btcusdt@depth5@100ms"), Some((5, 100)));
        assert_eq!(partial_depth("btcusdt@depth20"), Some((20, 250)));
        assert_eq!(partial_depth("btcusdt@depth7"), None);
        assert_eq!(category("btcusdt@depth@100ms"), Category::Public);
        assert_eq!(category("btcusdt@depth5"), Category::Public);
        assert_eq!(category("btcusdt@bookTicker"), Category::Public);
        assert_eq!(category("btcusdt@trade"), Category::Public);
        assert_eq!(category("btcusdt@aggTrade"), Category::Market);
        assert_eq!(category("btcusdt@markPrice@1s"), Category::Market);
        assert_eq!(category("btcusdt@kline_1m"), Category::Market);
        assert_eq!(category("!bookTicker"), Category::Public);
        assert_eq!(category("!markPrice@arr"), Category::Market);
        assert_eq!(
            parse_list("btcusdt@trade//btcusdt@depth@100ms"),
            vec!["btcusdt@trade", "btcusdt@depth@100ms"]
        );
    }
}
