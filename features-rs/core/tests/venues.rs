//! OKX and Hyperliquid through the pipeline, on the real captures in `../shared/data/real`
//! (cryptofeed's `OKX.ws.1.0`, hftbacktest's `hyperliquid/btcusd_20250126.gz`). When the shared
//! folder is not beside the clone these tests say so and pass, unless
//! `TWINFEED_REQUIRE_SHARED=1` (CI), which makes a missing capture a failure.

use std::io::Read;
use std::path::PathBuf;

use twinfeed_features::record::{GapReason, Kind, NO_SYMBOL};
use twinfeed_features::{FeatureConfig, Pipeline, Record};

fn real(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/real")
        .join(path);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("TWINFEED_REQUIRE_SHARED").as_deref() != Ok("1"),
        "{} is missing and TWINFEED_REQUIRE_SHARED=1",
        path.display()
    );
    eprintln!("skipped: {} not found", path.display());
    None
}

/// The received frames of a cryptofeed `.ws` file as `(local_ns, frame)`: `<secs>: <frame>`
/// lines (the `<url> <-` and `<url> <->` lines are the client's, not the venue's).
fn cryptofeed_frames(text: &str) -> Vec<(i64, String)> {
    text.lines()
        .filter_map(|line| {
            let (stamp, frame) = line.split_once(": ")?;
            let (whole, fraction) = stamp.split_once('.').unwrap_or((stamp, ""));
            let whole: i64 = whole.parse().ok()?;
            let fraction: i64 = format!("{fraction:0<9}")[..9].parse().ok()?;
            Some((whole * 1_000_000_000 + fraction, frame.to_string()))
        })
        .collect()
}

fn run(frames: &[(i64, String)], config: FeatureConfig) -> (Pipeline, Vec<Record>) {
    let mut pipeline = Pipeline::new(config);
    let mut out = Vec::new();
    for (local_ns, frame) in frames {
        pipeline.push(*local_ns, frame, &mut out);
    }
    (pipeline, out)
}

fn okx_frames() -> Option<Vec<(i64, String)>> {
    let path = real("cryptofeed/OKX.ws.1.0")?;
    Some(cryptofeed_frames(&std::fs::read_to_string(path).unwrap()))
}

#[test]
fn every_okx_book_message_of_the_real_capture_passes_its_checksum() {
    let Some(frames) = okx_frames() else { return };
    let books = frames
        .iter()
        .filter(|(_, f)| f.contains("\"channel\":\"books\"") && f.contains("\"checksum\""))
        .count();
    assert_eq!(books, 290, "3 snapshots and 287 updates");
    let (pipeline, out) = run(&frames, FeatureConfig::default());
    let stats = pipeline.stats();
    assert_eq!(stats.decode_errors, 0, "{:?}", stats.errors);
    assert_eq!(stats.checksums_verified, 290);
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.snapshots, 3);
    assert_eq!(
        pipeline.symbols(),
        ["okx:BTC-USD-220527", "okx:UNI-USD-SWAP", "okx:BTC-USDT"]
    );
    let count = |kind: Kind| out.iter().filter(|r| r.kind == kind as u8).count();
    assert_eq!(count(Kind::Book), 290);
    assert_eq!(
        count(Kind::Trade),
        74,
        "one trade in each of the 74 trades frames"
    );
    assert!(count(Kind::Quote) > 0);
}

#[test]
fn a_corrupted_level_is_a_checksum_gap_at_exactly_that_update() {
    let Some(mut frames) = okx_frames() else {
        return;
    };
    // The 40th book update of BTC-USDT: one size changed by one unit in its last place.
    let (index, _) = frames
        .iter()
        .enumerate()
        .filter(|(_, (_, f))| f.contains("\"instId\":\"BTC-USDT\"},\"action\":\"update\""))
        .nth(40)
        .unwrap();
    let frame = &frames[index].1;
    let start = frame
        .find("\"bids\":[[\"")
        .or(frame.find("\"asks\":[[\""))
        .unwrap()
        + 10;
    let px_end = start + frame[start..].find('"').unwrap();
    let size_start = px_end + 3;
    let size_end = size_start + frame[size_start..].find('"').unwrap();
    let size = &frame[size_start..size_end];
    let last = size.as_bytes()[size.len() - 1];
    let bumped = if last == b'9' { b'8' } else { last + 1 };
    let mut corrupted = frame[..size_end - 1].to_string();
    corrupted.push(bumped as char);
    corrupted.push_str(&frame[size_end..]);
    frames[index].1 = corrupted;

    let (pipeline, out) = run(&frames, FeatureConfig::default());
    let gaps: Vec<&Record> = out.iter().filter(|r| r.kind == Kind::Gap as u8).collect();
    assert_eq!(gaps.len(), 1, "{:?}", pipeline.stats().errors);
    let gap = gaps[0];
    assert_eq!(
        gap.line,
        index as u64 + 1,
        "the gap is on the corrupted line"
    );
    assert_eq!(gap.flags, GapReason::Checksum as u8);
    assert_eq!(pipeline.symbols()[gap.symbol_id as usize], "okx:BTC-USDT");
    // No book records for that symbol after it (OKX sends no new snapshot without a
    // resubscribe); the other instruments go on.
    let after = |symbol: u16| {
        out.iter()
            .filter(|r| r.kind == Kind::Book as u8 && r.symbol_id == symbol && r.line > gap.line)
            .count()
    };
    assert_eq!(after(gap.symbol_id), 0);
    assert!(after((gap.symbol_id + 1) % 3) > 0 || after((gap.symbol_id + 2) % 3) > 0);
    assert!(pipeline
        .stats()
        .errors
        .iter()
        .any(|e| e.line == gap.line && e.message.contains("checksum")));
    assert_ne!(gap.symbol_id, NO_SYMBOL);
}

#[test]
fn hyperliquid_books_and_trades_of_the_real_capture() {
    let Some(path) = real("hyperliquid/btcusd_20250126.gz") else {
        return;
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut pipeline = Pipeline::new(FeatureConfig::default());
    let mut out = Vec::new();
    for line in text.lines() {
        pipeline.push_line(line.as_bytes(), &mut out);
    }
    let stats = pipeline.stats();
    assert_eq!(stats.decode_errors, 0, "{:?}", stats.errors);
    assert_eq!(stats.snapshots, 46);
    assert_eq!(pipeline.symbols(), ["hyperliquid:BTC"]);
    let books: Vec<&Record> = out.iter().filter(|r| r.kind == Kind::Book as u8).collect();
    assert_eq!(books.len(), 46);
    assert_eq!((books[0].bid_px, books[0].ask_px), (105055.0, 105056.0));
    let trades = out.iter().filter(|r| r.kind == Kind::Trade as u8).count();
    let in_frames: usize = text.lines().map(|l| l.matches("\"tid\":").count()).sum();
    assert_eq!(trades, in_frames, "every trade of every trades frame");
}

#[test]
fn the_same_name_on_two_venues_is_two_symbols() {
    let frames = [
        r#"{"stream":"btc@trade","data":{"e":"trade","E":1723161256313,"s":"BTC","t":1,"p":"1","q":"1","m":true}}"#,
        r#"{"channel":"trades","data":[{"coin":"BTC","hash":"0x","px":"2","side":"B","sz":"1","tid":7,"time":1737918794873,"users":[]}]}"#,
        r#"{"arg":{"channel":"trades","instId":"BTC"},"data":[{"instId":"BTC","tradeId":"9","px":"3","sz":"1","side":"buy","ts":"1652459224818"}]}"#,
    ];
    let frames: Vec<(i64, String)> = frames.iter().map(|f| (1, f.to_string())).collect();
    let (pipeline, out) = run(&frames, FeatureConfig::default());
    assert_eq!(pipeline.symbols(), ["BTC", "hyperliquid:BTC", "okx:BTC"]);
    let ids: Vec<u16> = out
        .iter()
        .filter(|r| r.kind == Kind::Trade as u8)
        .map(|r| r.symbol_id)
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    // A config naming one venue keeps only its frames, and its fingerprint is its own.
    let config = FeatureConfig::from_toml_str("[filter]\nvenues = [\"OKX\"]\n", "test").unwrap();
    assert_ne!(config.fingerprint(), FeatureConfig::default().fingerprint());
    let (pipeline, _) = run(&frames, config);
    assert_eq!(pipeline.symbols(), ["okx:BTC"]);
    assert_eq!(pipeline.stats().filtered, 2);
    let config = FeatureConfig::from_toml_str(
        "[filter]\nsymbols = [\"OKX:btc\", \"hyperliquid:kPEPE\"]\n",
        "test",
    )
    .unwrap();
    assert_eq!(config.filter.symbols, ["okx:BTC", "hyperliquid:kPEPE"]);
    let (pipeline, out) = run(&frames, config);
    assert_eq!(pipeline.symbols(), ["okx:BTC", "hyperliquid:kPEPE"]);
    assert_eq!(
        out.iter().filter(|r| r.kind == Kind::Trade as u8).count(),
        1
    );
}
