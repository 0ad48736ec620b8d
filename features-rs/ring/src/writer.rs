//! The single producer. It never blocks and never waits for a reader: a slow reader is overrun
//! and finds out from the sequence numbers.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

use memmap2::MmapMut;
use twinfeed_features::record::{Record, RECORD_SIZE, SCHEMA_VERSION};

use crate::error::{Error, Result};
use crate::layout::*;
use crate::{futex, ring_path};

/// What a new ring looks like.
#[derive(Debug, Clone)]
pub struct RingOptions {
    /// Slots; rounded up to a power of two (at least 2).
    pub capacity: u64,
    /// The feature fingerprint (64 hex characters) of the records written.
    pub fingerprint: String,
}

pub struct RingWriter {
    // Field order matters: `mapped` points into `map` and must not outlive it.
    mapped: Mapped,
    _map: MmapMut,
    path: PathBuf,
    mask: u64,
    /// Sequence number of the next record (records written, published or not).
    next: u64,
    closed: bool,
}

impl RingWriter {
    /// Creates (or replaces) the ring `name` (see [`ring_path`]). The file is built under a
    /// temporary name and renamed into place, so a reader never sees a half-written header.
    /// Fails if a ring of that name belongs to another writer that is still running.
    pub fn create(name: &str, options: &RingOptions) -> Result<Self> {
        let path = ring_path(name)?;
        let fingerprint = options.fingerprint.as_bytes();
        if fingerprint.len() != FINGERPRINT_LEN || !fingerprint.iter().all(u8::is_ascii_hexdigit) {
            return Err(Error::Invalid {
                path,
                message: format!(
                    "fingerprint must be {FINGERPRINT_LEN} hex characters, got {:?}",
                    options.fingerprint
                ),
            });
        }
        let capacity = options.capacity.max(2).checked_next_power_of_two();
        let capacity = match capacity {
            Some(c) if c <= MAX_CAPACITY => c,
            _ => {
                return Err(Error::Invalid {
                    path,
                    message: format!(
                        "capacity {} is larger than {MAX_CAPACITY} slots",
                        options.capacity
                    ),
                })
            }
        };
        refuse_running_writer(&path)?;
        refuse_if_no_room(&path, file_size(capacity) as u64)?;

        let pid = std::process::id();
        let tmp = temp_path(&path, pid);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        let size = file_size(capacity);
        let built = (|| {
            file.set_len(size as u64)?;
            // SAFETY: the file is ours (fresh temporary name) and sized before mapping.
            // Populated up front: the hot path never takes a page fault.
            unsafe { memmap2::MmapOptions::new().populate().map_mut(&file) }
        })();
        let mut map = match built {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(&tmp, e));
            }
        };
        // SAFETY: `map` is a writable, page-aligned mapping of `size` bytes and is stored next
        // to `mapped` in the writer, which drops `mapped` first.
        let mapped = unsafe { Mapped::new(map.as_mut_ptr(), size) };
        let created_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        mapped.write_header_bytes(OFF_LAYOUT_VERSION, &LAYOUT_VERSION.to_ne_bytes());
        mapped.write_header_bytes(OFF_SCHEMA_VERSION, &SCHEMA_VERSION.to_ne_bytes());
        mapped.write_header_bytes(OFF_RECORD_SIZE, &(RECORD_SIZE as u32).to_ne_bytes());
        mapped.write_header_bytes(OFF_SLOT_SIZE, &(SLOT_SIZE as u32).to_ne_bytes());
        mapped.write_header_bytes(OFF_CAPACITY, &capacity.to_ne_bytes());
        mapped.write_header_bytes(OFF_HEADER_SIZE, &(HEADER_SIZE as u32).to_ne_bytes());
        mapped.write_header_bytes(OFF_WRITER_PID, &pid.to_ne_bytes());
        mapped.write_header_bytes(OFF_CREATED_NS, &created_ns.to_ne_bytes());
        mapped.write_header_bytes(OFF_FINGERPRINT, fingerprint);
        mapped.write_header_bytes(
            OFF_COUNTER_COUNT,
            &(COUNTER_NAMES.len() as u32).to_ne_bytes(),
        );
        mapped.write_header_bytes(OFF_MAGIC, &MAGIC);
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&path, e));
        }
        Ok(RingWriter {
            mapped,
            _map: map,
            path,
            mask: capacity - 1,
            next: 0,
            closed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Records written so far (published or not).
    pub fn written(&self) -> u64 {
        self.next
    }

    /// Writes one record into its slot, seqlock style: the stamp is cleared, the words are
    /// stored, then the stamp is set to `seq + 1`. Readers see it after [`publish`].
    ///
    /// [`publish`]: RingWriter::publish
    pub fn push(&mut self, record: &Record) {
        self.push_words(&record.to_words());
    }

    /// Like [`push`](RingWriter::push) for a record already in its little-endian bytes.
    pub fn push_bytes(&mut self, bytes: &[u8; RECORD_SIZE]) {
        let mut words = [0u64; RECORD_SIZE / 8];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().unwrap());
        }
        self.push_words(&words);
    }

    fn push_words(&mut self, words: &[u64; RECORD_SIZE / 8]) {
        let index = (self.next & self.mask) as usize;
        let stamp = self.mapped.stamp(index);
        stamp.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, word) in self.mapped.record(index).iter().zip(words) {
            // Stored so that memory holds the word's little-endian bytes on any host.
            slot.store(word.to_le(), Ordering::Relaxed);
        }
        self.next += 1;
        stamp.store(self.next, Ordering::Release);
    }

    /// Writes `records` and publishes them.
    pub fn write(&mut self, records: &[Record]) {
        for record in records {
            self.push(record);
        }
        self.publish();
    }

    /// Makes every record pushed so far visible, and wakes a reader that went to sleep. The
    /// wake-up costs a syscall only when the reader's "sleeping" flag is set.
    pub fn publish(&mut self) {
        let seq = self.mapped.write_seq();
        if seq.load(Ordering::Relaxed) == self.next {
            return;
        }
        seq.store(self.next, Ordering::Release);
        self.wake_if_sleeping();
    }

    fn wake_if_sleeping(&self) {
        // Pairs with the reader's fence between setting the flag and re-reading write_seq:
        // either the reader sees the new write_seq, or this sees its flag.
        fence(Ordering::SeqCst);
        let sleeping = self.mapped.reader_sleeping();
        if sleeping.load(Ordering::Relaxed) != 0 {
            sleeping.store(0, Ordering::Relaxed);
            self.mapped.futex().fetch_add(1, Ordering::Release);
            futex::wake_all(self.mapped.futex());
            let wakeups = self.mapped.counter(Counter::Wakeups as usize);
            wakeups.store(wakeups.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// Sets one of the header counters (single writer: a plain relaxed store).
    pub fn set_counter(&self, counter: Counter, value: u64) {
        self.mapped
            .counter(counter as usize)
            .store(value, Ordering::Relaxed);
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        self.mapped
            .counter(counter as usize)
            .load(Ordering::Relaxed)
    }

    /// Publishes what is pending and marks the ring closed: readers drain it and then know no
    /// more records will come. Called on drop; a killed writer leaves the ring "running" with a
    /// dead pid, which readers detect separately.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.publish();
        self.mapped
            .writer_state()
            .store(WRITER_CLOSED, Ordering::Release);
        self.wake_if_sleeping();
        self.closed = true;
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        self.close();
    }
}

fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{pid}"));
    path.with_file_name(name)
}

/// Errors if the file system of `path` (tmpfs for /dev/shm) has less than `size` bytes free:
/// the ring is populated up front, and a tmpfs that fills up kills the writer with SIGBUS.
fn refuse_if_no_room(path: &Path, size: u64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: statvfs fills the zeroed struct; `c_dir` is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_dir.as_ptr(), &mut stat) } != 0 {
        return Ok(()); // cannot tell: let the creation itself fail if it must
    }
    let free = (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64);
    // Replacing an existing ring frees its space.
    let replaced = std::fs::metadata(path).map_or(0, |m| m.len());
    if size > free.saturating_add(replaced) {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "a ring of {size} bytes does not fit: {free} bytes free in {}",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// Errors if `path` is a ring whose writer (another process) is still running.
fn refuse_running_writer(path: &Path) -> Result<()> {
    let Ok(reader) = crate::RingReader::open(path.to_str().unwrap_or_default()) else {
        return Ok(());
    };
    let pid = reader.writer_pid();
    if pid != std::process::id() && !reader.writer_closed() && crate::process_alive(pid) {
        return Err(Error::InUse {
            path: path.to_path_buf(),
            pid,
        });
    }
    Ok(())
}
