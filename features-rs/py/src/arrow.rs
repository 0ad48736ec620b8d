//! Records to Arrow: the Arrow view of the binary record. The schema is derived from
//! `record::FIELDS`, plus a `symbol` string column resolved from the pipeline's symbol table,
//! with what a dataframe user expects instead of the record's in-band markers:
//!
//! - `kind` is a dictionary of the kind names with fixed categories (a polars `Enum`);
//! - `local_ns` and `exchange_ns` are `timestamp[ns, UTC]`; an `exchange_ns` of 0 (no exchange
//!   time known yet, e.g. the first spot bookTicker) is null;
//! - a float that is NaN in the record (the field does not apply to the kind, or is not known
//!   yet) is null; `update_id` is null except on quote, book and trade records, `count` except
//!   on bar and gap records, `symbol_id` where the record belongs to no symbol;
//! - the `reserved` padding is left out.
//!
//! Values are the record's bytes, unchanged and uncopied; nulls are validity bitmaps built in
//! one vectorised pass per nullable column (none when a column has no null).

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::builder::StringBuilder;
use arrow_array::types::{
    Float64Type, Int64Type, TimestampNanosecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, DictionaryArray, PrimitiveArray, RecordBatch, StringArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, MutableBuffer, NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use memmap2::{Advice, MmapMut, MmapOptions};
use twinfeed_features::record::{FieldType, Kind, Record, FIELDS, NO_SYMBOL};

/// The record field left out of the Arrow view (layout padding).
const PADDING: &str = "reserved";

fn data_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::U8 => DataType::UInt8,
        FieldType::U16 => DataType::UInt16,
        FieldType::U32 => DataType::UInt32,
        FieldType::U64 => DataType::UInt64,
        FieldType::I64 => DataType::Int64,
        FieldType::F64 => DataType::Float64,
    }
}

fn utc_nanoseconds() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Field metadata that makes polars read the `kind` dictionary as an `Enum` of exactly these
/// categories; pyarrow and other readers see a plain dictionary. One key only: the metadata is
/// a hash map, and with two keys their order (so the bytes of a Parquet file's schema) would
/// change from run to run. `_PL_ENUM_VALUES` is read by every polars from 1.0 (2.x writes
/// `_PL_ENUM_VALUES2` and reads both).
fn enum_metadata() -> std::collections::HashMap<String, String> {
    let values: String = Kind::ALL
        .iter()
        .map(|kind| format!("{};{}", kind.name().len(), kind.name()))
        .collect();
    [("_PL_ENUM_VALUES".to_string(), values)].into()
}

/// The Arrow field of one record field, or None for the padding (module docs).
fn arrow_field(name: &'static str, ty: FieldType) -> Option<Field> {
    Some(match name {
        PADDING => return None,
        "kind" => Field::new(
            name,
            DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8)),
            false,
        )
        .with_metadata(enum_metadata()),
        "local_ns" => Field::new(name, utc_nanoseconds(), false),
        "exchange_ns" => Field::new(name, utc_nanoseconds(), true),
        "symbol_id" | "update_id" | "count" => Field::new(name, data_type(ty), true),
        _ => Field::new(name, data_type(ty), ty == FieldType::F64),
    })
}

/// The Arrow schema of feature batches: every record field but the padding in layout order,
/// then `symbol` (module docs).
pub fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = FIELDS
        .iter()
        .filter_map(|f| arrow_field(f.name, f.ty))
        .collect();
    fields.push(Field::new("symbol", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// A validity bitmap of `values`, `valid(value)` for each; None when every row is valid: 64
/// rows to a word from a slice without bounds checks, which the compiler vectorises.
fn validity_of<T: Copy>(values: &[T], valid: impl Fn(T) -> bool) -> Option<NullBuffer> {
    let mut words: Vec<u64> = Vec::with_capacity(values.len().div_ceil(64));
    let mut all = u64::MAX;
    let mut chunks = values.chunks_exact(64);
    for chunk in &mut chunks {
        let mut word = 0u64;
        for (bit, value) in chunk.iter().enumerate() {
            word |= (valid(*value) as u64) << bit;
        }
        all &= word;
        words.push(word);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = 0u64;
        for (bit, value) in rest.iter().enumerate() {
            word |= (valid(*value) as u64) << bit;
        }
        all &= word | (u64::MAX << rest.len());
        words.push(word);
    }
    if all == u64::MAX {
        return None;
    }
    let bits = BooleanBuffer::new(Buffer::from_vec(words), 0, values.len());
    Some(NullBuffer::new(bits))
}

/// The `kind` column: dictionary keys `kind - 1` into the kind names (null for a code that is
/// no kind, which the pipeline never writes).
fn kind_column(kinds: &[u8]) -> ArrayRef {
    let keys: ScalarBuffer<u8> = kinds.iter().map(|k| k.wrapping_sub(1)).collect();
    let known = Kind::ALL.len() as u8;
    let nulls = validity_of(&keys, |key| key < known);
    let names = StringArray::from_iter_values(Kind::ALL.iter().map(|kind| kind.name()));
    let keys = PrimitiveArray::<UInt8Type>::new(keys, nulls);
    Arc::new(DictionaryArray::<UInt8Type>::try_new(keys, Arc::new(names)).expect("keys < 7"))
}

/// The Arrow column of one record field over `values` (module docs); `kinds` is the batch's
/// `kind` column. None for the padding.
fn view_column<T: ArrowPrimitiveType>(
    name: &'static str,
    values: ScalarBuffer<T::Native>,
    kinds: &[u8],
) -> Option<ArrayRef> {
    let len = values.len();
    let on_kinds = |wanted: &[Kind]| {
        let mut mask = [false; 256];
        for kind in wanted {
            mask[*kind as usize] = true;
        }
        validity_of(kinds, |kind| mask[kind as usize])
    };
    Some(match name {
        PADDING => return None,
        "kind" => kind_column(values.inner().typed_data::<u8>()),
        "local_ns" | "exchange_ns" => {
            let times = ScalarBuffer::<i64>::new(values.into_inner(), 0, len);
            let nulls = if name == "exchange_ns" {
                validity_of(&times, |time| time != 0)
            } else {
                None
            };
            Arc::new(
                PrimitiveArray::<TimestampNanosecondType>::new(times, nulls).with_timezone("UTC"),
            )
        }
        "symbol_id" => {
            let ids = ScalarBuffer::<u16>::new(values.inner().clone(), 0, len);
            let nulls = validity_of(&ids, |id| id != NO_SYMBOL);
            Arc::new(PrimitiveArray::<T>::new(values, nulls))
        }
        "update_id" => {
            let nulls = on_kinds(&[Kind::Quote, Kind::Book, Kind::Trade]);
            Arc::new(PrimitiveArray::<T>::new(values, nulls))
        }
        "count" => {
            let nulls = on_kinds(&[Kind::Bar, Kind::Gap]);
            Arc::new(PrimitiveArray::<T>::new(values, nulls))
        }
        _ if T::DATA_TYPE == DataType::Float64 => {
            let floats = ScalarBuffer::<f64>::new(values.inner().clone(), 0, len);
            let nulls = validity_of(&floats, |float| !float.is_nan());
            Arc::new(PrimitiveArray::<T>::new(values, nulls))
        }
        _ => Arc::new(PrimitiveArray::<T>::new(values, None)),
    })
}

/// Batches at least this large (bytes of fixed-width columns) get their own anonymous mapping
/// with 2 MiB pages; smaller ones use the heap.
const ARENA_MIN_BYTES: usize = 4 << 20;

/// Memory for one batch's columns. A kept batch needs memory nobody has touched yet, and with
/// 4 KiB pages the kernel takes a fault per page of it (a quarter of the binding's time when a
/// caller keeps every batch, as `compute_features` does); one anonymous mapping with transparent
/// huge pages takes 512 times fewer. Arrow buffers then borrow their slices of it, each holding
/// the mapping alive, so nothing is copied. When the last of them is dropped the mapping goes
/// back to [`POOL`] for the next batches.
struct Arena {
    /// Always `Some` until dropped.
    map: Option<MmapMut>,
}

impl Arena {
    /// `len` bytes (stale contents when reused: only rows written since are ever exposed), or
    /// None when the kernel refuses (the heap is used then).
    fn new(len: usize) -> Option<Arena> {
        let reused = pool().take(len);
        if let Some(map) = reused {
            return Some(Arena { map: Some(map) });
        }
        let map = MmapOptions::new().len(len).map_anon().ok()?;
        // Advice only: where THP is off, this fails or does nothing, and 4 KiB pages remain.
        let _ = map.advise(Advice::HugePage);
        Some(Arena { map: Some(map) })
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().expect("mapped until dropped")
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.map.as_deref_mut().expect("mapped until dropped")
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            pool().give(map);
        }
    }
}

/// Freed arenas kept for reuse, as a malloc keeps freed memory: fresh pages cost the kernel's
/// zeroing (and on this VM the host's first touch) again, which is a fifth of the binding's time
/// when every batch is kept; reused ones do not. Bounded: at most [`POOL_BYTES`], and a mapping
/// unused for [`POOL_IDLE`] is unmapped at the next batch.
struct Pool {
    maps: Vec<(MmapMut, Instant)>,
    bytes: usize,
}

const POOL_BYTES: usize = 256 << 20;
const POOL_IDLE: Duration = Duration::from_secs(10);
static POOL: Mutex<Pool> = Mutex::new(Pool {
    maps: Vec::new(),
    bytes: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    // A panic while holding the lock leaves the pool consistent (every step is one push/pop).
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    fn take(&mut self, len: usize) -> Option<MmapMut> {
        self.expire();
        let at = self.maps.iter().rposition(|(map, _)| map.len() == len)?;
        self.bytes -= len;
        Some(self.maps.swap_remove(at).0)
    }

    fn give(&mut self, map: MmapMut) {
        self.expire();
        if self.bytes + map.len() <= POOL_BYTES {
            self.bytes += map.len();
            self.maps.push((map, Instant::now()));
        }
    }

    fn expire(&mut self) {
        let before = self.maps.len();
        self.maps.retain(|(_, since)| since.elapsed() < POOL_IDLE);
        if self.maps.len() != before {
            self.bytes = self.maps.iter().map(|(map, _)| map.len()).sum();
        }
    }
}

/// The fixed-width columns' storage: one region per field, `capacity` rows each.
enum Storage {
    Heap(MutableBuffer),
    Arena(Arena),
}

impl Storage {
    fn bytes(&mut self) -> &mut [u8] {
        match self {
            Storage::Heap(bytes) => bytes.as_slice_mut(),
            Storage::Arena(arena) => arena.bytes_mut(),
        }
    }
}

/// Where a finished batch's column buffers come from.
enum Finished {
    /// Slices of the heap buffer (64-byte aligned, so every region is aligned).
    Heap(Buffer),
    /// Borrowed from the arena: the batch fills at least half of it.
    Arena(Arc<Arena>),
    /// Copied out of the arena, so a short batch does not pin a large mapping.
    Copied(Arena),
}

/// Byte offset of each field's region for `capacity` rows (64-byte aligned, as Arrow likes),
/// and the total length.
fn regions(capacity: usize) -> ([usize; FIELDS.len()], usize) {
    let mut offsets = [0; FIELDS.len()];
    let mut at = 0;
    for (offset, field) in offsets.iter_mut().zip(FIELDS) {
        *offset = at;
        at += (capacity * field.ty.size()).next_multiple_of(64);
    }
    (offsets, at)
}

impl Finished {
    /// An Arrow buffer over `len` bytes at `at`.
    fn buffer(&self, at: usize, len: usize) -> Buffer {
        match self {
            Finished::Heap(buffer) => buffer.slice_with_length(at, len),
            Finished::Arena(arena) => {
                let bytes = &arena.bytes()[at..at + len];
                let ptr = NonNull::from(bytes).cast::<u8>();
                // SAFETY: `ptr..ptr + len` lies inside the mapping, which `arena` keeps alive
                // and nothing writes to any more (the batch is finished).
                unsafe { Buffer::from_custom_allocation(ptr, len, arena.clone()) }
            }
            Finished::Copied(arena) => Buffer::from_slice_ref(&arena.bytes()[at..at + len]),
        }
    }
}

/// Declares [`Columns`]: one region per record field, in layout order.
macro_rules! columns {
    ($($field:ident: $ty:ty => $arrow:ident),* $(,)?) => {
        /// A record batch under construction, one region per field. Records arrive in chunks
        /// small enough to stay in cache while each field is copied out of them, which is
        /// what makes the row-to-column transpose cheap; the regions then become Arrow
        /// buffers without a copy.
        pub struct Columns {
            storage: Storage,
            offsets: [usize; FIELDS.len()],
            capacity: usize,
            len: usize,
        }

        impl Columns {
            pub fn with_capacity(capacity: usize) -> Self {
                let (offsets, total) = regions(capacity);
                let storage = match (total >= ARENA_MIN_BYTES).then(|| Arena::new(total)) {
                    Some(Some(arena)) => Storage::Arena(arena),
                    _ => Storage::Heap(MutableBuffer::from_len_zeroed(total)),
                };
                Columns { storage, offsets, capacity, len: 0 }
            }

            pub fn len(&self) -> usize {
                self.len
            }

            pub fn capacity(&self) -> usize {
                self.capacity
            }

            /// Appends `records`; at most `capacity - len` of them.
            pub fn extend(&mut self, records: &[Record]) {
                assert!(records.len() <= self.capacity - self.len, "batch capacity exceeded");
                let bytes = self.storage.bytes();
                let mut offsets = self.offsets.iter();
                let from = self.len;
                $({
                    const SIZE: usize = std::mem::size_of::<$ty>();
                    let at = offsets.next().expect("one offset per field") + from * SIZE;
                    let region = &mut bytes[at..at + records.len() * SIZE];
                    for (slot, record) in region.chunks_exact_mut(SIZE).zip(records) {
                        slot.copy_from_slice(&record.$field.to_le_bytes());
                    }
                })*
                self.len += records.len();
            }

            /// The batch, resolving symbol ids through `symbols`.
            pub fn finish(self, symbols: &[&str], schema: SchemaRef) -> RecordBatch {
                let Columns { storage, offsets, capacity, len } = self;
                let finished = match storage {
                    Storage::Arena(arena) if 2 * len >= capacity => Finished::Arena(Arc::new(arena)),
                    Storage::Arena(arena) => Finished::Copied(arena),
                    Storage::Heap(heap) => Finished::Heap(heap.into()),
                };
                let mut offsets = offsets.iter();
                let mut symbol_id = None;
                // `kind` is the first field: the later columns' validity reads it.
                let mut kinds = Buffer::from_vec(Vec::<u8>::new());
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(FIELDS.len());
                $({
                    let at = *offsets.next().expect("one offset per field");
                    let values = ScalarBuffer::<$ty>::new(
                        finished.buffer(at, len * std::mem::size_of::<$ty>()), 0, len);
                    match stringify!($field) {
                        "kind" => kinds = values.inner().clone(),
                        "symbol_id" => symbol_id = Some(values.inner().clone()),
                        _ => {}
                    }
                    columns.extend(view_column::<$arrow>(stringify!($field), values, kinds.as_slice()));
                })*
                let ids = ScalarBuffer::<u16>::new(symbol_id.expect("symbol_id is a field"), 0, len);
                columns.push(Arc::new(symbol_column(&ids, symbols)));
                debug_assert_eq!(columns.len(), FIELDS.len());
                RecordBatch::try_new(schema, columns).expect("columns match the schema")
            }
        }
    };
}

columns! {
    kind: u8 => UInt8Type,
    flags: u8 => UInt8Type,
    symbol_id: u16 => UInt16Type,
    reserved: u32 => UInt32Type,
    seq: u64 => UInt64Type,
    line: u64 => UInt64Type,
    local_ns: i64 => Int64Type,
    exchange_ns: i64 => Int64Type,
    update_id: u64 => UInt64Type,
    bid_px: f64 => Float64Type,
    bid_qty: f64 => Float64Type,
    ask_px: f64 => Float64Type,
    ask_qty: f64 => Float64Type,
    mid: f64 => Float64Type,
    spread: f64 => Float64Type,
    spread_bps: f64 => Float64Type,
    microprice: f64 => Float64Type,
    imbalance: f64 => Float64Type,
    trade_px: f64 => Float64Type,
    trade_qty: f64 => Float64Type,
    trade_flow: f64 => Float64Type,
    flow_imbalance: f64 => Float64Type,
    vwap: f64 => Float64Type,
    volume: f64 => Float64Type,
    ret_ewma: f64 => Float64Type,
    realized_vol: f64 => Float64Type,
    count: u64 => UInt64Type,
}

fn symbol_column(ids: &[u16], symbols: &[&str]) -> StringArray {
    let mut symbol = StringBuilder::with_capacity(ids.len(), ids.len() * 8);
    for &id in ids {
        match symbols.get(id as usize) {
            Some(name) if id != NO_SYMBOL => symbol.append_value(name),
            _ => symbol.append_null(),
        }
    }
    symbol.finish()
}
