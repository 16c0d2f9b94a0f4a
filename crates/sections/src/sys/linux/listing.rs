//! Listing a namespace without changing anything: every regular file, what
//! its mode bits, lock and first bytes say, and the leftovers of builders
//! that died.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FlockOperation, Mode, OFlags, CWD};

use super::lifetime::{open_entry, others_hold, still_named, ungate, Marker};
use super::record::Record;
use crate::sys::unix::fstat;
use crate::sys::Listing;
use crate::types::RESERVED_PREFIX;

/// How many leading bytes of a memory entry a listing reads.
const HEAD_LEN: usize = 512;

/// Lists the regular files of a namespace. Takes no lock that could change
/// a decision of anyone else (only `F_OFD_GETLK`, which takes nothing, and a
/// non-blocking `flock` probe on private build names).
pub(crate) fn list_namespace(dir: &Path) -> io::Result<Vec<Listing>> {
    let mut out = Vec::new();
    let dirfd = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for ent in rfs::Dir::read_from(&dirfd)? {
        let ent = ent?;
        let Ok(name) = std::str::from_utf8(ent.file_name().to_bytes()) else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        if let Some(raw) = describe(dir, name) {
            out.push(raw);
        }
    }
    Ok(out)
}

/// One regular file of a namespace, as [`list_namespace`] describes it;
/// `None` if `dir/name` is missing or not a regular file.
pub(crate) fn list_entry(dir: &Path, name: &str) -> io::Result<Option<Listing>> {
    Ok(describe(dir, name))
}

fn describe(dir: &Path, name: &str) -> Option<Listing> {
    let path = dir.join(name);
    let st = rfs::statat(CWD, &path, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let st = crate::sys::unix::to_filestat(&st);
    if !st.is_regular {
        return None;
    }
    let fd = open_entry(&path, OFlags::RDONLY).ok();
    let marker = Marker::from_mode(st.mode);
    let private = name.starts_with(RESERVED_PREFIX);
    let abandoned_build = private
        && fd.as_ref().is_some_and(|fd| {
            let free = rfs::flock(fd, FlockOperation::NonBlockingLockExclusive).is_ok();
            if free {
                ungate(fd.as_fd());
            }
            free
        });
    let held = fd
        .as_ref()
        .filter(|_| !private)
        .and_then(|fd| others_hold(fd.as_fd()).ok());
    let record = fd
        .as_ref()
        .filter(|_| marker.file && !private)
        .and_then(|fd| Record::read(fd.as_fd()).ok());
    let head = fd
        .as_ref()
        .filter(|_| !marker.file && !private)
        .map(|fd| {
            let mut buf = vec![0u8; HEAD_LEN];
            let n = rustix::io::pread(fd, &mut buf[..], 0).unwrap_or(0);
            buf.truncate(n);
            buf
        })
        .unwrap_or_default();
    Some(Listing {
        name: name.to_owned(),
        id: (st.dev, st.ino),
        size: st.size,
        uid: st.uid,
        mode: st.mode & 0o777,
        lifetime: marker.lifetime,
        file_record: marker.file,
        held,
        backing: record.map(|r| (r.path, (r.dev, r.ino))),
        head,
        abandoned_build,
    })
}

/// Removes a private build name whose builder died (a crash between
/// creating and publishing, on file systems without `O_TMPFILE`).
pub(crate) fn remove_abandoned_build(path: &Path) -> io::Result<bool> {
    let fd = open_entry(path, OFlags::RDONLY)?;
    let st = fstat(fd.as_fd())?;
    if rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(false);
    }
    if !still_named(path, &st)? {
        return Ok(false);
    }
    rfs::unlink(path)?;
    Ok(true)
}
