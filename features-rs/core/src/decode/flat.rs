//! A fast path for flat JSON objects (bookTicker and trade frames): one pass over the bytes,
//! borrowing strings. It accepts only a strict subset of JSON (no escapes, no nesting, no
//! duplicate keys, nothing after the closing brace) and returns `None` for anything else, in
//! which case the caller falls back to the full parser, so both paths accept exactly the same
//! frames and produce the same errors.

/// A scalar value of a flat object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    /// The raw text of a JSON number, validated.
    Number(&'a str),
    Bool(bool),
    Null,
}

impl<'a> Scalar<'a> {
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer that fits u64 (the text is already a validated JSON number).
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Scalar::Number(text)
                if text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(
                    text.bytes()
                        .fold(0u64, |acc, b| acc * 10 + (b - b'0') as u64),
                )
            }
            Scalar::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_i64(self) -> Option<i64> {
        match self {
            Scalar::Number(text)
                if text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(
                    text.bytes()
                        .fold(0i64, |acc, b| acc * 10 + (b - b'0') as i64),
                )
            }
            Scalar::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// Calls `visit(key, value)` for each member of the flat object starting at `text[start]`
/// (which must be `{`). Returns the index just past the closing brace, or `None` if the text is
/// not a flat object of the accepted subset. Repeated keys are the visitor's business (serde
/// ignores repeats of unknown keys and rejects repeats of known ones).
pub fn scan_object<'a>(
    text: &'a str,
    start: usize,
    mut visit: impl FnMut(&'a str, Scalar<'a>),
) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = start;
    if *bytes.get(i)? != b'{' {
        return None;
    }
    i += 1;
    if *bytes.get(i)? == b'}' {
        return Some(i + 1);
    }
    loop {
        let key = string_at(text, &mut i)?;
        if *bytes.get(i)? != b':' {
            return None;
        }
        i += 1;
        let value = match *bytes.get(i)? {
            b'"' => Scalar::Str(string_at(text, &mut i)?),
            b't' if bytes[i..].starts_with(b"true") => {
                i += 4;
                Scalar::Bool(true)
            }
            b'f' if bytes[i..].starts_with(b"false") => {
                i += 5;
                Scalar::Bool(false)
            }
            b'n' if bytes[i..].starts_with(b"null") => {
                i += 4;
                Scalar::Null
            }
            b'-' | b'0'..=b'9' => Scalar::Number(number_at(text, &mut i)?),
            _ => return None,
        };
        visit(key, value);
        match *bytes.get(i)? {
            b',' => i += 1,
            b'}' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// A string without escapes starting at `text[*i] == '"'`; advances past the closing quote.
fn string_at<'a>(text: &'a str, i: &mut usize) -> Option<&'a str> {
    let bytes = text.as_bytes();
    if *bytes.get(*i)? != b'"' {
        return None;
    }
    let start = *i + 1;
    // Keys and values here are short: a plain loop beats a vectorised search's setup.
    let mut j = start;
    loop {
        match *bytes.get(j)? {
            b'"' => break,
            b'\\' => return None,
            b if b < 0x20 => return None,
            _ => j += 1,
        }
    }
    *i = j + 1;
    Some(&text[start..j])
}

/// A JSON number (integer, fraction, exponent) starting at `text[*i]`.
fn number_at<'a>(text: &'a str, i: &mut usize) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let start = *i;
    let mut j = start;
    if bytes.get(j) == Some(&b'-') {
        j += 1;
    }
    let digits = |j: &mut usize| {
        let from = *j;
        while bytes.get(*j).is_some_and(u8::is_ascii_digit) {
            *j += 1;
        }
        *j > from
    };
    let int_start = j;
    if !digits(&mut j) || (bytes[int_start] == b'0' && j - int_start > 1) {
        return None;
    }
    if bytes.get(j) == Some(&b'.') {
        j += 1;
        if !digits(&mut j) {
            return None;
        }
    }
    if matches!(bytes.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if !digits(&mut j) {
            return None;
        }
    }
    *i = j;
    Some(&text[start..j])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> Option<Vec<(&str, Scalar<'_>)>> {
        let mut out = Vec::new();
        let end = scan_object(text, 0, |k, v| out.push((k, v)))?;
        (end == text.len()).then_some(out)
    }

    #[test]
    fn accepts_flat_objects() {
        let members = collect(r#"{"u":12,"s":"BTC","m":true,"x":null,"p":-1.5e3}"#).unwrap();
        assert_eq!(members[0], ("u", Scalar::Number("12")));
        assert_eq!(members[1], ("s", Scalar::Str("BTC")));
        assert_eq!(members[4], ("p", Scalar::Number("-1.5e3")));
        assert_eq!(collect("{}").unwrap(), vec![]);
    }

    #[test]
    fn rejects_what_it_does_not_handle() {
        for text in [
            r#"{"a":"x\"y"}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            r#"{"a" :1}"#,
            r#"{"a":1"#,
            r#"{"a":tru}"#,
        ] {
            assert!(collect(text).is_none(), "{text}");
        }
    }
}
