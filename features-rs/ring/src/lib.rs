//! # twinfeed-ring: the live transport (contract 5)
//!
//! A shared-memory ring of fixed slots in one file (`/dev/shm/twinfeed-<name>`, or any absolute
//! path), written by exactly one producer (the ingest) and read by any number of readers (the
//! Python brain through the binding). Records cross as their little-endian bytes; a reader copies
//! whole batches, never field by field.
//!
//! ## Invariants
//! - **The writer never blocks.** It writes a slot, stamps it, and publishes the count of records
//!   (`write_seq`, release store). It does not know where readers are.
//! - **Loss is explicit and exact.** A reader keeps its own cursor. If `write_seq - cursor` exceeds
//!   the capacity, the writer has lapped it: [`RingReader::read`] reports exactly how many records
//!   were lost and jumps to the oldest one still present. A batch never spans a loss.
//! - **No torn record is ever returned.** Every slot carries a stamp (`seq + 1`; 0 while being
//!   written). A reader checks it before and after copying the record (seqlock), so a slot
//!   overwritten mid-copy counts as lost instead.
//! - **Syscalls stay off the hot path.** A waiting reader polls for ~50 µs, then sets the
//!   "reader sleeping" flag and sleeps on a shared futex with a timeout; the writer calls
//!   `FUTEX_WAKE` only when it sees that flag.
//!
//! ## File layout (layout version 1; integers native-endian, i.e. little-endian here)
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `TWFDRING` |
//! | 8 | 4 | layout version (u32) |
//! | 12 | 4 | record schema version (u32, `twinfeed_features::SCHEMA_VERSION`) |
//! | 16 | 4 | record size (u32, 192) |
//! | 20 | 4 | slot size (u32, 200 = 8-byte stamp + record) |
//! | 24 | 8 | capacity in slots (u64, power of two) |
//! | 32 | 4 | header size (u32, 4096) |
//! | 36 | 4 | writer pid (u32) |
//! | 40 | 8 | created, ns since the epoch (i64) |
//! | 48 | 64 | feature fingerprint, 64 ASCII hex characters |
//! | 112 | 4 | number of counters (u32) |
//! | 128 | 8 | `write_seq`: records published (atomic u64) |
//! | 136 | 4 | writer state: 0 running, 1 closed cleanly (atomic u32) |
//! | 192 | 4 | reader sleeping flag (atomic u32) |
//! | 196 | 4 | futex word, bumped by every wake (atomic u32) |
//! | 256 | 8 × n | counters (atomic u64, names and order in [`COUNTER_NAMES`]) |
//! | 4096 + 200 × i | 8 | slot i: stamp (atomic u64, `seq + 1` of the record inside) |
//! | 4096 + 200 × i + 8 | 192 | slot i: the record's little-endian bytes |
//!
//! Record `seq` (0-based) lives in slot `seq & (capacity - 1)`. The header is built under a
//! temporary name and renamed into place, so a reader never sees it half-written. A writer marks
//! the ring closed when it exits cleanly; a killed writer leaves it "running" with a dead pid,
//! which [`RingReader::writer_alive`] detects.

mod error;
mod futex;
mod guard;
mod layout;
mod reader;
mod writer;

use std::path::PathBuf;

pub use error::{Error, Result};
pub use layout::{Counter, COUNTER_NAMES, HEADER_SIZE, LAYOUT_VERSION, MAGIC, SLOT_SIZE};
pub use reader::{ReadOutcome, ReaderOptions, RingInfo, RingReader, Start};
pub use writer::{RingOptions, RingWriter};

/// Directory of named rings.
pub const SHM_DIR: &str = "/dev/shm";
/// File name prefix of named rings.
pub const PREFIX: &str = "twinfeed-";

/// The file of ring `name`: `/dev/shm/twinfeed-<name>`, or `name` itself if it is an absolute
/// path (tests and machines without /dev/shm).
pub fn ring_path(name: &str) -> Result<PathBuf> {
    let invalid = |reason| Error::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.starts_with('/') {
        return Ok(PathBuf::from(name));
    }
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > 200 {
        return Err(invalid("longer than 200 bytes"));
    }
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(invalid(
            "a name must not contain '/' (give an absolute path instead)",
        ));
    }
    Ok(PathBuf::from(SHM_DIR).join(format!("{PREFIX}{name}")))
}

/// Whether process `pid` exists and is not a zombie (a killed child its parent has not waited
/// for is dead for our purposes).
pub fn process_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ')'.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .map_or(true, |state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests;
