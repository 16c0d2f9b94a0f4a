//! Section names and the namespace they live in.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};
use crate::section::Lifetime;
use crate::sys;

/// The longest name, in bytes (the file-name limit of Linux file systems).
pub const MAX_NAME_LEN: usize = 255;

/// Names beginning with this are the crate's own files (sections being
/// built, before they are published) and are refused as section names.
pub(crate) const RESERVED_PREFIX: &str = ".sections-";

/// Where named sections live: a directory, `/dev/shm` by default.
///
/// A section named `telemetry` in the default namespace is the file
/// `/dev/shm/telemetry`, the very object that `shm_open("/telemetry")` in C,
/// `SharedMemory("telemetry")` in Python and Boost.Interprocess open.
/// [`Namespace::at`] picks any other directory, the analog of a Windows
/// private namespace: names there are invisible to the default namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    dir: PathBuf,
}

impl Namespace {
    /// A namespace rooted at `dir`, which must be an existing directory
    /// (checked when a section is created or opened in it).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Namespace { dir: dir.into() }
    }

    /// The directory of this namespace.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for Namespace {
    /// `/dev/shm`, the POSIX shared-memory namespace, on Linux; the
    /// session's `Local\` object namespace on Windows.
    fn default() -> Self {
        #[cfg(windows)]
        return Namespace::at("Local\\");
        #[cfg(not(windows))]
        Namespace::at("/dev/shm")
    }
}

/// Checks that `name` is usable as a section name.
///
/// A valid name is 1 to [`MAX_NAME_LEN`] bytes, contains no `/` and no NUL,
/// is not `.` or `..`, and does not begin with the crate's reserved prefix
/// `.sections-`. A leading `/` (as in `shm_open("/name")`) is not accepted:
/// pass the bare name. Nothing that passes can name a file outside the
/// namespace directory.
pub fn validate_name(name: &str) -> Result<()> {
    // Windows object names may say which session namespace they live in.
    #[cfg(windows)]
    let name = name
        .strip_prefix("Local\\")
        .or_else(|| name.strip_prefix("Global\\"))
        .unwrap_or(name);
    let reason = if name.is_empty() {
        Some("a name cannot be empty".to_owned())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "a name is at most {MAX_NAME_LEN} bytes, this one is {}",
            name.len()
        ))
    } else if name.contains('/') {
        Some("a name cannot contain '/'".to_owned())
    } else if cfg!(windows) && name.contains('\\') {
        Some("a name cannot contain '\\' beyond a Local\\ or Global\\ prefix".to_owned())
    } else if name.contains('\0') {
        Some("a name cannot contain a NUL byte".to_owned())
    } else if name == "." || name == ".." {
        Some(format!("'{name}' is not a name"))
    } else if name.starts_with(RESERVED_PREFIX) {
        Some(format!(
            "names beginning with '{RESERVED_PREFIX}' are reserved for sections being built"
        ))
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::new(ErrorKind::InvalidName, "validate name")
            .with_name(name)
            .with_detail(reason)),
    }
}

/// What an entry of a namespace is backed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Memory (a tmpfs file): a named memory section, or a segment made
    /// by `shm_open`, Python or Boost.
    Memory,
    /// A record naming a backing file (a named file-backed section).
    File,
}

/// The state of a sync object or channel as a listing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectState {
    /// A mutex.
    Mutex {
        /// Whether it is held (or was, by a holder that died).
        held: bool,
        /// The holding process, when it is alive and the OS tells.
        holder: Option<u32>,
    },
    /// An event.
    Event {
        /// Whether it is set.
        set: bool,
        /// Manual-reset (true) or auto-reset.
        manual: bool,
    },
    /// A semaphore.
    Semaphore {
        /// Counts available.
        count: u32,
        /// The maximum.
        max: u32,
    },
    /// A channel.
    Channel {
        /// Ring size in bytes.
        capacity: u64,
        /// Bytes of messages not yet received.
        fill: u64,
        /// Senders connected.
        senders: u32,
        /// Whether a receiver is connected.
        receiver: bool,
    },
}

/// One entry of a namespace, as [`list`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's name.
    pub name: String,
    /// Memory or file.
    pub kind: EntryKind,
    /// Size in bytes: the memory's, or the backing file's (0 if that file
    /// is gone).
    pub size: u64,
    /// The owner's user id.
    pub owner_uid: u32,
    /// Permission bits, e.g. `0o600` (without the bits that mark how the
    /// library made the entry).
    pub mode: u32,
    /// Counted or persistent; entries made by other programs are persistent.
    pub lifetime: Lifetime,
    /// Whether any process holds the section (`None` when the entry could
    /// not be opened to ask). Only counted sections are held.
    pub held: Option<bool>,
    /// A counted section whose last holder died: not live, never opened,
    /// removed by [`gc`] and reclaimed by the next create.
    pub stale: bool,
    /// The backing file of a file-backed entry.
    pub file: Option<PathBuf>,
    /// What a sync object ([`crate::sync`]) or channel
    /// ([`crate::channel`]) stored in this entry says about itself; `None`
    /// for plain sections.
    pub object: Option<ObjectState>,
    /// `(st_dev, st_ino)` of the entry and of its backing file, if any.
    pub(crate) ids: Vec<(u64, u64)>,
}

#[cfg(target_os = "linux")]
fn dir_error(op: &'static str, namespace: &Namespace, e: std::io::Error) -> Error {
    Error::os(op, e).with_detail(format!("namespace directory {}", namespace.dir().display()))
}

/// Lists every regular file of a namespace, sections made by this library
/// and segments made by other programs alike, without changing any
/// lifetime state: no lock is taken that could make a concurrent last
/// holder believe it is not the last.
#[cfg(target_os = "linux")]
pub fn list(namespace: &Namespace) -> Result<Vec<EntryInfo>> {
    const OP: &str = "list";
    let raw = sys::list_namespace(namespace.dir()).map_err(|e| dir_error(OP, namespace, e))?;
    let mut out: Vec<EntryInfo> = raw
        .into_iter()
        .filter(|r| !r.name.starts_with(RESERVED_PREFIX))
        .map(entry_info)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The one entry `name` of a namespace, as [`list`] describes it, without
/// looking at any other entry. `NotFound` if there is none; `WrongKind` if
/// the name is something other than a regular file (a directory, a FIFO, a
/// symbolic link, which is never followed).
#[cfg(target_os = "linux")]
pub fn entry(namespace: &Namespace, name: &str) -> Result<EntryInfo> {
    const OP: &str = "inspect";
    validate_name(name).map_err(|e| e.with_op(OP))?;
    match sys::list_entry(namespace.dir(), name) {
        Some(raw) => Ok(entry_info(raw)),
        None => Err(match sys::entry_type(&namespace.dir().join(name)) {
            Some(what) => Error::new(ErrorKind::WrongKind, OP)
                .with_name(name)
                .with_detail(format!("the entry is {what}, not a section")),
            None => Error::new(ErrorKind::NotFound, OP)
                .with_name(name)
                .with_detail(format!("no such section in {}", namespace.dir().display())),
        }),
    }
}

#[cfg(target_os = "linux")]
fn entry_info(r: sys::RawListing) -> EntryInfo {
    let marker = r.marker;
    let file = r.record.as_ref().map(|rec| rec.path.clone());
    let mut ids = vec![(r.st.dev, r.st.ino)];
    ids.extend(r.record.as_ref().map(|rec| (rec.dev, rec.ino)));
    let size = match &file {
        Some(path) => std::fs::metadata(path).map_or(0, |md| md.len()),
        None if marker.file => 0,
        None => r.st.size,
    };
    EntryInfo {
        name: r.name,
        kind: if marker.file {
            EntryKind::File
        } else {
            EntryKind::Memory
        },
        size,
        owner_uid: r.st.uid,
        mode: r.st.mode & 0o777,
        lifetime: marker.lifetime,
        held: r.held,
        stale: marker.lifetime == Lifetime::Counted && r.held == Some(false),
        file,
        object: crate::sync::describe(&r.head).or_else(|| crate::channel::describe(&r.head)),
        ids,
    }
}

/// Removes the stale names of a namespace (counted sections whose last
/// holder died) and the leftovers of sections whose creator died before
/// publishing them. Returns the names removed. Live and persistent
/// sections are never touched: each removal re-checks, under the name's
/// lock, that nobody holds it.
#[cfg(target_os = "linux")]
pub fn gc(namespace: &Namespace) -> Result<Vec<String>> {
    const OP: &str = "gc";
    let raw = sys::list_namespace(namespace.dir()).map_err(|e| dir_error(OP, namespace, e))?;
    let mut removed = Vec::new();
    for r in raw {
        let gone = if r.abandoned_build {
            sys::remove_abandoned_build(&namespace.dir().join(&r.name))
        } else if r.marker.lifetime == Lifetime::Counted && r.held == Some(false) {
            sys::reclaim_stale(&namespace.dir().join(&r.name))
        } else {
            continue;
        };
        match gone {
            Ok(true) => removed.push(r.name),
            Ok(false) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::os(OP, e).with_name(&r.name)),
        }
    }
    removed.sort();
    Ok(removed)
}

/// Listing is not available on Windows or macOS, which have no API to
/// enumerate their named sections.
#[cfg(not(target_os = "linux"))]
pub fn list(_namespace: &Namespace) -> Result<Vec<EntryInfo>> {
    Err(Error::new(ErrorKind::Unsupported, "list").with_detail(sys::LISTING_UNSUPPORTED))
}

/// On Windows the kernel removes a name with its last handle, even when
/// the holder was killed, and macOS sections are persistent: nothing is
/// ever stale, and there is nothing to collect.
#[cfg(not(target_os = "linux"))]
pub fn gc(_namespace: &Namespace) -> Result<Vec<String>> {
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "a",
            "telemetry",
            "psm_12ab",
            ".hidden",
            "x.y-z_1",
            &"n".repeat(255),
        ] {
            validate_name(name).unwrap();
        }
    }

    #[test]
    fn rejects_hostile_names() {
        let long = "n".repeat(256);
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/abs",
            "nul\0byte",
            long.as_str(),
            ".sections-tmp",
        ] {
            let err = validate_name(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}");
        }
    }
}
