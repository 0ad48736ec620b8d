//! The fixed byte layout of a ring file. Writer and reader both go through [`Mapped`], so the
//! offsets below are spelled out exactly once.

use std::sync::atomic::{AtomicU32, AtomicU64};

use twinfeed_features::record::RECORD_SIZE;

/// First 8 bytes of every ring file.
pub const MAGIC: [u8; 8] = *b"TWFDRING";
/// Bumped whenever the header or slot layout below changes.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes before the first slot (one page, so slots start page-aligned).
pub const HEADER_SIZE: usize = 4096;
/// One slot: the u64 sequence stamp, then the record's bytes.
pub const SLOT_SIZE: usize = 8 + RECORD_SIZE;
/// Words of one record (slots are copied word by word with relaxed atomics).
pub const RECORD_WORDS: usize = RECORD_SIZE / 8;
/// Length of the fingerprint field (sha256 as lowercase hex).
pub const FINGERPRINT_LEN: usize = 64;
/// Largest capacity accepted (2^30 slots, about 200 GiB: far beyond any sane ring).
pub const MAX_CAPACITY: u64 = 1 << 30;

// Header offsets. Static fields first; the hot words each start their own cache line.
pub const OFF_MAGIC: usize = 0;
pub const OFF_LAYOUT_VERSION: usize = 8;
pub const OFF_SCHEMA_VERSION: usize = 12;
pub const OFF_RECORD_SIZE: usize = 16;
pub const OFF_SLOT_SIZE: usize = 20;
pub const OFF_CAPACITY: usize = 24;
pub const OFF_HEADER_SIZE: usize = 32;
pub const OFF_WRITER_PID: usize = 36;
pub const OFF_CREATED_NS: usize = 40;
pub const OFF_FINGERPRINT: usize = 48;
pub const OFF_COUNTER_COUNT: usize = 112;
pub const OFF_WRITE_SEQ: usize = 128;
pub const OFF_WRITER_STATE: usize = 136;
pub const OFF_READER_SLEEPING: usize = 192;
pub const OFF_FUTEX: usize = 196;
pub const OFF_COUNTERS: usize = 256;
/// Room for counters in the header.
pub const MAX_COUNTERS: usize = (HEADER_SIZE - OFF_COUNTERS) / 8;

/// `writer_state` once the writer closed the ring (0 while it runs).
pub const WRITER_CLOSED: u32 = 1;

const _: () = assert!(RECORD_SIZE % 8 == 0);
const _: () = assert!(OFF_FINGERPRINT + FINGERPRINT_LEN <= OFF_COUNTER_COUNT);

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal),* $(,)?) => {
        /// The ingest's counters, stored as `u64` at `OFF_COUNTERS + 8 * index` in this order.
        /// The writer refreshes them after every batch it publishes; readers see them without a
        /// round trip. Each counter is atomic on its own, but a set of them read while the
        /// writer refreshes is not one consistent snapshot.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter {
            $($(#[doc = $doc])* $variant),*
        }

        /// Counter names in header order.
        pub const COUNTER_NAMES: &[&str] = &[$($name),*];

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$variant),*];

            pub fn name(self) -> &'static str {
                COUNTER_NAMES[self as usize]
            }
        }
    };
}

counters! {
    /// Lines pushed into the pipeline (venue frames and the ingest's own control lines).
    Lines = "lines",
    /// Lines that decoded (any kind).
    Frames = "frames",
    /// Bytes of the frames pushed.
    Bytes = "bytes",
    /// Frames that did not decode (counted by the pipeline, never fatal).
    DecodeErrors = "decode_errors",
    /// Records produced by the pipeline (= records published to the ring, if there is one).
    Records = "records",
    /// Gap records (book lost continuity).
    Gaps = "gaps",
    /// Depth snapshots applied by the pipeline.
    Snapshots = "snapshots",
    /// Heartbeat lines written.
    Heartbeats = "heartbeats",
    /// Successful websocket connections after the first one.
    Reconnects = "reconnects",
    /// Websocket connections lost or failed.
    Disconnects = "disconnects",
    /// REST snapshot requests started.
    SnapshotRequests = "snapshot_requests",
    /// REST snapshot requests that failed (retried).
    SnapshotErrors = "snapshot_errors",
    /// Websocket frames that were not text (ignored, never captured).
    BinaryFrames = "binary_frames",
    /// Capture lines written.
    CaptureLines = "capture_lines",
    /// Replay input lines skipped (blank, malformed or torn).
    SkippedLines = "skipped_lines",
    /// FUTEX_WAKE calls made for a sleeping reader.
    Wakeups = "wakeups",
    /// 1 while the websocket is connected.
    Connected = "connected",
    /// local_ns of the last heartbeat line (CLOCK_REALTIME ns).
    LastHeartbeatNs = "last_heartbeat_ns",
    /// local_ns of the last line pushed.
    LastLineNs = "last_line_ns",
}

const _: () = assert!(COUNTER_NAMES.len() <= MAX_COUNTERS);

/// A mapped ring file: typed access to header fields and slots. Every method takes `&self`:
/// the shared words are atomics, and the static fields are written only before the file is
/// published under its final name.
pub struct Mapped {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: all shared mutable state behind `ptr` is accessed through atomics; the mapping
// itself is owned by the struct holding the `MmapMut` next to this view.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// # Safety
    /// `ptr` must point to a live, page-aligned, writable mapping of `len >= HEADER_SIZE` bytes
    /// that outlives the returned value.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> Self {
        debug_assert!(len >= HEADER_SIZE && ptr as usize % 64 == 0);
        Mapped { ptr, len }
    }

    fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len);
        // SAFETY: in bounds, 8-aligned (the mapping is page-aligned), and only ever accessed
        // atomically while shared.
        unsafe { AtomicU64::from_ptr(self.ptr.add(offset).cast()) }
    }

    fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= HEADER_SIZE);
        // SAFETY: as for `u64_at`.
        unsafe { AtomicU32::from_ptr(self.ptr.add(offset).cast()) }
    }

    /// Plain bytes of the static header part (read-only once published).
    pub fn header_bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= OFF_WRITE_SEQ);
        // SAFETY: in bounds; the static header is not written after publication.
        unsafe { std::slice::from_raw_parts(self.ptr.add(offset), len) }
    }

    /// Writes the static header part. Only before the file is visible to readers.
    pub fn write_header_bytes(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= OFF_WRITE_SEQ);
        // SAFETY: in bounds; the file is not yet shared (see `RingWriter::create`).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) }
    }

    pub fn header_u32(&self, offset: usize) -> u32 {
        u32::from_ne_bytes(self.header_bytes(offset, 4).try_into().unwrap())
    }

    pub fn header_u64(&self, offset: usize) -> u64 {
        u64::from_ne_bytes(self.header_bytes(offset, 8).try_into().unwrap())
    }

    pub fn write_seq(&self) -> &AtomicU64 {
        self.u64_at(OFF_WRITE_SEQ)
    }

    pub fn writer_state(&self) -> &AtomicU32 {
        self.u32_at(OFF_WRITER_STATE)
    }

    pub fn reader_sleeping(&self) -> &AtomicU32 {
        self.u32_at(OFF_READER_SLEEPING)
    }

    pub fn futex(&self) -> &AtomicU32 {
        self.u32_at(OFF_FUTEX)
    }

    pub fn counter(&self, index: usize) -> &AtomicU64 {
        assert!(index < MAX_COUNTERS);
        self.u64_at(OFF_COUNTERS + index * 8)
    }

    /// The stamp of slot `index` (already masked).
    pub fn stamp(&self, index: usize) -> &AtomicU64 {
        self.u64_at(HEADER_SIZE + index * SLOT_SIZE)
    }

    /// The record words of slot `index` (already masked).
    pub fn record(&self, index: usize) -> &[AtomicU64; RECORD_WORDS] {
        let offset = HEADER_SIZE + index * SLOT_SIZE + 8;
        assert!(offset + RECORD_SIZE <= self.len);
        // SAFETY: in bounds and 8-aligned (SLOT_SIZE and HEADER_SIZE are multiples of 8);
        // record words are only accessed atomically while shared.
        unsafe { &*self.ptr.add(offset).cast::<[AtomicU64; RECORD_WORDS]>() }
    }
}

/// File size of a ring with `capacity` slots.
pub fn file_size(capacity: u64) -> usize {
    HEADER_SIZE + capacity as usize * SLOT_SIZE
}
