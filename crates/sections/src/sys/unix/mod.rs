//! What Linux and macOS share: descriptors, `mmap`, `msync`, `mincore`,
//! `mlock`, and passing descriptors over Unix sockets.

pub(crate) mod guard;
mod transfer;

pub(crate) use guard::Guard;

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::mm::{self, MapFlags, MsyncFlags, ProtFlags};

pub(crate) use transfer::{receive_fd, send_fd};

use crate::types::Access;
use crate::types::Advice;

/// The size of a page, which is also the alignment of view offsets.
pub(crate) fn granularity() -> usize {
    rustix::param::page_size()
}

/// The page size, the unit of flushing, residency and locking.
pub(crate) fn page_size() -> usize {
    rustix::param::page_size()
}

pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub(crate) fn oflags_for(access: Access) -> OFlags {
    if access.needs_writable_handle() {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    }
}

/// A duplicate of `fd` without close-on-exec, so a child started with
/// `exec` inherits it.
pub(crate) fn inheritable_dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::io::dup(fd)?)
}

/// Whether `fd` was opened for writing.
pub(crate) fn fd_writable(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let fl = rfs::fcntl_getfl(fd)?;
    Ok(fl.contains(OFlags::RDWR) || fl.contains(OFlags::WRONLY))
}

/// Identity and metadata of an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub uid: u32,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub nlink: u64,
    pub is_regular: bool,
}

// The field types of `struct stat` differ between Linux and macOS.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn to_filestat(st: &rfs::Stat) -> FileStat {
    FileStat {
        dev: st.st_dev as u64,
        ino: st.st_ino,
        size: st.st_size as u64,
        uid: st.st_uid,
        mode: st.st_mode as u32 & 0o7777,
        nlink: st.st_nlink as u64,
        is_regular: rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::RegularFile,
    }
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    Ok(to_filestat(&rfs::fstat(fd)?))
}

pub(crate) fn set_len(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rfs::ftruncate(fd, len)?)
}

/// Makes the file `size` bytes long (it must not be longer) and, with
/// `reserve`, backs every byte from `from` up to `size` with storage now
/// (`fallocate`): a file system without room is an error here, not a write
/// lost at first touch later. Where the file system cannot reserve
/// (`EOPNOTSUPP`, and on macOS) only the size is set.
///
/// # References
/// fallocate(2), ftruncate(2)
pub(crate) fn resize(fd: BorrowedFd<'_>, from: u64, size: u64, reserve: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if reserve && size > from {
        loop {
            let failed = match rfs::fallocate(fd, rfs::FallocateFlags::empty(), from, size - from) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => break,
                // tmpfs over a memory cgroup's limit says ENOMEM.
                Err(rustix::io::Errno::NOMEM) => io::Error::from(io::ErrorKind::StorageFull),
                Err(e) => e.into(),
            };
            // tmpfs undoes a failed fallocate; ext4 and others may leave
            // the file partly extended: give the bytes back, so that the
            // file keeps its size as the error says.
            if fstat(fd).is_ok_and(|st| st.size > from && st.size <= size) {
                let _ = set_len(fd, from);
            }
            return Err(failed);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, reserve);
    if fstat(fd)?.size < size {
        set_len(fd, size)?;
    }
    Ok(())
}

pub(crate) fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rfs::fsync(fd)?)
}

/// Opens a regular file for a file-backed section, never following a
/// symbolic link in the last component. With `create_size`, a missing file
/// is created (mode 0600) at that size and a shorter one is extended to it.
pub(crate) fn open_file(
    path: &Path,
    access: Access,
    create_size: Option<u64>,
    reserve: bool,
) -> io::Result<OwnedFd> {
    let flags = oflags_for(access) | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let mode = Mode::from_raw_mode(0o600);
    let (fd, created) = match rfs::open(path, flags, mode) {
        Err(rustix::io::Errno::NOENT) if create_size.is_some() => (
            rfs::open(path, flags | OFlags::CREATE | OFlags::EXCL, mode)?,
            true,
        ),
        other => (other?, false),
    };
    let st = fstat(fd.as_fd())?;
    if !st.is_regular {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if let Some(size) = create_size {
        if st.size < size {
            // Only the bytes we add are reserved: the user's own holes stay.
            if let Err(e) = resize(fd.as_fd(), st.size, size, reserve) {
                if created {
                    // Leave nothing behind: the file was ours.
                    let _ = rfs::unlink(path);
                }
                return Err(e);
            }
        }
    }
    Ok(fd)
}

/// Maps `len` bytes of `fd` at `offset` with `access`.
///
/// # Safety
/// The caller owns the returned mapping and must unmap it exactly once with
/// [`unmap`]; `offset` must be a multiple of [`granularity`].
pub(crate) unsafe fn map(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    access: Access,
) -> io::Result<*mut u8> {
    let mut prot = ProtFlags::READ;
    if access.writes() {
        prot |= ProtFlags::WRITE;
    }
    if access.executes() {
        prot |= ProtFlags::EXEC;
    }
    let flags = if access.is_private() {
        MapFlags::PRIVATE
    } else {
        MapFlags::SHARED
    };
    if len < HUGE_ALIGN {
        // SAFETY: a fresh mapping chosen by the kernel (null hint) cannot
        // alias any existing Rust object; the caller takes ownership of it.
        let ptr = unsafe { mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset)? };
        return Ok(ptr.cast());
    }
    // SAFETY: as above; `map_congruent` only maps over its own reservation.
    unsafe { map_congruent(fd, offset, len, prot, flags) }
}

/// Large views are placed so that their address and file offset agree
/// modulo 2 MiB. Only then can the kernel map a huge page or a large folio
/// of the section with one page-table entry (or the CPU coalesce TLB
/// entries of contiguous pages); a view at an arbitrary address is stuck
/// with 4 KiB translations whatever the memory behind it.
const HUGE_ALIGN: usize = 2 << 20;

fn reserve_flags() -> MapFlags {
    #[cfg(target_os = "linux")]
    return MapFlags::PRIVATE | MapFlags::NORESERVE;
    #[cfg(not(target_os = "linux"))]
    MapFlags::PRIVATE
}

/// # Safety
/// As [`map`].
unsafe fn map_congruent(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    prot: ProtFlags,
    flags: MapFlags,
) -> io::Result<*mut u8> {
    let page = granularity();
    let span = len.div_ceil(page) * page;
    let reserve_len = span + HUGE_ALIGN;
    // SAFETY: reserves address space nobody else uses (PROT_NONE, no
    // memory committed); every part of it is either replaced below or
    // unmapped before returning.
    let reserve = unsafe {
        mm::mmap_anonymous(
            std::ptr::null_mut(),
            reserve_len,
            ProtFlags::empty(),
            reserve_flags(),
        )?
    } as usize;
    let want = (offset % HUGE_ALIGN as u64) as usize;
    let start = reserve + (want + HUGE_ALIGN - reserve % HUGE_ALIGN) % HUGE_ALIGN;
    // SAFETY: `start..start+span` lies inside our reservation (start -
    // reserve < HUGE_ALIGN), so MAP_FIXED replaces only that.
    let mapped = unsafe {
        mm::mmap(
            start as *mut c_void,
            len,
            prot,
            flags | MapFlags::FIXED,
            fd,
            offset,
        )
    };
    let trim = |from: usize, to: usize| {
        if to > from {
            // SAFETY: an unused piece of our own reservation.
            let _ = unsafe { mm::munmap(from as *mut c_void, to - from) };
        }
    };
    match mapped {
        Ok(ptr) => {
            trim(reserve, start);
            trim(start + span, reserve + reserve_len);
            Ok(ptr.cast())
        }
        Err(e) => {
            trim(reserve, reserve + reserve_len);
            Err(e.into())
        }
    }
}

/// # Safety
/// `ptr..ptr+len` must be a mapping made by [`map`] that nothing uses any more.
pub(crate) unsafe fn unmap(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    unsafe { mm::munmap(ptr.cast(), len) }.map_err(Into::into)
}

/// `msync` over a page-aligned range of a mapping.
///
/// # Safety
/// The range must lie within a live mapping.
pub(crate) unsafe fn flush(ptr: *mut u8, len: usize, wait: bool) -> io::Result<()> {
    let flags = if wait {
        MsyncFlags::SYNC
    } else {
        MsyncFlags::ASYNC
    };
    // SAFETY: guaranteed by the caller; msync does not change the contents.
    unsafe { mm::msync(ptr.cast(), len, flags) }.map_err(Into::into)
}

/// # Safety
/// The range must lie within a live mapping.
pub(crate) unsafe fn advise(ptr: *mut u8, len: usize, advice: Advice) -> io::Result<()> {
    let advice = match advice {
        Advice::Normal => libc::MADV_NORMAL,
        Advice::Sequential => libc::MADV_SEQUENTIAL,
        Advice::Random => libc::MADV_RANDOM,
        Advice::WillNeed => libc::MADV_WILLNEED,
        #[cfg(target_os = "linux")]
        Advice::HugePage => libc::MADV_HUGEPAGE,
        #[cfg(target_os = "linux")]
        Advice::NoHugePage => libc::MADV_NOHUGEPAGE,
        // No transparent huge pages to ask for elsewhere: a hint, ignored.
        #[cfg(not(target_os = "linux"))]
        Advice::HugePage | Advice::NoHugePage => return Ok(()),
    };
    raw_madvise(ptr, len, advice)
}

fn raw_madvise(ptr: *mut u8, len: usize, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: none of the advice values passed here discards data; the
    // callers guarantee the range is mapped.
    let rc = unsafe { libc::madvise(ptr.cast::<c_void>(), len, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a range resident without touching it from user space, so that a
/// page that cannot be read in (a file truncated behind our back, no
/// memory) is an error here instead of a SIGBUS later.
///
/// Uses `MADV_POPULATE_READ`/`MADV_POPULATE_WRITE` (Linux 5.14); on older
/// kernels falls back to `MADV_WILLNEED`, which starts read-ahead but
/// cannot report failures. Returns whether the pages were really populated.
///
/// # Safety
/// The range must lie within a live mapping.
pub(crate) unsafe fn prefetch(ptr: *mut u8, len: usize, write: bool) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        const MADV_POPULATE_READ: libc::c_int = 22;
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        let advice = if write {
            MADV_POPULATE_WRITE
        } else {
            MADV_POPULATE_READ
        };
        loop {
            match raw_madvise(ptr, len, advice) {
                Ok(()) => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "part of the range lies beyond the end of the backing file",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = write;
    // Kernels without MADV_POPULATE_* (Linux before 5.14, macOS): only ask
    // for read-ahead, which cannot report failures.
    raw_madvise(ptr, len, libc::MADV_WILLNEED)?;
    Ok(false)
}

/// How many of the pages of a page-aligned range are resident.
///
/// # Safety
/// The range must lie within a live mapping.
pub(crate) unsafe fn resident_pages(ptr: *mut u8, len: usize) -> io::Result<usize> {
    let page = granularity();
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `vec` has one byte per page of the range, as mincore requires.
    let rc = unsafe { libc::mincore(ptr.cast::<c_void>(), len, vec.as_mut_ptr().cast()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|&&b| b & 1 == 1).count())
}

/// # Safety
/// The range must lie within a live mapping.
pub(crate) unsafe fn lock(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller; mlock does not change contents.
    unsafe { mm::mlock(ptr.cast(), len) }.map_err(Into::into)
}

/// # Safety
/// The range must lie within a live mapping.
pub(crate) unsafe fn unlock(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    unsafe { mm::munlock(ptr.cast(), len) }.map_err(Into::into)
}

/// What limits locking, for the error message.
pub(crate) fn lock_limit_hint() -> String {
    let limit = match rustix::process::getrlimit(rustix::process::Resource::Memlock).current {
        Some(l) => format!("{l} bytes"),
        None => "unlimited".to_owned(),
    };
    format!("RLIMIT_MEMLOCK is {limit}: raise it (ulimit -l) or grant CAP_IPC_LOCK")
}

/// What adopting a descriptor yields: the object, its kind, its access.
pub(crate) type Adopted<O> = crate::error::Result<(O, crate::types::Kind, Access)>;

/// Parses a token made by `Object::inheritable` (`fd:N:ACCESS:FILE`) and
/// adopts the descriptor with `adopt`; the token's access is narrowed to
/// what the descriptor allows.
pub(crate) fn adopt_token<O>(
    token: &str,
    adopt: fn(OwnedFd, &'static str) -> Adopted<O>,
) -> Adopted<O> {
    use crate::error::{Error, ErrorKind};
    use crate::types::Kind;
    const OP: &str = "adopt inherited section";
    let bad = || {
        Error::new(ErrorKind::InvalidName, OP)
            .with_detail(format!("'{token}' is not a section token"))
    };
    let mut parts = token.split(':');
    if parts.next() != Some("fd") {
        return Err(bad());
    }
    let fd: i32 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let sent = parts
        .next()
        .and_then(|v| v.parse().ok())
        .and_then(Access::from_tag)
        .ok_or_else(bad)?;
    let is_file = parts.next() == Some("1");
    // The number came in a string: the descriptor is not ours to close (it
    // may be stdin, a file someone else writes, or the `Inheritable` of
    // this very process). Adopt a duplicate; the inherited descriptor stays
    // as it is, whatever happens next.
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on any integer is harmless: it fails
    // with EBADF for a number that is not an open descriptor, and otherwise
    // makes a new one that nothing else owns.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(
            Error::os(OP, io::Error::last_os_error()).with_detail(format!("descriptor {fd}"))
        );
    }
    // SAFETY: `dup` was just made by fcntl for this call alone.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
    let (object, _, actual) = adopt(fd, OP)?;
    let access = sent.within(actual);
    Ok((
        object,
        if is_file { Kind::File } else { Kind::Anonymous },
        access,
    ))
}

/// A section over the regular file at `path`.
pub(crate) fn open_path(path: &Path, access: Access) -> Adopted<crate::sys::Object> {
    const OP: &str = "open file";
    let fd = open_file(path, access, None, false).map_err(|e| {
        crate::error::Error::os(OP, e).with_detail(format!("file {}", path.display()))
    })?;
    crate::sys::Object::adopt(fd, OP)
}

/// A section over an open file, with the access it was opened with.
pub(crate) fn from_file(file: &std::fs::File) -> Adopted<crate::sys::Object> {
    const OP: &str = "open file";
    let fd = file
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| crate::error::Error::os(OP, e))?;
    crate::sys::Object::adopt(fd, OP)
}

/// A duplicate of `fd` that children started with `exec` inherit, and the
/// token (`fd:N:ACCESS:FILE`) that tells such a child what it is; see
/// [`adopt_token`].
pub(crate) fn inheritable_token(
    fd: BorrowedFd<'_>,
    access: Access,
    kind: crate::types::Kind,
) -> io::Result<(OwnedFd, String)> {
    let fd = inheritable_dup(fd)?;
    let token = format!(
        "fd:{}:{}:{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        access.tag(),
        u8::from(kind.is_file())
    );
    Ok((fd, token))
}

/// What adopting a descriptor finds out: its metadata and the access it
/// was opened with.
pub(crate) fn describe_fd(
    fd: BorrowedFd<'_>,
    op: &'static str,
) -> crate::error::Result<(FileStat, Access)> {
    let st = fstat(fd).map_err(|e| crate::error::Error::os(op, e))?;
    let writable = fd_writable(fd).map_err(|e| crate::error::Error::os(op, e))?;
    Ok((
        st,
        if writable {
            Access::ReadWrite
        } else {
            Access::Read
        },
    ))
}
