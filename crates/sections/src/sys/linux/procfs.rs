//! Who uses a file: processes with a descriptor to it or a mapping of it,
//! found in `/proc/PID/fd` and `/proc/PID/maps`. Reading these changes
//! nothing.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use crate::sys::ProcUse;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, CWD};

/// A file's identity as `/proc/PID/maps` shows it: device major, minor,
/// inode.
type FileKey = (u32, u32, u64);

fn file_key(dev: u64, ino: u64) -> FileKey {
    (rfs::major(dev), rfs::minor(dev), ino)
}

/// Scans every process this user may inspect for descriptors and mappings
/// of the files `ids` names (`(st_dev, st_ino)`). Processes that vanish or
/// deny access are skipped.
pub(crate) fn users_of(ids: &[(u64, u64)]) -> io::Result<HashMap<(u64, u64), Vec<ProcUse>>> {
    let keys: Vec<FileKey> = ids.iter().map(|&(dev, ino)| file_key(dev, ino)).collect();
    let by_key = users_by_key(&keys)?;
    Ok(ids
        .iter()
        .filter_map(|&id| Some((id, by_key.get(&file_key(id.0, id.1))?.clone())))
        .collect())
}

fn users_by_key(keys: &[FileKey]) -> io::Result<HashMap<FileKey, Vec<ProcUse>>> {
    let mut out: HashMap<FileKey, Vec<ProcUse>> = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    for ent in std::fs::read_dir("/proc")? {
        let Ok(ent) = ent else { continue };
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let base = ent.path();
        let mut found: HashMap<FileKey, ProcUse> = HashMap::new();
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            for fd in fds.flatten() {
                // stat follows the magic link to the open file itself.
                let Ok(st) = rfs::statat(CWD, fd.path(), AtFlags::empty()) else {
                    continue;
                };
                let key = file_key(st.st_dev, st.st_ino);
                if keys.contains(&key) {
                    found.entry(key).or_default().has_fd = true;
                }
            }
        }
        if let Ok(maps) = std::fs::read_to_string(base.join("maps")) {
            for line in maps.lines() {
                if let Some((key, start, end, perms)) = parse_maps_line(line) {
                    if keys.contains(&key) {
                        found
                            .entry(key)
                            .or_default()
                            .maps
                            .push((start, end, perms.to_owned()));
                    }
                }
            }
        }
        if found.is_empty() {
            continue;
        }
        let comm = std::fs::read_to_string(base.join("comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        for (key, mut usage) in found {
            usage.pid = pid;
            usage.comm = comm.clone();
            out.entry(key).or_default().push(usage);
        }
    }
    for users in out.values_mut() {
        users.sort_by_key(|u| u.pid);
    }
    Ok(out)
}

/// `start-end perms offset major:minor inode [path]`
fn parse_maps_line(line: &str) -> Option<(FileKey, u64, u64, &str)> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let inode: u64 = fields.next()?.parse().ok()?;
    if inode == 0 {
        return None;
    }
    let key = (
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
        inode,
    );
    Some((
        key,
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
        perms,
    ))
}

/// Bytes of the file at `path` resident in memory (its page cache, or a
/// tmpfs file's pages), without taking any lock, so it does not change a
/// section's lifetime.
///
/// The cost follows what the file holds, not its size: `SEEK_DATA` and
/// `SEEK_HOLE` skip holes (a 4 TiB sparse file with nothing in it costs two
/// system calls), and the data is mapped and asked about (`mincore`) in
/// windows of [`WINDOW`] bytes, so memory stays small and a kill is acted
/// on between windows. Past [`SCAN_LIMIT`] bytes of data the answer is
/// "unknown" (`Err`) rather than a long scan.
pub(crate) fn resident_bytes(path: &Path) -> io::Result<u64> {
    let fd = rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rfs::fstat(&fd)?;
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let size = st.st_size as u64;
    let page = crate::sys::page_size() as u64;
    let mut resident = 0u64;
    let mut scanned = 0u64;
    let mut at = 0u64;
    while at < size {
        let Some((data, hole)) = next_extent(fd.as_fd(), at, size)? else {
            break;
        };
        let mut from = data / page * page;
        while from < hole {
            let len = (hole - from).min(WINDOW);
            scanned += len;
            if scanned > SCAN_LIMIT {
                return Err(io::Error::other("too much data to scan for residency"));
            }
            resident += resident_window(fd.as_fd(), from, len as usize)? as u64 * page;
            from += len;
        }
        at = hole;
    }
    Ok(resident)
}

/// Bytes mapped and asked about at once.
const WINDOW: u64 = 256 << 20;
/// Bytes of data scanned at most for one file.
const SCAN_LIMIT: u64 = 1 << 40;

/// The next `(data, hole)` extent at or after `at`: data from `data` up to
/// `hole`. `None` when only a hole is left. File systems without
/// `SEEK_DATA` report the whole rest as data.
fn next_extent(
    fd: std::os::fd::BorrowedFd<'_>,
    at: u64,
    size: u64,
) -> io::Result<Option<(u64, u64)>> {
    use rustix::fs::SeekFrom;
    let data = match rfs::seek(fd, SeekFrom::Data(at)) {
        Ok(data) => data,
        Err(rustix::io::Errno::NXIO) => return Ok(None),
        Err(rustix::io::Errno::INVAL) => return Ok(Some((at, size))),
        Err(e) => return Err(e.into()),
    };
    let hole = match rfs::seek(fd, SeekFrom::Hole(data)) {
        Ok(hole) => hole.min(size),
        Err(rustix::io::Errno::NXIO) => size,
        Err(e) => return Err(e.into()),
    };
    Ok(Some((data, hole.max(data))))
}

/// Resident pages of `len` bytes of `fd` at the page-aligned `offset`.
fn resident_window(fd: std::os::fd::BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<usize> {
    // SAFETY: a fresh read-only mapping owned by this function, unmapped
    // before it returns; its contents are never read, only their residency.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::SHARED,
            fd,
            offset,
        )?
    };
    // SAFETY: `ptr..ptr+len` is the mapping made above.
    let pages = unsafe { crate::sys::resident_pages(ptr.cast(), len) };
    // SAFETY: as above; nothing refers to the mapping any more.
    let _ = unsafe { rustix::mm::munmap(ptr, len) };
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let line = "7f12a000-7f12b000 rw-s 00000000 00:1b 4242                       /dev/shm/x";
        let (key, start, end, perms) = parse_maps_line(line).unwrap();
        assert_eq!(key, (0, 0x1b, 4242));
        assert_eq!((start, end, perms), (0x7f12a000, 0x7f12b000, "rw-s"));
        assert!(parse_maps_line("7f12a000-7f12b000 rw-p 00000000 00:00 0").is_none());
        assert!(parse_maps_line("garbage").is_none());
    }
}
