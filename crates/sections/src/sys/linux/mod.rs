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

/// Identifies this process for liveness checks by other processes: its
/// pid and its start time (so that a reused pid is not mistaken for it).
pub(crate) fn process_token() -> u64 {
    token_of(std::process::id()).unwrap_or(u64::from(std::process::id()) << 32)
}

/// Whether the process `token` names still runs.
pub(crate) fn process_alive(token: u64) -> bool {
    token_of((token >> 32) as u32) == Some(token)
}

/// `pid << 32 | starttime` (field 22 of /proc/PID/stat, low 32 bits).
fn token_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything.
    let after = &stat[stat.rfind(')')? + 1..];
    let start: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    Some(u64::from(pid) << 32 | (start & 0xffff_ffff))
}
