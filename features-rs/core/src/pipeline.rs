//! The pipeline: capture lines in, records out. [`Pipeline::push`] is the only entry point the
//! ingest binary and the Python binding use, and its output is a pure function of the config
//! and the ordered lines (contract 2): time comes from the lines, iteration is over vectors in
//! symbol-id order, sums are exact integers.

use std::collections::HashMap;

use crate::book::{Applied, Book, Top};
use crate::config::FeatureConfig;
use crate::decode::{
    decode_frame, BookAction, BookUpdate, Control, DepthDiff, Message, Quote, Snapshot, Trade,
    Venue, VenueEvent,
};
use crate::features::{Bars, ClosedBar, FlowWindow, TopOfBook};
use crate::record::{
    GapReason, Kind, Record, StatusEvent, FLAG_BOOK_VALID, FLAG_BUYER_AGGRESSOR,
    FLAG_FROM_SNAPSHOT, NO_SYMBOL,
};

/// How many line errors are kept verbatim for reports (all are counted).
pub const MAX_KEPT_ERRORS: usize = 100;

/// Symbols looked up by a linear scan before the hash map is asked.
const LINEAR_SYMBOLS: usize = 8;

/// A skipped line, with its 1-based line number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

/// Counters. Every input line lands in exactly one of `frames`, `blank_lines`,
/// `malformed_lines`, `decode_errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub bytes: u64,
    pub frames: u64,
    pub blank_lines: u64,
    /// Lines that are not `<local_receive_ns> <frame>`.
    pub malformed_lines: u64,
    /// Frames that are not valid JSON of the expected shape.
    pub decode_errors: u64,
    /// Well-formed frames of streams the pipeline does not consume.
    pub unknown_frames: u64,
    /// Frames dropped by the symbol/stream filter.
    pub filtered: u64,
    /// Frames of a new symbol when `filter.max_symbols` symbols are already numbered: skipped,
    /// each with a kept error naming the cap (not counted in `filtered`).
    pub over_symbol_cap: u64,
    /// bookTicker updates that changed nothing.
    pub unchanged_quotes: u64,
    pub records: u64,
    pub gaps: u64,
    pub snapshots: u64,
    /// Bare REST snapshots that could not be tied to one symbol.
    pub unattributed_snapshots: u64,
    pub heartbeats: u64,
    /// Venue book checksums (OKX) that matched the rebuilt book.
    pub checksums_verified: u64,
    pub errors: Vec<LineError>,
}

struct SymbolState {
    /// The symbol-table name: bare for Binance, `venue:symbol` otherwise ([`Venue::qualified`]).
    name: String,
    venue: Venue,
    /// Where the venue's own symbol starts in `name` (after `venue:`).
    key_start: usize,
    book: Book,
    flow: FlowWindow,
    bars: Bars,
    seq: u64,
    depth_diffs: u64,
    last_exchange_ns: i64,
    last_quote: Option<(i64, i64, i64, i64)>,
    last_top: Option<TopOfBook>,
    quotes_kept: u64,
    books_applied: u64,
    /// Book imbalance over the configured levels, recomputed when the book changes (NaN when
    /// the book is invalid).
    imbalance: f64,
}

pub struct Pipeline {
    config: FeatureConfig,
    fingerprint: String,
    /// Streams kept of Binance frames (`filter.streams`, and Binance in `filter.venues`).
    keep: [bool; 4],
    /// Streams kept (`filter.streams`), for the other venues.
    keep_stream: [bool; 4],
    /// Venues whose frames are kept, by [`Venue`] order (`filter.venues`; empty keeps all).
    keep_venue: [bool; 3],
    fixed_symbols: bool,
    symbols: Vec<SymbolState>,
    /// Symbol ids by name, beyond the first [`LINEAR_SYMBOLS`] (found by a scan, which beats
    /// hashing for the few symbols of a typical feed). For lookups only: nothing iterates it,
    /// so its order cannot reach any output.
    index: HashMap<String, u16>,
    max_symbols: usize,
    book_levels: usize,
    line: u64,
    no_symbol_seq: u64,
    last_exchange_ns: i64,
    stats: Stats,
}

impl Pipeline {
    pub fn new(config: FeatureConfig) -> Self {
        let keep = crate::config::STREAMS.map(|s| config.filter.streams.iter().any(|k| k == s));
        let venues = &config.filter.venues;
        let keep_venue =
            Venue::ALL.map(|v| venues.is_empty() || venues.iter().any(|k| k == v.name()));
        let mut pipeline = Pipeline {
            keep: keep.map(|k| k && keep_venue[Venue::Binance as usize]),
            keep_stream: keep,
            keep_venue,
            fingerprint: config.fingerprint(),
            fixed_symbols: !config.filter.symbols.is_empty(),
            symbols: Vec::new(),
            index: HashMap::new(),
            max_symbols: config.filter.max_symbols as usize,
            book_levels: config.features.book_levels as usize,
            line: 0,
            no_symbol_seq: 0,
            last_exchange_ns: 0,
            stats: Stats::default(),
            config,
        };
        for name in pipeline.config.filter.symbols.clone() {
            pipeline.add_symbol(name);
        }
        pipeline
    }

    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Symbol names by id.
    pub fn symbols(&self) -> Vec<&str> {
        self.symbols.iter().map(|s| s.name.as_str()).collect()
    }

    /// Symbols whose depth stream had no snapshot, so they have no book features.
    pub fn symbols_without_snapshot(&self) -> Vec<(&str, u64)> {
        self.symbols
            .iter()
            .filter(|s| s.depth_diffs > 0 && !s.book.has_snapshot())
            .map(|s| (s.name.as_str(), s.depth_diffs))
            .collect()
    }

    /// Human-readable warnings about the input so far (no snapshot, unattributed snapshots).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .symbols_without_snapshot()
            .into_iter()
            .map(|(name, diffs)| {
                format!("{name}: {diffs} depth diffs but no depth snapshot, so no book records or imbalance")
            })
            .collect();
        if self.stats.over_symbol_cap > 0 {
            out.push(format!(
                "{} frame(s) of new symbols skipped: more than filter.max_symbols = {} distinct symbols",
                self.stats.over_symbol_cap, self.max_symbols
            ));
        }
        if self.stats.unattributed_snapshots > 0 {
            out.push(format!(
                "{} bare REST snapshot line(s) could not be tied to one symbol (configure filter.symbols)",
                self.stats.unattributed_snapshots
            ));
        }
        out
    }

    fn add_symbol(&mut self, name: String) -> u16 {
        let id = u16::try_from(self.symbols.len()).expect("symbol ids are capped below u16::MAX");
        debug_assert!(id < NO_SYMBOL);
        if self.symbols.len() >= LINEAR_SYMBOLS {
            self.index.insert(name.clone(), id);
        }
        let (venue, key) = Venue::split(&name);
        let key_start = name.len() - key.len();
        let features = &self.config.features;
        self.symbols.push(SymbolState {
            name,
            venue,
            key_start,
            book: Book::default(),
            flow: FlowWindow::new(features.flow_window_ms),
            bars: Bars::new(self.config.downsample.bar_ms, features.ewma_alpha),
            seq: 0,
            depth_diffs: 0,
            last_exchange_ns: 0,
            last_quote: None,
            last_top: None,
            quotes_kept: 0,
            books_applied: 0,
            imbalance: f64::NAN,
        });
        id
    }

    /// The id of symbol `name`, numbering a new one if the filter allows; `None` (counted as
    /// filtered or over the symbol cap) if the frame is to be skipped.
    #[inline]
    fn symbol_id(&mut self, name: &str) -> Option<u16> {
        let scanned = &self.symbols[..self.symbols.len().min(LINEAR_SYMBOLS)];
        if let Some(index) = scanned
            .iter()
            .position(|s| s.name == name && s.venue == Venue::Binance)
        {
            return Some(index as u16);
        }
        if self.symbols.len() > LINEAR_SYMBOLS {
            if let Some(&id) = self.index.get(name) {
                if self.symbols[id as usize].venue == Venue::Binance {
                    return Some(id);
                }
            }
        }
        // A Binance name that reads as another venue's (`okx:...`) cannot be numbered: it
        // would be that venue's symbol.
        if Venue::split(name).0 != Venue::Binance {
            self.stats.filtered += 1;
            return None;
        }
        self.new_symbol(name)
    }

    /// The id of `symbol` of a venue other than Binance (named `venue:symbol` in the table).
    fn venue_symbol_id(&mut self, venue: Venue, symbol: &str) -> Option<u16> {
        let scanned = &self.symbols[..self.symbols.len().min(LINEAR_SYMBOLS)];
        if let Some(index) = scanned
            .iter()
            .position(|s| s.venue == venue && &s.name[s.key_start..] == symbol)
        {
            return Some(index as u16);
        }
        let name = venue.qualified(symbol);
        if self.symbols.len() > LINEAR_SYMBOLS {
            if let Some(&id) = self.index.get(&name) {
                return Some(id);
            }
        }
        self.new_symbol(&name)
    }

    #[cold]
    fn new_symbol(&mut self, name: &str) -> Option<u16> {
        if self.fixed_symbols {
            self.stats.filtered += 1;
            return None;
        }
        // Ids are u16 with NO_SYMBOL reserved; the config keeps the cap below it.
        if self.symbols.len() >= self.max_symbols.min(NO_SYMBOL as usize) {
            self.stats.over_symbol_cap += 1;
            self.error(format!(
                "symbol {:?}: skipped, over the symbol cap (filter.max_symbols = {} distinct symbols already numbered)",
                crate::decode::shown(name),
                self.max_symbols
            ));
            return None;
        }
        Some(self.add_symbol(name.to_string()))
    }

    fn error(&mut self, message: String) {
        if self.stats.errors.len() < MAX_KEPT_ERRORS {
            self.stats.errors.push(LineError {
                line: self.line,
                message,
            });
        }
    }

    /// Pushes one raw capture line (`<local_receive_ns> <frame>`, newline optional).
    pub fn push_line(&mut self, line: &[u8], out: &mut Vec<Record>) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some((local_ns, frame)) = stamp_prefix(line) {
            // The dominant shape straight from bytes; it gives exactly what the general route
            // would (same records, counters and errors), without a UTF-8 pass over the frame.
            if let Some(quote) = crate::decode::binance::book_ticker_envelope(frame) {
                self.push_decoded(local_ns, frame.len(), quote.map(Message::Quote), out);
                return;
            }
            // Depth diffs likewise: no UTF-8 pass over their (long) level arrays.
            if let Some(depth) = crate::decode::binance::depth_envelope(frame) {
                self.push_decoded(local_ns, frame.len(), depth, out);
                return;
            }
            if let Ok(frame) = simdutf8::basic::from_utf8(frame) {
                self.push_decoded(local_ns, frame.len(), decode_frame(frame), out);
                return;
            }
        }
        // Blank lines, malformed stamps, frames that are not UTF-8.
        match split_line(line) {
            Ok(Some((local_ns, frame))) => self.push(local_ns, frame, out),
            Ok(None) => {
                self.line += 1;
                self.stats.lines += 1;
                self.stats.blank_lines += 1;
            }
            Err(message) => {
                self.line += 1;
                self.stats.lines += 1;
                self.stats.bytes += line.len() as u64;
                self.stats.malformed_lines += 1;
                self.error(message);
            }
        }
    }

    /// Counts a line that could not be read at all (e.g. torn at the end of a file) so line
    /// numbers stay aligned with the file.
    pub fn skip_line(&mut self, message: String) {
        self.line += 1;
        self.stats.lines += 1;
        self.stats.malformed_lines += 1;
        self.error(message);
    }

    /// Pushes one frame received at `local_ns`; appends the records it produces to `out`.
    pub fn push(&mut self, local_ns: i64, frame: &str, out: &mut Vec<Record>) {
        self.push_with(local_ns, frame, out, &mut || {});
    }

    /// [`Pipeline::push`], calling `decoded` once the frame is decoded and before the book and
    /// the features see it (the ingest's per-stage timestamps; `push` passes a no-op, which
    /// compiles away). The same byte routes as `push_line` (identical results, see its
    /// property test): bookTicker and depth diffs are read straight from bytes.
    #[inline]
    pub fn push_with(
        &mut self,
        local_ns: i64,
        frame: &str,
        out: &mut Vec<Record>,
        decoded: &mut impl FnMut(),
    ) {
        let bytes = frame.as_bytes();
        let message = if let Some(quote) = crate::decode::binance::book_ticker_envelope(bytes) {
            quote.map(Message::Quote)
        } else if let Some(depth) = crate::decode::binance::depth_envelope(bytes) {
            depth
        } else {
            decode_frame(frame)
        };
        decoded();
        self.push_decoded(local_ns, frame.len(), message, out);
    }

    #[inline]
    fn push_decoded(
        &mut self,
        local_ns: i64,
        frame_len: usize,
        decoded: Result<Message<'_>, crate::decode::DecodeError>,
        out: &mut Vec<Record>,
    ) {
        self.line += 1;
        self.stats.lines += 1;
        self.stats.bytes += frame_len as u64;
        let before = out.len();
        match decoded {
            Ok(message) => {
                self.stats.frames += 1;
                self.dispatch(local_ns, message, out);
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                self.error(e.to_string());
            }
        }
        self.stats.records += (out.len() - before) as u64;
    }

    fn dispatch(&mut self, local_ns: i64, message: Message<'_>, out: &mut Vec<Record>) {
        // Index into `config::STREAMS` (kept in step with `Message::stream`).
        let stream = match &message {
            Message::Quote(_) => Some(0),
            Message::Trade(t) if t.aggregate => Some(2),
            Message::Trade(_) => Some(1),
            Message::Depth { .. } | Message::Snapshot { .. } => Some(3),
            Message::Venue { event, .. } => Some(match event {
                VenueEvent::Quote(_) => 0,
                VenueEvent::Trades(_) => 1,
                VenueEvent::Book { .. } => 3,
            }),
            _ => None,
        };
        if let Some(index) = stream {
            debug_assert_eq!(message.stream(), Some(crate::config::STREAMS[index]));
            let keep = match &message {
                Message::Venue { venue, .. } => {
                    self.keep_stream[index] && self.keep_venue[*venue as usize]
                }
                _ => self.keep[index],
            };
            if !keep {
                self.stats.filtered += 1;
                return;
            }
        }
        match message {
            Message::Quote(quote) => self.on_quote(local_ns, quote, out),
            Message::Trade(trade) => self.on_trade(local_ns, trade, out),
            Message::Depth { symbol, diff } => self.on_depth(local_ns, symbol, diff, out),
            Message::Snapshot { symbol, snapshot } => {
                self.on_snapshot(local_ns, symbol, snapshot, out)
            }
            Message::Control(control) => self.on_control(local_ns, control, out),
            Message::Venue { venue, event } => self.on_venue(local_ns, venue, event, out),
            Message::Unknown => self.stats.unknown_frames += 1,
        }
    }

    fn on_venue(
        &mut self,
        local_ns: i64,
        venue: Venue,
        event: VenueEvent<'_>,
        out: &mut Vec<Record>,
    ) {
        match event {
            VenueEvent::Quote(quote) => {
                if let Some(symbol) = self.venue_symbol_id(venue, quote.symbol) {
                    self.quote_of(symbol, local_ns, quote, out);
                }
            }
            VenueEvent::Trades(trades) => {
                for trade in trades {
                    if let Some(symbol) = self.venue_symbol_id(venue, trade.symbol) {
                        self.trade_of(symbol, local_ns, trade, out);
                    }
                }
            }
            VenueEvent::Book { symbol, update } => {
                if let Some(symbol) = self.venue_symbol_id(venue, symbol) {
                    self.on_venue_book(symbol, local_ns, update, out);
                }
            }
        }
    }

    /// A book message of a venue that streams its own snapshots: unlike a Binance REST
    /// snapshot it is market data, so it moves event time like a diff does.
    fn on_venue_book(
        &mut self,
        symbol: u16,
        local_ns: i64,
        update: BookUpdate,
        out: &mut Vec<Record>,
    ) {
        let exchange_ns = ms_to_ns(update.event_ms);
        self.advance(symbol, local_ns, exchange_ns, out);
        let state = &mut self.symbols[symbol as usize];
        let flags = match update.action {
            BookAction::Snapshot => {
                self.stats.snapshots += 1;
                FLAG_FROM_SNAPSHOT
            }
            BookAction::Update => {
                state.depth_diffs += 1;
                0
            }
        };
        let verified = state.book.checksums_verified;
        let applied = state.book.apply_venue(&update);
        self.stats.checksums_verified += state.book.checksums_verified - verified;
        if let Applied::ChecksumMismatch { expected, computed } = applied {
            self.error(format!(
                "{}: book checksum mismatch: the venue sent {expected}, the book after this message gives {computed}; book invalid until the next snapshot",
                self.symbols[symbol as usize].name
            ));
        }
        self.after_book_change(symbol, local_ns, exchange_ns, applied, flags, out);
    }

    fn header(&mut self, kind: Kind, symbol: u16, local_ns: i64, exchange_ns: i64) -> Record {
        let mut record = Record::empty(kind);
        record.symbol_id = symbol;
        record.line = self.line;
        record.local_ns = local_ns;
        record.exchange_ns = exchange_ns;
        record.seq = if symbol == NO_SYMBOL {
            self.no_symbol_seq += 1;
            self.no_symbol_seq
        } else {
            let state = &mut self.symbols[symbol as usize];
            state.seq += 1;
            state.seq
        };
        record
    }

    /// Fills the shared feature columns from the symbol's current state.
    fn fill_state(&self, record: &mut Record, symbol: u16) {
        let state = &self.symbols[symbol as usize];
        if let Some(top) = &state.last_top {
            record.bid_px = top.bid_px;
            record.bid_qty = top.bid_qty;
            record.ask_px = top.ask_px;
            record.ask_qty = top.ask_qty;
            record.mid = top.mid;
            record.spread = top.spread;
            record.spread_bps = top.spread_bps;
            record.microprice = top.microprice;
        }
        if state.book.is_valid() {
            record.imbalance = state.imbalance;
            record.flags |= FLAG_BOOK_VALID;
        }
        let (flow, flow_imbalance) = state.flow.values();
        record.trade_flow = flow;
        record.flow_imbalance = flow_imbalance;
        record.ret_ewma = state.bars.ret_ewma();
        record.realized_vol = state.bars.realized_vol();
    }

    /// Moves a symbol's event time forward, emitting the bar it closes.
    fn advance(&mut self, symbol: u16, local_ns: i64, exchange_ns: i64, out: &mut Vec<Record>) {
        let state = &mut self.symbols[symbol as usize];
        if exchange_ns > 0 {
            state.last_exchange_ns = exchange_ns;
            self.last_exchange_ns = self.last_exchange_ns.max(exchange_ns);
            state.flow.advance(exchange_ns);
        }
        if let Some(bar) = state.bars.advance(exchange_ns) {
            self.emit_bar(symbol, local_ns, bar, out);
        }
    }

    fn emit_bar(&mut self, symbol: u16, local_ns: i64, bar: ClosedBar, out: &mut Vec<Record>) {
        let mut record = self.header(Kind::Bar, symbol, local_ns, bar.end_ns);
        self.fill_state(&mut record, symbol);
        record.mid = bar.close_mid;
        record.vwap = bar.vwap;
        record.volume = bar.volume;
        record.trade_qty = bar.signed_volume;
        record.count = bar.trades;
        record.ret_ewma = bar.ret_ewma;
        record.realized_vol = bar.realized_vol;
        out.push(record);
    }

    fn on_quote(&mut self, local_ns: i64, quote: Quote<'_>, out: &mut Vec<Record>) {
        let Some(symbol) = self.symbol_id(quote.symbol) else {
            return;
        };
        self.quote_of(symbol, local_ns, quote, out);
    }

    #[inline]
    fn quote_of(&mut self, symbol: u16, local_ns: i64, quote: Quote<'_>, out: &mut Vec<Record>) {
        let exchange_ns = match quote.event_ms {
            Some(ms) => ms_to_ns(ms),
            None => self.symbols[symbol as usize].last_exchange_ns,
        };
        self.advance(symbol, local_ns, exchange_ns, out);
        let key = (quote.bid_px, quote.bid_qty, quote.ask_px, quote.ask_qty);
        let drop_unchanged = self.config.filter.drop_unchanged_quotes;
        let every_n = self.config.downsample.quote_every_n as u64;
        let state = &mut self.symbols[symbol as usize];
        if drop_unchanged && state.last_quote == Some(key) {
            self.stats.unchanged_quotes += 1;
            return;
        }
        // Most updates change sizes only: the price-derived values are then reused.
        let top = match (state.last_quote, &state.last_top) {
            (Some((bid_px, _, ask_px, _)), Some(previous))
                if bid_px == quote.bid_px && ask_px == quote.ask_px =>
            {
                previous.with_sizes(quote.bid_px, quote.bid_qty, quote.ask_px, quote.ask_qty)
            }
            _ => TopOfBook::new(quote.bid_px, quote.bid_qty, quote.ask_px, quote.ask_qty),
        };
        state.last_quote = Some(key);
        state.bars.set_mid(top.mid);
        state.last_top = Some(top);
        state.quotes_kept += 1;
        if every_n > 1 && (state.quotes_kept - 1) % every_n != 0 {
            return;
        }
        // Filled in place: a record is 192 bytes, worth not copying twice per quote.
        out.push(self.header(Kind::Quote, symbol, local_ns, exchange_ns));
        let record = out.last_mut().expect("just pushed");
        record.update_id = quote.update_id;
        self.fill_state(record, symbol);
    }

    fn on_trade(&mut self, local_ns: i64, trade: Trade<'_>, out: &mut Vec<Record>) {
        let Some(symbol) = self.symbol_id(trade.symbol) else {
            return;
        };
        self.trade_of(symbol, local_ns, trade, out);
    }

    #[inline]
    fn trade_of(&mut self, symbol: u16, local_ns: i64, trade: Trade<'_>, out: &mut Vec<Record>) {
        let exchange_ns = ms_to_ns(trade.event_ms);
        self.advance(symbol, local_ns, exchange_ns, out);
        let buyer_aggressor = !trade.buyer_is_maker;
        let signed = if buyer_aggressor {
            trade.qty
        } else {
            -trade.qty
        };
        let state = &mut self.symbols[symbol as usize];
        state.flow.add(exchange_ns, signed);
        state.bars.add_trade(trade.px, trade.qty, buyer_aggressor);
        let mut record = self.header(Kind::Trade, symbol, local_ns, exchange_ns);
        self.fill_state(&mut record, symbol);
        record.update_id = trade.trade_id;
        record.trade_px = crate::decimal::to_f64(trade.px);
        record.trade_qty = crate::decimal::to_f64(signed);
        if buyer_aggressor {
            record.flags |= FLAG_BUYER_AGGRESSOR;
        }
        out.push(record);
    }

    fn on_depth(&mut self, local_ns: i64, name: &str, diff: DepthDiff, out: &mut Vec<Record>) {
        let Some(symbol) = self.symbol_id(name) else {
            return;
        };
        let exchange_ns = ms_to_ns(diff.event_ms);
        self.advance(symbol, local_ns, exchange_ns, out);
        let state = &mut self.symbols[symbol as usize];
        state.depth_diffs += 1;
        let applied = state.book.apply_diff(diff);
        self.after_book_change(symbol, local_ns, exchange_ns, applied, 0, out);
    }

    fn on_snapshot(
        &mut self,
        local_ns: i64,
        name: Option<&str>,
        snapshot: Snapshot,
        out: &mut Vec<Record>,
    ) {
        let symbol = match name {
            Some(name) => self.symbol_id(name),
            // hftbacktest writes the bare REST body; it belongs to the one symbol there is.
            None if self.symbols.len() == 1 => Some(0),
            None => {
                self.stats.unattributed_snapshots += 1;
                self.error("depth snapshot: bare REST body but not exactly one symbol".into());
                return;
            }
        };
        let Some(symbol) = symbol else {
            return;
        };
        self.stats.snapshots += 1;
        // A snapshot does not move event time (bars, flow window): when it was fetched is the
        // client's timing, not the market's, and must not change what the market stream yields.
        let exchange_ns = match snapshot.event_ms {
            Some(ms) => ms_to_ns(ms),
            None => self.symbols[symbol as usize].last_exchange_ns,
        };
        let applied = self.symbols[symbol as usize].book.apply_snapshot(&snapshot);
        self.after_book_change(
            symbol,
            local_ns,
            exchange_ns,
            applied,
            FLAG_FROM_SNAPSHOT,
            out,
        );
    }

    fn after_book_change(
        &mut self,
        symbol: u16,
        local_ns: i64,
        exchange_ns: i64,
        applied: Applied,
        flags: u8,
        out: &mut Vec<Record>,
    ) {
        let levels = self.book_levels;
        let state = &mut self.symbols[symbol as usize];
        state.imbalance = f64::NAN;
        // One walk of each side gives the touch and the imbalance's sums (an invalid book has
        // no levels: no touch).
        let top = state.book.is_valid().then(|| state.book.top(levels));
        if let Some(top) = &top {
            // i128: sums of i64 sizes cannot overflow (the same values as i64 sums when those fit).
            let (bid, ask) = (top.bid_qty, top.ask_qty);
            if bid + ask > 0 {
                state.imbalance =
                    crate::features::exact_f64(bid - ask) / crate::features::exact_f64(bid + ask);
            }
        }
        match applied {
            Applied::Ignored => {}
            Applied::ChecksumMismatch { .. } => {
                self.emit_gap(symbol, local_ns, exchange_ns, GapReason::Checksum, 0, out);
            }
            Applied::Gap {
                missing,
                after_snapshot,
            } => {
                let reason = if after_snapshot {
                    GapReason::Snapshot
                } else {
                    GapReason::Sequence
                };
                self.emit_gap(symbol, local_ns, exchange_ns, reason, missing, out);
            }
            Applied::Updated => {
                let every_n = self.config.downsample.book_every_n as u64;
                let state = &mut self.symbols[symbol as usize];
                let Some(Top {
                    best_bid: Some(bid),
                    best_ask: Some(ask),
                    ..
                }) = top
                else {
                    return;
                };
                if state.last_quote.is_none() {
                    // Without a bookTicker stream the book is the top of book.
                    let top = TopOfBook::new(bid.0, bid.1, ask.0, ask.1);
                    state.bars.set_mid(top.mid);
                    state.last_top = Some(top);
                }
                state.books_applied += 1;
                if (state.books_applied - 1) % every_n != 0 {
                    return;
                }
                let update_id = state.book.last_update_id();
                let mut record = self.header(Kind::Book, symbol, local_ns, exchange_ns);
                self.fill_state(&mut record, symbol);
                let top = TopOfBook::new(bid.0, bid.1, ask.0, ask.1);
                record.bid_px = top.bid_px;
                record.bid_qty = top.bid_qty;
                record.ask_px = top.ask_px;
                record.ask_qty = top.ask_qty;
                record.mid = top.mid;
                record.spread = top.spread;
                record.spread_bps = top.spread_bps;
                record.microprice = top.microprice;
                record.update_id = update_id;
                record.flags |= flags;
                out.push(record);
            }
        }
    }

    fn emit_gap(
        &mut self,
        symbol: u16,
        local_ns: i64,
        exchange_ns: i64,
        reason: GapReason,
        missing: u64,
        out: &mut Vec<Record>,
    ) {
        self.stats.gaps += 1;
        let mut record = self.header(Kind::Gap, symbol, local_ns, exchange_ns);
        record.flags = reason as u8;
        record.count = missing;
        out.push(record);
    }

    fn on_control(&mut self, local_ns: i64, control: Control, out: &mut Vec<Record>) {
        let exchange_ns = self.last_exchange_ns;
        let event = match control {
            Control::Heartbeat => {
                self.stats.heartbeats += 1;
                let record = self.header(Kind::Heartbeat, NO_SYMBOL, local_ns, exchange_ns);
                out.push(record);
                return;
            }
            Control::Connected => StatusEvent::Connected,
            Control::Subscribed => StatusEvent::Subscribed,
            Control::Disconnected => StatusEvent::Disconnected,
            // Read by research and the replay venue; the pipeline has nothing to make of it.
            Control::Instruments => return,
        };
        let mut record = self.header(Kind::Status, NO_SYMBOL, local_ns, exchange_ns);
        record.flags = event as u8;
        out.push(record);
        if event == StatusEvent::Disconnected {
            for symbol in 0..self.symbols.len() as u16 {
                let state = &mut self.symbols[symbol as usize];
                state.imbalance = f64::NAN;
                if state.book.invalidate() {
                    let ts = state.last_exchange_ns;
                    self.emit_gap(symbol, local_ns, ts, GapReason::Disconnect, 0, out);
                }
            }
        }
    }
}

/// Venue milliseconds to nanoseconds; absurd values saturate (the same on every run) rather
/// than wrap.
#[inline]
fn ms_to_ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

/// `<1 to 19 digits> <rest>` split into the stamp and the rest's bytes; `None` for any other
/// start, including a stamp beyond i64::MAX (which [`split_line`]'s careful path reports).
#[inline(always)]
fn stamp_prefix(line: &[u8]) -> Option<(i64, &[u8])> {
    let (digits, stamp) = crate::digits::run(line, 0);
    // 19 digits fit a u64 (they stay below 10^19) but can exceed i64::MAX.
    ((1..=19).contains(&digits) && line.get(digits) == Some(&b' ') && stamp <= i64::MAX as u64)
        .then(|| (stamp as i64, &line[digits + 1..]))
}

/// Splits `<local_receive_ns> <frame>`; `Ok(None)` for a blank line.
pub fn split_line(line: &[u8]) -> Result<Option<(i64, &str)>, String> {
    // Fast path: digits, one space, valid UTF-8 (checked with SIMD).
    if let Some((local_ns, frame)) = stamp_prefix(line) {
        if let Ok(frame) = simdutf8::basic::from_utf8(frame) {
            return Ok(Some((local_ns, frame)));
        }
    }
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let Some(space) = memchr::memchr(b' ', line) else {
        return Err("expected `<local_receive_ns> <frame>`, found no space".into());
    };
    let stamp = &line[..space];
    if stamp.is_empty() || stamp.len() > 19 || !stamp.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "local_receive_ns: expected an integer, got {:?}",
            String::from_utf8_lossy(&stamp[..stamp.len().min(40)])
        ));
    }
    let Some(local_ns) = stamp.iter().try_fold(0i64, |acc, b| {
        acc.checked_mul(10)?.checked_add((b - b'0') as i64)
    }) else {
        return Err(format!(
            "local_receive_ns: {} does not fit a signed 64-bit count of ns (at most {})",
            String::from_utf8_lossy(stamp),
            i64::MAX
        ));
    };
    let frame =
        std::str::from_utf8(&line[space + 1..]).map_err(|e| format!("frame: not UTF-8 ({e})"))?;
    Ok(Some((local_ns, frame)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::extend_bytes;

    /// What `push_line` and `push` did before their byte-level bookTicker route: split, check
    /// UTF-8, decode with the general decoder.
    fn general_route(pipeline: &mut Pipeline, line: &[u8], out: &mut Vec<Record>) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match split_line(line) {
            Ok(Some((local_ns, frame))) => {
                pipeline.push_decoded(local_ns, frame.len(), decode_frame(frame), out)
            }
            Ok(None) => {
                pipeline.line += 1;
                pipeline.stats.lines += 1;
                pipeline.stats.blank_lines += 1;
            }
            Err(message) => {
                pipeline.line += 1;
                pipeline.stats.lines += 1;
                pipeline.stats.bytes += line.len() as u64;
                pipeline.stats.malformed_lines += 1;
                pipeline.error(message);
            }
        }
    }

    const LINES: [&str; 4] = [
        r#"1723161256313000001 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#,
        r#"1723161256314000002 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#,
        r#"1723161256315000003 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839021,"s":"BTCUSDT","b":"61800.10","B":"0.007","a":"61800.30","A":"2.510","T":1723161256314,"E":1723161256315}}"#,
        r#"1723161256316000004 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSDT","U":5123107837801,"u":5123107842679,"pu":5123107837557,"b":[["1000.00","606.675"],["61700.20","0.000"]],"a":[["61800.30","1.5"]]}}"#,
    ];

    proptest::proptest! {
        /// Any damage to bookTicker lines (bytes replaced, including non-UTF-8 ones, or
        /// inserted): the byte route (of `push_line`, and of `push` for valid UTF-8) and the
        /// general route give identical records, counters and errors.
        #[test]
        fn byte_route_equals_general_route(
            edits in proptest::collection::vec((0usize..4, 0usize..300, proptest::num::u8::ANY, proptest::bool::ANY), 0..6)
        ) {
            let mut lines: Vec<Vec<u8>> = LINES.iter().map(|l| l.as_bytes().to_vec()).collect();
            for (which, at, byte, insert) in edits {
                let line = &mut lines[which];
                let at = at.min(line.len());
                if insert || at == line.len() {
                    line.insert(at, byte);
                } else {
                    line[at] = byte;
                }
            }
            let (mut fast, mut general) = (Pipeline::new(FeatureConfig::default()), Pipeline::new(FeatureConfig::default()));
            let (mut fast_out, mut general_out) = (Vec::new(), Vec::new());
            let mut pushed = Pipeline::new(FeatureConfig::default());
            let mut pushed_out = Vec::new();
            for line in &lines {
                fast.push_line(line, &mut fast_out);
                general_route(&mut general, line, &mut general_out);
                // `push` takes frames the ingest already holds as text.
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match split_line(line) {
                    Ok(Some((local_ns, frame))) => pushed.push(local_ns, frame, &mut pushed_out),
                    _ => general_route(&mut pushed, line, &mut pushed_out),
                }
            }
            let mut c = Vec::new();
            extend_bytes(&mut c, &pushed_out);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            extend_bytes(&mut a, &fast_out);
            extend_bytes(&mut b, &general_out);
            proptest::prop_assert_eq!(&a, &b);
            proptest::prop_assert_eq!(&c, &b);
            proptest::prop_assert_eq!(fast.stats(), general.stats());
            proptest::prop_assert_eq!(pushed.stats(), general.stats());
        }
    }

    #[test]
    fn byte_route_takes_the_common_lines() {
        for line in &LINES[..3] {
            let frame = line.split_once(' ').unwrap().1;
            assert!(crate::decode::binance::book_ticker_envelope(frame.as_bytes()).is_some());
        }
        let frame = LINES[3].split_once(' ').unwrap().1;
        assert!(matches!(
            crate::decode::binance::depth_envelope(frame.as_bytes()),
            Some(Ok(Message::Depth { .. }))
        ));
    }
}
