//! Keeps a peer that truncates a section's file from crashing us.
//!
//! Touching a page of a mapping beyond the end of its file raises SIGBUS,
//! and so does touching a page of a sparse file that its file system has no
//! room for. Views whose file another process can shrink (file-backed
//! sections, named tmpfs sections; sealed memfds cannot shrink) register
//! their address range here. A SIGBUS handler that finds the faulting
//! address in a registered view maps a zero-filled private page over the
//! faulting page, lowers the view's *first bad address* to that page and
//! returns, so the access completes (it reads zeros; a write goes nowhere).
//! A fault outside every registered view goes to the previous handler (by
//! default the process dies, as it would have).
//!
//! The safe accessors compare the end of every copy with the view's first
//! bad address after the copy: a copy that reaches a patched page reports
//! an error, whether the page was patched during this copy or long before.
//! A patched page is never again part of the section for this view, so it
//! can never again take a write that reports success.
//!
//! # Slots
//!
//! The table is a list of chunks of slots, allocated as views need them
//! and never freed (a chunk is a few tens of KiB), so the handler reads it
//! without locks or allocation. At most [`CAPACITY`] views are guarded at
//! once, more than `vm.max_map_count` allows by default; registering one
//! more fails, and the view is refused rather than left unguarded.
//!
//! Each slot has a state word, `generation << 2 | phase`:
//!
//! ```text
//!  phase     event                                   next
//!  FREE      register: CAS (g, FREE) → (g+1, CLAIMING) CLAIMING (owned by the registrar)
//!  CLAIMING  registrar stores start, end, first bad    ACTIVE   (Release: the range first)
//!  ACTIVE    release (the view drops, before unmap)  FREE     (same generation)
//!  ACTIVE    handler: fault inside start..end         ACTIVE   (first bad lowered)
//! ```
//!
//! The handler reads the state, the range, then the state again (a seqlock
//! read): a slot that was released and claimed again in between shows a
//! new generation and is skipped, so a half-rewritten range is never taken
//! for the faulting view's. The faulting view's own slot cannot change
//! while the view is being accessed (it is released only when the view is
//! dropped), so the handler always finds it.

use std::ffi::c_void;
use std::io;
use std::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

/// Slots per chunk.
const CHUNK: usize = 1024;
/// Chunks at most.
const CHUNKS: usize = 256;
/// The most views guarded at once.
pub(crate) const CAPACITY: usize = CHUNK * CHUNKS;

const FREE: usize = 0;
const CLAIMING: usize = 1;
const ACTIVE: usize = 2;
const PHASE: usize = 0b11;

struct Slot {
    /// `generation << 2 | phase`, see the module docs.
    state: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    /// The lowest address the handler patched in this view (`usize::MAX`:
    /// none).
    first_bad: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    state: AtomicUsize::new(FREE),
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    first_bad: AtomicUsize::new(usize::MAX),
};

type Chunk = [Slot; CHUNK];

static FIRST: Chunk = [EMPTY; CHUNK];
#[allow(clippy::declare_interior_mutable_const)]
const NO_CHUNK: AtomicPtr<Chunk> = AtomicPtr::new(std::ptr::null_mut());
/// Chunks after the first, allocated on demand and never freed.
static MORE: [AtomicPtr<Chunk>; CHUNKS - 1] = [NO_CHUNK; CHUNKS - 1];
/// Where the next registration starts looking for a free slot.
static HINT: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours, as a raw `sigaction` copy.
static mut PREVIOUS: Option<libc::sigaction> = None;

/// Chunk `i`, if it exists (the handler never allocates).
fn chunk(i: usize) -> Option<&'static Chunk> {
    if i == 0 {
        return Some(&FIRST);
    }
    let ptr = MORE[i - 1].load(Ordering::Acquire);
    // SAFETY: a non-null pointer here came from `Box::leak` in
    // `chunk_or_new` and is never freed.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Chunk `i`, allocating it if needed (never called by the handler).
fn chunk_or_new(i: usize) -> &'static Chunk {
    if let Some(c) = chunk(i) {
        return c;
    }
    let fresh: &'static mut Chunk = Box::leak(Box::new([EMPTY; CHUNK]));
    let fresh_ptr: *mut Chunk = fresh;
    match MORE[i - 1].compare_exchange(
        std::ptr::null_mut(),
        fresh_ptr,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => chunk(i).expect("just installed"),
        Err(theirs) => {
            // Another thread installed one first: ours was never shared.
            // SAFETY: `fresh_ptr` came from `Box::leak` above and nobody
            // else has seen it.
            drop(unsafe { Box::from_raw(fresh_ptr) });
            // SAFETY: as in `chunk`.
            unsafe { &*theirs }
        }
    }
}

fn slot(index: usize) -> Option<&'static Slot> {
    chunk(index / CHUNK).map(|c| &c[index % CHUNK])
}

/// A view's registration; unregisters when dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    /// `(slot index, state while active)`; `None` for views that need no
    /// guard (sealed anonymous memory).
    slot: Option<(usize, usize)>,
}

impl Guard {
    /// A view that cannot be truncated under us: nothing to register.
    pub(crate) fn none() -> Guard {
        Guard { slot: None }
    }

    /// Guards `start..start+len`. Fails only when [`CAPACITY`] views are
    /// guarded already.
    pub(crate) fn register(start: *mut u8, len: usize) -> io::Result<Guard> {
        INSTALL.call_once(install);
        let start = start as usize;
        debug_assert!(start != 0 && len != 0);
        let hint = HINT.load(Ordering::Relaxed) % CAPACITY;
        for k in 0..CAPACITY {
            let index = (hint + k) % CAPACITY;
            let slot = &chunk_or_new(index / CHUNK)[index % CHUNK];
            let state = slot.state.load(Ordering::Relaxed);
            if state & PHASE != FREE {
                continue;
            }
            let claimed = (state & !PHASE) + 4 + CLAIMING;
            // Acquire: the previous owner's writes are done before ours.
            if slot
                .state
                .compare_exchange(state, claimed, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            slot.start.store(start, Ordering::Relaxed);
            slot.end.store(start + len, Ordering::Relaxed);
            slot.first_bad.store(usize::MAX, Ordering::Relaxed);
            let active = claimed - CLAIMING + ACTIVE;
            // Release: the range is complete before the handler can match it.
            slot.state.store(active, Ordering::Release);
            HINT.store(index + 1, Ordering::Relaxed);
            return Ok(Guard {
                slot: Some((index, active)),
            });
        }
        Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "{CAPACITY} views of files and named sections are open in this process, \
                 the most that can be guarded against truncation; drop some views"
            ),
        ))
    }

    /// The lowest address of the view that faulted past the end of its
    /// file (or found no room in its file system) and now reads zeros;
    /// `usize::MAX` when none did. A copy that reaches it read or wrote
    /// nothing real.
    #[inline]
    pub(crate) fn first_bad(&self) -> usize {
        match self.slot {
            // Acquire: pairs with the handler's update in any thread.
            Some((i, _)) => slot(i).map_or(usize::MAX, |s| s.first_bad.load(Ordering::Acquire)),
            None => usize::MAX,
        }
    }

    /// Stops guarding (before the range is unmapped, so that a later
    /// mapping at the same address is never claimed).
    pub(crate) fn release(&mut self) {
        if let Some((i, active)) = self.slot.take() {
            if let Some(s) = slot(i) {
                // Release: our reads of `first_bad` are done; the next
                // registrar's Acquire CAS orders its writes after them.
                s.state.store(active - ACTIVE + FREE, Ordering::Release);
                HINT.store(i, Ordering::Relaxed);
            }
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

/// The active slot whose range holds `addr`, read as a seqlock (see the
/// module docs).
fn find(addr: usize) -> Option<&'static Slot> {
    for c in 0..CHUNKS {
        let Some(chunk) = chunk(c) else { break };
        for s in chunk {
            let before = s.state.load(Ordering::Acquire);
            if before & PHASE != ACTIVE {
                continue;
            }
            let start = s.start.load(Ordering::Relaxed);
            let end = s.end.load(Ordering::Relaxed);
            // Acquire fence: the range loads above happen before the
            // state is read again.
            fence(Ordering::Acquire);
            if s.state.load(Ordering::Relaxed) == before && (start..end).contains(&addr) {
                return Some(s);
            }
        }
    }
    None
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let addr = fault_address(info);
    if let Some(slot) = find(addr) {
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
            // Lock-free and allocation-free: safe in a signal handler.
            slot.first_bad.fetch_min(base, Ordering::AcqRel);
            return;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Views that need no guard never take a slot, so they can never free
    /// someone else's (the bug an anonymous view used to cause).
    #[test]
    fn unguarded_views_take_no_slot() {
        let mut buf = [0u8; 64];
        let mut a = Guard::register(buf.as_mut_ptr(), 32).unwrap();
        let mut none = Guard::none();
        none.release();
        drop(none);
        assert!(find(buf.as_ptr() as usize + 4).is_some());
        assert_eq!(a.first_bad(), usize::MAX);
        a.release();
        assert!(find(buf.as_ptr() as usize + 4).is_none());
        // The slot is reusable, with a new generation.
        let b = Guard::register(buf.as_mut_ptr().wrapping_add(32), 32).unwrap();
        assert!(find(buf.as_ptr() as usize + 40).is_some());
        assert!(find(buf.as_ptr() as usize + 4).is_none());
        drop(b);
    }

    /// More views than one chunk holds are all guarded.
    #[test]
    fn grows_past_one_chunk() {
        let mut bufs = vec![0u8; 3 * CHUNK];
        let guards: Vec<Guard> = (0..3 * CHUNK)
            .map(|i| Guard::register(bufs[i..].as_mut_ptr(), 1).unwrap())
            .collect();
        for i in [0, CHUNK, 3 * CHUNK - 1] {
            let s = find(bufs.as_ptr() as usize + i).expect("guarded");
            assert_eq!(s.start.load(Ordering::Relaxed), bufs.as_ptr() as usize + i);
        }
        drop(guards);
        assert!(find(bufs.as_ptr() as usize + CHUNK).is_none());
    }
}
