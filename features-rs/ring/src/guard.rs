//! Survives a ring file that shrinks under a reader's mapping.
//!
//! Touching a mapped page past the end of its file raises SIGBUS, which kills the process
//! (Python included: rc 135). The file is another process's, in /dev/shm, so anything can
//! truncate it at any moment. Two ways out were weighed:
//!
//! - `fstat` before touching the mapping: a syscall per read on the hot path if done every
//!   time, and racy anyway (the file can shrink between the `fstat` and the load), so it only
//!   narrows the window.
//! - this module: a SIGBUS handler that knows the address ranges of every reader's mapping.
//!   A fault inside one replaces that whole mapping by private zero pages (`mmap` with
//!   `MAP_FIXED`, async-signal-safe) and flags the reader; the faulting load is restarted and
//!   reads 0. A zeroed ring shows nothing published (every stamp 0, `write_seq` 0), so no
//!   garbage record can come out, and [`crate::RingReader::check`] (one relaxed load) turns
//!   the flag into [`crate::Error::Shrunk`]. Faults anywhere else go to the handler that was
//!   installed before ours (Python's faulthandler under pytest), or to the default action,
//!   exactly as without the guard. No cost at all until a fault.
//!
//! The handler is installed once, by the first reader. Up to [`SLOTS`] mappings are guarded
//! at once; a reader beyond that works unguarded (as before).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

/// Mappings guarded at once.
pub const SLOTS: usize = 64;

struct Slot {
    busy: AtomicBool,
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    busy: AtomicBool::new(false),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();
/// The handler before ours, written once (inside `INSTALL`) before ours is installed.
static mut PREVIOUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// One guarded mapping; unregisters on drop (before the mapping is unmapped).
#[derive(Debug)]
pub struct Registration {
    index: usize,
}

impl Registration {
    /// Whether a fault hit this mapping (it now reads as zeros).
    #[inline]
    pub fn faulted(&self) -> bool {
        TABLE[self.index].faulted.load(Ordering::Relaxed)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = &TABLE[self.index];
        slot.start.store(0, Ordering::Release);
        slot.len.store(0, Ordering::Release);
        slot.faulted.store(false, Ordering::Relaxed);
        slot.busy.store(false, Ordering::Release);
    }
}

/// Guards `len` bytes mapped at `start`; None if every slot is taken or the handler could not
/// be installed (the mapping then works unguarded).
pub fn register(start: *const u8, len: usize) -> Option<Registration> {
    install();
    if !INSTALLED.load(Ordering::Acquire) {
        return None;
    }
    for (index, slot) in TABLE.iter().enumerate() {
        if slot
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            slot.faulted.store(false, Ordering::Relaxed);
            slot.len.store(len, Ordering::Release);
            slot.start.store(start as usize, Ordering::Release);
            return Some(Registration { index });
        }
    }
    None
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: plain sigaction calls with zero-initialised structs; PREVIOUS is written here
        // only, once, before our handler (its only other reader) can run.
        unsafe {
            let previous = std::ptr::addr_of_mut!(PREVIOUS);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            (*previous).write(old);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
}

extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo; only atomics, mmap and sigaction are used,
    // all async-signal-safe.
    unsafe {
        let addr = (*info).si_addr() as usize;
        for slot in &TABLE {
            let start = slot.start.load(Ordering::Acquire);
            let len = slot.len.load(Ordering::Acquire);
            if start == 0 || addr < start || addr >= start + len {
                continue;
            }
            let zeros = libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
            if zeros != libc::MAP_FAILED {
                slot.faulted.store(true, Ordering::Release);
                return; // the faulting load restarts and reads 0
            }
        }
        chain(signal, info, context);
    }
}

/// Hands a fault that is not ours to the previous handler (or the default action).
unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: PREVIOUS was written before this handler was installed.
    let previous = unsafe { (*std::ptr::addr_of!(PREVIOUS)).assume_init_ref() };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Back to the default action, delivered when this handler returns (SIGBUS is blocked
        // while it runs): the process dies of SIGBUS as it would have without the guard.
        // SAFETY: async-signal-safe calls.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: a handler installed with SA_SIGINFO has this signature.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        handler(signal, info, context);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes the signal number only.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        handler(signal);
    }
}
