//! What a `fork` does to this process's peer state, and how the library
//! keeps it right in the child.
//!
//! A child made by `fork` gets a copy of every descriptor, so it would keep
//! its parent's peer locks (`peers.rs`) alive after the parent dies, and a
//! copy of every memory word, so it would name itself with its parent's
//! process token. Fork handlers (`pthread_atfork`) fix both:
//!
//! ```text
//!  step                 what runs                  why
//!  before the fork      `prepare`: closes the      the descriptor table is
//!                       gate (waits for claims     copied before memory: a
//!                       and releases in flight)    lock descriptor made or
//!                                                  closed in between would
//!                                                  be missed by the table
//!  parent, after        `parent`: opens the gate
//!  child, after         `in_child`: every peer-    the child holds no
//!                       lock descriptor becomes    parent's lock; the
//!                       the placeholder (`dup3`,   numbers stay taken and
//!                       close-on-exec kept); the   close-on-exec
//!                       fork count goes up; the
//!                       token is forgotten; the
//!                       gate opens
//! ```
//!
//! A claim holds the gate open (as a reader) from opening its lock
//! descriptor until the descriptor is in the table, and a release from
//! taking it out of the table until it is closed, so no fork falls between.
//! Processes made with a raw `clone` or `vfork` skip fork handlers and are
//! not covered.

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

use rustix::fs::{self as rfs, MemfdFlags};

/// Peer-lock descriptors the fork handler replaces in a child (-1: free).
pub(crate) const TABLE_SIZE: usize = 4096;
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI32 = AtomicI32::new(-1);
static TABLE: [AtomicI32; TABLE_SIZE] = [NO_FD; TABLE_SIZE];
/// What a child's copies become: an empty memfd of this process (made
/// before the first claim, so that the handler never has to open anything).
static PLACEHOLDER: AtomicI32 = AtomicI32::new(-1);
/// How many forks this process descends from since the handlers were
/// installed (counted in each child).
static FORKS: AtomicU32 = AtomicU32::new(0);
/// This process's token, once computed (0: not yet, or forgotten in a
/// child, whose pid and PID namespace may differ).
static TOKEN: AtomicU64 = AtomicU64::new(0);
/// The gate: the count of claims and releases in flight, and `CLOSED`
/// while a fork is being made.
static GATE: AtomicU32 = AtomicU32::new(0);
const CLOSED: u32 = 1 << 31;
static INSTALL: Once = Once::new();

fn install_handlers() {
    INSTALL.call_once(|| {
        // SAFETY: registers handlers that only touch atomics and call
        // `dup3` and `sched_yield`, which are async-signal-safe, as fork
        // handlers in a multi-threaded process must be.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(in_child)) };
    });
}

/// Makes ready for claims: the fork handlers and the placeholder. An error
/// (no descriptor left for the placeholder) fails the claim: a claim the
/// child could not be kept from holding is not made.
pub(crate) fn ready_for_claims() -> io::Result<()> {
    install_handlers();
    if PLACEHOLDER.load(Ordering::Acquire) >= 0 {
        return Ok(());
    }
    let fd = rfs::memfd_create(
        "sections-fork-placeholder",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot make the descriptor a forked child's peer locks become ({e})"),
        )
    })?
    .into_raw_fd();
    if PLACEHOLDER
        .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread made one first.
        // SAFETY: `fd` is ours and nothing else refers to it.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Holds the gate open: no fork is made while this lives.
pub(crate) struct Gate(());

impl Gate {
    pub(crate) fn enter() -> Gate {
        loop {
            let now = GATE.load(Ordering::Acquire);
            if now & CLOSED == 0
                && GATE
                    .compare_exchange_weak(now, now + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Gate(());
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        GATE.fetch_sub(1, Ordering::Release);
    }
}

extern "C" fn prepare() {
    // Close the gate to new claims (one fork at a time), then wait for
    // those in flight.
    while GATE
        .fetch_update(Ordering::Acquire, Ordering::Relaxed, |g| {
            (g & CLOSED == 0).then_some(g | CLOSED)
        })
        .is_err()
    {
        // SAFETY: plain call.
        unsafe { libc::sched_yield() };
    }
    while GATE.load(Ordering::Acquire) != CLOSED {
        // SAFETY: plain call.
        unsafe { libc::sched_yield() };
    }
}

extern "C" fn parent() {
    GATE.fetch_and(!CLOSED, Ordering::Release);
}

extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    TOKEN.store(0, Ordering::Relaxed);
    let placeholder = PLACEHOLDER.load(Ordering::Acquire);
    if placeholder >= 0 {
        for entry in &TABLE {
            let fd = entry.load(Ordering::Acquire);
            if fd >= 0 {
                // SAFETY: both are descriptors of this (child) process;
                // `dup3` keeps the number taken and close-on-exec set.
                unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
            }
        }
    }
    // Only this thread exists in the child: nothing is in flight.
    GATE.store(0, Ordering::Release);
}

/// Records a peer-lock descriptor for the fork handler (call with the gate
/// held, after `ready_for_claims`); its entry.
pub(crate) fn register(fd: RawFd) -> io::Result<usize> {
    for (i, entry) in TABLE.iter().enumerate() {
        if entry
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(i);
        }
    }
    Err(io::Error::other(format!(
        "{TABLE_SIZE} channel endpoints are open in this process, the most it can have at once"
    )))
}

/// Forgets a descriptor (call with the gate held, before closing it).
pub(crate) fn unregister(entry: usize) {
    TABLE[entry].store(-1, Ordering::Release);
}

/// How many forks this process descends from: a claim made at another
/// count is a parent's. One relaxed load.
#[inline]
pub(crate) fn forks() -> u32 {
    FORKS.load(Ordering::Relaxed)
}

/// This process's token, computed by `compute` once per process (a forked
/// child computes its own).
#[inline]
pub(crate) fn token(compute: impl FnOnce() -> u64) -> u64 {
    match TOKEN.load(Ordering::Relaxed) {
        0 => {
            install_handlers();
            let token = compute();
            TOKEN.store(token, Ordering::Relaxed);
            token
        }
        token => token,
    }
}
