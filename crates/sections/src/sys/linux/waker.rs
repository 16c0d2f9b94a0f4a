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
//! - an anonymous channel (its memory is a memfd, whose writes inotify
//!   never reports): the same write into a *bell file* made with the
//!   channel, an unlinked file on `/dev/shm` (`O_TMPFILE`; the temporary
//!   directory where there is no `/dev/shm`) that starts with `SECTBELL`
//!   and the channel's random base, handed to children with its token.
//!
//! Every waiter has an inotify instance of its own, so one write wakes
//! them all (an eventfd shared by several waiters would wake one: the
//! first to drain it takes the others' wake-up). Both sides share one
//! file, so a bell rung for one side is seen by the other side's watches
//! too: a spurious wake-up, after which that side looks, finds nothing new
//! and waits again.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::bell::{ring, Watch};
use super::object::Object;
use super::sync::{futex_wait, futex_wake};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::Side;
use crate::types::Namespace;

/// Where a named channel's bell writes: the header's last word, which
/// nothing else writes or reads (`channel::layout` pins it).
const BELL_AT: u64 = 508;
/// An anonymous channel's bell file: `SECTBELL`, its base, then the word
/// the bell writes.
const BELL_MAGIC: &[u8; 8] = b"SECTBELL";
const FILE_BELL_AT: u64 = 256;

/// How a channel's bells are rung.
#[derive(Debug)]
enum Bells {
    /// A named channel: a write to its file.
    Named,
    /// An anonymous channel: a write to its bell file.
    File(OwnedFd),
}

/// Sleeps and wakes on the section's waiting words; rings bells.
#[derive(Debug)]
pub(crate) struct Waker {
    bells: Bells,
    /// `bell,FD,BASE` for an anonymous channel, naming this process's own
    /// bell file (for endpoints attached in this process).
    token: Option<String>,
}

/// What a child needs to ring and hear an anonymous channel's bell: an
/// inheritable copy of its bell file, kept while the child starts.
#[derive(Debug)]
pub(crate) struct WakerShare {
    _fd: Option<OwnedFd>,
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

/// A new bell file for the anonymous channel `base`: unlinked from the
/// start, so nothing is left behind whatever happens.
fn bell_file(base: &str) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    let fd = rustix::fs::open("/dev/shm", flags, Mode::RUSR | Mode::WUSR)
        .or_else(|_| rustix::fs::open(std::env::temp_dir(), flags, Mode::RUSR | Mode::WUSR))?;
    let mut head = BELL_MAGIC.to_vec();
    head.extend_from_slice(base.as_bytes());
    rustix::io::pwrite(&fd, &head, 0)?;
    Ok(fd)
}

/// Whether `fd` is the bell file of the channel `base` (a token is a
/// string: the bell must not write into a file it merely names).
fn is_bell_file(fd: BorrowedFd<'_>, base: &str) -> bool {
    let Ok(st) = rustix::fs::fstat(fd) else {
        return false;
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return false;
    }
    let mut head = vec![0u8; BELL_MAGIC.len() + base.len()];
    matches!(rustix::io::pread(fd, &mut head, 0), Ok(n) if n == head.len())
        && head[..8] == BELL_MAGIC[..]
        && &head[8..] == base.as_bytes()
}

impl Waker {
    /// For a new channel (`base`: its name, or a random one for an
    /// anonymous channel).
    pub(crate) fn create(_ns: &Namespace, base: &str, anonymous: bool) -> Result<Waker> {
        if !anonymous {
            return Ok(Waker {
                bells: Bells::Named,
                token: None,
            });
        }
        let file = bell_file(base).map_err(|e| {
            Error::os("create channel", e).with_detail("its bell file (O_TMPFILE on /dev/shm)")
        })?;
        let token = format!("bell,{},{base}", file.as_raw_fd());
        Ok(Waker {
            bells: Bells::File(file),
            token: Some(token),
        })
    }

    /// For an existing channel: by its name, or by the `bell,FD,BASE` an
    /// anonymous channel's token carries (duplicated: the number is not
    /// this waker's to close; and checked: the file must say it is that
    /// channel's bell).
    pub(crate) fn open(_ns: &Namespace, base: Option<&str>, anonymous: bool) -> Result<Waker> {
        if !anonymous {
            return Ok(Waker {
                bells: Bells::Named,
                token: None,
            });
        }
        let bad = || {
            Error::new(ErrorKind::InvalidName, "open channel")
                .with_detail("the token does not name the channel's bell")
        };
        let text = base.ok_or_else(bad)?;
        let mut parts = text.split(',');
        let (Some("bell"), Some(number), Some(base), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let n: i32 = number
            .parse()
            .ok()
            .filter(|n: &i32| *n >= 0 && number.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        let file = duplicate(n, true)
            .map_err(|e| Error::os("open channel", e).with_detail(format!("descriptor {n}")))?;
        if !is_bell_file(file.as_fd(), base) {
            return Err(bad());
        }
        let token = format!("bell,{},{base}", file.as_raw_fd());
        Ok(Waker {
            bells: Bells::File(file),
            token: Some(token),
        })
    }

    /// What endpoints attached in this process pass to `open`.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// What a child needs: an inheritable copy of the bell file, and its
    /// number.
    pub(crate) fn inheritable(&self) -> Result<(Option<String>, WakerShare)> {
        let Bells::File(file) = &self.bells else {
            return Ok((None, WakerShare { _fd: None }));
        };
        let dup = duplicate(file.as_raw_fd(), false).map_err(|e| Error::os("share channel", e))?;
        let base = self
            .token
            .as_deref()
            .and_then(|t| t.splitn(3, ',').nth(2))
            .unwrap_or_default();
        let token = format!("bell,{},{base}", dup.as_raw_fd());
        Ok((Some(token), WakerShare { _fd: Some(dup) }))
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

    /// Rings the bell (both sides share it: see the module docs).
    pub(crate) fn ring(&self, _side: Side, object: &Object) -> Result<()> {
        match &self.bells {
            Bells::Named => ring(object.fd(), BELL_AT),
            Bells::File(file) => ring(file.as_fd(), FILE_BELL_AT),
        }
    }

    /// What a readiness of `side` watches: the channel's file (or bell
    /// file), where its bell writes.
    pub(crate) fn watch<'a>(&'a self, _side: Side, object: &'a Object, name: &'a str) -> Watch<'a> {
        let file = match &self.bells {
            Bells::Named => object.fd(),
            Bells::File(file) => file.as_fd(),
        };
        Watch::new(file, "watch channel", name)
    }
}
