//! Depth snapshots the venue derives itself. A capture usually holds one REST snapshot, but a
//! client that lost sync mid-replay needs a *current* one, as an exchange would serve. So at
//! load time the venue rebuilds each symbol's book from the captured snapshot and diffs (with
//! the feature crate's [`Book`], the same sequence rules) and keeps a checkpoint body every
//! [`EVERY_DIFFS`] applied diffs. `lastUpdateId` is the last applied diff's final id, so the
//! next captured diff continues it exactly.

use std::ops::Range;

use twinfeed_features::book::{Applied, Book};
use twinfeed_features::decimal::format_fixed;
use twinfeed_features::decode::{decode_frame, Message};

use crate::capture::{Capture, LineKind, Snapshot};

/// Applied diffs between two checkpoints.
pub const EVERY_DIFFS: usize = 50;
/// Levels per side kept in a checkpoint (Binance's largest REST depth).
pub const LEVELS: usize = 1000;

pub fn derive(capture: &mut Capture) {
    let mut books: Vec<(String, Book, usize)> = Vec::new();
    let mut bodies: Vec<(usize, String, String)> = Vec::new();
    for (line, kind) in capture.kinds.iter().enumerate() {
        let range: Range<usize> = match kind {
            LineKind::Frame { stream, frame, .. } if capture.streams[*stream as usize].is_depth => {
                frame.clone()
            }
            LineKind::Snapshot(index) => capture.snapshots[*index as usize].body.clone(),
            _ => continue,
        };
        let Ok(text) = std::str::from_utf8(&capture.text[range]) else {
            continue;
        };
        let (symbol, applied, event_ms) = match (decode_frame(text), kind) {
            (Ok(Message::Depth { symbol, diff }), _) => {
                let event_ms = Some(diff.event_ms);
                let book = book_of(&mut books, symbol);
                (symbol.to_string(), book.apply_diff(diff), event_ms)
            }
            (Ok(Message::Snapshot { snapshot, .. }), LineKind::Snapshot(index)) => {
                let symbol = capture.snapshots[*index as usize].symbol.clone();
                let book = book_of(&mut books, &symbol);
                (symbol, book.apply_snapshot(&snapshot), snapshot.event_ms)
            }
            _ => continue,
        };
        let entry = books
            .iter_mut()
            .find(|(name, _, _)| *name == symbol)
            .unwrap();
        if applied != Applied::Updated || !entry.1.is_valid() {
            continue;
        }
        entry.2 += 1;
        if entry.2 % EVERY_DIFFS == 0 {
            bodies.push((line, symbol, body(&entry.1, event_ms)));
        }
    }
    for (line, symbol, text) in bodies {
        let start = capture.text.len();
        capture.text.extend_from_slice(text.as_bytes());
        capture.checkpoints.push(Snapshot {
            line,
            symbol,
            body: start..capture.text.len(),
        });
    }
}

fn book_of<'a>(books: &'a mut Vec<(String, Book, usize)>, symbol: &str) -> &'a mut Book {
    if let Some(i) = books.iter().position(|(name, _, _)| name == symbol) {
        return &mut books[i].1;
    }
    books.push((symbol.to_string(), Book::default(), 0));
    &mut books.last_mut().unwrap().1
}

/// A REST depth body; `E`/`T` only when the event time is known (spot snapshots have none, and
/// the feature crate refuses event times outside 2000..2100, such as 0).
fn body(book: &Book, event_ms: Option<i64>) -> String {
    let (bids, asks) = book.levels(LEVELS);
    let side = |levels: &[(i64, i64)]| {
        let items: Vec<String> = levels
            .iter()
            .map(|(p, q)| format!("[\"{}\",\"{}\"]", format_fixed(*p), format_fixed(*q)))
            .collect();
        items.join(",")
    };
    let times = event_ms.map_or(String::new(), |ms| format!("\"E\":{ms},\"T\":{ms},"));
    format!(
        "{{\"lastUpdateId\":{},{times}\"bids\":[{}],\"asks\":[{}]}}",
        book.last_update_id(),
        side(&bids),
        side(&asks)
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn checkpoints_continue_the_diff_chain() {
        let mut lines = vec![
            r#"1 {"lastUpdateId":10,"bids":[["100.0","1"]],"asks":[["101.0","1"]]}"#.to_string(),
        ];
        for i in 0..(EVERY_DIFFS as u64 * 2) {
            let (first, last, previous) = (9 + i * 2, 12 + i * 2, 10 + i * 2);
            lines.push(format!(
                r#"{} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{},"T":1723161256000,"s":"BTCUSDT","U":{first},"u":{last},"pu":{previous},"b":[["100.{}","2"]],"a":[]}}}}"#,
                2 + i,
                1_723_161_256_000 + i,
                i % 10
            ));
        }
        let capture =
            Capture::from_lines(Path::new("t"), lines.iter().map(String::as_str)).unwrap();
        assert_eq!(capture.checkpoints.len(), 2);
        let checkpoint = &capture.checkpoints[0];
        let body = std::str::from_utf8(&capture.text[checkpoint.body.clone()]).unwrap();
        // The snapshot counts as the first update, then 49 diffs.
        let expected_id = 12 + (EVERY_DIFFS as u64 - 2) * 2;
        assert!(
            body.starts_with(&format!("{{\"lastUpdateId\":{expected_id},")),
            "{body}"
        );
        assert!(body.contains("[\"101\",\"1\"]"), "{body}");
        let served = capture
            .snapshot_at("BTCUSDT", Some(checkpoint.line + 3))
            .unwrap();
        assert_eq!(served.line, checkpoint.line);
        assert_eq!(capture.snapshot_at("BTCUSDT", Some(0)).unwrap().line, 0);
    }
}
