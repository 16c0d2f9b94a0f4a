//! Waking a channel's sides on Linux: each side sleeps on its own waiting
//! word in the channel's section as a shared futex, so nothing outside the
//! section is needed (anonymous channels included), and every process
//! that maps the section, in any PID namespace, can wake it.
//!
//! A side that waits in an event loop cannot sleep on a futex: it
//! announces a *bell* instead (the `BELL` bit of its waiting word) and
//! waits for a descriptor to become readable. The publisher that finds
//! the bit rings it:
//!
//! - a named channel: a one-word `pwrite` of zeros into the header's spare
//!   word, which inotify reports (`IN_MODIFY`) to every watcher of the
//!   section's file, in any process, PID namespace or container that
//!   shares the file; nothing is added to the namespace;
//! - an anonymous channel (whose memory no inotify watch sees): an
//!   eventfd per side, made with the channel and handed to children with
//!   its token.
//!
//! Both sides of a named channel share one file, so a bell rung for one
//! side is seen by the other side's watch too: a spurious wake-up, after
//! which that side looks, finds nothing new and waits again.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::object::Object;
use super::sync::{futex_wait, futex_wake};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::Side;
use crate::types::Namespace;

/// Where in the section a named channel's bell writes: the header's last
/// word, which nothing else writes or reads (`channel::layout` pins it).
const BELL_AT: u64 = 508;

/// How a channel's bells are rung.
#[derive(Debug)]
enum Bells {
    /// A named channel: a write to its file.
    Named,
    /// An anonymous channel: the receiver's and the senders' eventfds.
    Anonymous { rx: OwnedFd, tx: OwnedFd },
}

/// Sleeps and wakes on the section's waiting words; rings bells.
#[derive(Debug)]
pub(crate) struct Waker {
    bells: Bells,
    /// `efd,RX,TX` for an anonymous channel, naming this process's own
    /// descriptors (for endpoints attached in this process).
    token: Option<String>,
}

/// What a child needs to ring and hear an anonymous channel's bells:
/// inheritable copies of its eventfds, kept while the child starts.
#[derive(Debug)]
pub(crate) struct WakerShare {
    _fds: Vec<OwnedFd>,
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory arguments; a non-negative result is a
    // new descriptor that nothing else owns.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A duplicate of descriptor `fd` (a number from a token), with `cloexec`
/// or not. The original is not touched.
fn duplicate(fd: i32, cloexec: bool) -> io::Result<OwnedFd> {
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    // SAFETY: fcntl(F_DUPFD*) on any integer is harmless: EBADF for a
    // number that is not open, otherwise a new descriptor nothing owns.
    let dup = unsafe { libc::fcntl(fd, cmd, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Whether `fd` is an eventfd (a token is a string: a bell must not write
/// into a file it names). `/proc` says exactly; without it (a hardened
/// sandbox), an anonymous inode (eventfd, timerfd, signalfd, epoll: the
/// others refuse an 8-byte write) is accepted.
fn is_eventfd(fd: BorrowedFd<'_>) -> bool {
    /// `ANON_INODE_FS_MAGIC` (linux/magic.h).
    const ANON_INODE_FS: i64 = 0x0904_1934;
    match std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        Ok(target) => target.as_os_str() == "anon_inode:[eventfd]",
        Err(_) => rustix::fs::fstatfs(fd).is_ok_and(|st| st.f_type as i64 == ANON_INODE_FS),
    }
}

impl Waker {
    /// For a new channel (`base`: its name, or a random one for an
    /// anonymous channel).
    pub(crate) fn create(_ns: &Namespace, _base: &str, anonymous: bool) -> Result<Waker> {
        if !anonymous {
            return Ok(Waker {
                bells: Bells::Named,
                token: None,
            });
        }
        let made = eventfd().and_then(|rx| Ok((rx, eventfd()?)));
        let (rx, tx) = made.map_err(|e| Error::os("create channel", e))?;
        let token = format!("efd,{},{}", rx.as_raw_fd(), tx.as_raw_fd());
        Ok(Waker {
            bells: Bells::Anonymous { rx, tx },
            token: Some(token),
        })
    }

    /// For an existing channel: by its name, or by the `efd,RX,TX` an
    /// anonymous channel's token carries (duplicated: the numbers are not
    /// this waker's to close).
    pub(crate) fn open(_ns: &Namespace, base: Option<&str>, anonymous: bool) -> Result<Waker> {
        if !anonymous {
            return Ok(Waker {
                bells: Bells::Named,
                token: None,
            });
        }
        let bad = || {
            Error::new(ErrorKind::InvalidName, "open channel")
                .with_detail("the token does not name the channel's bells")
        };
        let mut parts = base.ok_or_else(bad)?.split(',');
        if parts.next() != Some("efd") {
            return Err(bad());
        }
        let mut fd = || -> Result<OwnedFd> {
            let n: i32 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let fd = duplicate(n, true)
                .map_err(|e| Error::os("open channel", e).with_detail(format!("descriptor {n}")))?;
            if !is_eventfd(fd.as_fd()) {
                return Err(bad());
            }
            Ok(fd)
        };
        let (rx, tx) = (fd()?, fd()?);
        let token = format!("efd,{},{}", rx.as_raw_fd(), tx.as_raw_fd());
        Ok(Waker {
            bells: Bells::Anonymous { rx, tx },
            token: Some(token),
        })
    }

    /// What endpoints attached in this process pass to `open`.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// What a child needs: inheritable copies of the bells, and their
    /// numbers.
    pub(crate) fn inheritable(&self) -> Result<(Option<String>, WakerShare)> {
        let Bells::Anonymous { rx, tx } = &self.bells else {
            return Ok((None, WakerShare { _fds: Vec::new() }));
        };
        let dup = |fd: &OwnedFd| {
            duplicate(fd.as_raw_fd(), false).map_err(|e| Error::os("share channel", e))
        };
        let (rx, tx) = (dup(rx)?, dup(tx)?);
        let token = format!("efd,{},{}", rx.as_raw_fd(), tx.as_raw_fd());
        Ok((Some(token), WakerShare { _fds: vec![rx, tx] }))
    }

    /// Sleeps while `word` still says "a sleeper waits" (its value now, if
    /// it has the sleeper bit), at most until `until`: a wake that cleared
    /// the word first is never lost.
    #[inline]
    pub(crate) fn wait(&self, _side: Side, word: &AtomicU32, until: Instant) -> Result<()> {
        let now = word.load(std::sync::atomic::Ordering::SeqCst);
        if now & crate::sys::SLEEPER == 0 {
            return Ok(());
        }
        futex_wait(word, now, Some(until)).map_err(|e| Error::os("wait", e))
    }

    /// Wakes every sleeper of `word` (several senders may wait for room).
    #[inline]
    pub(crate) fn wake(&self, _side: Side, word: &AtomicU32) -> Result<()> {
        futex_wake(word, i32::MAX as u32).map_err(|e| Error::os("wake", e))
    }

    /// Rings `side`'s bell.
    pub(crate) fn ring(&self, side: Side, object: &Object) -> Result<()> {
        match &self.bells {
            Bells::Named => rustix::io::pwrite(object.fd(), &[0u8; 4], BELL_AT)
                .map(drop)
                .map_err(|e| Error::os("ring", e.into())),
            Bells::Anonymous { rx, tx } => {
                let fd = match side {
                    Side::Receiver => rx,
                    Side::Senders => tx,
                };
                match rustix::io::write(fd, &1u64.to_ne_bytes()) {
                    // A full counter (EAGAIN) is rung already.
                    Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
                    Err(e) => Err(Error::os("ring", e.into())),
                }
            }
        }
    }

    /// A descriptor that becomes readable when `side`'s bell rings.
    pub(crate) fn readiness(&self, side: Side, object: &Object) -> Result<Readiness> {
        const OP: &str = "watch channel";
        match &self.bells {
            Bells::Named => {
                use rustix::fs::inotify;
                let fd =
                    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                        .map_err(|e| Error::os(OP, e.into()))?;
                // Our own descriptor's file: the inode this channel is,
                // whatever the name points to now.
                let path = format!("/proc/self/fd/{}", object.fd().as_raw_fd());
                inotify::add_watch(&fd, path.as_str(), inotify::WatchFlags::MODIFY).map_err(
                    |e| {
                        Error::os(OP, e.into()).with_detail(
                            "inotify watch of the channel's file (is /proc mounted? \
                             fs.inotify.max_user_instances and max_user_watches limit them)",
                        )
                    },
                )?;
                Ok(Readiness { fd, inotify: true })
            }
            Bells::Anonymous { rx, tx } => {
                let fd = match side {
                    Side::Receiver => rx,
                    Side::Senders => tx,
                };
                let fd = duplicate(fd.as_raw_fd(), true).map_err(|e| Error::os(OP, e))?;
                Ok(Readiness { fd, inotify: false })
            }
        }
    }
}

/// What an event loop waits on for a channel endpoint: a descriptor that
/// becomes readable when the other side published something (a message,
/// room, or its leaving) after this endpoint armed it (see
/// [`Receiver::poll_recv`](crate::channel::Receiver::poll_recv) and
/// [`Sender::poll_loan`](crate::channel::Sender::poll_loan)). Use it with
/// epoll, `poll`, tokio's `AsyncFd`, mio or async-io; after it is
/// readable, [`clear`](Self::clear) it and try again.
///
/// A named channel's readiness is an inotify watch of its file, an
/// anonymous channel's an eventfd. Readiness may be spurious (a look finds
/// nothing: arm and wait again), and a peer that dies rings nothing: wait
/// with a coarse timeout (the blocking [`Select`](crate::channel::Select)
/// looks every 100 ms) and try again.
#[derive(Debug)]
pub struct Readiness {
    fd: OwnedFd,
    inotify: bool,
}

impl Readiness {
    /// Consumes what made it readable, so that it waits again.
    pub fn clear(&self) {
        let mut buf = [0u8; 4096];
        loop {
            let read = if self.inotify {
                rustix::io::read(&self.fd, &mut buf[..])
            } else {
                rustix::io::read(&self.fd, &mut buf[..8])
            };
            match read {
                Ok(n) if n > 0 && self.inotify => continue,
                _ => return,
            }
        }
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
