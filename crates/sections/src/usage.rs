//! Who holds or maps the sections of a namespace, and how much of each is
//! resident. Inspecting changes no lifetime state.
//!
//! Floor 5: uses `inspect`'s entries and `sys`.

use crate::error::{Error, ErrorKind, Result};
use crate::inspect::EntryInfo;
use crate::sys;
use crate::types::Namespace;

/// A mapping of a section in some process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRange {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions as the OS shows them, e.g. `rw-s` (`s` shared, `p` private).
    pub perms: String,
}

/// A process that holds a descriptor of a section or maps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionUser {
    /// Process id.
    pub pid: u32,
    /// The process's command name.
    pub command: String,
    /// Whether it has a descriptor of the section open (every holder does).
    pub holds_descriptor: bool,
    /// Its mappings of the section.
    pub maps: Vec<MappedRange>,
}

/// How one entry is used right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    /// Processes that have it open or mapped (those this user may inspect).
    pub users: Vec<SectionUser>,
    /// Bytes of it resident in memory, when that could be found out.
    pub resident_bytes: Option<u64>,
}

/// The usage of each of `entries` (as returned by [`list`](crate::list)),
/// in the same order: one scan of `/proc` for all of them. `Unsupported`
/// on Windows and macOS, where sections cannot be listed.
///
/// # Examples
///
/// ```
/// use sections::{Access, ErrorKind, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let section = Section::options().size(4096).namespace(&ns).create("watched")?;
/// let _view = section.map_all(Access::ReadWrite)?;
///
/// match sections::list(&ns) {
///     Ok(entries) => {
///         let usage = sections::usage(&ns, &entries)?;
///         let me = usage[0].users.iter().find(|u| u.pid == std::process::id());
///         let me = me.expect("this process holds and maps the section");
///         assert!(me.holds_descriptor);
///         assert_eq!(me.maps.len(), 1);
///     }
///     Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported), // Windows, macOS
/// }
/// # Ok(()) }
/// ```
pub fn usage(namespace: &Namespace, entries: &[EntryInfo]) -> Result<Vec<Usage>> {
    const OP: &str = "inspect processes";
    let ids: Vec<(u64, u64)> = entries.iter().flat_map(|e| e.ids.iter().copied()).collect();
    let by_id = sys::users_of(&ids).map_err(|e| {
        if e.kind() == std::io::ErrorKind::Unsupported {
            Error::new(ErrorKind::Unsupported, "usage").with_detail(e.to_string())
        } else {
            Error::os(OP, e)
        }
    })?;
    Ok(entries
        .iter()
        .map(|entry| {
            let mut users: Vec<SectionUser> = Vec::new();
            for id in &entry.ids {
                for u in by_id.get(id).into_iter().flatten() {
                    let maps = u.maps.iter().map(|(start, end, perms)| MappedRange {
                        start: *start,
                        end: *end,
                        perms: perms.clone(),
                    });
                    match users.iter_mut().find(|x| x.pid == u.pid) {
                        Some(existing) => {
                            existing.holds_descriptor |= u.has_fd;
                            existing.maps.extend(maps);
                        }
                        None => users.push(SectionUser {
                            pid: u.pid,
                            command: u.comm.clone(),
                            holds_descriptor: u.has_fd,
                            maps: maps.collect(),
                        }),
                    }
                }
            }
            users.sort_by_key(|u| u.pid);
            let data = entry
                .file
                .clone()
                .unwrap_or_else(|| namespace.dir().join(&entry.name));
            Usage {
                users,
                resident_bytes: sys::resident_bytes(&data).ok(),
            }
        })
        .collect())
}
