//! Keeps a peer that truncates a section's file from crashing us.
//!
//! Touching a page of a mapping beyond the end of its file raises SIGBUS.
//! Views whose file another process can shrink (file-backed sections, named
//! tmpfs sections; sealed memfds cannot shrink) register their address
//! range here. A SIGBUS handler that finds the faulting address in a
//! registered view maps a zero-filled private page over the faulting page,
//! records the hit on the view and returns, so the access completes (it
//! reads zeros; a write goes nowhere). The safe accessors check the record
//! after every copy and report an error instead of the garbage. A fault
//! outside every registered view goes to the previous handler (by default
//! the process dies, as it would have).
//!
//! The handler only reads atomics and calls `mmap`, both safe in a signal
//! handler; registering and unregistering never allocate inside it.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 4096;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    hits: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    hits: AtomicUsize::new(0),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours, as a raw `sigaction` copy.
static mut PREVIOUS: Option<libc::sigaction> = None;

/// A registered view range; unregisters when dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: Option<usize>,
}

impl Guard {
    /// Guards `start..start+len`. Guarding is best effort: with every slot
    /// in use (thousands of live views), the view is left unguarded.
    pub(crate) fn register(start: *mut u8, len: usize) -> Guard {
        INSTALL.call_once(install);
        let start = start as usize;
        for (i, slot) in TABLE.iter().enumerate() {
            // Claim a free slot: `end` is published last, so the handler
            // never sees a half-written range as a match.
            if slot
                .start
                .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.hits.store(0, Ordering::Relaxed);
                slot.end.store(start + len, Ordering::Release);
                return Guard { slot: Some(i) };
            }
        }
        Guard { slot: None }
    }

    /// How many accesses to the view have faulted past the end of its
    /// file so far; a copy that sees this change read or wrote nothing real.
    #[inline]
    pub(crate) fn hits(&self) -> usize {
        self.slot
            .map_or(0, |i| TABLE[i].hits.load(Ordering::Acquire))
    }
}

impl Guard {
    /// Stops guarding (before the range is unmapped, so that a later
    /// mapping at the same address is never claimed).
    pub(crate) fn release(&mut self) {
        if let Some(i) = self.slot.take() {
            TABLE[i].end.store(0, Ordering::Release);
            TABLE[i].start.store(0, Ordering::Release);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.release();
    }
}

fn install() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler has the SA_SIGINFO signature; PREVIOUS is written once,
    // here, before the handler can run (it is installed by this call).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
            PREVIOUS = Some(previous);
        }
    }
}

fn fault_address(info: *mut libc::siginfo_t) -> usize {
    // SAFETY: the kernel passes a valid siginfo for SIGBUS.
    #[cfg(target_os = "linux")]
    return unsafe { (*info).si_addr() } as usize;
    // SAFETY: as above.
    #[cfg(not(target_os = "linux"))]
    unsafe {
        (*info).si_addr as usize
    }
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let addr = fault_address(info);
    for slot in &TABLE {
        let end = slot.end.load(Ordering::Acquire);
        let start = slot.start.load(Ordering::Acquire);
        if end != 0 && (start..end).contains(&addr) {
            let page = crate::sys::page_size();
            let base = addr & !(page - 1);
            // SAFETY: replaces one page inside a live view of ours with a
            // private zero page; nothing else is at that address.
            let mapped = unsafe {
                libc::mmap(
                    base as *mut c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if mapped != libc::MAP_FAILED {
                slot.hits.fetch_add(1, Ordering::AcqRel);
                return;
            }
        }
    }
    // Not ours: behave as if we had never been here.
    // SAFETY: PREVIOUS was set before this handler was installed and is
    // never written again; restoring it and returning re-runs the faulting
    // access under the previous disposition, or calls its handler.
    unsafe {
        let previous = std::ptr::addr_of!(PREVIOUS).read();
        match previous {
            Some(prev)
                if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN =>
            {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                        std::mem::transmute(prev.sa_sigaction);
                    f(signal, info, context);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                    f(signal);
                }
            }
            Some(prev) => {
                libc::sigaction(libc::SIGBUS, &prev, std::ptr::null_mut());
            }
            None => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            }
        }
    }
}
