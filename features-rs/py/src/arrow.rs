//! Records to Arrow. The schema is derived from `record::FIELDS`, plus a `symbol` string column
//! resolved from the pipeline's symbol table.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::builder::StringBuilder;
use arrow_array::types::{Float64Type, Int64Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{ArrayRef, PrimitiveArray, RecordBatch, StringArray};
use arrow_buffer::{Buffer, MutableBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use memmap2::{Advice, MmapMut, MmapOptions};
use twinfeed_features::record::{FieldType, Record, FIELDS, NO_SYMBOL};

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

/// The Arrow schema of feature batches: every record field in layout order, then `symbol`.
pub fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = FIELDS
        .iter()
        .map(|f| Field::new(f.name, data_type(f.ty), false))
        .collect();
    fields.push(Field::new("symbol", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
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
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(FIELDS.len() + 1);
                $({
                    let at = *offsets.next().expect("one offset per field");
                    let values = ScalarBuffer::<$ty>::new(
                        finished.buffer(at, len * std::mem::size_of::<$ty>()), 0, len);
                    if stringify!($field) == "symbol_id" {
                        symbol_id = Some(values.clone().into_inner());
                    }
                    columns.push(Arc::new(PrimitiveArray::<$arrow>::new(values, None)));
                })*
                let ids = ScalarBuffer::<u16>::new(symbol_id.expect("symbol_id is a field"), 0, len);
                columns.push(Arc::new(symbol_column(&ids, symbols)));
                debug_assert_eq!(columns.len(), FIELDS.len() + 1);
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
