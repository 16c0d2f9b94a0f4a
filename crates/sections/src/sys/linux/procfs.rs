//! Who uses a file: processes with a descriptor to it or a mapping of it,
//! found in `/proc/PID/fd` and `/proc/PID/maps`. Reading these changes
//! nothing.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, CWD};

/// A file's identity as `/proc/PID/maps` shows it: device major, minor,
/// inode.
pub(crate) type FileKey = (u32, u32, u64);

pub(crate) fn file_key(dev: u64, ino: u64) -> FileKey {
    (rfs::major(dev), rfs::minor(dev), ino)
}

/// One process's use of one file.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcUse {
    pub pid: u32,
    pub comm: String,
    pub has_fd: bool,
    /// `(start, end, perms)` of each mapping.
    pub maps: Vec<(u64, u64, String)>,
}

/// Scans every process this user may inspect for descriptors and mappings
/// of the files in `keys`. Processes that vanish or deny access are skipped.
pub(crate) fn users_of(keys: &[FileKey]) -> io::Result<HashMap<FileKey, Vec<ProcUse>>> {
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

/// Bytes of `path` resident in memory (its page cache), found by mapping
/// it read-only and asking `mincore`. Opens the file without taking any
/// lock, so it does not change a section's lifetime.
pub(crate) fn resident_bytes(path: &Path) -> io::Result<u64> {
    let fd = rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let size = usize::try_from(rfs::fstat(&fd)?.st_size)
        .map_err(|_| io::Error::other("file too large to inspect"))?;
    if size == 0 {
        return Ok(0);
    }
    // SAFETY: a fresh read-only mapping owned by this function, unmapped
    // before it returns; its contents are never read, only their residency.
    let ptr = unsafe { crate::sys::map(fd.as_fd(), 0, size, crate::section::Access::Read)? };
    // SAFETY: `ptr..ptr+size` is the mapping made above.
    let pages = unsafe { crate::sys::resident_pages(ptr, size) };
    // SAFETY: as above; nothing refers to the mapping any more.
    let _ = unsafe { crate::sys::unmap(ptr, size) };
    Ok(pages? as u64 * crate::sys::granularity() as u64)
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
