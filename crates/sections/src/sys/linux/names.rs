//! Named sections on Linux: publishing, opening, handle-counted lifetime.
//!
//! # The lifetime protocol
//!
//! A named section is a regular file `DIR/NAME` in the namespace directory.
//! Memory-backed sections are the data itself (so `shm_open("/NAME")` sees
//! them); file-backed ones are a small record naming the backing file.
//! An extended attribute `user.sections` says how the entry was made:
//! handle-counted or persistent, memory or file. An entry without it was
//! made by someone else (`shm_open`, Python, Boost) and is treated as
//! persistent memory.
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
//!             publish (rename NOREPLACE, creator already holds)
//!  (absent) ───────────────────────────────────────────────► LIVE (H ≥ 1)
//!     ▲                                                        │   ▲
//!     │ last holder leaves: under the gate, sees no other      │   │ open: under the gate, the name still
//!     │ hold, re-checks NAME is still this inode, unlinks      │   │ is this inode and another hold exists,
//!     ├────────────────────────────────────────────────────────┘   │ then take a hold
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
//!   refers to the locked inode. A name that was removed and re-created
//!   refers to a new inode with its own gate, so a late leaver of the old
//!   section can never remove the new one, and an opener that raced a
//!   removal notices the change and retries.
//! - A section is built under a private name (`.sections-*`, with a shared
//!   `flock` so that `gc` leaves it alone while its creator lives), fully
//!   sized and marked, and only then renamed to NAME with
//!   `RENAME_NOREPLACE`: openers never see it half made, and creation fails
//!   if the name exists.
//!
//! Listing reads the attribute and asks `F_OFD_GETLK`; it takes no lock.
//!
//! # Fork
//!
//! A child created by `fork` inherits the descriptor and so shares the
//! parent's OFD and hold: the two processes count as one holder. Dropping
//! the inherited handle in the child only closes its descriptor (the entry
//! remembers the pid that took the hold); the parent's drop decides. A
//! child that must hold the section independently opens it by name.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self as rfs, AtFlags, FlockOperation, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::{fstat, oflags_for, FileStat};
use crate::name::RESERVED_PREFIX;
use crate::section::{Access, Lifetime};

const XATTR: &str = "user.sections";
const RECORD_MAGIC: &str = "sections-file 1";
/// Records are tiny; a larger entry is not one of ours.
const RECORD_MAX: usize = 8192;
/// How often an operation retries when the name changes under it.
const RETRIES: usize = 16;

/// How a named entry was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    pub lifetime: Lifetime,
    /// A record naming a backing file, rather than the memory itself.
    pub file: bool,
}

impl Marker {
    fn encode(self) -> String {
        let lifetime = match self.lifetime {
            Lifetime::Counted => "counted",
            Lifetime::Persistent => "persistent",
        };
        let kind = if self.file { "file" } else { "memory" };
        format!("sections/1 {lifetime} {kind}")
    }

    fn decode(value: &[u8]) -> Option<Marker> {
        let text = std::str::from_utf8(value).ok()?;
        let mut words = text.split(' ');
        if words.next()? != "sections/1" {
            return None;
        }
        let lifetime = match words.next()? {
            "counted" => Lifetime::Counted,
            "persistent" => Lifetime::Persistent,
            _ => return None,
        };
        let file = match words.next()? {
            "file" => true,
            "memory" => false,
            _ => return None,
        };
        words.next().is_none().then_some(Marker { lifetime, file })
    }

    fn counted(self) -> bool {
        self.lifetime == Lifetime::Counted
    }
}

/// The marker of an open entry: `Ok(None)` for an entry made by someone
/// else, an `InvalidData` error for one whose attribute is garbage.
fn read_marker(fd: BorrowedFd<'_>) -> io::Result<Option<Marker>> {
    let mut buf = [0u8; 64];
    match rfs::fgetxattr(fd, XATTR, &mut buf[..]) {
        Ok(n) => Marker::decode(&buf[..n]).map(Some).ok_or_else(bad_marker),
        Err(Errno::NODATA) | Err(Errno::NOTSUP) => Ok(None),
        Err(Errno::RANGE) => Err(bad_marker()),
        Err(e) => Err(e.into()),
    }
}

fn bad_marker() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the entry's user.sections attribute is not one this library wrote",
    )
}

/// Opens the namespace directory (which must not be a symbolic link).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )?)
}

fn open_entry(dir: BorrowedFd<'_>, name: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match rfs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::LOOP) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the entry is a symbolic link, which is never followed",
        )),
        Err(e) => Err(e.into()),
    }
}

fn retry_intr<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other.map_err(Into::into),
        }
    }
}

/// Takes the gate (exclusive `flock`); it is released by [`ungate`] or
/// when the descriptor is closed.
fn gate(fd: BorrowedFd<'_>) -> io::Result<()> {
    retry_intr(|| rfs::flock(fd, FlockOperation::LockExclusive))
}

fn ungate(fd: BorrowedFd<'_>) {
    // Unlocking cannot fail on a valid descriptor; if it somehow did, the
    // gate would still be released when the descriptor closes.
    let _ = rfs::flock(fd, FlockOperation::Unlock);
}

fn ofd_lock(fd: BorrowedFd<'_>, cmd: libc::c_int, kind: libc::c_short) -> io::Result<libc::flock> {
    // SAFETY: `flock` is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
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

/// Takes this OFD's hold (a read lock on byte 0).
fn hold(fd: BorrowedFd<'_>) -> io::Result<()> {
    ofd_lock(fd, libc::F_OFD_SETLK, libc::F_RDLCK as libc::c_short).map(drop)
}

/// Whether an OFD other than `fd`'s holds the section. Takes no lock.
fn others_hold(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let fl = ofd_lock(fd, libc::F_OFD_GETLK, libc::F_WRLCK as libc::c_short)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether `dir/name` still refers to the inode `st` describes.
fn still_named(dir: BorrowedFd<'_>, name: &str, st: &FileStat) -> io::Result<bool> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) => Ok(now.st_dev == st.dev && now.st_ino == st.ino),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A published name and this process's hold on it.
#[derive(Debug)]
pub(crate) struct Entry {
    dir: OwnedFd,
    name: String,
    fd: OwnedFd,
    st: FileStat,
    marker: Option<Marker>,
    pid: u32,
}

impl Entry {
    /// The entry's own descriptor: the data of a memory section, the record
    /// of a file-backed one.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn marker(&self) -> Option<Marker> {
        self.marker
    }

    pub(crate) fn counted(&self) -> bool {
        self.marker.is_some_and(Marker::counted)
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
        if !self.counted() || self.pid != super::pid() {
            return;
        }
        // Errors here cannot be reported from `drop`; the worst outcome is a
        // name left behind, which is then stale and reclaimed later.
        if gate(self.fd()).is_err() {
            return;
        }
        if matches!(others_hold(self.fd()), Ok(false))
            && matches!(
                still_named(self.dir.as_fd(), &self.name, &self.st),
                Ok(true)
            )
        {
            let _ = rfs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
        }
        // Closing the descriptor releases the gate and the hold.
    }
}

/// Where a named file-backed section's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{RECORD_MAGIC}\n{} {}\n", self.dev, self.ino).into_bytes();
        out.extend_from_slice(self.path.as_os_str().as_bytes());
        out.push(b'\n');
        out
    }

    /// Parses a record; its bytes are untrusted (anyone with write access to
    /// the entry could have changed them).
    fn read(fd: BorrowedFd<'_>) -> io::Result<Record> {
        let mut buf = vec![0u8; RECORD_MAX + 1];
        let mut len = 0;
        while len < buf.len() {
            let n = retry_intr(|| rustix::io::pread(fd, &mut buf[len..], len as u64))?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "damaged file-section record");
        if len > RECORD_MAX {
            return Err(bad());
        }
        let text = &buf[..len];
        let mut lines = text.split(|&b| b == b'\n');
        if lines.next() != Some(RECORD_MAGIC.as_bytes()) {
            return Err(bad());
        }
        let ids = std::str::from_utf8(lines.next().ok_or_else(bad)?).map_err(|_| bad())?;
        let (dev, ino) = ids.split_once(' ').ok_or_else(bad)?;
        let dev = dev.parse().map_err(|_| bad())?;
        let ino = ino.parse().map_err(|_| bad())?;
        let path = lines.next().ok_or_else(bad)?;
        if path.first() != Some(&b'/') || path.contains(&0) {
            return Err(bad());
        }
        Ok(Record {
            path: PathBuf::from(OsStr::from_bytes(path)),
            dev,
            ino,
        })
    }
}

/// What a new named section is: the memory itself of `size` bytes, or a
/// record pointing at a file.
pub(crate) enum Content<'a> {
    Memory { size: u64 },
    File(&'a Record),
}

fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{RESERVED_PREFIX}{}-{n}-{nanos}", super::pid())
}

/// Builds a section under a private name and publishes it as `name`,
/// reclaiming a stale entry of that name first if there is one.
///
/// `init` runs on the private, fully sized file before it is published, so
/// no opener ever sees contents it has not finished.
pub(crate) fn create_named(
    dir: OwnedFd,
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
    let tmp = temp_name();
    let fd = rfs::openat(
        &dir,
        tmp.as_str(),
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let built = (|| {
        // Tells `gc` that this private name has a living builder.
        retry_intr(|| rfs::flock(&fd, FlockOperation::LockShared))?;
        match rfs::fsetxattr(
            &fd,
            XATTR,
            marker.encode().as_bytes(),
            rfs::XattrFlags::empty(),
        ) {
            Ok(()) => {}
            Err(Errno::NOTSUP) if !marker.counted() && !marker.file => {}
            Err(Errno::NOTSUP) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the namespace's file system has no user extended attributes, \
                     which handle-counted and file-backed named sections need; \
                     use Lifetime::Persistent or another namespace",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        if marker.counted() {
            hold(fd.as_fd())?;
        }
        match content {
            Content::Memory { size } => {
                rfs::ftruncate(&fd, size)?;
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
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        publish(dir.as_fd(), &tmp, name)
    })();
    if let Err(e) = built {
        let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(e);
    }
    ungate(fd.as_fd());
    let st = fstat(fd.as_fd())?;
    Ok(Entry {
        dir,
        name: name.to_owned(),
        fd,
        st,
        marker: Some(marker),
        pid: super::pid(),
    })
}

/// Renames `tmp` to `name` unless `name` exists (reclaiming a stale one).
fn publish(dir: BorrowedFd<'_>, tmp: &str, name: &str) -> io::Result<()> {
    for _ in 0..RETRIES {
        match rfs::renameat_with(dir, tmp, dir, name, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {
                if !reclaim_stale(dir, name)? {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
            }
            // File systems without RENAME_NOREPLACE: link() has the same
            // fail-if-exists guarantee.
            Err(Errno::INVAL) | Err(Errno::NOSYS) => {
                match rfs::linkat(dir, tmp, dir, name, AtFlags::empty()) {
                    Ok(()) => {
                        rfs::unlinkat(dir, tmp, AtFlags::empty())?;
                        return Ok(());
                    }
                    Err(Errno::EXIST) => {
                        if !reclaim_stale(dir, name)? {
                            return Err(io::ErrorKind::AlreadyExists.into());
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::ErrorKind::AlreadyExists.into())
}

/// Removes `name` if it is a stale counted section. Returns whether the
/// name is free afterwards.
pub(crate) fn reclaim_stale(dir: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    let fd = match open_entry(dir, name, OFlags::RDONLY) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        // Something we may not open (foreign, a symlink): not ours to reclaim.
        Err(_) => return Ok(false),
    };
    let st = fstat(fd.as_fd())?;
    if !st.is_regular || !matches!(read_marker(fd.as_fd()), Ok(Some(m)) if m.counted()) {
        return Ok(false);
    }
    gate(fd.as_fd())?;
    if !still_named(dir, name, &st)? {
        return Ok(!still_exists(dir, name)?);
    }
    if others_hold(fd.as_fd())? {
        return Ok(false);
    }
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(Errno::PERM) | Err(Errno::ACCESS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn still_exists(dir: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
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
    Stale,
    BadMarker,
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// Opens `name` and, for a counted section, joins its holders.
pub(crate) fn open_named(
    dir: OwnedFd,
    name: &str,
    access: Access,
    allow_foreign_owner: bool,
) -> Result<Entry, OpenError> {
    for _ in 0..RETRIES {
        let fd = open_entry(dir.as_fd(), name, oflags_for(access))?;
        let st = fstat(fd.as_fd())?;
        if !st.is_regular {
            return Err(OpenError::NotRegular);
        }
        if st.uid != super::euid() && !allow_foreign_owner {
            return Err(OpenError::ForeignOwner(st.uid));
        }
        let marker = read_marker(fd.as_fd()).map_err(|_| OpenError::BadMarker)?;
        gate(fd.as_fd())?;
        if !still_named(dir.as_fd(), name, &st)? {
            // Removed or replaced while we opened it: look again.
            continue;
        }
        if marker.is_some_and(Marker::counted) {
            if !others_hold(fd.as_fd())? {
                return Err(OpenError::Stale);
            }
            hold(fd.as_fd())?;
        }
        ungate(fd.as_fd());
        return Ok(Entry {
            dir,
            name: name.to_owned(),
            fd,
            st,
            marker,
            pid: super::pid(),
        });
    }
    Err(OpenError::Io(io::ErrorKind::NotFound.into()))
}

/// Whether processes other than the caller held the name when it was removed.
pub(crate) struct Removed {
    pub held: bool,
}

/// Removes `name` from the namespace under its gate. Holders keep their
/// handles and views; their eventual drop sees the name is gone and leaves
/// any new section of that name alone.
pub(crate) fn remove_named(dir: BorrowedFd<'_>, name: &str) -> io::Result<Removed> {
    for _ in 0..RETRIES {
        let fd = open_entry(dir, name, OFlags::RDONLY)?;
        let st = fstat(fd.as_fd())?;
        gate(fd.as_fd())?;
        if !still_named(dir, name, &st)? {
            continue;
        }
        let held = others_hold(fd.as_fd())?;
        rfs::unlinkat(dir, name, AtFlags::empty())?;
        return Ok(Removed { held });
    }
    Err(io::ErrorKind::NotFound.into())
}

/// One entry of a namespace as found, without changing anything.
#[derive(Debug)]
pub(crate) struct RawListing {
    pub name: String,
    pub st: FileStat,
    /// `Err` when the attribute could not be read or is garbage.
    pub marker: Result<Option<Marker>, io::ErrorKind>,
    /// Whether any process holds a hold; `None` if the entry could not be
    /// opened to ask.
    pub held: Option<bool>,
    pub record: Option<Record>,
    /// A private name of a section being built whose builder is gone.
    pub abandoned_build: bool,
}

/// Lists the regular files of a namespace. Takes no lock that could change
/// a decision of anyone else (only `F_OFD_GETLK`, which takes nothing, and a
/// non-blocking `flock` probe on private build names).
pub(crate) fn list_namespace(dir: BorrowedFd<'_>) -> io::Result<Vec<RawListing>> {
    let mut out = Vec::new();
    for ent in rfs::Dir::read_from(dir)? {
        let ent = ent?;
        let Ok(name) = std::str::from_utf8(ent.file_name().to_bytes()) else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let Ok(st) = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let st = super::to_filestat(&st);
        if !st.is_regular {
            continue;
        }
        let fd = open_entry(dir, name, OFlags::RDONLY).ok();
        if name.starts_with(RESERVED_PREFIX) {
            let abandoned = fd.as_ref().is_some_and(|fd| {
                let free = rfs::flock(fd, FlockOperation::NonBlockingLockExclusive).is_ok();
                if free {
                    ungate(fd.as_fd());
                }
                free
            });
            out.push(RawListing {
                name: name.to_owned(),
                st,
                marker: Ok(None),
                held: None,
                record: None,
                abandoned_build: abandoned,
            });
            continue;
        }
        let (marker, held, record) = match &fd {
            Some(fd) => {
                let marker = read_marker(fd.as_fd()).map_err(|e| e.kind());
                let held = others_hold(fd.as_fd()).ok();
                let record = match marker {
                    Ok(Some(m)) if m.file => Record::read(fd.as_fd()).ok(),
                    _ => None,
                };
                (marker, held, record)
            }
            None => (Err(io::ErrorKind::PermissionDenied), None, None),
        };
        out.push(RawListing {
            name: name.to_owned(),
            st,
            marker,
            held,
            record,
            abandoned_build: false,
        });
    }
    Ok(out)
}

/// Removes a private build name whose builder died (a crash between
/// creating and publishing).
pub(crate) fn remove_abandoned_build(dir: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    let fd = open_entry(dir, name, OFlags::RDONLY)?;
    let st = fstat(fd.as_fd())?;
    if rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(false);
    }
    if !still_named(dir, name, &st)? {
        return Ok(false);
    }
    rfs::unlinkat(dir, name, AtFlags::empty())?;
    Ok(true)
}
