//! The only clock of the ingest: CLOCK_REALTIME at receive (read once per socket read; every
//! frame that read completed carries it), recorded into the capture line. The pipeline never
//! reads a clock (contract 2); replays use the recorded value.

/// Nanoseconds since the epoch (CLOCK_REALTIME, through the vDSO: no syscall).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A small xorshift generator for reconnect jitter, seeded from the clock. Jitter only spaces
/// reconnects out; it never reaches a feature.
pub struct Jitter(u64);

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Jitter {
    pub fn new() -> Self {
        Jitter(now_ns() as u64 | 1)
    }

    /// A value in `[0, bound)` (0 if `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        if bound == 0 {
            0
        } else {
            x % bound
        }
    }
}
