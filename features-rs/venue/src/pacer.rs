//! `--rate N`: each connection sends its messages at a fixed N per second, evenly spaced.
//!
//! Message `k` (counted from the connection's first) is due at `origin + k / N`. The wait for
//! the next one is a `timerfd` (an hrtimer: microsecond precision, no timer slack) awaited
//! through the runtime, so the connection stays responsive to its client meanwhile; tokio's own
//! timers tick in milliseconds and would turn 50 k msg/s into bursts of 50 every millisecond.
//! A wait is never shorter than [`TICK`] (50 us): every wake-up costs the venue and the client
//! a few microseconds of CPU each (more on a VM), and at 50 k msg/s one per message kept a core
//! busy; so at rates above 20 k/s the messages due within one tick share one write (2.5 per
//! write on average at 50 k/s), and below that each has its own. The average rate is exact.
//! Messages found due on waking (the venue was descheduled, or the socket was full) go out
//! together, but never more than [`MAX_DEBT`] behind: a connection that fell further back
//! starts a new schedule instead of bursting to catch up.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The shortest wait between two writes (see the module docs).
pub const TICK: Duration = Duration::from_micros(50);

/// How far behind its schedule a connection may be before the schedule restarts.
pub const MAX_DEBT: Duration = Duration::from_millis(10);

pub struct Pacer {
    rate: f64,
    origin: Instant,
    /// Messages counted before `origin` (the schedule restarts at a count, not at zero).
    base: u64,
    timer: AsyncFd<OwnedFd>,
}

impl Pacer {
    /// A schedule of `rate` messages per second starting now (needs a tokio runtime with IO).
    pub fn new(rate: f64) -> std::io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: an `OwnedFd` keeps its descriptor open, and `as_raw_fd` returns the same one,
        // until it is dropped, which only the `AsyncFd` can do.
        let timer = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Pacer {
            rate,
            origin: Instant::now(),
            base: 0,
            timer,
        })
    }

    fn due_at(&self, count: u64) -> Instant {
        let offset = count.saturating_sub(self.base) as f64 / self.rate;
        self.origin + Duration::from_secs_f64(offset)
    }

    /// How many messages may go now, `sent` having gone so far (0: wait for [`Pacer::wait`]).
    pub fn allowed(&mut self, sent: u64) -> u64 {
        let now = Instant::now();
        let next = self.due_at(sent);
        if next > now {
            return 0;
        }
        if now - next > MAX_DEBT {
            self.origin = now;
            self.base = sent;
            return 1;
        }
        let elapsed = (now - self.origin).as_secs_f64();
        let due = self.base + (elapsed * self.rate) as u64 + 1;
        due.saturating_sub(sent).max(1)
    }

    /// Resolves when message `sent` is due (cancel safe: the timer is re-armed on each call).
    pub async fn wait(&self, sent: u64) -> std::io::Result<()> {
        let remaining = self.due_at(sent).saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(());
        }
        let remaining = remaining.max(TICK);
        let value = Timespec {
            tv_sec: remaining.as_secs() as _,
            tv_nsec: remaining.subsec_nanos() as _,
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        timerfd_settime(
            self.timer.get_ref(),
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: zero,
                it_value: value,
            },
        )?;
        loop {
            let mut guard = self.timer.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(self.timer.get_ref(), &mut expirations) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_are_spaced_by_the_rate() {
        // 20 k/s: 50 us apart. 40 messages take at least 39 intervals (1.95 ms), and the
        // schedule never lets more than the due count through.
        let mut pacer = Pacer::new(20_000.0).unwrap();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < 40 {
            let allowed = pacer.allowed(sent);
            if allowed == 0 {
                pacer.wait(sent).await.unwrap();
                continue;
            }
            let due = (start.elapsed().as_secs_f64() * 20_000.0) as u64 + 1;
            assert!(sent + allowed <= due + 1, "{sent} + {allowed} > {due}");
            sent += 1;
        }
        assert!(start.elapsed() >= Duration::from_micros(1950));
    }

    #[tokio::test]
    async fn a_connection_far_behind_restarts_its_schedule() {
        let mut pacer = Pacer::new(1_000.0).unwrap();
        assert_eq!(pacer.allowed(0), 1);
        std::thread::sleep(MAX_DEBT * 2);
        // 20+ messages are overdue: no burst, one now and the next a full interval later.
        assert_eq!(pacer.allowed(1), 1);
        assert_eq!(pacer.allowed(2), 0);
    }
}
