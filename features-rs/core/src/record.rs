//! The one binary record layout (contract 3). Every output row of the pipeline is a [`Record`]:
//! fixed size, `#[repr(C)]`, little-endian, no padding. Python builds its numpy dtype and Arrow
//! schema from [`FIELDS`] through the binding; nothing else spells the layout out.

/// Bumped whenever [`Record`] or the meaning of a field changes. Part of the fingerprint.
pub const SCHEMA_VERSION: u32 = 1;

/// `symbol_id` of records that belong to no symbol (heartbeats, connection events).
pub const NO_SYMBOL: u16 = u16::MAX;

/// What a record is. Stored as `u8` in [`Record::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Top of book from the venue's best bid/offer stream (bookTicker).
    Quote = 1,
    /// The rebuilt L2 book after a depth diff or snapshot was applied.
    Book = 2,
    /// One public trade (trade or aggTrade).
    Trade = 3,
    /// An event-time bar closed (downsampling).
    Bar = 4,
    /// The book lost continuity; `count` holds the number of missing update ids if known.
    Gap = 5,
    /// The ingest's heartbeat: the feed is alive even if the market is quiet.
    Heartbeat = 6,
    /// A connection event written by the ingest (see [`StatusEvent`] in `flags`).
    Status = 7,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Quote,
        Kind::Book,
        Kind::Trade,
        Kind::Bar,
        Kind::Gap,
        Kind::Heartbeat,
        Kind::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Quote => "quote",
            Kind::Book => "book",
            Kind::Trade => "trade",
            Kind::Bar => "bar",
            Kind::Gap => "gap",
            Kind::Heartbeat => "heartbeat",
            Kind::Status => "status",
        }
    }
}

/// `flags` of a [`Kind::Status`] record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StatusEvent {
    Connected = 1,
    Disconnected = 2,
    Subscribed = 3,
    SnapshotFetched = 4,
}

impl StatusEvent {
    pub const ALL: [StatusEvent; 4] = [
        StatusEvent::Connected,
        StatusEvent::Disconnected,
        StatusEvent::Subscribed,
        StatusEvent::SnapshotFetched,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StatusEvent::Connected => "connected",
            StatusEvent::Disconnected => "disconnected",
            StatusEvent::Subscribed => "subscribed",
            StatusEvent::SnapshotFetched => "snapshot_fetched",
        }
    }
}

/// `flags` of a [`Kind::Gap`] record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GapReason {
    /// A diff did not continue the previous one (`pu`/`U` chain broken).
    Sequence = 1,
    /// The first diff after a snapshot did not straddle it.
    Snapshot = 2,
    /// The connection dropped; the book must be rebuilt.
    Disconnect = 3,
    /// The rebuilt book did not match the checksum the venue sent with a message (OKX).
    Checksum = 4,
}

impl GapReason {
    pub const ALL: [GapReason; 4] = [
        GapReason::Sequence,
        GapReason::Snapshot,
        GapReason::Disconnect,
        GapReason::Checksum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GapReason::Sequence => "sequence",
            GapReason::Snapshot => "snapshot",
            GapReason::Disconnect => "disconnect",
            GapReason::Checksum => "checksum",
        }
    }
}

/// The `flags` bits of quote, trade and book records by name (the binding exports them).
pub const FLAGS: [(&str, u8); 3] = [
    ("buyer_aggressor", FLAG_BUYER_AGGRESSOR),
    ("book_valid", FLAG_BOOK_VALID),
    ("from_snapshot", FLAG_FROM_SNAPSHOT),
];

/// `flags` bit on quote/trade records: the aggressor was the buyer.
pub const FLAG_BUYER_AGGRESSOR: u8 = 1;
/// `flags` bit: book-derived fields (imbalance) are valid.
pub const FLAG_BOOK_VALID: u8 = 2;
/// `flags` bit on book records: produced by applying a depth snapshot (and the diffs buffered
/// before it), i.e. a resync point rather than one diff.
pub const FLAG_FROM_SNAPSHOT: u8 = 4;

/// One output row. All f64 fields are NaN where they are not defined for the kind or not yet
/// known; see the README's column table for each field's meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct Record {
    pub kind: u8,
    pub flags: u8,
    pub symbol_id: u16,
    pub reserved: u32,
    /// Per-symbol record sequence number (records of [`NO_SYMBOL`] have their own).
    pub seq: u64,
    /// 1-based index of the capture line that produced this record.
    pub line: u64,
    /// Local receive time from the capture line (ns since the epoch).
    pub local_ns: i64,
    /// Exchange event time (ns since the epoch); for frames without one, the latest exchange
    /// time seen so far.
    pub exchange_ns: i64,
    /// Venue update id (book/quote), trade id (trade), or 0.
    pub update_id: u64,
    pub bid_px: f64,
    pub bid_qty: f64,
    pub ask_px: f64,
    pub ask_qty: f64,
    pub mid: f64,
    pub spread: f64,
    pub spread_bps: f64,
    pub microprice: f64,
    pub imbalance: f64,
    pub trade_px: f64,
    pub trade_qty: f64,
    pub trade_flow: f64,
    pub flow_imbalance: f64,
    pub vwap: f64,
    pub volume: f64,
    pub ret_ewma: f64,
    pub realized_vol: f64,
    pub count: u64,
}

/// Size of one record in bytes.
pub const RECORD_SIZE: usize = std::mem::size_of::<Record>();
const _: () = assert!(RECORD_SIZE == 192);

/// Type of a field, as numpy spells it (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    U8,
    U16,
    U32,
    U64,
    I64,
    F64,
}

impl FieldType {
    /// Bytes of one value.
    pub const fn size(self) -> usize {
        match self {
            FieldType::U8 => 1,
            FieldType::U16 => 2,
            FieldType::U32 => 4,
            FieldType::U64 | FieldType::I64 | FieldType::F64 => 8,
        }
    }

    pub fn numpy(self) -> &'static str {
        match self {
            FieldType::U8 => "u1",
            FieldType::U16 => "<u2",
            FieldType::U32 => "<u4",
            FieldType::U64 => "<u8",
            FieldType::I64 => "<i8",
            FieldType::F64 => "<f8",
        }
    }
}

/// Name, type and byte offset of one field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub offset: usize,
}

macro_rules! fields {
    ($($name:ident: $ty:ident),* $(,)?) => {
        /// Every field of [`Record`] in layout order.
        pub const FIELDS: &[Field] = &[
            $(Field { name: stringify!($name), ty: FieldType::$ty, offset: std::mem::offset_of!(Record, $name) }),*
        ];
    };
}

fields! {
    kind: U8, flags: U8, symbol_id: U16, reserved: U32, seq: U64, line: U64, local_ns: I64,
    exchange_ns: I64, update_id: U64, bid_px: F64, bid_qty: F64, ask_px: F64, ask_qty: F64,
    mid: F64, spread: F64, spread_bps: F64, microprice: F64, imbalance: F64, trade_px: F64,
    trade_qty: F64, trade_flow: F64, flow_imbalance: F64, vwap: F64, volume: F64, ret_ewma: F64,
    realized_vol: F64, count: U64,
}

impl Record {
    /// A record of `kind` with every float NaN and every integer zero.
    pub fn empty(kind: Kind) -> Self {
        let nan = f64::NAN;
        Record {
            kind: kind as u8,
            flags: 0,
            symbol_id: NO_SYMBOL,
            reserved: 0,
            seq: 0,
            line: 0,
            local_ns: 0,
            exchange_ns: 0,
            update_id: 0,
            bid_px: nan,
            bid_qty: nan,
            ask_px: nan,
            ask_qty: nan,
            mid: nan,
            spread: nan,
            spread_bps: nan,
            microprice: nan,
            imbalance: nan,
            trade_px: nan,
            trade_qty: nan,
            trade_flow: nan,
            flow_imbalance: nan,
            vwap: nan,
            volume: nan,
            ret_ewma: nan,
            realized_vol: nan,
            count: 0,
        }
    }

    /// The record's little-endian bytes (the wire and ring format).
    pub fn to_bytes(&self) -> [u8; RECORD_SIZE] {
        let mut out = [0u8; RECORD_SIZE];
        self.write_le(&mut out);
        out
    }

    /// The record as 24 words whose little-endian bytes are its little-endian layout (the
    /// first word packs kind, flags, symbol_id and reserved).
    #[inline]
    pub fn to_words(&self) -> [u64; RECORD_SIZE / 8] {
        [
            self.kind as u64
                | (self.flags as u64) << 8
                | (self.symbol_id as u64) << 16
                | (self.reserved as u64) << 32,
            self.seq,
            self.line,
            self.local_ns as u64,
            self.exchange_ns as u64,
            self.update_id,
            self.bid_px.to_bits(),
            self.bid_qty.to_bits(),
            self.ask_px.to_bits(),
            self.ask_qty.to_bits(),
            self.mid.to_bits(),
            self.spread.to_bits(),
            self.spread_bps.to_bits(),
            self.microprice.to_bits(),
            self.imbalance.to_bits(),
            self.trade_px.to_bits(),
            self.trade_qty.to_bits(),
            self.trade_flow.to_bits(),
            self.flow_imbalance.to_bits(),
            self.vwap.to_bits(),
            self.volume.to_bits(),
            self.ret_ewma.to_bits(),
            self.realized_vol.to_bits(),
            self.count,
        ]
    }

    /// Writes the record's little-endian bytes into `out[..RECORD_SIZE]`.
    pub fn write_le(&self, out: &mut [u8]) {
        let out = &mut out[..RECORD_SIZE];
        for (word, chunk) in self.to_words().iter().zip(out.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
    }

    /// Reads a record from its little-endian bytes.
    pub fn from_bytes(bytes: &[u8]) -> Record {
        let word = |i: usize| u64::from_le_bytes(bytes[8 + i * 8..16 + i * 8].try_into().unwrap());
        let float = |i: usize| f64::from_bits(word(i));
        Record {
            kind: bytes[0],
            flags: bytes[1],
            symbol_id: u16::from_le_bytes([bytes[2], bytes[3]]),
            reserved: u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            seq: word(0),
            line: word(1),
            local_ns: word(2) as i64,
            exchange_ns: word(3) as i64,
            update_id: word(4),
            bid_px: float(5),
            bid_qty: float(6),
            ask_px: float(7),
            ask_qty: float(8),
            mid: float(9),
            spread: float(10),
            spread_bps: float(11),
            microprice: float(12),
            imbalance: float(13),
            trade_px: float(14),
            trade_qty: float(15),
            trade_flow: float(16),
            flow_imbalance: float(17),
            vwap: float(18),
            volume: float(19),
            ret_ewma: float(20),
            realized_vol: float(21),
            count: word(22),
        }
    }
}

/// Appends the little-endian bytes of `records` to `out`.
pub fn extend_bytes(out: &mut Vec<u8>, records: &[Record]) {
    let start = out.len();
    out.resize(start + records.len() * RECORD_SIZE, 0);
    for (record, chunk) in records
        .iter()
        .zip(out[start..].chunks_exact_mut(RECORD_SIZE))
    {
        record.write_le(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_dense_and_ordered() {
        let mut expected = 0;
        for field in FIELDS {
            assert_eq!(field.offset, expected, "{}", field.name);
            expected += match field.ty {
                FieldType::U8 => 1,
                FieldType::U16 => 2,
                FieldType::U32 => 4,
                _ => 8,
            };
        }
        assert_eq!(expected, RECORD_SIZE);
    }

    #[test]
    fn bytes_roundtrip_and_match_memory_layout_on_little_endian() {
        let mut record = Record::empty(Kind::Quote);
        record.symbol_id = 3;
        record.seq = 7;
        record.local_ns = -5;
        record.bid_px = 61800.2;
        record.count = 42;
        let bytes = record.to_bytes();
        assert_eq!(Record::from_bytes(&bytes).to_bytes(), bytes);
        #[cfg(target_endian = "little")]
        {
            // SAFETY: Record is repr(C) plain old data without padding (checked above).
            let raw = unsafe {
                std::slice::from_raw_parts((&record as *const Record).cast::<u8>(), RECORD_SIZE)
            };
            assert_eq!(raw, &bytes[..]);
        }
    }
}
