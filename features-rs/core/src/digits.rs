//! Byte scans eight bytes at a time: runs of ASCII digits, and the first of some bytes.
//!
//! Runs of ASCII digits, eight at a time (SWAR: "SIMD within a register", the technique of
//! simdjson and Lemire's "fast number parsing"). Venue frames are mostly numbers, and a
//! digit-by-digit `value * 10 + d` loop is one long multiply chain; this reads a whole 8-byte
//! word, finds where its digits end with a few bit operations and combines them with three
//! multiplies. The scalar loop handles the last bytes of a slice, so no read ever goes past it.

const ZEROS: u64 = 0x3030_3030_3030_3030;
/// 10^n for n up to 8.
pub(crate) const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// How many of the word's bytes, from the first (lowest), are ASCII digits (0..=8).
#[inline(always)]
fn leading_digits(word: u64) -> usize {
    (non_digits(word).trailing_zeros() / 8) as usize
}

/// Marks (high nibble) the bytes of `word` that are not ASCII digits; exact up to the first one.
#[inline(always)]
fn non_digits(word: u64) -> u64 {
    let values = word ^ ZEROS; // digits become 0..=9 with a zero high nibble
                               // A byte is not a digit when its high nibble is set, or its value + 6 carries into it.
                               // Carries only start at non-digit bytes and move to later bytes, so the first marked byte
                               // is exactly the first non-digit.
    (values | values.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0
}

/// The number written by the first `len` (1..=8) digit bytes of `word`.
#[inline(always)]
fn combine(word: u64, len: usize) -> u64 {
    // Digit values, shifted so the unused bytes become leading zeros.
    let mut v = (word ^ ZEROS) << (8 * (8 - len));
    v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v.wrapping_mul((100 << 16) + 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    v.wrapping_mul((10_000 << 32) + 1) >> 32
}

/// Eight bytes of `bytes` from `at` as a little-endian word; bytes past the end read as zero
/// (which is not a digit), so a run never extends beyond the slice.
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> u64 {
    if let Some(chunk) = bytes.get(at..at + 8) {
        return u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    let len = bytes.len();
    if at >= len {
        return 0;
    }
    if len >= 8 {
        // The last eight bytes, shifted so `bytes[at]` comes first.
        let word = u64::from_le_bytes(bytes[len - 8..].try_into().expect("8 bytes"));
        return word >> (8 * (at + 8 - len));
    }
    let mut padded = [0u8; 8];
    padded[..len - at].copy_from_slice(&bytes[at..]);
    u64::from_le_bytes(padded)
}

/// The run of ASCII digits starting at `bytes[at]`: (how many, their value). The value is
/// only meaningful for runs of at most 19 digits; longer runs return the count with value 0.
#[inline(always)]
pub fn run(bytes: &[u8], at: usize) -> (usize, u64) {
    let word = load(bytes, at);
    let len = leading_digits(word);
    if len < 8 {
        return (len, if len == 0 { 0 } else { combine(word, len) });
    }
    let mut total = 8;
    let mut value = combine(word, 8);
    loop {
        let word = load(bytes, at + total);
        let len = leading_digits(word);
        if len > 0 {
            value = value
                .wrapping_mul(POW10[len])
                .wrapping_add(combine(word, len));
        }
        total += len;
        if len < 8 {
            return (total, if total <= 19 { value } else { 0 });
        }
    }
}

/// [`run`] for runs that may hold at most eight digits (decimals): one load, and for a run of
/// exactly eight one look at the byte after it. Returns 9 (value 0) for a longer run.
#[inline(always)]
pub fn short_run(bytes: &[u8], at: usize) -> (usize, u64) {
    let word = load(bytes, at);
    let len = leading_digits(word);
    if len == 0 {
        return (0, 0);
    }
    if len == 8 && bytes.get(at + 8).is_some_and(u8::is_ascii_digit) {
        return (9, 0);
    }
    (len, combine(word, len))
}

/// A decimal `digits[.digits]` that ends within the eight bytes at `bytes[at..]`, such as a
/// price `61800.20` or a size `2.507`: (integer digits, decimals, the value of all its digits
/// read as one integer, bytes it spans). One load and one [`combine`] instead of a digit run on
/// each side of the point. `None` when it has no integer digit, or more than seven digits.
#[inline(always)]
pub fn short_decimal(bytes: &[u8], at: usize) -> Option<(usize, usize, u64, usize)> {
    let word = load(bytes, at);
    // A point (0x2E ^ 0x30 = 0x1E) carries nothing into the next byte, so the marks stay exact
    // up to the first non-digit after it as well.
    let marks = non_digits(word);
    let whole = (marks.trailing_zeros() / 8) as usize;
    if whole == 0 || whole == 8 {
        return None;
    }
    if (word >> (8 * whole)) as u8 != b'.' {
        return Some((whole, 0, combine(word, whole), whole));
    }
    let below_point = (1u64 << (8 * whole)) - 1;
    let end = ((marks & !(0xFF << (8 * whole))).trailing_zeros() / 8) as usize;
    // Ending exactly with the word (`61800.20`) is common: the next byte decides.
    if end == 8 && bytes.get(at + 8).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    // The decimals moved down one byte over the point: all digits side by side.
    let digits = (word & below_point) | ((word >> 8) & !below_point);
    Some((whole, end - whole - 1, combine(digits, end - 1), end))
}

/// How many ASCII digits start at `bytes[at]`.
#[inline(always)]
pub fn count(bytes: &[u8], at: usize) -> usize {
    let mut total = 0;
    loop {
        let len = leading_digits(load(bytes, at + total));
        total += len;
        if len < 8 {
            return total;
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Marks (high bit) the bytes of `word` equal to zero; exact up to the first zero byte.
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Index of the first `needle` in `bytes[at..]`, relative to `at`.
#[inline(always)]
pub fn find(bytes: &[u8], at: usize, needle: u8) -> Option<usize> {
    first_marked(bytes, at, |word| zero_bytes(word ^ (ONES * needle as u64)))
}

/// Index of the first byte of `bytes[at..]` that ends a plain JSON string: a quote, a
/// backslash or a control character (relative to `at`).
#[inline(always)]
pub fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    first_marked(bytes, at, string_stops)
}

/// Marks a word's quotes, backslashes and control characters; exact up to the first of them.
#[inline(always)]
fn string_stops(word: u64) -> u64 {
    // Bytes below 0x20 (ASCII only: bytes >= 0x80 keep their high bit out of `!word`).
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    zero_bytes(word ^ (ONES * b'"' as u64)) | zero_bytes(word ^ (ONES * b'\\' as u64)) | control
}

/// Like [`string_end`], but also stopping at the first non-ASCII byte: when it stops at a quote,
/// the string before it is plain ASCII (so valid UTF-8 without a further check).
#[inline(always)]
pub fn ascii_string_end(bytes: &[u8], at: usize) -> Option<usize> {
    first_marked(bytes, at, |word| string_stops(word) | (word & HIGHS))
}

/// The first byte of `bytes[at..]` (relative to `at`) that `marks` flags in its word; marks
/// must be exact up to the first flagged byte. The zero padding past the slice's end is never
/// reported.
#[inline(always)]
fn first_marked(bytes: &[u8], at: usize, marks: impl Fn(u64) -> u64) -> Option<usize> {
    let mut offset = 0;
    while at + offset < bytes.len() {
        let flagged = marks(load(bytes, at + offset));
        if flagged != 0 {
            let found = offset + (flagged.trailing_zeros() / 8) as usize;
            return (at + found < bytes.len()).then_some(found);
        }
        offset += 8;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow(bytes: &[u8], at: usize) -> (usize, u64) {
        let len = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let value = if len <= 19 {
            bytes[at..at + len]
                .iter()
                .fold(0u64, |v, b| v * 10 + (b - b'0') as u64)
        } else {
            0
        };
        (len, value)
    }

    #[test]
    fn known_runs() {
        assert_eq!(run(b"1723161256313,\"E\"", 0), (13, 1_723_161_256_313));
        assert_eq!(run(b"61800.20\"", 0), (5, 61800));
        assert_eq!(run(b"61800.20\"", 6), (2, 20));
        assert_eq!(run(b"x", 0), (0, 0));
        assert_eq!(run(b"", 0), (0, 0));
        assert_eq!(run(b"12345678", 0), (8, 12_345_678));
        assert_eq!(run(b"9/:0", 0), (1, 9));
        assert_eq!(run(b"18446744073709551615}", 0), (20, 0));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_digit_loop(bytes in proptest::collection::vec(
            proptest::prop_oneof![b'0'..=b'9', proptest::num::u8::ANY, proptest::sample::select(vec![b'"', b'\\', b'@', 0, 0x1f, 0x20, 0x80, 0xa2])], 0..40), at in 0usize..40) {
            let at = at.min(bytes.len());
            proptest::prop_assert_eq!(run(&bytes, at), slow(&bytes, at));
            proptest::prop_assert_eq!(count(&bytes, at), slow(&bytes, at).0);
            let (len, value) = slow(&bytes, at);
            let expected = if len > 8 { (9, 0) } else { (len, value) };
            proptest::prop_assert_eq!(short_run(&bytes, at), expected);
            for needle in [b'"', b'@', 0, b'5'] {
                proptest::prop_assert_eq!(find(&bytes, at, needle), bytes[at..].iter().position(|&b| b == needle));
            }
            proptest::prop_assert_eq!(
                string_end(&bytes, at),
                bytes[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            );
            proptest::prop_assert_eq!(
                ascii_string_end(&bytes, at),
                bytes[at..].iter().position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
            );
        }
    }
}
