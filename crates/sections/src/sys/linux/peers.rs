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
//! again (or, where `/proc/self` does not resolve, as when `/proc` is
//! another PID namespace's, the entry's path, checked to be the same file),
//! because a descriptor inherited from a parent (an anonymous channel's
//! memfd) shares the parent's description, and a lock taken through it
//! would be the parent's.
//!
//! # Fork
//!
//! A forked child holds none of its parent's slots (`fork.rs`): its copies
//! of the lock descriptors are replaced at once, its copies of the
//! endpoints refuse to send or receive (`Disconnected`) and write nothing
//! shared when dropped; a child opens endpoints of its own.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self as rfs, Mode, OFlags};

use super::fork;
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
    /// lock goes when this closes (`None` once released).
    fd: Option<OwnedFd>,
    /// The fork count when it was claimed (a forked child's copy is not a
    /// claim).
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
        fork::ready_for_claims()?;
        // No fork between making the descriptor and recording it.
        let gate = fork::Gate::enter();
        let fd = reopen(object)?;
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
        let entry = fork::register(fd.as_raw_fd())?;
        let forks = fork::forks();
        drop(gate);
        // Release: what the claimer does next is after this store for
        // whoever reads the owner.
        owner.store(super::process_token(), Ordering::Release);
        Ok(Some(PeerLock {
            fd: Some(fd),
            forks,
            entry,
        }))
    }

    /// Whether this process made the claim (false in a forked child, whose
    /// copy must neither be used nor release the parent's slot). One load
    /// of a word that changes only in a fork: cheap enough for every send.
    #[inline]
    pub(crate) fn claimed_here(&self) -> bool {
        fork::forks() == self.forks
    }

    /// Lets go of the slot now (the next claimer may take it at once).
    pub(crate) fn release(&mut self) {
        if let Some(fd) = self.fd.take() {
            // No fork between forgetting the descriptor and closing it.
            let _gate = fork::Gate::enter();
            fork::unregister(self.entry);
            drop(fd);
        }
    }
}

impl Drop for PeerLock {
    fn drop(&mut self) {
        self.release();
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

/// A description of `object`'s file of this endpoint's own: through
/// `/proc/self/fd`, or by the entry's path when `/proc/self` does not
/// resolve (checked to be the same file).
fn reopen(object: &Object) -> io::Result<OwnedFd> {
    let fd = object.fd();
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let by_proc = rfs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty());
    let err = match by_proc {
        Ok(own) => return Ok(own),
        Err(e) => e,
    };
    if let Some(entry) = object.entry_path() {
        let own = rfs::open(
            entry,
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let (a, b) = (rfs::fstat(fd)?, rfs::fstat(&own)?);
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) {
            return Ok(own);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the channel's name now refers to another file, and /proc/self does not resolve here",
        ));
    }
    // No such entry: no /proc here, which no retry will mend (and which
    // must not read as "no such channel").
    let kind = match err {
        rustix::io::Errno::NOENT => io::ErrorKind::Unsupported,
        e => io::Error::from(e).kind(),
    };
    Err(io::Error::new(
        kind,
        format!("cannot open {path} again for a peer lock ({err}); is /proc mounted?"),
    ))
}
