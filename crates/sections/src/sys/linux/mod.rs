//! Linux: memfd, tmpfs files and regular files; the lifetime protocol for
//! named sections; who uses a section, from /proc; named sync objects and
//! the channel's waker, on shared futex words; bells for waiters in event
//! loops (a write into a file, heard by inotify).
//!
//! The contract items (`sys/mod.rs`) are named here; the rest is Linux's own.

mod bell;
mod fork;
mod image;
mod lifetime;
mod listing;
mod object;
mod ofd;
mod peers;
mod procfs;
mod record;
pub(crate) mod sync;
mod waker;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, Mode, OFlags};

pub(crate) use super::unix::{
    advise, flush, from_file, granularity, lock, lock_limit_hint, open_path, page_size, prefetch,
    resident_pages, unlock, unmap, Guard,
};
pub use bell::Readiness;
pub(crate) use bell::{ready_for, wait_any, Watch};
pub(crate) use image::{
    header_reader, map_elf, map_pe, open_image_file, page_cache, present_pages,
};
pub(crate) use lifetime::{entry_type, reclaim_stale};
pub(crate) use listing::{list_entry, list_namespace, remove_abandoned_build};
pub(crate) use object::{anonymous, create_named, from_inherited, open_named, remove, Object};
pub(crate) use peers::{peer_held, peer_held_at, PeerLock};
pub(crate) use procfs::{resident_bytes, users_of};
pub(crate) use waker::{Waker, WakerShare};

/// Runs a system call again while it is interrupted by a signal.
pub(crate) fn retry_intr<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

/// Linux builds a section unnamed and links it in when it is ready.
pub(crate) const PUBLISHES_INITIALISED: bool = true;

/// This process's id (holds remember it; see `names`).
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// An anonymous memory section: a memfd of `size` bytes (its memory
/// reserved now with `reserve`), sealed so that it can grow but never
/// shrink (a peer cannot make our views fault).
///
/// The memfd is made with `MFD_NOEXEC_SEAL` (Linux 6.3): it can never be
/// run with `execve` nor made executable by `chmod`, which hardened systems
/// expect (kernels 6.3 to 6.5 log a warning for memfds made without
/// either flag). Mapping it with `PROT_EXEC` is not affected. Older kernels
/// refuse the flag with `EINVAL`; the memfd is then made without it.
///
/// # References
/// memfd_create(2), fcntl(2) `F_ADD_SEALS`
pub(crate) fn memfd(size: u64, reserve: bool) -> io::Result<OwnedFd> {
    let base = rfs::MemfdFlags::CLOEXEC | rfs::MemfdFlags::ALLOW_SEALING;
    let fd = match rfs::memfd_create("sections", base | rfs::MemfdFlags::NOEXEC_SEAL) {
        Err(rustix::io::Errno::INVAL) => rfs::memfd_create("sections", base)?,
        other => other?,
    };
    crate::sys::unix::resize(fd.as_fd(), 0, size, reserve)?;
    rfs::fcntl_add_seals(&fd, rfs::SealFlags::SHRINK | rfs::SealFlags::SEAL)?;
    Ok(fd)
}

/// Whether `fd` is a memfd. (Every tmpfs file answers `F_GET_SEALS`, so
/// seals do not tell; the name the kernel gives a memfd does.)
pub(crate) fn is_memfd(fd: BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).is_ok_and(|target| {
        target
            .as_os_str()
            .as_encoded_bytes()
            .starts_with(b"/memfd:")
    })
}

/// Whether anyone can make the file shorter: true unless it is sealed
/// against shrinking (this crate's anonymous sections are). A view of a
/// file that can shrink needs the SIGBUS guard.
pub(crate) fn can_shrink(fd: BorrowedFd<'_>) -> bool {
    !rfs::fcntl_get_seals(fd).is_ok_and(|seals| seals.contains(rfs::SealFlags::SHRINK))
}

/// A new descriptor for the same file with its own open file description,
/// read-only: what is handed to a process that may only read.
pub(crate) fn reopen_read_only(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Identifies this process to people reading a peer slot: its pid, as
/// its own PID namespace numbers it, and the low 32 bits of that
/// namespace's inode number (0: unknown), so that a reader can tell a pid
/// from another namespace. Liveness is never decided by it on Linux (see
/// `peers.rs`). Computed once per process (a forked child, whose pid and
/// PID namespace may differ, computes its own: `fork.rs`).
#[inline]
pub(crate) fn process_token() -> u64 {
    fork::token(|| u64::from(pid()) << 32 | u64::from(pid_namespace()))
}

/// The process a token names, for people (see `process_token`).
pub(crate) fn process_of(token: u64) -> Option<crate::types::PeerProcess> {
    let pid = (token >> 32) as u32;
    (pid != 0).then(|| crate::types::PeerProcess {
        pid,
        pid_namespace: namespace_of(token as u32),
    })
}

/// Where a PID namespace recorded as `recorded` (low 32 bits of its inode;
/// 0: unknown) is, seen from this process.
pub(crate) fn namespace_of(recorded: u32) -> crate::types::PidNamespace {
    let own = process_token() as u32;
    match (recorded, own) {
        (0, _) | (_, 0) => crate::types::PidNamespace::Unknown,
        (r, o) if r == o => crate::types::PidNamespace::Ours,
        _ => crate::types::PidNamespace::Another,
    }
}

/// This process's PID namespace (low 32 bits of its inode number; 0 when
/// `/proc` does not tell).
fn pid_namespace() -> u32 {
    rfs::stat("/proc/self/ns/pid").map_or(0, |st| st.st_ino as u32)
}
