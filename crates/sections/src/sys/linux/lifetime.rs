//! Named sections on Linux: publishing, opening, handle-counted lifetime
//! (the protocol), and removal.
//!
//! # The lifetime protocol
//!
//! A named section is a regular file `DIR/NAME` in the namespace directory.
//! Memory-backed sections are the data itself (so `shm_open("/NAME")` sees
//! them); file-backed ones are a small record naming the backing file.
//! Two mode bits, which Linux ignores on regular files and which every file
//! system keeps, say how the entry was made, so that one `fstat` tells all:
//!
//! - the sticky bit (`S_ISVTX`): handle-counted lifetime;
//! - the set-group-id bit (`S_ISGID`, never with group execute): a record
//!   naming a backing file rather than memory.
//!
//! An entry with neither is persistent memory; that includes every segment
//! made by `shm_open`, Python or Boost, which keeps its POSIX lifetime.
//!
//! Two kernel locks live on the entry's open file description (OFD), both
//! dropped by the kernel when the last descriptor of that OFD is closed,
//! including when the process is killed:
//!
//! - **hold**: an OFD read lock (`F_OFD_SETLK`, `F_RDLCK`) on byte 0. Every
//!   holder of a counted section has one. Nobody ever takes a write lock on
//!   byte 0, so holds never block each other. `F_OFD_GETLK` with `F_WRLCK`
//!   reports whether a hold exists *on another OFD* without taking anything.
//! - **gate**: an exclusive `flock` on the same file, held for the few
//!   system calls of one decision (join, leave, reclaim, remove, grow).
//!   `flock` and OFD locks are independent on Linux, so the gate never
//!   disturbs the holds, and a crash inside a decision releases the gate.
//!
//! States of a counted name (H = number of OFDs with a hold):
//!
//! ```text
//!             publish (link of an unnamed file; the creator already holds)
//!  (absent) ───────────────────────────────────────────────► LIVE (H ≥ 1)
//!     ▲                                                        │   ▲
//!     │ last holder leaves: under the gate, sees no other      │   │ open: under the gate, the inode is
//!     │ hold, re-checks NAME is still this inode, unlinks      │   │ still linked and another hold
//!     ├────────────────────────────────────────────────────────┘   │ exists, then take a hold
//!     │                                                            │
//!     │ create/gc reclaim: under the gate, no hold, same inode,    │
//!     │ unlink                                                     │ holders come and go (H stays ≥ 1)
//!     │                                                     ┌──────┘
//!     └──────────────────────────────── STALE (H = 0) ◄─────┘ last holder killed (no gate needed:
//!                                                              the kernel drops its hold)
//! ```
//!
//! Why no race breaks it:
//! - Joining and leaving both decide under the gate, so they are ordered.
//!   Between decisions a hold can only disappear by a crash, never appear.
//! - An opener that sees another hold takes its own before releasing the
//!   gate; if that other holder dies in between, the opener joined first
//!   and the section stays live, exactly as if it had been opened a moment
//!   earlier. An opener that sees no hold reports `Stale` and takes none,
//!   so a dead section is never resurrected as live.
//! - Every unlink happens under the gate, after re-checking that NAME still
//!   refers to the locked inode. An inode is published under exactly one
//!   name and leaves it only by such an unlink, so an opener that finds its
//!   inode still linked (`st_nlink > 0`) under the gate knows NAME is still
//!   this section. A name that was removed and re-created refers to a new
//!   inode with its own gate, so a late leaver of the old section can never
//!   remove the new one, and an opener that raced a removal retries.
//! - A section is built as an unnamed file (`O_TMPFILE`), fully sized,
//!   initialised and marked, and only then linked under NAME; the link
//!   fails if NAME exists. Openers never see it half made. On file systems
//!   without `O_TMPFILE` it is built under a private name (`.sections-*`,
//!   with a shared `flock` so that `gc` leaves it alone while its builder
//!   lives) and renamed with `RENAME_NOREPLACE`.
//!
//! Listing reads `lstat` and asks `F_OFD_GETLK`; it takes no lock.
//!
//! # Fork
//!
//! A child created by `fork` inherits the descriptor and so shares the
//! parent's OFD and hold: the two processes count as one holder. Dropping
//! the inherited handle in the child only closes its descriptor (the entry
//! remembers the pid that took the hold); the parent's drop decides. A
//! child that must hold the section independently opens it by name.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, AtFlags, FlockOperation, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use super::ofd::ofd_lock;
use super::record::Record;
use super::retry_intr;
use crate::sys::unix::{fstat, oflags_for, FileStat};
use crate::types::RESERVED_PREFIX;
use crate::types::{Access, Lifetime};

/// How often an operation retries when the name changes under it.
const RETRIES: usize = 16;
const COUNTED_BIT: u32 = 0o1000;
const RECORD_BIT: u32 = 0o2000;

/// How a named entry was made, read from its mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub lifetime: Lifetime,
    /// A record naming a backing file, rather than the memory itself.
    pub file: bool,
}

impl Marker {
    pub(crate) fn from_mode(mode: u32) -> Marker {
        Marker {
            lifetime: if mode & COUNTED_BIT != 0 {
                Lifetime::Counted
            } else {
                Lifetime::Persistent
            },
            file: mode & RECORD_BIT != 0,
        }
    }

    fn mode_bits(self) -> u32 {
        let counted = if self.counted() { COUNTED_BIT } else { 0 };
        let record = if self.file { RECORD_BIT } else { 0 };
        counted | record
    }

    fn counted(self) -> bool {
        self.lifetime == Lifetime::Counted
    }
}

/// The permission bits a section's mode may carry: read and write only
/// (mapping never needs the execute bit), so that the marker bits keep
/// their meaning.
pub(crate) const PERMISSION_BITS: u32 = 0o666;

/// Opens a namespace entry, never following a symbolic link in its last
/// component (names cannot contain `/`, so that is the only one a name
/// controls; the namespace directory itself is configuration and may be a
/// link, as `/dev/shm` is on some systems).
pub(super) fn open_entry(path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rfs::open(path, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::LOOP) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the entry is a symbolic link, which is never followed",
        )),
        Err(e) => Err(e.into()),
    }
}

/// How long to wait for a gate before giving up. The protocol holds a gate
/// for a few system calls; only a process that takes the `flock` of a
/// section's file on its own (and keeps it) makes a wait this long.
const GATE_PATIENCE: Duration = Duration::from_secs(10);

/// Takes the gate (exclusive `flock`); it is released by [`ungate`] or
/// when the descriptor is closed. Polls with a growing pause rather than
/// blocking, so that a foreign process sitting on the lock cannot hang an
/// open, or a drop, for ever.
fn gate(fd: BorrowedFd<'_>) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    loop {
        match rfs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::WOULDBLOCK | Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() > GATE_PATIENCE {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "another process has held the section's lock for more than 10 s",
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

pub(super) fn ungate(fd: BorrowedFd<'_>) {
    // Unlocking cannot fail on a valid descriptor; if it somehow did, the
    // gate would still be released when the descriptor closes.
    let _ = rfs::flock(fd, FlockOperation::Unlock);
}

/// Takes this OFD's hold (a read lock on byte 0).
fn hold(fd: BorrowedFd<'_>) -> io::Result<()> {
    ofd_lock(fd, libc::F_OFD_SETLK, libc::F_RDLCK as libc::c_short, 0).map(drop)
}

/// Whether an OFD other than `fd`'s holds the section. Takes no lock.
pub(super) fn others_hold(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let fl = ofd_lock(fd, libc::F_OFD_GETLK, libc::F_WRLCK as libc::c_short, 0)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether `path` still names the inode `st` describes.
pub(super) fn still_named(path: &Path, st: &FileStat) -> io::Result<bool> {
    match rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) => Ok(now.st_dev == st.dev && now.st_ino == st.ino),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A published name and this process's hold on it.
#[derive(Debug)]
pub(crate) struct Entry {
    path: PathBuf,
    fd: OwnedFd,
    st: FileStat,
    marker: Marker,
    pid: u32,
}

impl Entry {
    /// The entry's own descriptor: the data of a memory section, the record
    /// of a file-backed one.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where the entry was opened or made.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn marker(&self) -> Marker {
        self.marker
    }

    /// Runs `f` under the entry's gate, so that it is ordered with every
    /// other decision about this name (used to grow without ever shrinking).
    pub(crate) fn with_gate<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        gate(self.fd())?;
        let result = f();
        ungate(self.fd());
        result
    }

    /// Reads the record of a file-backed entry.
    pub(crate) fn read_record(&self) -> io::Result<Record> {
        Record::read(self.fd())
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // A forked child shares our OFD and hold; only the process that took
        // the hold may decide about the name.
        if !self.marker.counted() || self.pid != crate::sys::linux::pid() {
            return;
        }
        // Errors here cannot be reported from `drop`; the worst outcome is a
        // name left behind, which is then stale and reclaimed later.
        if gate(self.fd()).is_err() {
            return;
        }
        if matches!(others_hold(self.fd()), Ok(false))
            && matches!(still_named(&self.path, &self.st), Ok(true))
        {
            let _ = rfs::unlink(&self.path);
        }
        // Closing the descriptor releases the gate and the hold.
    }
}

/// What a new named section is: the memory itself of `size` bytes, or a
/// record pointing at a file.
pub(crate) enum Content<'a> {
    /// `reserve`: back every page with memory now (see `sys::resize`).
    Memory {
        size: u64,
        reserve: bool,
    },
    File(&'a Record),
}

fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{RESERVED_PREFIX}{}-{n}-{nanos}", crate::sys::linux::pid())
}

/// How a file under construction gets its name.
enum Unnamed {
    /// An `O_TMPFILE`: no name until it is linked.
    TmpFile,
    /// A private `.sections-*` name, renamed at the end.
    Private(PathBuf),
}

/// Builds a section as an unnamed file and publishes it as `name`,
/// reclaiming a stale entry of that name first if there is one.
///
/// `init` runs on the fully sized file before it is published, so no
/// opener ever sees contents it has not finished.
pub(crate) fn create_named(
    dir: &Path,
    name: &str,
    content: Content<'_>,
    mode: u32,
    lifetime: Lifetime,
    init: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<Entry> {
    let marker = Marker {
        lifetime,
        file: matches!(content, Content::File(_)),
    };
    let path = dir.join(name);
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    let (fd, unnamed) = match rfs::open(dir, flags | OFlags::TMPFILE, Mode::from_raw_mode(0o600)) {
        Ok(fd) => (fd, Unnamed::TmpFile),
        // File systems without O_TMPFILE.
        Err(Errno::OPNOTSUPP) | Err(Errno::ISDIR) | Err(Errno::INVAL) => {
            let tmp = dir.join(temp_name());
            let fd = rfs::open(
                &tmp,
                flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o600),
            )?;
            (fd, Unnamed::Private(tmp))
        }
        Err(e) => return Err(e.into()),
    };
    let built = (|| {
        if let Unnamed::Private(_) = unnamed {
            // Tells `gc` that this private name has a living builder.
            retry_intr(|| rfs::flock(&fd, FlockOperation::LockShared))?;
        }
        if marker.counted() {
            hold(fd.as_fd())?;
        }
        match content {
            Content::Memory { size, reserve } => {
                crate::sys::unix::resize(fd.as_fd(), 0, size, reserve)?;
                init(fd.as_fd())?;
            }
            Content::File(record) => {
                let bytes = record.encode();
                let mut off = 0;
                while off < bytes.len() {
                    off += retry_intr(|| rustix::io::pwrite(&fd, &bytes[off..], off as u64))?;
                }
            }
        }
        let wanted = (mode & PERMISSION_BITS) | marker.mode_bits();
        rfs::fchmod(&fd, Mode::from_raw_mode(wanted))?;
        let st = fstat(fd.as_fd())?;
        if st.mode & 0o7777 != wanted {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the namespace's file system did not keep mode {wanted:o} (it has {:o}); \
                     it cannot hold sections made by this library",
                    st.mode & 0o7777
                ),
            ));
        }
        match &unnamed {
            Unnamed::TmpFile => publish(&path, &mut || link_unnamed(fd.as_fd(), &path))?,
            Unnamed::Private(tmp) => publish(&path, &mut || {
                rfs::renameat_with(CWD, tmp, CWD, &path, RenameFlags::NOREPLACE)
            })?,
        }
        Ok(st)
    })();
    if let Unnamed::Private(tmp) = &unnamed {
        match built {
            Ok(_) => ungate(fd.as_fd()),
            Err(_) => {
                let _ = rfs::unlink(tmp);
            }
        }
    }
    Ok(Entry {
        path,
        fd,
        st: built?,
        marker,
        pid: crate::sys::linux::pid(),
    })
}

/// Gives an `O_TMPFILE` its name. `AT_EMPTY_PATH` needs
/// `CAP_DAC_READ_SEARCH`; without it, the `/proc/self/fd` link is used.
fn link_unnamed(fd: BorrowedFd<'_>, path: &Path) -> rustix::io::Result<()> {
    match rfs::linkat(fd, "", CWD, path, AtFlags::EMPTY_PATH) {
        Err(Errno::NOENT) | Err(Errno::PERM) | Err(Errno::ACCESS) => {
            let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rfs::linkat(CWD, proc.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)
        }
        other => other,
    }
}

/// Runs `link` (which fails with `EEXIST` if `path` exists) until it
/// succeeds, reclaiming a stale section at `path` in between.
fn publish(path: &Path, link: &mut dyn FnMut() -> rustix::io::Result<()>) -> io::Result<()> {
    for _ in 0..RETRIES {
        match link() {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {
                if !reclaim_stale(path)? {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::ErrorKind::AlreadyExists.into())
}

/// Removes `path` if it is a stale counted section. Returns whether the
/// name is free afterwards.
pub(crate) fn reclaim_stale(path: &Path) -> io::Result<bool> {
    let fd = match open_entry(path, OFlags::RDONLY) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        // Something we may not open (foreign, a symlink): not ours to reclaim.
        Err(_) => return Ok(false),
    };
    let st = fstat(fd.as_fd())?;
    if !st.is_regular || !Marker::from_mode(st.mode).counted() || st.uid != crate::sys::unix::euid()
    {
        return Ok(false);
    }
    gate(fd.as_fd())?;
    if !still_named(path, &st)? {
        return Ok(!still_exists(path)?);
    }
    if others_hold(fd.as_fd())? {
        return Ok(false);
    }
    match rfs::unlink(path) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(Errno::PERM) | Err(Errno::ACCESS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn still_exists(path: &Path) -> io::Result<bool> {
    match rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Why an open did not produce a live entry.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(io::Error),
    NotRegular,
    ForeignOwner(u32),
    /// The entry has this many names: a hard link may have put another
    /// user's file (or another section) under this name.
    HardLinked(u64),
    Stale,
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

fn check_openable(st: &FileStat, allow_foreign_owner: bool) -> Result<(), OpenError> {
    if !st.is_regular {
        return Err(OpenError::NotRegular);
    }
    if st.uid != crate::sys::unix::euid() && !allow_foreign_owner {
        return Err(OpenError::ForeignOwner(st.uid));
    }
    // A section is published under exactly one name. More links mean
    // someone linked a file here, which the owner check cannot see
    // through: a world-writable file of root's, linked by another user,
    // is owned by root.
    if st.nlink > 1 {
        return Err(OpenError::HardLinked(st.nlink));
    }
    Ok(())
}

/// Opens `path` and, for a counted section, joins its holders.
pub(crate) fn open_named(
    path: &Path,
    access: Access,
    allow_foreign_owner: bool,
) -> Result<Entry, OpenError> {
    for _ in 0..RETRIES {
        let fd = open_entry(path, oflags_for(access))?;
        // Take the gate. If it is busy, check the owner first, so that a
        // squatter holding the lock of its own file cannot stall us.
        if rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
            check_openable(&fstat(fd.as_fd())?, allow_foreign_owner)?;
            gate(fd.as_fd())?;
        }
        let st = fstat(fd.as_fd())?;
        check_openable(&st, allow_foreign_owner)?;
        if st.nlink == 0 {
            // Removed while we opened it: look again.
            continue;
        }
        let marker = Marker::from_mode(st.mode);
        if marker.counted() {
            if !others_hold(fd.as_fd())? {
                return Err(OpenError::Stale);
            }
            hold(fd.as_fd())?;
        }
        ungate(fd.as_fd());
        return Ok(Entry {
            path: path.to_owned(),
            fd,
            st,
            marker,
            pid: crate::sys::linux::pid(),
        });
    }
    Err(OpenError::Io(io::ErrorKind::NotFound.into()))
}

/// Whether processes other than the caller held the name when it was removed.
pub(crate) struct Removed {
    pub held: bool,
}

/// Removes `path` from the namespace under its gate. Holders keep their
/// handles and views; their eventual drop sees the name is gone and leaves
/// any new section of that name alone.
pub(crate) fn remove_named(path: &Path) -> io::Result<Removed> {
    for _ in 0..RETRIES {
        if let Some(what) = entry_type(path) {
            return Err(not_a_section(what));
        }
        let fd = open_entry(path, OFlags::RDONLY)?;
        let st = fstat(fd.as_fd())?;
        if !st.is_regular {
            return Err(not_a_section("not a regular file"));
        }
        gate(fd.as_fd())?;
        if !still_named(path, &st)? {
            continue;
        }
        let held = others_hold(fd.as_fd())?;
        rfs::unlink(path)?;
        return Ok(Removed { held });
    }
    Err(io::ErrorKind::NotFound.into())
}

fn not_a_section(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the entry is {what}, not a section; it was left alone"),
    )
}

/// What a namespace entry is when it is not a regular file ("a FIFO", "a
/// symbolic link", ...); `None` for a regular file or a missing name.
/// Follows no link.
pub(crate) fn entry_type(path: &Path) -> Option<&'static str> {
    let st = rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some(match rfs::FileType::from_raw_mode(st.st_mode) {
        rfs::FileType::RegularFile => return None,
        rfs::FileType::Directory => "a directory",
        rfs::FileType::Symlink => "a symbolic link",
        rfs::FileType::Fifo => "a FIFO",
        rfs::FileType::Socket => "a socket",
        rfs::FileType::CharacterDevice | rfs::FileType::BlockDevice => "a device",
        rfs::FileType::Unknown => "of an unknown type",
    })
}
