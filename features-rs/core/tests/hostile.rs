//! Hostile input through the public entry points (`Pipeline::push_line`, `CaptureRun`): nothing
//! crashes, every hostile line is a counted skip whose message names the field, and the lines
//! around it give exactly the records they give without it.

use twinfeed_features::capture::CaptureRun;
use twinfeed_features::record::{extend_bytes, Kind, Record, FLAG_BOOK_VALID};
use twinfeed_features::{FeatureConfig, Pipeline, Stats};

const SNAPSHOT: &str = r#"1723161256000000000 {"lastUpdateId":100,"E":1723161256000,"T":1723161256000,"bids":[["61800.00","1.000"],["61799.90","2.000"]],"asks":[["61800.10","1.500"],["61800.20","3.000"]]}"#;

/// A small USD-M capture: snapshot, chained depth diffs, quotes and trades over a few seconds
/// (so bars close and the flow window expires).
fn clean_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let mut previous = 99;
    for i in 0..40i64 {
        if i == 1 {
            // After the first frames, as hftbacktest captures have it (the symbol is known).
            lines.push(SNAPSHOT.to_string());
        }
        let ms = 1_723_161_256_000 + i * 250;
        let ns = ms * 1_000_000 + 7;
        let (first, last) = (previous + 1, previous + 3);
        lines.push(format!(
            r#"{ns} {{"stream":"btcusdt@depth@0ms","data":{{"e":"depthUpdate","E":{ms},"T":{ms},"s":"BTCUSDT","U":{first},"u":{last},"pu":{previous},"b":[["61800.00","{}.000"]],"a":[["61800.10","1.{}"]]}}}}"#,
            1 + i % 3,
            i % 10
        ));
        previous = last;
        lines.push(format!(
            r#"{} {{"stream":"btcusdt@bookTicker","data":{{"e":"bookTicker","u":{},"s":"BTCUSDT","b":"61800.00","B":"{}.5","a":"61800.10","A":"2.510","T":{ms},"E":{ms}}}}}"#,
            ns + 1,
            1000 + i,
            i % 7 + 1
        ));
        lines.push(format!(
            r#"{} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{ms},"T":{ms},"s":"BTCUSDT","t":{},"p":"61800.{}","q":"0.00{}","X":"MARKET","m":{}}}}}"#,
            ns + 2,
            5000 + i,
            i % 10,
            i % 9 + 1,
            i % 2 == 0
        ));
    }
    lines
}

fn run(lines: &[String], config: FeatureConfig) -> (Vec<Record>, Stats) {
    let mut pipeline = Pipeline::new(config);
    let mut out = Vec::new();
    for line in lines {
        pipeline.push_line(line.as_bytes(), &mut out);
    }
    (out, pipeline.stats().clone())
}

fn bytes(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    extend_bytes(&mut out, records);
    out
}

/// Inserts `hostile` after line `at` (1-based) and checks: one counted decode error naming
/// `field`, and every other line's records exactly as without it.
fn assert_skipped(at: usize, hostile: &str, field: &str) {
    let clean = clean_lines();
    let (expected, clean_stats) = run(&clean, FeatureConfig::default());
    assert!(clean_stats.errors.is_empty(), "{:?}", clean_stats.errors);
    let mut lines = clean.clone();
    lines.insert(at, hostile.to_string());
    let (mut got, stats) = run(&lines, FeatureConfig::default());
    assert_eq!(
        stats.decode_errors + stats.malformed_lines,
        clean_stats.decode_errors + clean_stats.malformed_lines + 1,
        "{field}: {:?}",
        stats.errors
    );
    let error = &stats.errors[0];
    assert_eq!(error.line, at as u64 + 1);
    assert!(error.message.contains(field), "{field}: {}", error.message);
    for record in &mut got {
        assert_ne!(
            record.line,
            at as u64 + 1,
            "{field}: the hostile line made a record"
        );
        if record.line > at as u64 {
            record.line -= 1;
        }
    }
    assert_eq!(bytes(&got), bytes(&expected), "{field}: records differ");
}

/// An `instruments` line (the venue's exchangeInfo, as the live ingest writes it) is a frame
/// that makes no record and no error: the records around it are those of the capture without it.
#[test]
fn instruments_line_makes_no_record_and_no_error() {
    let clean = clean_lines();
    let (expected, clean_stats) = run(&clean, FeatureConfig::default());
    let at = 4;
    let stamp = clean[at - 1].split(' ').next().unwrap();
    let info = r#"{"timezone":"UTC","serverTime":1723161256000,"rateLimits":[],"exchangeFilters":[],"symbols":[{"symbol":"BTCUSDT","status":"TRADING","contractType":"PERPETUAL","pricePrecision":2,"quantityPrecision":3,"baseAsset":"BTC","quoteAsset":"USDT","marginAsset":"USDT","filters":[{"filterType":"PRICE_FILTER","minPrice":"556.80","maxPrice":"4529764","tickSize":"0.10"},{"filterType":"LOT_SIZE","minQty":"0.001","maxQty":"1000","stepSize":"0.001"}]}]}"#;
    let line = format!(
        "{stamp} {}",
        twinfeed_features::decode::control::instruments_line("usdm", info)
    );
    let mut lines = clean.clone();
    lines.insert(at, line.clone());
    // Also with members in another order, as a hand-written capture may have them.
    let reordered =
        format!(r#"{stamp} {{"twinfeed":"instruments","data":{info},"market":"usdm"}}"#);
    lines.insert(at + 2, reordered);
    let (mut got, stats) = run(&lines, FeatureConfig::default());
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(stats.decode_errors, clean_stats.decode_errors);
    assert_eq!(stats.unknown_frames, clean_stats.unknown_frames);
    assert_eq!(stats.records, clean_stats.records);
    for record in &mut got {
        let inserted = [at as u64 + 1, at as u64 + 3];
        assert!(
            !inserted.contains(&record.line),
            "the instruments line made a record"
        );
        record.line -= inserted.iter().filter(|&&n| n < record.line).count() as u64;
    }
    assert_eq!(bytes(&got), bytes(&expected));
    // A wrong market or no body is a counted error naming the field.
    assert_skipped(
        at,
        &line.replace(r#""market":"usdm""#, r#""market":"moon""#),
        "field `market`",
    );
    assert_skipped(
        at,
        &format!(r#"{stamp} {{"twinfeed":"instruments","market":"spot"}}"#),
        "field `data`",
    );
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deep_nesting_anywhere_is_a_counted_decode_error() {
    let deep = nested(40_000);
    let objects = format!("{}1{}", r#"{"k":"#.repeat(40_000), "}".repeat(40_000));
    let clean = clean_lines();
    let depth = &clean[4];
    let ticker = &clean[5];
    let trade = &clean[6];
    let with_key = |line: &str, value: &str| {
        line.replacen(
            r#""s":"BTCUSDT""#,
            &format!(r#""x":{value},"s":"BTCUSDT""#),
            1,
        )
    };
    let cases = [
        (with_key(depth, &deep), "data.x"),
        (with_key(ticker, &deep), "data.x"),
        (with_key(trade, &objects), "data.x.k.k"),
        (with_key(trade, &"[".repeat(40_000)), "data.x"),
        (
            ticker.replacen(r#""b":"61800.00""#, &format!(r#""b":{deep}"#), 1),
            "data.b",
        ),
        (
            depth.replacen(r#"{"stream""#, &format!(r#"{{"y":{deep},"stream""#), 1),
            "field `y`",
        ),
        (
            SNAPSHOT.replacen(r#""E""#, &format!(r#""z":{deep},"E""#), 1),
            "field `z`",
        ),
        (
            format!(
                r#"1 {{"twinfeed":"snapshot","symbol":"BTCUSDT","data":{{"lastUpdateId":1,"q":{deep},"bids":[],"asks":[]}}}}"#
            ),
            "data.q",
        ),
        (
            format!(r#"1 {{"twinfeed":"connected","url":{deep}}}"#),
            "field `url`",
        ),
        (
            format!(
                r#"1 {{"twinfeed":"instruments","market":"usdm","data":{{"symbols":{deep}}}}}"#
            ),
            "data.symbols",
        ),
        (
            format!(r#"1 {{"twinfeed":"instruments","market":"usdm","data":{objects}}}"#),
            "data.k",
        ),
        (format!("1 {deep}"), "the frame"),
        (
            format!(r#"1 {{"stream":"btcusdt@kline_1m","data":{objects}}}"#),
            "data.k",
        ),
    ];
    for (line, field) in cases {
        assert_skipped(4, &line, field);
        assert!(line.len() > 40_000);
    }
    // A huge member is named, not copied into the kept errors.
    let huge = clean[5].replacen(
        r#""b":"61800.00""#,
        &format!(r#""b":"{}""#, "9x".repeat(1 << 20)),
        1,
    );
    let (_, stats) = run(&[huge], FeatureConfig::default());
    assert_eq!(stats.decode_errors, 1);
    assert!(
        stats.errors[0].message.contains("field `b`") && stats.errors[0].message.len() < 200,
        "{}",
        stats.errors[0].message.len()
    );
    // Within the limit it is just JSON: an unknown stream, no error.
    let shallow = format!(
        r#"1 {{"stream":"btcusdt@kline_1m","data":{}}}"#,
        nested(100)
    );
    let (_, stats) = run(&[shallow], FeatureConfig::default());
    assert_eq!((stats.unknown_frames, stats.decode_errors), (1, 0));
}

#[test]
fn values_the_venue_cannot_send_are_counted_decode_errors() {
    let clean = clean_lines();
    let (ticker, trade, depth) = (&clean[8], &clean[9], &clean[7]);
    let cases = [
        (
            ticker.replace(r#""b":"61800.00""#, r#""b":"-61800.00""#),
            "field `b`",
        ),
        (
            ticker.replace(r#""a":"61800.10""#, r#""a":"0.00""#),
            "field `a`",
        ),
        (
            ticker.replace(r#""a":"61800.10""#, r#""a":"61700.10""#),
            "crossed",
        ),
        (
            ticker.replace(r#""a":"61800.10""#, r#""a":"61800.00""#),
            "crossed",
        ),
        (
            ticker.replace(r#""A":"2.510""#, r#""A":"-2.510""#),
            "field `A`",
        ),
        (
            ticker.replace(r#""E":1723161256500"#, r#""E":9000000000000"#),
            "field `E`",
        ),
        (
            trade.replace(r#""E":1723161256500"#, r#""E":9223372036854775807"#),
            "field `E`",
        ),
        (
            trade.replace(r#""q":"0.003""#, r#""q":"-0.003""#),
            "field `q`",
        ),
        (trade.replace(r#""p":"61800.2""#, r#""p":"0""#), "field `p`"),
        (
            trade.replace(r#""t":5002"#, r#""t":9223372036854775808"#),
            "field `t`",
        ),
        (
            depth.replace(r#""u":108"#, r#""u":9223372036854775808"#),
            "field `u`",
        ),
        (depth.replace(r#""U":106"#, r#""U":109"#), "field `U`"),
        (
            depth.replace(r#""pu":105"#, r#""pu":18446744073709551615"#),
            "field `pu`",
        ),
        (
            depth.replace(r#"["61800.00","3.000"]"#, r#"["61800.00","-2.000"]"#),
            "field `b`",
        ),
        (
            depth.replace(r#"["61800.00","3.000"]"#, r#"["-1","2.000"]"#),
            "field `b`",
        ),
        (
            SNAPSHOT.replace(
                r#""lastUpdateId":100"#,
                r#""lastUpdateId":18446744073709551615"#,
            ),
            "field `lastUpdateId`",
        ),
        (
            SNAPSHOT.replace(r#""E":1723161256000"#, r#""E":90000000000000"#),
            "field `E`",
        ),
        // A receive stamp of 19 digits beyond i64::MAX (it used to wrap to a negative local_ns).
        (
            ticker.replacen("1723161256500000008", "9999999999999999999", 1),
            "local_receive_ns",
        ),
    ];
    for (line, field) in cases {
        assert!(!clean.contains(&line), "{field}: the edit did not apply");
        assert_skipped(10, &line, field);
    }
}

#[test]
fn a_forged_update_id_costs_a_gap_and_a_resync_not_a_frozen_book() {
    let clean = clean_lines();
    // Chained to the book (`pu` = the last `u`) but jumping to 2^62.
    let forged = clean[7].replace(r#""u":108"#, r#""u":4611686018427387904"#);
    assert_ne!(forged, clean[7]);
    let mut lines = clean.clone();
    lines.insert(7, forged);
    // A fresh snapshot later resyncs the book.
    let resync_at = 60;
    let resync = SNAPSHOT.replace(r#""lastUpdateId":100"#, r#""lastUpdateId":107"#);
    lines.insert(resync_at, resync);
    let (records, stats) = run(&lines, FeatureConfig::default());
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(stats.gaps, 1, "{:?}", stats.errors);
    let gap = records.iter().find(|r| r.kind == Kind::Gap as u8).unwrap();
    assert_eq!(
        gap.line, 9,
        "the real diff after the forged one reports the gap"
    );
    // Book records after the gap and before the resync: none; after it: valid ones again.
    let books: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == Kind::Book as u8)
        .collect();
    assert!(books
        .iter()
        .all(|r| r.line < 9 || r.line > resync_at as u64));
    let after: Vec<&&Record> = books.iter().filter(|r| r.line > resync_at as u64).collect();
    assert!(after.len() > 10, "{}", after.len());
    assert!(after.iter().all(|r| r.flags & FLAG_BOOK_VALID != 0));
    let quotes_between = records
        .iter()
        .filter(|r| r.kind == Kind::Quote as u8 && r.line > 9 && r.line < resync_at as u64);
    for quote in quotes_between {
        assert_eq!(quote.flags & FLAG_BOOK_VALID, 0, "stale book flagged valid");
    }
}

#[test]
fn symbols_past_the_cap_are_counted_skips_and_ids_never_wrap() {
    let line = |i: usize| {
        format!(
            r#"{i} {{"stream":"x@bookTicker","data":{{"u":{i},"s":"S{i}","b":"1","B":"1","a":"2","A":"1"}}}}"#
        )
    };
    let config = FeatureConfig::from_toml_str("[filter]\nmax_symbols = 3\n", "t").unwrap();
    let again = line(1).replace(r#""B":"1""#, r#""B":"2""#);
    let lines: Vec<String> = (0..5).map(line).chain([again]).collect();
    let (records, stats) = run(&lines, config);
    assert_eq!((stats.over_symbol_cap, stats.filtered), (2, 0));
    assert_eq!(records.len(), 4, "S0, S1, S2 and S1 again");
    assert_eq!(records[3].symbol_id, 1);
    assert!(
        stats.errors[0].message.contains("\"S3\"")
            && stats.errors[0].message.contains("filter.max_symbols = 3")
    );
    // The widest cap: ids stay below NO_SYMBOL, later symbols are counted, none wraps.
    let config = FeatureConfig::from_toml_str("[filter]\nmax_symbols = 65535\n", "t").unwrap();
    let lines: Vec<String> = (0..65_600)
        .map(line)
        .chain([
            line(70_000),
            line(65_534).replace(r#""B":"1""#, r#""B":"2""#),
        ])
        .collect();
    let (records, stats) = run(&lines, config);
    assert_eq!(stats.over_symbol_cap, 66);
    assert_eq!(records.len(), 65_536);
    assert_eq!(records.last().unwrap().symbol_id, 65_534);
    assert!(records.iter().all(|r| r.symbol_id < u16::MAX));
}

#[test]
fn damaged_compressed_captures_keep_the_lines_before_the_damage() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("twinfeed-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clean = clean_lines();
    let text: String = clean.iter().map(|l| format!("{l}\n")).collect();
    let half = clean.len() / 2;
    let first: String = clean[..half].iter().map(|l| format!("{l}\n")).collect();
    let second: String = clean[half..].iter().map(|l| format!("{l}\n")).collect();
    let gzip = |data: &str| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let (expected, _) = run(&clean, FeatureConfig::default());
    let expected_first = run(&clean[..half], FeatureConfig::default()).0;
    let garbage = b"\x00\x01garbage after the last frame\xff".to_vec();
    let mut gz_garbage = gzip(&text);
    gz_garbage.extend_from_slice(&garbage);
    let mut zst_garbage = zstd::encode_all(text.as_bytes(), 1).unwrap();
    zst_garbage.extend_from_slice(&garbage);
    // Two gzip members, the second one's deflate data overwritten in the middle.
    let mut gz_corrupt = gzip(&first);
    let member = gzip(&second);
    let corrupt_from = gz_corrupt.len() + 20;
    gz_corrupt.extend_from_slice(&member);
    for byte in &mut gz_corrupt[corrupt_from..corrupt_from + 40] {
        *byte = 0xff;
    }
    for (name, data, whole) in [
        ("garbage.gz", gz_garbage, true),
        ("garbage.zst", zst_garbage, true),
        ("corrupt.gz", gz_corrupt, false),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &data).unwrap();
        let mut run =
            CaptureRun::new(vec![path.clone()], Pipeline::new(FeatureConfig::default())).unwrap();
        let mut out = Vec::new();
        while run.next_batch(1000, &mut out).unwrap() {}
        let stats = run.pipeline().stats();
        assert_eq!(run.torn.len(), 1, "{name}");
        let message = &stats.errors.last().unwrap().message;
        assert!(
            message.contains(name)
                && message.contains("after byte")
                && message.contains("cannot be decoded"),
            "{message}"
        );
        if whole {
            assert_eq!(bytes(&out), bytes(&expected), "{name}");
        } else {
            // Everything of the intact first member, nothing invented after the damage.
            assert!(out.len() >= expected_first.len(), "{name}");
            assert_eq!(
                bytes(&out[..expected_first.len()]),
                bytes(&expected_first),
                "{name}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
