//! Linux: memfd, tmpfs files and regular files; the lifetime protocol for
//! named sections; who uses a section, from /proc.

mod names;
mod object;
mod procfs;
pub(crate) mod sync;

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, Mode, OFlags};

pub(crate) use names::{list_namespace, reclaim_stale, remove_abandoned_build};
pub(crate) use object::{anonymous, create_named, from_inherited, open_named, remove, Object};
pub(crate) use procfs::{file_key, resident_bytes, users_of, FileKey};

/// This process's id (holds remember it; see `names`).
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// An anonymous memory section: a memfd of `size` bytes, sealed so that it
/// can grow but never shrink (a peer cannot make our views fault).
///
/// # References
/// memfd_create(2), fcntl(2) `F_ADD_SEALS`
pub(crate) fn memfd(size: u64) -> io::Result<OwnedFd> {
    let fd = rfs::memfd_create(
        "sections",
        rfs::MemfdFlags::CLOEXEC | rfs::MemfdFlags::ALLOW_SEALING,
    )?;
    rfs::ftruncate(&fd, size)?;
    rfs::fcntl_add_seals(&fd, rfs::SealFlags::SHRINK | rfs::SealFlags::SEAL)?;
    Ok(fd)
}

/// Whether `fd` is a memfd (the only files that accept seals).
pub(crate) fn is_memfd(fd: BorrowedFd<'_>) -> bool {
    rfs::fcntl_get_seals(fd).is_ok()
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
