//! Keeps a peer that truncates a section's file from crashing us.
//!
//! Touching a page of a mapping beyond the end of its file raises SIGBUS,
//! and so does touching a page of a sparse file that its file system has no
//! room for. Views whose file another process can shrink (file-backed
//! sections, named tmpfs sections; sealed memfds cannot shrink) register
//! their address range here. A SIGBUS handler that finds the faulting
//! address in a registered view lowers the view's *first bad address* to
//! the faulting page, maps zero-filled private pages from there to the end
//! of the view and returns, so the access completes (it reads zeros; a
//! write goes nowhere). Zero-filling the rest of the view splits its
//! mapping once, however many pages fault later, so a process with many
//! views stays below `vm.max_map_count`; if the kernel refuses even that,
//! the whole view is zero-filled (which splits nothing) and all of it is
//! bad. A fault outside every registered view, and a SIGBUS sent with
//! `kill`, go to the previous handler (by default the process dies, as it
//! would have: a sent signal is sent again once the default is restored).
//!
//! The safe accessors compare the end of every copy with the view's first
//! bad address after the copy (behind a fence, see `View`): a copy that
//! reaches a patched page reports an error, whether the page was patched
//! during this copy, by another thread, or long before. The handler lowers
//! the first bad address before it maps the zero pages, so a store that
//! lands on them always finds it lowered. A patched page is never again
//! part of the section for this view, so it can never again take a write
//! that reports success.
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
            // Release fence: a handler that reads any of the range below
            // also reads the claimed state when it looks again (the
            // writer's half of the seqlock).
            fence(Ordering::Release);
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

/// Maps private zero pages over `from..to`, replacing whatever mapping is
/// there. Allocation-free and async-signal-safe.
fn zero_fill(from: usize, to: usize) -> bool {
    // SAFETY: the range lies inside a live view of ours (the caller found
    // it in the table); MAP_FIXED replaces only that range.
    let mapped = unsafe {
        libc::mmap(
            from as *mut c_void,
            to - from,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    mapped != libc::MAP_FAILED
}

/// Unmaps `from..to` (whole mappings of a view, so nothing splits) and
/// maps private zero pages at exactly that range again. `false` if the
/// range could not be unmapped (nothing changed). If it was unmapped and
/// the zero pages cannot take its place (another thread mapped something
/// into the hole), the view's range now belongs to someone else, and its
/// safe accessors would read and write that: nothing can be returned to,
/// so the process aborts.
fn refill(from: usize, to: usize) -> bool {
    const MAP_FIXED_NOREPLACE: libc::c_int = 0x10_0000;
    const LOST: &[u8] = b"sections: a truncated view's pages could not be replaced \
        (another mapping took their place); aborting\n";
    // SAFETY: the range is a live view of ours; its accesses after this
    // return read the zero pages mapped below. write and abort are
    // async-signal-safe.
    unsafe {
        if libc::munmap(from as *mut c_void, to - from) != 0 {
            return false;
        }
        let mapped = libc::mmap(
            from as *mut c_void,
            to - from,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
            -1,
            0,
        );
        if mapped as usize == from {
            return true;
        }
        if mapped != libc::MAP_FAILED {
            // A kernel that ignores the flag put it elsewhere.
            libc::munmap(mapped, to - from);
        }
        libc::write(libc::STDERR_FILENO, LOST.as_ptr().cast(), LOST.len());
        libc::abort()
    }
}

/// Whether SIGBUS has its default disposition now.
fn disposition_is_default() -> bool {
    // SAFETY: querying the disposition into a zeroed, valid sigaction.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_DFL
    }
}

/// Whether the signal was raised by a memory access (rather than sent by
/// a process with `kill`, whose `si_code` is zero or negative).
fn from_a_fault(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: the kernel passes a valid siginfo.
    unsafe { (*info).si_code > 0 }
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let fault = from_a_fault(info);
    if fault {
        let addr = fault_address(info);
        if let Some(slot) = find(addr) {
            let page = crate::sys::page_size();
            let base = addr & !(page - 1);
            let (start, end) = (
                slot.start.load(Ordering::Relaxed),
                slot.end.load(Ordering::Relaxed),
            );
            // The view is no longer the section from this page on: say so
            // before any thread can store into the zero pages (a store
            // that lands there must find `first_bad` already lowered).
            slot.first_bad.fetch_min(base, Ordering::SeqCst);
            // Zero pages from here to the end of the view: one mapping
            // split per view at most, however many pages fault. If even
            // that is refused (the process is at `vm.max_map_count`), the
            // whole view becomes zero pages, which splits nothing, and
            // all of it reports the loss.
            if zero_fill(base, end) {
                return;
            }
            // Refused: the process is at `vm.max_map_count`, and even a
            // mapping that replaces the whole view needs one more for a
            // moment. Give the view back, then take the same range as zero
            // pages: the same count of mappings. (`MAP_FIXED_NOREPLACE`:
            // if another thread mapped into the hole in between, it is not
            // clobbered, and the process aborts: the view's addresses are
            // that mapping's now. If the view cannot even be unmapped, this
            // fault keeps its default effect.)
            slot.first_bad.fetch_min(start, Ordering::SeqCst);
            if refill(start, end) {
                return;
            }
        }
    }
    // Not ours: behave as if we had never been here.
    // SAFETY: PREVIOUS was set before this handler was installed and is
    // never written again.
    let previous = unsafe { std::ptr::addr_of!(PREVIOUS).read() };
    let disposition = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if disposition != libc::SIG_DFL && disposition != libc::SIG_IGN {
        let prev = previous.expect("a handler was recorded");
        // SAFETY: calling the handler that was installed before ours, with
        // the signature its flags declare.
        unsafe {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    std::mem::transmute(prev.sa_sigaction);
                f(signal, info, context);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                f(signal);
            }
        }
        // A handler that gave up on a sent signal by restoring the default
        // (as Rust's stack-overflow handler does, expecting a fault to come
        // again) would swallow it: send it again, to take that default.
        if !fault && disposition_is_default() {
            // SAFETY: raising a signal is async-signal-safe.
            unsafe { libc::raise(libc::SIGBUS) };
        }
        return;
    }
    if disposition == libc::SIG_IGN && !fault {
        // A sent SIGBUS the process ignored before us: still ignored.
        return;
    }
    // The default effect: restore it, then let the signal take it. A fault
    // re-runs its access on return and faults again; a sent signal is sent
    // again, and arrives once this handler returns. (A fault with SIGBUS
    // ignored kills the process too: the kernel forces that.)
    // SAFETY: a zeroed sigaction with SIG_DFL is the default disposition.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
        if !fault {
            libc::raise(libc::SIGBUS);
        }
    }
}

/// Whether `addr` lies in a guarded view (for tests of who registers).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn guarded(addr: *const u8) -> bool {
    find(addr as usize).is_some()
}

/// Tests that fill or scan the table run one at a time.
#[cfg(test)]
pub(crate) static TABLE_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    /// More views than one chunk holds are all guarded, and released
    /// slots are found no more.
    #[test]
    fn grows_past_one_chunk() {
        let _one = TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Past `CAPACITY` live registrations, one more is an error (the view
    /// is refused), never a view left unguarded; a freed slot serves the
    /// next one.
    #[test]
    fn one_past_capacity_is_refused() {
        let _one = TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // Fake ranges: only the table is exercised, nothing is mapped.
        let base = 0x1000_0000_0000usize;
        let mut guards = Vec::new();
        let refused = loop {
            match Guard::register((base + guards.len() * 16) as *mut u8, 16) {
                Ok(g) => guards.push(g),
                Err(e) => break e,
            }
            assert!(guards.len() <= CAPACITY, "registered past the capacity");
        };
        assert_eq!(refused.kind(), io::ErrorKind::OutOfMemory);
        assert!(refused.to_string().contains("guarded"), "{refused}");
        // Other tests' views may hold a few slots; all the rest are ours.
        assert!(guards.len() > CAPACITY - 64, "{}", guards.len());
        let freed = guards.pop().unwrap();
        drop(freed);
        guards.push(Guard::register(base as *mut u8, 16).unwrap());
        drop(guards);
        assert!(find(base + 8).is_none());
    }
}
