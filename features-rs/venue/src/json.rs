//! A minimal scanner over the top-level members of a JSON object.
//!
//! The venue must send frames byte for byte as captured, so it never re-serialises: it finds
//! the byte spans of the members it needs (`stream`, `data`, `bids`, ...) and copies them.
//! The scanner checks structure (strings, nesting) but not number or literal syntax.

use std::ops::Range;

/// One top-level member: the key's raw bytes (without quotes) and the value's byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// The members of the object `text`, in order, or `None` if `text` is not a JSON object.
pub fn members(text: &[u8]) -> Option<Vec<Member>> {
    let mut out = Vec::with_capacity(8);
    let mut at = skip_ws(text, 0);
    if text.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(text, at + 1);
    if text.get(at) == Some(&b'}') {
        return (skip_ws(text, at + 1) == text.len()).then_some(out);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(text, at)?;
        let key = at + 1..key_end - 1;
        at = skip_ws(text, key_end);
        if text.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(text, at + 1);
        let value_end = value_end(text, value_start)?;
        out.push(Member {
            key,
            value: value_start..value_end,
        });
        at = skip_ws(text, value_end);
        match text.get(at) {
            Some(b',') => at = skip_ws(text, at + 1),
            Some(b'}') => {
                return (skip_ws(text, at + 1) == text.len()).then_some(out);
            }
            _ => return None,
        }
    }
}

/// The value span of the first member named `key`.
pub fn find<'a>(text: &'a [u8], members: &[Member], key: &str) -> Option<&'a [u8]> {
    members
        .iter()
        .find(|m| &text[m.key.clone()] == key.as_bytes())
        .map(|m| &text[m.value.clone()])
}

/// The contents of a JSON string value without escapes (`None` if it is not a plain string).
pub fn plain_string(value: &[u8]) -> Option<&str> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') || inner.contains(&b'"') {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// The spans of the elements of the JSON array `text`, or `None` if it is not an array.
pub fn array_elements(text: &[u8]) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let mut at = skip_ws(text, 0);
    if text.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_ws(text, at + 1);
    if text.get(at) == Some(&b']') {
        return Some(out);
    }
    loop {
        let end = value_end(text, at)?;
        out.push(at..end);
        at = skip_ws(text, end);
        match text.get(at) {
            Some(b',') => at = skip_ws(text, at + 1),
            Some(b']') => return Some(out),
            _ => return None,
        }
    }
}

fn skip_ws(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the string starting at `start` (which holds `"`).
fn string_end(text: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        let offset = memchr::memchr2(b'"', b'\\', text.get(at..)?)?;
        at += offset;
        if text[at] == b'\\' {
            at += 2;
        } else {
            return Some(at + 1);
        }
    }
}

/// The index just past the value starting at `start`.
fn value_end(text: &[u8], start: usize) -> Option<usize> {
    match *text.get(start)? {
        b'"' => string_end(text, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match *text.get(at)? {
                    b'"' => {
                        at = string_end(text, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while let Some(&b) = text.get(at) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(text: &str) -> Vec<(&str, &str)> {
        members(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|m| (&text[m.key], &text[m.value]))
            .collect()
    }

    #[test]
    fn finds_members_byte_exact() {
        let text = r#"{"stream":"btcusdt@trade","data":{"e":"trade","p":"1.0","x":[1,{"a":"}"}]}}"#;
        assert_eq!(
            named(text),
            vec![
                ("stream", "\"btcusdt@trade\""),
                ("data", r#"{"e":"trade","p":"1.0","x":[1,{"a":"}"}]}"#)
            ]
        );
    }

    #[test]
    fn handles_escapes_whitespace_and_literals() {
        let text = " { \"a\\\"b\" : \"x\\\\\" , \"n\" : -1.5e3 , \"t\":true,\"z\":null } ";
        assert_eq!(
            named(text),
            vec![
                ("a\\\"b", "\"x\\\\\""),
                ("n", "-1.5e3"),
                ("t", "true"),
                ("z", "null")
            ]
        );
    }

    #[test]
    fn rejects_non_objects_and_truncation() {
        for bad in [
            "",
            "[1]",
            "{",
            r#"{"a":1"#,
            r#"{"a":{"b":1}"#,
            r#"{"a" 1}"#,
            r#"{"a":1} x"#,
        ] {
            assert_eq!(members(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(members(b"{}"), Some(vec![]));
    }

    #[test]
    fn splits_arrays() {
        let text = r#"[["1.0","2"], ["3","4"]]"#;
        let elements = array_elements(text.as_bytes()).unwrap();
        let parts: Vec<&str> = elements.into_iter().map(|r| &text[r]).collect();
        assert_eq!(parts, vec![r#"["1.0","2"]"#, r#"["3","4"]"#]);
        assert_eq!(array_elements(b"[]"), Some(vec![]));
        assert_eq!(plain_string(b"\"ab\""), Some("ab"));
        assert_eq!(plain_string(b"\"a\\nb\""), None);
    }
}
