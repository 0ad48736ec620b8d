//! The nesting guard in front of the JSON library.
//!
//! sonic-rs limits the depth of the values it deserializes into types, but skips unknown
//! members (and parses `Value`s) recursively without a limit: a frame nested some 37,000 levels
//! deep overflows the stack. Every frame that reaches the JSON library passes [`too_deep`]
//! first; the fast paths (positional and flat) never recurse and never call it.
//!
//! The check is cheap where it runs: a frame with at most [`MAX_NESTING`] opening brackets
//! cannot nest deeper (brackets inside strings only overcount), which one vectorised count over
//! the bytes decides for most frames; only frames with more brackets (large depth diffs,
//! snapshots) are walked with string awareness.

/// Deepest nesting of JSON arrays and objects accepted in a frame. Binance frames nest three
/// levels deep (envelope, body, level array); serde_json's default limit is the same 128.
pub const MAX_NESTING: usize = 128;

/// Keys shown at most in the path of a too-deep frame.
const PATH_KEYS: usize = 4;
/// Bytes of one key shown at most.
const KEY_BYTES: usize = 32;

/// `None` if `text` nests arrays and objects at most [`MAX_NESTING`] levels deep; otherwise
/// the path of member names down to where it goes deeper (e.g. `data.b`; empty at the top).
#[inline]
pub fn too_deep(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    if openers(bytes) <= MAX_NESTING {
        return None;
    }
    let at = deeper_than(bytes, MAX_NESTING)?;
    Some(path_to(bytes, at))
}

/// Opening brackets in `bytes`, strings included. Counted in blocks of at most 255 bytes into
/// byte counters, which the compiler vectorises.
fn openers(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|block| {
            block
                .iter()
                .fold(0u8, |n, &b| n + u8::from(b == b'[' || b == b'{')) as usize
        })
        .sum()
}

/// Index just past the closing quote of the string whose opening quote is at `bytes[at]`, or
/// `None` if it is not terminated.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Index of the first opening bracket outside strings that is more than `limit` levels deep.
fn deeper_than(bytes: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // An unterminated string holds the rest: nothing deeper follows.
            b'"' => {
                i = string_end(bytes, i)?;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The member names of the containers open at `bytes[at]` (outermost first), for messages.
fn path_to(bytes: &[u8], at: usize) -> String {
    // The key last named in each open container (empty for arrays and before the first key).
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut last_string: &[u8] = b"";
    let mut i = 0;
    while i < at {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i).unwrap_or(at).min(at);
                last_string = &bytes[i + 1..end.saturating_sub(1).max(i + 1)];
                i = end;
                continue;
            }
            b':' => {
                if let Some(key) = keys.last_mut() {
                    *key = last_string;
                }
            }
            b'[' | b'{' => keys.push(b""),
            b']' | b'}' => {
                keys.pop();
            }
            _ => {}
        }
        i += 1;
    }
    let named: Vec<String> = keys
        .iter()
        .filter(|key| !key.is_empty())
        .map(|key| String::from_utf8_lossy(&key[..key.len().min(KEY_BYTES)]).into_owned())
        .collect();
    let mut path = named[..named.len().min(PATH_KEYS)].join(".");
    if named.len() > PATH_KEYS {
        path.push_str("...");
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn accepts_up_to_the_limit_and_names_the_path_beyond() {
        assert_eq!(too_deep(&nested(MAX_NESTING)), None);
        assert_eq!(too_deep(&nested(MAX_NESTING + 1)).as_deref(), Some(""));
        let frame = format!(
            r#"{{"stream":"btcusdt@depth","data":{{"e":"depthUpdate","x":{}}}}}"#,
            nested(40_000)
        );
        assert_eq!(too_deep(&frame).as_deref(), Some("data.x"));
        // Unbalanced: opened and never closed.
        let open = format!(r#"{{"data":{{"b":{}"#, "[".repeat(40_000));
        assert_eq!(too_deep(&open).as_deref(), Some("data.b"));
        let objects = format!("{}{}", r#"{"k":"#.repeat(500), "}".repeat(500));
        assert_eq!(too_deep(&objects).as_deref(), Some("k.k.k.k..."));
    }

    #[test]
    fn brackets_in_strings_neither_hide_nor_fake_depth() {
        // Many brackets, all inside strings: not deep.
        let strings = format!(
            r#"{{"a":"{}","b":"\"{}"}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert_eq!(too_deep(&strings), None);
        // Closing brackets inside strings do not close anything.
        let hidden = format!("{}1{}", r#"["]]]","#.repeat(200), "]".repeat(200));
        assert!(too_deep(&hidden).is_some());
    }
}
