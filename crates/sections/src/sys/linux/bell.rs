//! Bells on Linux: a write into a file, heard by an inotify watch of it.
//! A channel's waker (`waker.rs`) and the events and semaphores (`sync`)
//! ring theirs this way; [`Readiness`] is what a waiter in an event loop
//! waits on.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use crate::error::{Error, Result};

/// Rings a bell: a one-word write of zeros at `at` of the file, which
/// every inotify watch of it reports.
pub(crate) fn ring(file: BorrowedFd<'_>, at: u64) -> Result<()> {
    rustix::io::pwrite(file, &[0u8; 4], at)
        .map(drop)
        .map_err(|e| Error::os("ring", e.into()))
}

/// What a readiness watches: a file a bell writes into (a named channel's
/// section, an anonymous channel's bell file, an event's or semaphore's
/// file), and for errors what it is.
pub(crate) struct Watch<'a> {
    file: BorrowedFd<'a>,
    op: &'static str,
    name: &'a str,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(file: BorrowedFd<'a>, op: &'static str, name: &'a str) -> Watch<'a> {
        Watch { file, op, name }
    }
}

/// Readiness for `watches`, as few as the platform allows: here one, an
/// inotify instance of its own (so that every waiter hears every bell)
/// with a watch of each file; none for none.
pub(crate) fn ready_for(watches: Vec<Watch<'_>>) -> Result<Vec<Readiness>> {
    use rustix::fs::inotify;
    let Some(first) = watches.first() else {
        return Ok(Vec::new());
    };
    let limits = "inotify instances and watches are limited per user \
                  (fs.inotify.max_user_instances, max_user_watches; an instance \
                  per readiness, Select or async object, a watch per source)";
    let fd = match pooled() {
        Some(fd) => fd,
        None => inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(|e| {
                Error::os(first.op, e.into())
                    .with_name(first.name)
                    .with_detail(limits)
            })?,
    };
    let mut ready = Readiness {
        fd,
        wds: Vec::with_capacity(watches.len()),
    };
    for w in &watches {
        // Our own descriptor's file: the inode this object is, whatever a
        // name points to now.
        let path = format!("/proc/self/fd/{}", w.file.as_raw_fd());
        let wd = inotify::add_watch(&ready.fd, path.as_str(), inotify::WatchFlags::MODIFY)
            .map_err(|e| {
                Error::os(w.op, e.into())
                    .with_name(w.name)
                    .with_detail(format!("is /proc mounted? {limits}"))
            })?;
        ready.wds.push(wd);
    }
    Ok(vec![ready])
}

/// Inotify instances of dropped readiness, their watch removed, for the
/// next readiness of this process: closing an instance waits for a kernel
/// grace period (milliseconds, on the dropping thread: an event loop's),
/// removing a watch does not. At most [`POOLED`] are kept.
static POOL: std::sync::Mutex<Pool> = std::sync::Mutex::new(Pool {
    pid: 0,
    fds: Vec::new(),
});
const POOLED: usize = 64;

struct Pool {
    /// The process the instances are this process's own in (a child made
    /// by `fork` shares its parent's, and must not use them).
    pid: u32,
    fds: Vec<OwnedFd>,
}

/// An instance from the pool, emptied of events (the removed watch's
/// `IN_IGNORED`, and any that came before it).
fn pooled() -> Option<OwnedFd> {
    let mut pool = POOL.lock().ok()?;
    let pid = std::process::id();
    if pool.pid != pid {
        pool.fds.clear();
        pool.pid = pid;
    }
    let fd = pool.fds.pop()?;
    drop(pool);
    drain(fd.as_fd());
    Some(fd)
}

/// Reads an inotify instance's queue empty.
fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 4096];
    // An inotify read returns whole events, each at most 16 bytes and a
    // name of up to 256: a read that left room for one more emptied the
    // queue, and the next event makes it readable again.
    while matches!(rustix::io::read(fd, &mut buf[..]), Ok(n) if n > buf.len() - 512) {}
}

/// What an event loop waits on for a channel endpoint: a descriptor that
/// becomes readable when the other side published something (a message,
/// room, or its leaving) after this endpoint armed it (see
/// [`Receiver::poll_recv`](crate::channel::Receiver::poll_recv) and
/// [`Sender::poll_loan`](crate::channel::Sender::poll_loan)), or an event
/// or semaphore was signalled after a poll found nothing
/// ([`Event::poll_wait`](crate::sync::Event::poll_wait),
/// [`Semaphore::poll_acquire`](crate::sync::Semaphore::poll_acquire)). Use it with
/// epoll, `poll`, tokio's `AsyncFd`, mio or async-io; after it is
/// readable, [`clear`](Self::clear) it and try again.
///
/// It is an inotify instance of its own watching the channel's file (an
/// anonymous channel's bell file, an event's or semaphore's file), so
/// every waiter hears every bell. Readiness may be spurious (a look finds
/// nothing: arm and wait again), and a peer that dies rings nothing: wait
/// with a coarse timeout (the blocking [`Select`](crate::channel::Select)
/// looks every 100 ms) and try again. A child made by `fork` shares its
/// parent's readiness (one instance: whichever clears it takes the
/// other's wake-up): make a new one in the child.
#[derive(Debug)]
pub struct Readiness {
    fd: OwnedFd,
    /// Its watches (one per file; several for a `Select`).
    wds: Vec<i32>,
}

impl Drop for Readiness {
    // Removes the watch and gives a duplicate of the instance to the
    // pool, so that the close after this does not end the instance (see
    // `POOL`).
    fn drop(&mut self) {
        for &wd in &self.wds {
            let _ = rustix::fs::inotify::remove_watch(&self.fd, wd);
        }
        let Ok(mut pool) = POOL.lock() else { return };
        if pool.pid == std::process::id() && pool.fds.len() < POOLED {
            if let Ok(dup) = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0) {
                pool.fds.push(dup);
            }
        }
    }
}

impl Readiness {
    /// Consumes what made it readable, so that it waits again.
    pub fn clear(&self) {
        drain(self.fd.as_fd());
    }
}

impl AsFd for Readiness {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Readiness {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Waits until one of `ready` is readable or `until` passes: the indexes
/// of those that are (none: the time passed, or a signal came).
pub(crate) fn wait_any(ready: &[&Readiness], until: Option<Instant>) -> Result<Vec<usize>> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds: Vec<PollFd<'_>> = ready
        .iter()
        .map(|r| PollFd::new(&r.fd, PollFlags::IN))
        .collect();
    let timeout = until.map(|u| {
        let left = u.saturating_duration_since(Instant::now());
        rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        }
    });
    match poll(&mut fds, timeout.as_ref()) {
        Ok(_) | Err(rustix::io::Errno::INTR) => {}
        Err(e) => return Err(Error::os("select", e.into())),
    }
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(_, fd)| !fd.revents().is_empty())
        .map(|(i, _)| i)
        .collect())
}
