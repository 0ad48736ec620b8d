//! Exact decimal parsing. Venue prices and sizes are decimal strings; they become i64 fixed-point
//! numbers with [`SCALE`] units per 1.0, so book keys and sums are exact. The f64 view of such a
//! number (`units as f64 / 1e8`) is the correctly rounded value of the original decimal string,
//! because both operands are exact and IEEE division rounds once.

/// Fixed-point units per 1.0 (Binance quotes at most 8 decimals).
pub const SCALE: i64 = 100_000_000;
const SCALE_DIGITS: usize = 8;

/// 10^n as an i64, for n up to [`SCALE_DIGITS`].
#[inline(always)]
fn pow10(n: usize) -> i64 {
    crate::digits::POW10[n] as i64
}

/// Parses a decimal string like `"61800.20"` or `"-0.001"` into units of 1e-8.
/// Returns `None` for anything else (empty, exponent, more than 8 decimals, overflow).
#[inline]
pub fn parse_fixed(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    match fixed_prefix(bytes, 0) {
        Some((value, end)) if end == bytes.len() => Some(value),
        _ => parse_fixed_careful(bytes),
    }
}

/// The common shape of a decimal at `bytes[at..]`, read eight digits at a time:
/// `digits[.digits]` with 1..=10 integer digits and at most 8 decimals (which cannot overflow).
/// Returns its value and where it ends; `None` for any other shape, which [`parse_fixed`]'s
/// careful path then judges. Shared by `parse_fixed` and the positional bookTicker parser, so
/// both read a number the same way.
#[inline(always)]
pub(crate) fn fixed_prefix(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    // At most 7 digits in all: always in range.
    if let Some((_, fraction_len, digits, len)) = crate::digits::short_decimal(bytes, at) {
        return Some((digits as i64 * pow10(SCALE_DIGITS - fraction_len), at + len));
    }
    digit_runs(bytes, at)
}

/// [`fixed_prefix`] for any length: a digit run on each side of the point.
#[inline(always)]
fn digit_runs(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    let (whole_len, whole) = crate::digits::run(bytes, at);
    let mut end = at + whole_len;
    let (fraction_len, fraction) = if bytes.get(end) == Some(&b'.') {
        // More than 8 decimals is refused whatever they are, so one word is enough.
        let run = crate::digits::short_run(bytes, end + 1);
        end += 1 + run.0;
        run
    } else {
        (0, 0)
    };
    ((1..=10).contains(&whole_len) && fraction_len <= SCALE_DIGITS).then(|| {
        (
            whole as i64 * SCALE + fraction as i64 * pow10(SCALE_DIGITS - fraction_len),
            end,
        )
    })
}

fn parse_fixed_careful(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    let mut fraction_digits: usize = 0;
    let mut seen_point = false;
    let mut seen_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                if seen_point {
                    if fraction_digits == SCALE_DIGITS {
                        // Extra decimals are allowed only when they are zeros.
                        if b != b'0' {
                            return None;
                        }
                        continue;
                    }
                    fraction_digits += 1;
                }
                value = value.checked_mul(10)?.checked_add((b - b'0') as i64)?;
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    value = value.checked_mul(pow10(SCALE_DIGITS - fraction_digits))?;
    Some(if negative { -value } else { value })
}

/// The shortest decimal string of a fixed-point value (`6180020000000` -> `"61800.2"`).
pub fn format_fixed(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let whole = abs / SCALE as u64;
    let fraction = abs % SCALE as u64;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:08}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// Appends what [`format_fixed`] returns, without allocating (the OKX book checksum writes 100
/// numbers per update).
pub fn push_fixed(out: &mut Vec<u8>, units: i64) {
    if units < 0 {
        out.push(b'-');
    }
    let abs = units.unsigned_abs();
    let mut buffer = itoa::Buffer::new();
    out.extend_from_slice(buffer.format(abs / SCALE as u64).as_bytes());
    let mut fraction = abs % SCALE as u64;
    if fraction == 0 {
        return;
    }
    out.push(b'.');
    let mut digits = SCALE_DIGITS;
    while fraction % 10 == 0 {
        fraction /= 10;
        digits -= 1;
    }
    let text = buffer.format(fraction);
    out.resize(out.len() + digits - text.len(), b'0');
    out.extend_from_slice(text.as_bytes());
}

/// The f64 nearest to a fixed-point value.
#[inline]
pub fn to_f64(units: i64) -> f64 {
    units as f64 / SCALE as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_fixed_writes_what_format_fixed_returns() {
        for units in [
            0,
            1,
            -1,
            10,
            100_000_000,
            6_180_020_000_000,
            20_000,
            -250_000_000,
            i64::MAX,
            i64::MIN,
            123_456_789,
            100_000_001,
        ] {
            let mut out = Vec::new();
            push_fixed(&mut out, units);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format_fixed(units),
                "{units}"
            );
        }
    }

    #[test]
    fn parses_binance_strings() {
        assert_eq!(parse_fixed("61800.20"), Some(6_180_020_000_000));
        assert_eq!(parse_fixed("0.00000001"), Some(1));
        assert_eq!(parse_fixed("1.54698000"), Some(154_698_000));
        assert_eq!(parse_fixed("-2.5"), Some(-250_000_000));
        assert_eq!(parse_fixed("3"), Some(300_000_000));
        assert_eq!(parse_fixed("1.000000000"), Some(100_000_000));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn one_word_decimals_read_as_the_digit_runs_do(bytes in proptest::collection::vec(
            proptest::prop_oneof![
                4 => b'0'..=b'9',
                1 => proptest::sample::select(vec![b'.', b'"', b'-', b'e', 0, 0xFF, 0xFA, b'/', b':']),
            ], 0..14), at in 0usize..14) {
            let at = at.min(bytes.len());
            proptest::prop_assert_eq!(fixed_prefix(&bytes, at), digit_runs(&bytes, at));
        }
    }

    #[test]
    fn formats_shortest() {
        assert_eq!(format_fixed(6_180_020_000_000), "61800.2");
        assert_eq!(format_fixed(1), "0.00000001");
        assert_eq!(format_fixed(-250_000_000), "-2.5");
        assert_eq!(format_fixed(300_000_000), "3");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "-",
            ".",
            "1e5",
            "1.2.3",
            "abc",
            "1.000000001",
            "99999999999999999999",
        ] {
            assert_eq!(parse_fixed(bad), None, "{bad}");
        }
    }

    #[test]
    fn f64_view_is_correctly_rounded() {
        for text in [
            "61800.20",
            "61837.63000000",
            "0.006",
            "3.78826000",
            "1000.00",
        ] {
            let expected: f64 = text.parse().unwrap();
            assert_eq!(to_f64(parse_fixed(text).unwrap()), expected, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrips_any_fixed_point(units in -(1i64 << 53)..(1i64 << 53)) {
            let text = format!("{}{}.{:08}", if units < 0 { "-" } else { "" }, units.unsigned_abs() / 100_000_000, units.unsigned_abs() % 100_000_000);
            proptest::prop_assert_eq!(parse_fixed(&text), Some(units));
            proptest::prop_assert_eq!(to_f64(units), text.parse::<f64>().unwrap());
        }
    }
}
