//! The order book of each symbol as replayed so far: the REST depth snapshot and bookTicker are
//! answered from it, like an exchange answers from its current book.
//!
//! Each symbol's book starts from the capture's REST snapshot and takes the captured diffs as
//! the replay passes them, lazily: a request applies only the diffs replayed since the previous
//! request (never a rescan of the capture), and a new `--loop` lap starts the book again. Levels
//! keep the capture's own decimal strings (byte spans of the capture text), so a client keying
//! its book by the price string sees `"2680.90"` in the snapshot and in the diffs alike;
//! `lastUpdateId` is the final update id `u` of the last diff applied, so the diff that the
//! replay sends next continues it (`pu == lastUpdateId`), which is what Binance's local-book
//! procedure checks ("How to manage a local order book correctly",
//! https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use twinfeed_features::decimal::parse_fixed;

use crate::capture::{Capture, LineKind};
use crate::json;
use crate::streams;

/// A price level: spans of the price and quantity strings (without quotes) in the capture text.
#[derive(Debug, Clone)]
struct Level {
    price: Range<usize>,
    quantity: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Diff,
    Snapshot,
}

#[derive(Debug, Default)]
pub(crate) struct Levels {
    last_update_id: u64,
    /// Transaction time `T` of the last update (diff or snapshot), if it had one.
    transaction_ms: Option<i64>,
    /// By fixed-point price: bids are read from the top (`rev`), asks from the bottom.
    bids: BTreeMap<i64, Level>,
    asks: BTreeMap<i64, Level>,
    /// No diff applied since the snapshot.
    pub(crate) fresh: bool,
    /// A diff did not continue the chain (a gap in the capture): the next captured snapshot
    /// replaces the book.
    pub(crate) broken: bool,
}

#[derive(Debug, Default)]
struct State {
    lap: u64,
    /// Events applied: `events[..next]`.
    next: usize,
    book: Option<Levels>,
}

struct SymbolBook {
    symbol: String,
    /// Capture line, kind and byte span (diff `data` or snapshot body) of each book event.
    events: Vec<(usize, EventKind, Range<usize>)>,
    state: Mutex<State>,
}

/// The replayed books of every symbol with a diff-depth stream or a snapshot.
pub struct Books {
    symbols: Vec<SymbolBook>,
}

/// Which REST flavour a depth answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// USD-M / COIN-M: `lastUpdateId`, `E` (message output time), `T` (transaction time).
    Futures,
    /// Spot: `lastUpdateId`, `bids`, `asks` only.
    Spot,
}

/// The best levels of a book, as captured strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub bid: Option<(String, String)>,
    pub ask: Option<(String, String)>,
    pub last_update_id: u64,
    pub transaction_ms: Option<i64>,
}

impl Books {
    pub fn new(capture: &Capture) -> Self {
        let mut symbols: Vec<SymbolBook> = Vec::new();
        for (line, kind) in capture.kinds.iter().enumerate() {
            let (symbol, kind, span) = match kind {
                LineKind::Frame { stream, data, .. }
                    if capture.streams[*stream as usize].depth_speed.is_some() =>
                {
                    let name = &capture.streams[*stream as usize].name;
                    (streams::symbol(name), EventKind::Diff, data.clone())
                }
                LineKind::Snapshot(index) => {
                    let snapshot = &capture.snapshots[*index as usize];
                    (
                        snapshot.symbol.clone(),
                        EventKind::Snapshot,
                        snapshot.body.clone(),
                    )
                }
                _ => continue,
            };
            if symbol.is_empty() {
                continue;
            }
            let index = match symbols.iter().position(|s| s.symbol == symbol) {
                Some(index) => index,
                None => {
                    symbols.push(SymbolBook {
                        symbol,
                        events: Vec::new(),
                        state: Mutex::new(State::default()),
                    });
                    symbols.len() - 1
                }
            };
            symbols[index].events.push((line, kind, span));
        }
        Books { symbols }
    }

    /// Runs `f` on `symbol`'s book brought to the replay: lines `..end_line` of lap `lap`
    /// applied (before the first snapshot is replayed, the first captured snapshot). `None`
    /// when the symbol has no snapshot.
    fn with_book<T>(
        &self,
        capture: &Capture,
        symbol: &str,
        end_line: usize,
        lap: u64,
        f: impl FnOnce(&Levels) -> T,
    ) -> Option<T> {
        let book = self.symbols.iter().find(|s| s.symbol == symbol)?;
        let mut state = book.state.lock().unwrap_or_else(|e| e.into_inner());
        let target = book.events.partition_point(|(line, _, _)| *line < end_line);
        if state.lap != lap || target < state.next {
            *state = State {
                lap,
                ..State::default()
            };
        }
        for (index, (_, kind, span)) in book.events.iter().enumerate().take(target).skip(state.next)
        {
            let text = &capture.text;
            match kind {
                EventKind::Snapshot => {
                    if state.book.as_ref().map_or(true, |b| b.broken) {
                        let earlier = book.events[..index]
                            .iter()
                            .rev()
                            .filter(|(_, kind, _)| *kind == EventKind::Diff)
                            .map(|(_, _, span)| span.clone());
                        if let Some(levels) = load_snapshot(text, span.clone(), earlier) {
                            state.book = Some(levels);
                        }
                    }
                }
                EventKind::Diff => {
                    if let Some(levels) = state.book.as_mut() {
                        apply_diff(levels, text, span.clone());
                    }
                }
            }
        }
        state.next = target;
        match &state.book {
            Some(levels) => Some(f(levels)),
            // No snapshot replayed yet: the first captured one (its id is ahead of every diff
            // sent, so a client following Binance's procedure waits for the diff reaching it).
            None => book
                .events
                .iter()
                .find(|(_, kind, _)| *kind == EventKind::Snapshot)
                .and_then(|(_, _, span)| parse_snapshot(&capture.text, span.clone()))
                .map(|levels| f(&levels)),
        }
    }

    /// The REST depth body of `symbol` at the replay (see [`Books::with_book`]), `limit` levels
    /// a side. `E` is `now_ms`; `T` is the last update's, moved forward by `shift_ms` (the
    /// lap's time offset, see [`crate::replay`]).
    #[allow(clippy::too_many_arguments)]
    pub fn depth_body(
        &self,
        capture: &Capture,
        symbol: &str,
        (end_line, lap): (usize, u64),
        limit: usize,
        flavour: Flavour,
        now_ms: i64,
        shift_ms: i64,
    ) -> Option<Vec<u8>> {
        let text = &capture.text;
        self.with_book(capture, symbol, end_line, lap, |book| {
            let mut out = Vec::with_capacity(64 + limit.min(1000) * 2 * 28);
            out.extend_from_slice(format!("{{\"lastUpdateId\":{}", book.last_update_id).as_bytes());
            if flavour == Flavour::Futures {
                let transaction = book
                    .transaction_ms
                    .map_or(now_ms, |t| t.saturating_add(shift_ms));
                out.extend_from_slice(format!(",\"E\":{now_ms},\"T\":{transaction}").as_bytes());
            }
            out.extend_from_slice(b",\"bids\":");
            push_levels(&mut out, text, book.bids.values().rev().take(limit));
            out.extend_from_slice(b",\"asks\":");
            push_levels(&mut out, text, book.asks.values().take(limit));
            out.push(b'}');
            out
        })
    }

    /// The best bid and ask of `symbol` at the replay.
    pub fn top(
        &self,
        capture: &Capture,
        symbol: &str,
        (end_line, lap): (usize, u64),
    ) -> Option<Top> {
        let text = &capture.text;
        let level = |level: &Level| {
            (
                String::from_utf8_lossy(&text[level.price.clone()]).into_owned(),
                String::from_utf8_lossy(&text[level.quantity.clone()]).into_owned(),
            )
        };
        self.with_book(capture, symbol, end_line, lap, |book| Top {
            bid: book.bids.values().next_back().map(level),
            ask: book.asks.values().next().map(level),
            last_update_id: book.last_update_id,
            transaction_ms: book.transaction_ms,
        })
    }

    /// Brings every book to the replay (`(end_line, lap)`), so that a request pays only for
    /// the diffs since the last call (the venue calls this every 50 ms, see `main.rs`).
    pub fn advance_all(&self, capture: &Capture, at: (usize, u64)) {
        for book in &self.symbols {
            self.with_book(capture, &book.symbol, at.0, at.1, |_| ());
        }
    }

    /// The symbols with a book, in capture order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.symbols.iter().map(|s| s.symbol.as_str())
    }
}

impl Levels {
    /// `"b":[...],"a":[...]` with the best `count` levels a side (bids from the top).
    pub(crate) fn push_top(&self, out: &mut Vec<u8>, text: &[u8], count: usize) {
        out.extend_from_slice(b"\"b\":");
        push_levels(out, text, self.bids.values().rev().take(count));
        out.extend_from_slice(b",\"a\":");
        push_levels(out, text, self.asks.values().take(count));
    }
}

fn push_levels<'a>(out: &mut Vec<u8>, text: &[u8], levels: impl Iterator<Item = &'a Level>) {
    out.push(b'[');
    for (i, level) in levels.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"[\"");
        out.extend_from_slice(&text[level.price.clone()]);
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(&text[level.quantity.clone()]);
        out.extend_from_slice(b"\"]");
    }
    out.push(b']');
}

fn integer<T: std::str::FromStr>(value: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(value?).ok()?.parse().ok()
}

/// The `(price, quantity)` levels of the array `value`, which starts at `base` in the capture
/// text: fixed-point price and the spans of the two strings' contents.
pub fn levels_of(value: &[u8], base: usize) -> Vec<(i64, Range<usize>, Range<usize>)> {
    let Some(items) = json::array_elements(value) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let item_text = &value[item.clone()];
            let pair = json::array_elements(item_text)?;
            let (p, q) = (pair.first()?, pair.get(1)?);
            let price = json::plain_string(&item_text[p.clone()])?;
            let quantity = json::plain_string(&item_text[q.clone()])?;
            let at = base + item.start;
            Some((
                parse_fixed(price)?,
                at + p.start + 1..at + p.start + 1 + price.len(),
                at + q.start + 1..at + q.start + 1 + quantity.len(),
            ))
        })
        .collect()
}

/// True for a quantity string that is zero (`"0"`, `"0.000"`).
pub fn is_zero(quantity: &[u8]) -> bool {
    quantity.iter().all(|&b| b == b'0' || b == b'.')
}

fn set_levels(side: &mut BTreeMap<i64, Level>, text: &[u8], value: Range<usize>) {
    for (key, price, quantity) in levels_of(&text[value.clone()], value.start) {
        if is_zero(&text[quantity.clone()]) {
            side.remove(&key);
        } else {
            side.insert(key, Level { price, quantity });
        }
    }
}

fn member(
    text: &[u8],
    span: &Range<usize>,
    members: &[json::Member],
    key: &str,
) -> Option<Range<usize>> {
    members
        .iter()
        .find(|m| &text[span.start + m.key.start..span.start + m.key.end] == key.as_bytes())
        .map(|m| span.start + m.value.start..span.start + m.value.end)
}

pub(crate) fn parse_snapshot(text: &[u8], span: Range<usize>) -> Option<Levels> {
    let members = json::members(&text[span.clone()])?;
    let get = |key| member(text, &span, &members, key);
    let mut levels = Levels {
        last_update_id: integer(get("lastUpdateId").map(|r| &text[r]))?,
        transaction_ms: integer(get("T").map(|r| &text[r])),
        fresh: true,
        ..Levels::default()
    };
    set_levels(&mut levels.bids, text, get("bids")?);
    set_levels(&mut levels.asks, text, get("asks")?);
    Some(levels)
}

/// A book from the snapshot at `span`, with the diffs received before it that end after its
/// `lastUpdateId` applied: a REST snapshot often arrives after diffs it does not contain yet
/// (step 2 of Binance's procedure buffers them). `earlier`: the diffs before the snapshot,
/// newest first.
pub(crate) fn load_snapshot(
    text: &[u8],
    span: Range<usize>,
    earlier: impl Iterator<Item = Range<usize>>,
) -> Option<Levels> {
    let mut levels = parse_snapshot(text, span)?;
    let last_id = |span: &Range<usize>| {
        let members = json::members(&text[span.clone()])?;
        integer::<u64>(member(text, span, &members, "u").map(|r| &text[r]))
    };
    let mut pending: Vec<Range<usize>> = earlier
        .take_while(|diff| last_id(diff).is_some_and(|u| u > levels.last_update_id))
        .collect();
    pending.reverse();
    for diff in pending {
        apply_diff(&mut levels, text, diff);
    }
    Some(levels)
}

/// Applies one diff (`data` of a depthUpdate) as Binance's procedure does: a diff that ends at
/// or before the book's update id is already in it; the first one after a snapshot must start
/// at or before the next id; later ones continue the chain (`pu`, or `U = u + 1` on spot).
pub(crate) fn apply_diff(book: &mut Levels, text: &[u8], span: Range<usize>) {
    let Some(members) = json::members(&text[span.clone()]) else {
        return;
    };
    let get = |key| member(text, &span, &members, key);
    let (Some(first), Some(last)) = (
        integer::<u64>(get("U").map(|r| &text[r])),
        integer::<u64>(get("u").map(|r| &text[r])),
    ) else {
        return;
    };
    if last <= book.last_update_id {
        return;
    }
    let continues = if book.fresh {
        first <= book.last_update_id.saturating_add(1)
    } else {
        match integer::<u64>(get("pu").map(|r| &text[r])) {
            Some(previous) => previous == book.last_update_id,
            None => first == book.last_update_id.saturating_add(1),
        }
    };
    book.broken |= !continues;
    book.fresh = false;
    if let Some(bids) = get("b") {
        set_levels(&mut book.bids, text, bids);
    }
    if let Some(asks) = get("a") {
        set_levels(&mut book.asks, text, asks);
    }
    book.last_update_id = last;
    if let Some(t) = integer(get("T").map(|r| &text[r])) {
        book.transaction_ms = Some(t);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn capture() -> Capture {
        let lines = [
            r#"1 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":5,"T":5,"s":"BTCUSDT","U":1,"u":8,"pu":0,"b":[["99.0","1"]],"a":[]}}"#,
            r#"2 {"lastUpdateId":10,"E":9,"T":9,"bids":[["100.0","1.0"],["99.0","2.0"]],"asks":[["101.0","1.0"],["102.00","3"]]}"#,
            r#"3 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":11,"T":10,"s":"BTCUSDT","U":9,"u":12,"pu":8,"b":[["100.00","0.000"],["99.50","4.0"]],"a":[["101.0","0"]]}}"#,
            r#"4 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":12,"T":12,"s":"BTCUSDT","U":13,"u":15,"pu":12,"b":[],"a":[["102.0","5"]]}}"#,
        ];
        Capture::from_lines(Path::new("t"), lines).unwrap()
    }

    fn body(books: &Books, capture: &Capture, end_line: usize, lap: u64) -> Option<String> {
        books
            .depth_body(
                capture,
                "BTCUSDT",
                (end_line, lap),
                1000,
                Flavour::Futures,
                77,
                0,
            )
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn a_snapshot_that_arrives_late_takes_the_diffs_received_before_it() {
        // As in the real capture: diffs ending past the snapshot's id arrive before it.
        let lines = [
            r#"1 {"stream":"btcusdt@depth@0ms","data":{"E":1,"T":1,"U":1,"u":5,"pu":0,"b":[["90.0","9"]],"a":[]}}"#,
            r#"2 {"stream":"btcusdt@depth@0ms","data":{"E":2,"T":2,"U":6,"u":12,"pu":5,"b":[["99.0","7"]],"a":[]}}"#,
            r#"3 {"stream":"btcusdt@depth@0ms","data":{"E":3,"T":3,"U":13,"u":15,"pu":12,"b":[],"a":[["101.0","4"]]}}"#,
            r#"4 {"lastUpdateId":10,"bids":[["100.0","1"],["99.0","2"]],"asks":[["101.0","1"]]}"#,
            r#"5 {"stream":"btcusdt@depth@0ms","data":{"E":5,"T":5,"U":16,"u":17,"pu":15,"b":[],"a":[]}}"#,
        ];
        let capture = Capture::from_lines(Path::new("t"), lines).unwrap();
        let books = Books::new(&capture);
        assert_eq!(
            body(&books, &capture, 5, 0).unwrap(),
            r#"{"lastUpdateId":17,"E":77,"T":5,"bids":[["100.0","1"],["99.0","7"]],"asks":[["101.0","4"]]}"#
        );
    }

    #[test]
    fn the_book_follows_the_replay_with_the_captured_strings() {
        let capture = capture();
        let books = Books::new(&capture);
        let first = r#"{"lastUpdateId":10,"E":77,"T":9,"bids":[["100.0","1.0"],["99.0","2.0"]],"asks":[["101.0","1.0"],["102.00","3"]]}"#;
        assert_eq!(
            body(&books, &capture, 1, 0).unwrap(),
            first,
            "before the snapshot"
        );
        assert_eq!(
            body(&books, &capture, 2, 0).unwrap(),
            r#"{"lastUpdateId":10,"E":77,"T":9,"bids":[["100.0","1.0"],["99.0","2.0"]],"asks":[["101.0","1.0"],["102.00","3"]]}"#
        );
        assert_eq!(
            body(&books, &capture, 3, 0).unwrap(),
            r#"{"lastUpdateId":12,"E":77,"T":10,"bids":[["99.50","4.0"],["99.0","2.0"]],"asks":[["102.00","3"]]}"#
        );
        // The diff's own string replaces the snapshot's for the same price.
        assert_eq!(
            body(&books, &capture, 4, 0).unwrap(),
            r#"{"lastUpdateId":15,"E":77,"T":12,"bids":[["99.50","4.0"],["99.0","2.0"]],"asks":[["102.0","5"]]}"#
        );
        let top = books.top(&capture, "BTCUSDT", (4, 0)).unwrap();
        assert_eq!(top.bid, Some(("99.50".into(), "4.0".into())));
        assert_eq!(top.ask, Some(("102.0".into(), "5".into())));
        // A new lap starts the book again.
        assert_eq!(body(&books, &capture, 1, 1).unwrap(), first);
        assert!(body(&books, &capture, 2, 1)
            .unwrap()
            .starts_with(r#"{"lastUpdateId":10,"#));
        let spot = books
            .depth_body(&capture, "BTCUSDT", (2, 1), 1, Flavour::Spot, 0, 0)
            .unwrap();
        assert_eq!(
            String::from_utf8(spot).unwrap(),
            r#"{"lastUpdateId":10,"bids":[["100.0","1.0"]],"asks":[["101.0","1.0"]]}"#
        );
        assert!(books.top(&capture, "ETHUSDT", (4, 0)).is_none());
    }
}
