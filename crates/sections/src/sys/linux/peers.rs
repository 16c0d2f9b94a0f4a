//! Peer slots on Linux: who holds a numbered slot of a section (a channel's
//! receiver, each of its senders) is decided by the kernel, with an
//! exclusive open-file-description lock on the slot's own byte, taken
//! through a description of the file that belongs to that one endpoint.
//!
//! Why a lock and not a process id: the kernel drops the lock when the
//! holder dies (`kill -9` included) and every process that can open the
//! file sees the same lock, whatever PID namespace it runs in; a pid read
//! from `/proc` names another process, or none, in another namespace, and
//! `/proc` may be hidden (`hidepid`) or out of descriptors. Taking the lock
//! is the one atomic decision of a claim: two claimers can never both hold
//! a slot, and a claimer that dies at any step leaves the slot free.
//!
//! The description is the endpoint's own: `/proc/self/fd/N` is opened
//! again, because a descriptor inherited from a parent (an anonymous
//! channel's memfd) shares the parent's description, and a lock taken
//! through it would be the parent's.
//!
//! # Fork
//!
//! A child made by `fork` gets a copy of every descriptor, and so would keep
//! the parent's slots alive after the parent dies. A fork handler replaces
//! the child's copies of peer-lock descriptors with `/dev/null` at once, so
//! the slots stay the parent's alone. The child's copies of the endpoints
//! refuse to send or receive (`Disconnected`) and write nothing shared
//! when dropped; a child opens endpoints of its own. (A process made with
//! a raw `clone` or `vfork`, which skip fork handlers, is not covered.)

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

use rustix::fs::{self as rfs, Mode, OFlags};

use super::ofd::ofd_lock;
use super::Object;

/// Where slot `i`'s byte is: far past the end of any section (a lock may
/// cover bytes a file does not have), clear of byte 0, which the lifetime
/// protocol's holds use.
const LOCK_BASE: u64 = 1 << 40;

/// This endpoint's claim on a slot: the slot is its own while this lives.
#[derive(Debug)]
pub(crate) struct PeerLock {
    /// The endpoint's own description of the file, holding the lock; the
    /// lock goes when this closes.
    _fd: OwnedFd,
    /// How many forks this process had seen when it claimed (a forked
    /// child has seen one more: its copy is not a claim).
    forks: u32,
    /// Where the descriptor is in the fork handler's table.
    entry: usize,
}

impl PeerLock {
    /// Claims slot `index` of `object` for a new endpoint and stores this
    /// process's token in the slot's `owner` word (for people: the lock,
    /// not the word, decides); `Ok(None)` when a live endpoint (of any
    /// process, in any PID namespace) holds it.
    pub(crate) fn claim(
        object: &Object,
        index: u32,
        owner: &AtomicU64,
    ) -> io::Result<Option<PeerLock>> {
        let fd = reopen(object.fd())?;
        match ofd_lock(
            fd.as_fd(),
            libc::F_OFD_SETLK,
            libc::F_WRLCK as libc::c_short,
            LOCK_BASE + u64::from(index),
        ) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
        let entry = forget_in_forks(fd.as_raw_fd())?;
        // Release: what the claimer does next is after this store for
        // whoever reads the owner.
        owner.store(super::process_token(), Ordering::Release);
        Ok(Some(PeerLock {
            _fd: fd,
            forks: FORKS.load(Ordering::Relaxed),
            entry,
        }))
    }

    /// Whether this process made the claim (false in a forked child, whose
    /// copy must neither be used nor release the parent's slot). One load
    /// of a word that changes only in a fork: cheap enough for every send.
    #[inline]
    pub(crate) fn claimed_here(&self) -> bool {
        FORKS.load(Ordering::Relaxed) == self.forks
    }
}

impl Drop for PeerLock {
    fn drop(&mut self) {
        FORK_TABLE[self.entry].store(-1, Ordering::Release);
        // Closing the descriptor drops the lock.
    }
}

/// Whether a live endpoint holds slot `index` of `object` (this process's
/// own endpoints count; they hold it through descriptions of their own).
/// The owner word does not decide here: the lock does.
pub(crate) fn peer_held(object: &Object, index: u32, _owner: u64) -> bool {
    held(object.fd(), index)
}

fn held(fd: BorrowedFd<'_>, index: u32) -> bool {
    match ofd_lock(
        fd,
        libc::F_OFD_GETLK,
        libc::F_WRLCK as libc::c_short,
        LOCK_BASE + u64::from(index),
    ) {
        Ok(found) => found.l_type != libc::F_UNLCK as libc::c_short,
        // Cannot tell: never call a peer dead on that.
        Err(_) => true,
    }
}

/// Whether a live endpoint holds slot `index` of the namespace entry at
/// `path` (for listings; `None` if the entry cannot be opened).
pub(crate) fn peer_held_at(path: &std::path::Path, index: u32) -> Option<bool> {
    let fd = rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    Some(held(fd.as_fd(), index))
}

/// A description of `fd`'s file of this endpoint's own.
fn reopen(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rfs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
        // No such entry: no /proc here, which no retry will mend (and which
        // must not read as "no such channel").
        let kind = match e {
            rustix::io::Errno::NOENT => io::ErrorKind::Unsupported,
            e => io::Error::from(e).kind(),
        };
        io::Error::new(
            kind,
            format!("cannot open {path} again for a peer lock ({e}); is /proc mounted?"),
        )
    })
}

/// Peer-lock descriptors the fork handler replaces in a child (-1: free).
const FORK_SLOTS: usize = 4096;
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI32 = AtomicI32::new(-1);
static FORK_TABLE: [AtomicI32; FORK_SLOTS] = [NO_FD; FORK_SLOTS];
/// `/dev/null`, opened once: what a child's copies become.
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);
/// Counts the forks this process descends from since its first claim (the
/// fork handler counts them in the child).
static FORKS: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

/// In a forked child: every peer-lock descriptor becomes `/dev/null`, so
/// the child holds no reference to the parent's lock descriptions (the
/// numbers stay taken, so nothing else reuses them). `dup2` is
/// async-signal-safe, as a fork handler must be.
extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    let null = DEV_NULL.load(Ordering::Acquire);
    for entry in &FORK_TABLE {
        let fd = entry.load(Ordering::Acquire);
        if fd >= 0 && null >= 0 {
            // SAFETY: both are descriptors of this (child) process.
            unsafe { libc::dup2(null, fd) };
        }
    }
}

/// Records `fd` for the fork handler; returns its entry.
fn forget_in_forks(fd: RawFd) -> io::Result<usize> {
    INSTALL.call_once(|| {
        if let Ok(null) = rfs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) {
            DEV_NULL.store(std::os::fd::IntoRawFd::into_raw_fd(null), Ordering::Release);
        }
        // SAFETY: registers a handler that only calls async-signal-safe
        // functions, for the child side of every fork.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
    for (i, entry) in FORK_TABLE.iter().enumerate() {
        if entry
            .compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(i);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::OutOfMemory,
        format!("{FORK_SLOTS} channel endpoints are open in this process, the most it can have"),
    ))
}
