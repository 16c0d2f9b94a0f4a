//! The record a named file-backed section publishes: which file (by path,
//! device and inode) holds its data. Its bytes are untrusted.

use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::retry_intr;

const RECORD_MAGIC: &str = "sections-file 1";
/// Records are tiny; a larger entry is not one of ours.
const RECORD_MAX: usize = 8192;

/// Where a named file-backed section's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = format!("{RECORD_MAGIC}\n{} {}\n", self.dev, self.ino).into_bytes();
        out.extend_from_slice(self.path.as_os_str().as_bytes());
        out.push(b'\n');
        out
    }

    /// Parses a record; its bytes are untrusted (anyone with write access to
    /// the entry could have changed them).
    pub(super) fn read(fd: BorrowedFd<'_>) -> io::Result<Record> {
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
