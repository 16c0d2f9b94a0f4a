//! Open-file-description locks on one byte of a file: taken through one
//! description, they conflict with every other description (another
//! process's, or another of this process's), and the kernel drops them
//! when the description's last descriptor closes, a killed process's
//! included. Every PID namespace sees them alike. The lifetime protocol
//! holds byte 0; peer slots hold bytes far past any file's end.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `fcntl(cmd)` with a one-byte `struct flock` of `kind` at `byte`,
/// retried when interrupted.
///
/// # References
/// fcntl(2), "Open file description locks"
pub(crate) fn ofd_lock(
    fd: BorrowedFd<'_>,
    cmd: libc::c_int,
    kind: libc::c_short,
    byte: u64,
) -> io::Result<libc::flock> {
    // SAFETY: `flock` is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    // l_pid must be 0 for OFD locks.
    fl.l_pid = 0;
    loop {
        // SAFETY: `fl` is a valid, initialised `struct flock` that outlives
        // the call; `fd` is a valid descriptor.
        let rc = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl) };
        if rc == 0 {
            return Ok(fl);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}
