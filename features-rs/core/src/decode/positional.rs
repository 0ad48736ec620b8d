//! The fastest path, for the frame shape that dominates real feeds: a bookTicker body with
//! Binance's exact member order (`e`?, `u`, `s`, `b`, `B`, `a`, `A`, then `T`/`E` in either
//! order or absent). It walks the bytes once, comparing literals and reading integers in place.
//! Any other shape returns `None` and the general flat-object path runs instead, so the result
//! never depends on which path ran.

use super::{
    check_diff, check_event_ms, check_id, check_quote, fixed, DecodeError, DepthDiff, Level,
    Message, Quote, Snapshot,
};
use crate::decimal::fixed_prefix;
use crate::digits;

/// A decimal member: its value, or (unusual shape) its text for `parse_fixed` to judge.
#[derive(Clone, Copy)]
enum Number<'a> {
    Value(i64),
    Text(&'a str),
}

impl Number<'_> {
    #[inline(always)]
    fn resolve(self, field: &str) -> Result<i64, DecodeError> {
        match self {
            Number::Value(value) => Ok(value),
            Number::Text(text) => fixed(text, "bookTicker", field),
        }
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Consumes `expected` (compared as a fixed-size array: inline, no memcmp call).
    #[inline(always)]
    fn literal<const N: usize>(&mut self, expected: &[u8; N]) -> Option<()> {
        self.peek(expected).then(|| self.at += N)
    }

    #[inline(always)]
    fn peek<const N: usize>(&self, expected: &[u8; N]) -> bool {
        let bytes = self.bytes;
        match bytes.get(self.at..self.at + N) {
            Some(window) => <&[u8; N]>::try_from(window).is_ok_and(|w| w == expected),
            None => false,
        }
    }

    /// Digits of a non-negative integer without leading zeros, at most 18 of them.
    #[inline(always)]
    fn integer(&mut self) -> Option<u64> {
        let bytes = self.bytes;
        let (len, value) = digits::run(bytes, self.at);
        let leading_zero = len > 1 && bytes[self.at] == b'0';
        self.at += len;
        (len > 0 && len <= 18 && !leading_zero).then_some(value)
    }

    /// Like [`Cursor::integer`], for a member whose value is not needed.
    #[inline(always)]
    fn skip_integer(&mut self) -> Option<()> {
        let bytes = self.bytes;
        let len = digits::count(bytes, self.at);
        let leading_zero = len > 1 && bytes[self.at] == b'0';
        self.at += len;
        (len > 0 && len <= 18 && !leading_zero).then_some(())
    }

    /// A decimal string's value in fixed-point units; the cursor is just past its opening
    /// quote and ends just past its closing one. The common shape (`digits[.digits]`, as
    /// [`crate::decimal::parse_fixed`]'s fast path takes it) is read in place; anything else
    /// goes through `parse_fixed` itself, so both give the same value or the same error.
    #[inline(always)]
    fn decimal(&mut self) -> Option<Number<'a>> {
        match fixed_prefix(self.bytes, self.at) {
            Some((value, end)) if self.bytes.get(end) == Some(&b'"') => {
                self.at = end + 1;
                Some(Number::Value(value))
            }
            _ => self.string().map(Number::Text),
        }
    }

    /// A string without escapes or control characters; the cursor is just past its opening
    /// quote and ends just past its closing one.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let rest = &self.bytes[self.at..];
        // Only this member's bytes are checked: the rest of the frame is ASCII by construction.
        let (len, value) = match digits::ascii_string_end(rest, 0)? {
            len if rest[len] == b'"' => (len, super::ascii(&rest[..len])),
            len if rest[len] >= 0x80 => {
                let len = digits::string_end(rest, len)? + len;
                (
                    len,
                    super::utf8(&rest[..len]).filter(|_| rest[len] == b'"')?,
                )
            }
            _ => return None,
        };
        self.at += len + 1;
        Some(value)
    }
}

/// The quote in `text[body_start..]`, which must end with the body's `}` followed by `tail`.
///
/// Works on bytes: every byte it accepts is ASCII structure or digits, except string members,
/// which it checks as UTF-8 itself; so a frame it accepts is valid UTF-8 as a whole, and callers
/// need not validate it first.
///
/// Inlined into its callers: the quote then stays in registers instead of being returned
/// through memory and reloaded with wider loads than the stores that wrote it (a
/// store-forwarding stall that perf showed as 2 % of the binding's time; +3.5 % overall).
#[inline(always)]
pub fn book_ticker<'a>(
    bytes: &'a [u8],
    body_start: usize,
    tail: &[u8],
) -> Option<Result<Quote<'a>, DecodeError>> {
    let mut c = Cursor {
        bytes,
        at: body_start,
    };
    c.literal(b"{")?;
    if c.peek(b"\"e\":") {
        c.literal(b"\"e\":\"bookTicker\",")?;
    }
    c.literal(b"\"u\":")?;
    let update_id = c.integer()?;
    c.literal(b",\"s\":\"")?;
    let symbol = c.string()?;
    c.literal(b",\"b\":\"")?;
    let bid_px = c.decimal()?;
    c.literal(b",\"B\":\"")?;
    let bid_qty = c.decimal()?;
    c.literal(b",\"a\":\"")?;
    let ask_px = c.decimal()?;
    c.literal(b",\"A\":\"")?;
    let ask_qty = c.decimal()?;
    let mut event_ms = None;
    let (mut seen_t, mut seen_e) = (false, false);
    while c.peek(b",") {
        if !seen_t && c.peek(b",\"T\":") {
            c.literal(b",\"T\":")?;
            c.skip_integer()?;
            seen_t = true;
        } else if !seen_e && c.peek(b",\"E\":") {
            c.literal(b",\"E\":")?;
            event_ms = Some(c.integer()? as i64);
            seen_e = true;
        } else {
            return None;
        }
    }
    c.literal(b"}")?;
    // (Element by element: the tail is a byte or none, not worth a memcmp call.)
    if bytes.len() - c.at != tail.len() || !bytes[c.at..].iter().eq(tail) {
        return None;
    }
    if let (
        Number::Value(bid_px),
        Number::Value(bid_qty),
        Number::Value(ask_px),
        Number::Value(ask_qty),
    ) = (bid_px, bid_qty, ask_px, ask_qty)
    {
        return Some(check_quote(Quote {
            symbol,
            update_id,
            bid_px,
            bid_qty,
            ask_px,
            ask_qty,
            event_ms,
        }));
    }
    Some((|| {
        check_quote(Quote {
            symbol,
            update_id,
            bid_px: bid_px.resolve("b")?,
            bid_qty: bid_qty.resolve("B")?,
            ask_px: ask_px.resolve("a")?,
            ask_qty: ask_qty.resolve("A")?,
            event_ms,
        })
    })())
}

/// The depth diff in `bytes[body_start..]`, in Binance's exact member order (`e`, `E`, `T`?,
/// `s`, `U`, `u`, `pu`?, `b`, `a`), which must end with the body's `}` followed by `tail`.
/// Levels are read straight into fixed-point pairs, with no strings in between.
///
/// Only frames the general path would accept with exactly these values come out as `Ok` (or as
/// the id and time range errors of [`check_diff`], which see the same values): any other shape,
/// a price or size that is not in the common decimal shape, a zero price, returns `None` and the
/// general path decides, so the result never depends on which path ran. Byte-level like
/// [`book_ticker`]: a frame it accepts is valid UTF-8.
#[inline]
pub fn depth<'a>(
    bytes: &'a [u8],
    body_start: usize,
    tail: &[u8],
) -> Option<Result<(&'a str, DepthDiff), DecodeError>> {
    let mut c = Cursor {
        bytes,
        at: body_start,
    };
    c.literal(b"{\"e\":\"depthUpdate\",\"E\":")?;
    let event_ms = c.integer()? as i64;
    if c.peek(b",\"T\":") {
        c.literal(b",\"T\":")?;
        c.skip_integer()?;
    }
    c.literal(b",\"s\":\"")?;
    let symbol = c.string()?;
    c.literal(b",\"U\":")?;
    let first_update_id = c.integer()?;
    c.literal(b",\"u\":")?;
    let final_update_id = c.integer()?;
    let mut previous_final_update_id = None;
    if c.peek(b",\"pu\":") {
        c.literal(b",\"pu\":")?;
        previous_final_update_id = Some(c.integer()?);
    }
    c.literal(b",\"b\":")?;
    // Room for the levels this frame can hold at its usual ~25 bytes a level: one allocation
    // per side in the common case.
    let bids = c.levels((bytes.len() - c.at) / 48)?;
    c.literal(b",\"a\":")?;
    let asks = c.levels((bytes.len() - c.at) / 20)?;
    c.literal(b"}")?;
    if bytes.len() - c.at != tail.len() || !bytes[c.at..].iter().eq(tail) {
        return None;
    }
    Some(
        check_diff(DepthDiff {
            first_update_id,
            final_update_id,
            previous_final_update_id,
            event_ms,
            bids,
            asks,
        })
        .map(|diff| (symbol, diff)),
    )
}

/// A REST depth snapshot body (`{"lastUpdateId":N,"E":N,"T":N,"bids":[..],"asks":[..]}`, `E` and
/// `T` absent on spot) in `bytes[body_start..]`, followed by exactly `tail`. As with [`depth`],
/// only a body the general path would accept with these very values comes out as `Ok` (or as
/// the general path's id and time errors, which see the same values); any other shape returns
/// `None` and the general path decides.
#[inline]
pub fn snapshot(
    bytes: &[u8],
    body_start: usize,
    tail: &[u8],
) -> Option<Result<Snapshot, DecodeError>> {
    const WHAT: &str = "depth snapshot";
    let mut c = Cursor {
        bytes,
        at: body_start,
    };
    c.literal(b"{\"lastUpdateId\":")?;
    let last_update_id = c.integer()?;
    let mut event_ms = None;
    if c.peek(b",\"E\":") {
        c.literal(b",\"E\":")?;
        event_ms = Some(c.integer()? as i64);
    }
    if c.peek(b",\"T\":") {
        c.literal(b",\"T\":")?;
        c.skip_integer()?;
    }
    c.literal(b",\"bids\":")?;
    let bids = c.levels((bytes.len() - c.at) / 48)?;
    c.literal(b",\"asks\":")?;
    let asks = c.levels((bytes.len() - c.at) / 20)?;
    c.literal(b"}")?;
    if bytes.len() - c.at != tail.len() || !bytes[c.at..].iter().eq(tail) {
        return None;
    }
    Some((|| {
        Ok(Snapshot {
            last_update_id: check_id(last_update_id, WHAT, "lastUpdateId")?,
            event_ms: event_ms.map(|ms| check_event_ms(ms, WHAT)).transpose()?,
            bids,
            asks,
        })
    })())
}

/// The ingest's snapshot line, `{"twinfeed":"snapshot","symbol":"S","data":{REST body}}`, in the
/// shape the ingest writes it; `None` for any other shape (the general path decides).
#[inline]
pub fn snapshot_line(bytes: &[u8]) -> Option<Result<Message<'_>, DecodeError>> {
    let mut c = Cursor { bytes, at: 0 };
    c.literal(b"{\"twinfeed\":\"snapshot\",\"symbol\":\"")?;
    let symbol = c.string()?;
    c.literal(b",\"data\":")?;
    let snapshot = snapshot(bytes, c.at, b"}")?;
    Some(snapshot.map(|snapshot| Message::Snapshot {
        symbol: Some(symbol),
        snapshot,
    }))
}

impl Cursor<'_> {
    /// `[]` or `[["px","qty"],...]` of common-shape decimals with a positive price; `None` for
    /// anything else (the general path then decides, and reports what is wrong).
    #[inline(always)]
    fn levels(&mut self, capacity: usize) -> Option<Vec<Level>> {
        self.literal(b"[")?;
        let mut levels = Vec::new();
        if self.literal(b"]").is_some() {
            return Some(levels);
        }
        levels.reserve(capacity.max(4));
        loop {
            self.literal(b"[\"")?;
            let px = self.plain_decimal()?;
            self.literal(b",\"")?;
            let qty = self.plain_decimal()?;
            self.literal(b"]")?;
            if px == 0 {
                return None;
            }
            levels.push((px, qty));
            if self.literal(b",").is_none() {
                break;
            }
        }
        self.literal(b"]")?;
        Some(levels)
    }

    /// A decimal string in the common shape read in place (the cursor is just past its
    /// opening quote and ends just past its closing one); `None` for any other string.
    #[inline(always)]
    fn plain_decimal(&mut self) -> Option<i64> {
        match fixed_prefix(self.bytes, self.at) {
            Some((value, end)) if self.bytes.get(end) == Some(&b'"') => {
                self.at = end + 1;
                Some(value)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::binance;

    #[test]
    fn agrees_with_the_general_path_on_every_shape() {
        let bodies = [
            r#"{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}"#,
            r#"{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}"#,
            r#"{"u":1,"s":"X","b":"1","B":"1","a":"2","A":"1","E":5,"T":4}"#,
            r#"{"u":1,"s":"X","b":"1x","B":"1","a":"2","A":"1"}"#,
            r#"{"u":01,"s":"X","b":"1","B":"1","a":"2","A":"1"}"#,
            r#"{"u":1,"s":"X","b":"1","B":"1","a":"2","A":"1","E":5,"E":6}"#,
            r#"{"u":1,"s":"X","b":"1","B":"1","a":"2","A":"1","x":5}"#,
            r#"{"u":1,"s":"X\"","b":"1","B":"1","a":"2","A":"1"}"#,
            r#"{"u":1,"s":"BTCÜSDT","b":"1","B":"1","a":"2","A":"1"}"#,
            r#"{"u":1,"s":"BTCÜ\SDT","b":"1","B":"1","a":"2","A":"1"}"#,
        ];
        for body in bodies {
            let framed = format!("{{\"stream\":\"x@bookTicker\",\"data\":{body}}}");
            let fast = book_ticker(framed.as_bytes(), framed.len() - body.len() - 1, b"}");
            let general = binance::decode_general(&framed);
            if let Some(fast) = fast {
                assert_eq!(fast.map(crate::decode::Message::Quote), general, "{body}");
            }
        }
        let non_ascii = r#"{"u":1,"s":"BTCÜSDT","b":"1","B":"1","a":"2","A":"1"}"#;
        let quote = book_ticker(non_ascii.as_bytes(), 0, b"").expect("this shape");
        assert_eq!(quote.expect("valid").symbol, "BTCÜSDT");
        assert!(book_ticker(
            br#"{"u":1,"s":"X","b":"1","B":"1","a":"2","A":"1","x":5}"#,
            0,
            b""
        )
        .is_none());
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;
    use crate::decode::{binance, Message};

    const USDM: &str = r#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSDT","U":5123107837801,"u":5123107842679,"pu":5123107837557,"b":[["1000.00","606.675"],["61700.20","0.000"]],"a":[["61800.30","1.5"]]}}"#;
    const SPOT: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[]}}"#;

    /// The positional result for an enveloped frame, if it takes that route.
    fn fast(frame: &str) -> Option<Result<Message<'_>, DecodeError>> {
        let body = frame.find(",\"data\":")? + 8;
        depth(frame.as_bytes(), body, b"}")
            .map(|r| r.map(|(symbol, diff)| Message::Depth { symbol, diff }))
    }

    #[test]
    fn reads_binance_layouts_as_the_general_path_does() {
        for frame in [USDM, SPOT] {
            let fast = fast(frame).expect("Binance's own layout takes this route");
            assert_eq!(fast, binance::decode_general(frame), "{frame}");
        }
        let Some(Ok(Message::Depth { diff, .. })) = fast(USDM) else {
            panic!()
        };
        assert_eq!(
            diff.bids,
            vec![(100_000_000_000, 60_667_500_000), (6_170_020_000_000, 0)]
        );
        assert_eq!(diff.previous_final_update_id, Some(5123107837557));
    }

    #[test]
    fn leaves_every_other_shape_to_the_general_path() {
        for (from, to) in [
            (r#""b":[["1000.00""#, r#""b":[["0.00""#), // zero price: a range error there
            (r#""b":[["1000.00""#, r#""b":[["-1000.00""#), // sign
            (r#""606.675""#, r#""6e2""#),              // exponent
            (r#""606.675""#, r#""606.6750000000""#),   // extra zero decimals
            (r#""606.675""#, r#""60\u0036.675""#),     // escape
            (r#""606.675"]"#, r#""606.675","x"]"#),    // three members
            (r#""pu":"#, r#""pu" :"#),                 // whitespace
            (r#""U":5123107837801"#, r#""U":05123107837801"#), // leading zero
            (r#""U":5123107837801"#, r#""U":"5123107837801""#),
            (
                r#""a":[["61800.30","1.5"]]"#,
                r#""a":[["61800.30","1.5"]],"x":1"#,
            ),
            (r#""E":1723161256352"#, r#""E":1723161256352,"E":1"#),
            (r#""e":"depthUpdate""#, r#""e":"depth""#),
            (r#""u":5123107842679"#, r#""u":1"#), // U > u: an error either way
        ] {
            assert!(USDM.contains(from), "{from}");
            let frame = USDM.replace(from, to);
            let general = binance::decode_general(&frame);
            match fast(&frame) {
                None => {}
                Some(fast) => assert_eq!(fast, general, "{frame}"),
            }
            assert_eq!(crate::decode::decode_frame(&frame), general, "{frame}");
        }
        assert!(fast(&USDM.replace(r#""1000.00""#, r#""0.00""#)).is_none());
        assert!(matches!(
            fast(&USDM.replace(r#""u":5123107842679"#, r#""u":1"#)),
            Some(Err(_))
        ));
    }

    #[test]
    fn bare_frames_take_the_same_route() {
        let body = &USDM[USDM.find(",\"data\":").unwrap() + 8..USDM.len() - 1];
        let Ok(Message::Depth { diff, .. }) = crate::decode::decode_frame(body) else {
            panic!()
        };
        let Some(Ok(Message::Depth { diff: expected, .. })) = fast(USDM) else {
            panic!()
        };
        assert_eq!(diff, expected);
    }

    proptest::proptest! {
        /// Any damage to a depth frame (bytes replaced, including non-UTF-8 ones, or inserted):
        /// when the positional route takes the frame, it gives what the general path gives.
        #[test]
        fn damaged_frames_agree_with_the_general_path(
            edits in proptest::collection::vec((0usize..300, proptest::sample::select(b"0123456789.-\"[],:}{ \\e\xc3\xbc\x00".to_vec()), proptest::bool::ANY), 1..4)
        ) {
            let mut bytes = USDM.as_bytes().to_vec();
            for (at, byte, insert) in edits {
                let at = at.min(bytes.len() - 1).max(40);
                if insert { bytes.insert(at, byte) } else { bytes[at] = byte }
            }
            let Ok(frame) = std::str::from_utf8(&bytes) else {
                // Non-UTF-8: the route must refuse it (callers check UTF-8 only after it).
                let body = bytes.windows(8).position(|w| w == b",\"data\":").map_or(0, |p| p + 8);
                let taken = depth(&bytes, body, b"}").is_some();
                proptest::prop_assert!(!taken, "a frame that is not UTF-8 was taken");
                return Ok(());
            };
            if let Some(fast) = fast(frame) {
                proptest::prop_assert_eq!(fast, binance::decode_general(frame));
            }
        }
    }

    const SNAPSHOT_LINE: &str = r#"{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{"lastUpdateId":5123107852948,"E":1723161256348,"T":1723161256339,"bids":[["61800.20","2.507"],["61800.10","0.000"],["1000.00","606.675"]],"asks":[["61800.30","1.5"],["61900.00000000","3.78826000"]]}}"#;

    #[test]
    fn snapshots_read_as_the_general_path_does() {
        let fast = snapshot_line(SNAPSHOT_LINE.as_bytes()).expect("the ingest's own layout");
        assert_eq!(fast, crate::decode::control::decode_general(SNAPSHOT_LINE));
        let Ok(Message::Snapshot {
            snapshot: read,
            symbol,
        }) = fast
        else {
            panic!()
        };
        assert_eq!(symbol, Some("BTCUSDT"));
        assert_eq!(read.event_ms, Some(1723161256348));
        assert_eq!(read.asks[1], (6_190_000_000_000, 378_826_000));
        // The bare REST body (the first line of hftbacktest's captures), and spot's layout.
        let body =
            &SNAPSHOT_LINE[SNAPSHOT_LINE.find("\"data\":").unwrap() + 7..SNAPSHOT_LINE.len() - 1];
        let spot = body.replace(r#","E":1723161256348,"T":1723161256339"#, "");
        for body in [body, spot.as_str()] {
            let fast = snapshot(body.as_bytes(), 0, b"").expect("REST layout");
            let Ok(Message::Snapshot {
                snapshot: general, ..
            }) = binance::decode_general_snapshot(body)
            else {
                panic!()
            };
            assert_eq!(fast, Ok(general));
            assert_eq!(
                crate::decode::decode_frame(body),
                binance::decode_general_snapshot(body)
            );
        }
    }

    proptest::proptest! {
        /// Any damage to a snapshot line or a bare snapshot body: when the positional route
        /// takes it, it gives what the general path gives, and decode_frame agrees with both.
        #[test]
        fn damaged_snapshots_agree_with_the_general_path(
            edits in proptest::collection::vec((0usize..320, proptest::sample::select(b"0123456789.-\"[],:}{ \\ETe\xc3\xbc\x00".to_vec()), proptest::bool::ANY), 1..4),
            bare in proptest::bool::ANY,
        ) {
            let source = if bare {
                &SNAPSHOT_LINE[SNAPSHOT_LINE.find("\"data\":").unwrap() + 7..SNAPSHOT_LINE.len() - 1]
            } else {
                SNAPSHOT_LINE
            };
            let mut bytes = source.as_bytes().to_vec();
            for (at, byte, insert) in edits {
                let at = at.min(bytes.len() - 1).max(1);
                if insert { bytes.insert(at, byte) } else { bytes[at] = byte }
            }
            let Ok(frame) = std::str::from_utf8(&bytes) else {
                let taken = if bare { snapshot(&bytes, 0, b"").is_some() } else { snapshot_line(&bytes).is_some() };
                proptest::prop_assert!(!taken, "a frame that is not UTF-8 was taken");
                return Ok(());
            };
            if bare {
                if let Some(fast) = snapshot(frame.as_bytes(), 0, b"") {
                    let general = binance::decode_general_snapshot(frame).map(|m| match m {
                        Message::Snapshot { snapshot, .. } => snapshot,
                        other => panic!("{other:?}"),
                    });
                    proptest::prop_assert_eq!(fast, general);
                }
            } else {
                let general = crate::decode::control::decode_general(frame);
                if let Some(fast) = snapshot_line(frame.as_bytes()) {
                    proptest::prop_assert_eq!(fast, general);
                }
            }
        }
    }
}
