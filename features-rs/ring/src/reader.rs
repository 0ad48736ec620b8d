//! A reader with its own cursor. Any number of readers may follow one ring; none of them can
//! slow the writer down.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use twinfeed_features::record::{RECORD_SIZE, SCHEMA_VERSION};

use crate::error::{Error, Result};
use crate::layout::*;
use crate::{futex, guard, ring_path};

/// How long a waiting reader polls, by default, before it goes to sleep on the futex. Polling
/// answers in well under a microsecond; a futex wake costs tens of microseconds here.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Where a new reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// The oldest record still in the ring (everything, if the ring has not wrapped).
    #[default]
    Oldest,
    /// Only records published after opening.
    Latest,
}

/// Options of [`RingReader::open_with`].
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Refuse a ring whose fingerprint differs.
    pub expected_fingerprint: Option<String>,
    pub start: Start,
    /// How long a waiting read polls before sleeping. Longer keeps a core busy while the
    /// market is quiet and answers the next record within a microsecond instead of a wakeup.
    pub spin: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            expected_fingerprint: None,
            start: Start::Oldest,
            spin: DEFAULT_SPIN,
        }
    }
}

/// The static header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingInfo {
    pub layout_version: u32,
    pub schema_version: u32,
    pub record_size: u32,
    pub capacity: u64,
    pub fingerprint: String,
    pub writer_pid: u32,
    pub created_ns: i64,
}

/// What one read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOutcome {
    /// Records appended to the output buffer.
    pub records: usize,
    /// Records lost to overrun *immediately before* the first appended record (or before the
    /// cursor, if none was appended). A batch never spans a loss.
    pub lost: u64,
}

pub struct RingReader {
    mapped: Mapped,
    /// Turns a SIGBUS on this mapping (the file shrank) into [`Error::Shrunk`]; dropped
    /// before the mapping it guards.
    guard: Option<guard::Registration>,
    _map: MmapMut,
    file: File,
    path: PathBuf,
    info: RingInfo,
    mask: u64,
    cursor: u64,
    lost_total: u64,
    spin: Duration,
}

impl RingReader {
    /// Opens ring `name` (see [`crate::ring_path`]) from its oldest record, without a
    /// fingerprint check.
    pub fn open(name: &str) -> Result<Self> {
        Self::open_with(name, &ReaderOptions::default())
    }

    /// Opens ring `name`, checking magic, layout version, record schema version, record size,
    /// slot layout and (if given) the fingerprint. A mismatch names the field and both values.
    pub fn open_with(name: &str, options: &ReaderOptions) -> Result<Self> {
        let path = ring_path(name)?;
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { path })
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len() as usize;
        if size < HEADER_SIZE {
            return Err(Error::Invalid {
                path,
                message: format!(
                    "file is {size} bytes, smaller than the {HEADER_SIZE}-byte header"
                ),
            });
        }
        // SAFETY: the ring file is only ever resized by its creator before it is renamed into
        // place; shared words are accessed atomically. Populated up front, so the first lap
        // does not pay a page fault every 20 records.
        let mut map = unsafe { memmap2::MmapOptions::new().populate().map_mut(&file) }
            .map_err(|e| Error::io(&path, e))?;
        // SAFETY: `map` is a writable, page-aligned mapping of `size` bytes that lives in the
        // reader next to `mapped`.
        let mapped = unsafe { Mapped::new(map.as_mut_ptr(), size) };
        // Guarded before the first access: the file may shrink at any time from now on.
        let guard = guard::register(map.as_ptr(), size);
        let info = check_header(&path, &mapped, size, options);
        if guard.as_ref().is_some_and(guard::Registration::faulted) {
            // Cut short while we read the header: say so, not "magic mismatch".
            return Err(shrunk(&path, &file, size));
        }
        let info = info?;
        let mask = info.capacity - 1;
        let head = mapped.write_seq().load(Ordering::Acquire);
        let cursor = match options.start {
            Start::Oldest => head.saturating_sub(info.capacity),
            Start::Latest => head,
        };
        if guard.as_ref().is_some_and(guard::Registration::faulted) {
            return Err(shrunk(&path, &file, size));
        }
        Ok(RingReader {
            mapped,
            guard,
            _map: map,
            file,
            path,
            info,
            mask,
            cursor,
            lost_total: 0,
            spin: options.spin,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn info(&self) -> &RingInfo {
        &self.info
    }

    pub fn writer_pid(&self) -> u32 {
        self.info.writer_pid
    }

    pub fn fingerprint(&self) -> &str {
        &self.info.fingerprint
    }

    /// `Err(Error::Shrunk)` once the ring file was cut short under this reader's mapping (the
    /// mapping then reads as zeros: nothing more is returned). One relaxed load: check it
    /// after every read or wait. Without this check such a reader would have died of SIGBUS.
    #[inline]
    pub fn check(&self) -> Result<()> {
        match &self.guard {
            Some(guard) if guard.faulted() => {
                Err(shrunk(&self.path, &self.file, self.mapped_len()))
            }
            _ => Ok(()),
        }
    }

    fn mapped_len(&self) -> usize {
        file_size(self.info.capacity)
    }

    /// Records published by the writer so far.
    pub fn write_seq(&self) -> u64 {
        self.mapped.write_seq().load(Ordering::Acquire)
    }

    /// Sequence number of the next record this reader returns.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Records published but not read yet (may exceed the capacity: then some are lost).
    pub fn backlog(&self) -> u64 {
        self.write_seq().saturating_sub(self.cursor)
    }

    /// Records this reader lost to overrun since it opened.
    pub fn lost_total(&self) -> u64 {
        self.lost_total
    }

    /// The writer closed the ring cleanly (after its last record was published).
    pub fn writer_closed(&self) -> bool {
        self.mapped.writer_state().load(Ordering::Acquire) == WRITER_CLOSED
    }

    /// Whether the writer process exists (a killed writer leaves the ring "running").
    pub fn writer_alive(&self) -> bool {
        crate::process_alive(self.info.writer_pid)
    }

    /// The file at the ring's path is no longer the one this reader mapped (a new writer
    /// replaced it): reopen to follow the new writer.
    pub fn replaced(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(mine) = self.file.metadata() else {
            return true;
        };
        match std::fs::metadata(&self.path) {
            Ok(now) => now.ino() != mine.ino() || now.dev() != mine.dev(),
            Err(_) => true,
        }
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        self.mapped
            .counter(counter as usize)
            .load(Ordering::Relaxed)
    }

    /// Every counter the writer exposes, by name, in header order.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        Counter::ALL
            .iter()
            .map(|&c| (c.name(), self.counter(c)))
            .collect()
    }

    /// Appends up to `max_records` records' bytes to `out` without waiting.
    pub fn read(&mut self, out: &mut Vec<u8>, max_records: usize) -> ReadOutcome {
        let capacity = self.mask + 1;
        let mut outcome = ReadOutcome::default();
        let mut head = self.write_seq();
        loop {
            if head < self.cursor {
                // Only a zeroed (shrunk, see `check`) or corrupt ring goes backwards.
                break;
            }
            if head - self.cursor > capacity {
                if outcome.records > 0 {
                    break;
                }
                // The writer lapped us: everything before head - capacity is gone.
                let skip = head - capacity - self.cursor;
                outcome.lost += skip;
                self.cursor += skip;
            }
            let wanted = (head - self.cursor).min((max_records - outcome.records) as u64);
            if wanted == 0 {
                break;
            }
            let copied = self.copy(out, wanted as usize);
            outcome.records += copied;
            if copied == wanted as usize {
                break;
            }
            // A slot was overwritten while we copied it: that record is lost.
            if outcome.records > 0 {
                break;
            }
            outcome.lost += 1;
            self.cursor += 1;
            head = self.write_seq();
        }
        self.lost_total += outcome.lost;
        outcome
    }

    /// Copies up to `count` published records from the cursor; stops at the first slot whose
    /// stamp shows it was (being) overwritten, so a torn record is never returned.
    fn copy(&mut self, out: &mut Vec<u8>, count: usize) -> usize {
        let start = out.len();
        out.resize(start + count * RECORD_SIZE, 0);
        let mut copied = 0;
        for chunk in out[start..].chunks_exact_mut(RECORD_SIZE) {
            let seq = self.cursor;
            let index = (seq & self.mask) as usize;
            let stamp = self.mapped.stamp(index);
            if stamp.load(Ordering::Acquire) != seq + 1 {
                break;
            }
            for (word, bytes) in self
                .mapped
                .record(index)
                .iter()
                .zip(chunk.chunks_exact_mut(8))
            {
                bytes.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
            fence(Ordering::Acquire);
            if stamp.load(Ordering::Relaxed) != seq + 1 {
                break;
            }
            self.cursor += 1;
            copied += 1;
        }
        out.truncate(start + copied * RECORD_SIZE);
        copied
    }

    /// Waits up to `timeout` until records are available (or the writer closed); true if
    /// there is something to read. Polls briefly, then sleeps on the futex; the writer wakes
    /// it only because its "sleeping" flag is set.
    pub fn wait(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            if self.write_seq() != self.cursor {
                return true;
            }
            if self.writer_closed() {
                return self.write_seq() != self.cursor;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if now - start < self.spin {
                // A few pause instructions between checks (one is tens of cycles on Zen):
                // the check itself is one load of a shared cache line.
                for _ in 0..4 {
                    std::hint::spin_loop();
                }
                continue;
            }
            let futex = self.mapped.futex();
            let ticket = futex.load(Ordering::Acquire);
            self.mapped.reader_sleeping().store(1, Ordering::Relaxed);
            // Pairs with the writer's fence between publishing and reading the flag.
            fence(Ordering::SeqCst);
            if self.write_seq() != self.cursor || self.writer_closed() {
                continue;
            }
            futex::wait(futex, ticket, deadline - now);
        }
    }

    /// [`wait`](RingReader::wait)s up to `timeout`, then [`read`](RingReader::read)s.
    pub fn read_wait(
        &mut self,
        out: &mut Vec<u8>,
        max_records: usize,
        timeout: Duration,
    ) -> ReadOutcome {
        let outcome = self.read(out, max_records);
        if outcome.records > 0 || outcome.lost > 0 || max_records == 0 {
            return outcome;
        }
        self.wait(timeout);
        self.read(out, max_records)
    }
}

fn shrunk(path: &Path, file: &File, mapped: usize) -> Error {
    let now = match file.metadata() {
        Ok(meta) => format!("{} bytes", meta.len()),
        Err(e) => format!("unknown size ({e})"),
    };
    Error::Shrunk {
        path: path.to_path_buf(),
        mapped,
        now,
    }
}

fn check_header(
    path: &Path,
    mapped: &Mapped,
    size: usize,
    options: &ReaderOptions,
) -> Result<RingInfo> {
    let mismatch = |field: &'static str, expected: String, found: String| Error::Mismatch {
        path: path.to_path_buf(),
        field,
        expected,
        found,
    };
    let magic = mapped.header_bytes(OFF_MAGIC, 8);
    if magic != MAGIC {
        return Err(mismatch(
            "magic",
            String::from_utf8_lossy(&MAGIC).into_owned(),
            String::from_utf8_lossy(magic).into_owned(),
        ));
    }
    let check = |field: &'static str, offset: usize, expected: u32| -> Result<u32> {
        let found = mapped.header_u32(offset);
        if found != expected {
            return Err(mismatch(field, expected.to_string(), found.to_string()));
        }
        Ok(found)
    };
    let layout_version = check("layout_version", OFF_LAYOUT_VERSION, LAYOUT_VERSION)?;
    let schema_version = check("schema_version", OFF_SCHEMA_VERSION, SCHEMA_VERSION)?;
    let record_size = check("record_size", OFF_RECORD_SIZE, RECORD_SIZE as u32)?;
    check("slot_size", OFF_SLOT_SIZE, SLOT_SIZE as u32)?;
    check("header_size", OFF_HEADER_SIZE, HEADER_SIZE as u32)?;
    let capacity = mapped.header_u64(OFF_CAPACITY);
    if !capacity.is_power_of_two() || capacity > MAX_CAPACITY || file_size(capacity) != size {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "capacity {capacity} does not match the file size {size} (expected a power of \
                 two with {HEADER_SIZE} + capacity * {SLOT_SIZE} bytes)"
            ),
        });
    }
    let fingerprint =
        String::from_utf8_lossy(mapped.header_bytes(OFF_FINGERPRINT, 64)).into_owned();
    if let Some(expected) = &options.expected_fingerprint {
        if !expected.eq_ignore_ascii_case(&fingerprint) {
            return Err(mismatch("fingerprint", expected.clone(), fingerprint));
        }
    }
    Ok(RingInfo {
        layout_version,
        schema_version,
        record_size,
        capacity,
        fingerprint,
        writer_pid: mapped.header_u32(OFF_WRITER_PID),
        created_ns: mapped.header_u64(OFF_CREATED_NS) as i64,
    })
}
