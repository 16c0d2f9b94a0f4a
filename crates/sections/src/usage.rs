//! Who holds or maps the sections of a namespace, and how much of each is
//! resident. Inspecting changes no lifetime state.

use crate::error::{Error, Result};
use crate::name::{EntryInfo, Namespace};
use crate::sys;

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
/// in the same order: one scan of `/proc` for all of them.
#[cfg(target_os = "linux")]
pub fn usage(namespace: &Namespace, entries: &[EntryInfo]) -> Result<Vec<Usage>> {
    let keys: Vec<sys::FileKey> = entries
        .iter()
        .flat_map(|e| e.ids.iter().map(|&(dev, ino)| sys::file_key(dev, ino)))
        .collect();
    let by_key = sys::users_of(&keys).map_err(|e| Error::os("inspect processes", e))?;
    Ok(entries
        .iter()
        .map(|entry| {
            let mut users: Vec<SectionUser> = Vec::new();
            for &(dev, ino) in &entry.ids {
                for u in by_key.get(&sys::file_key(dev, ino)).into_iter().flatten() {
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

/// Not available on Windows or macOS, where sections cannot be listed.
#[cfg(not(target_os = "linux"))]
pub fn usage(_namespace: &Namespace, _entries: &[EntryInfo]) -> Result<Vec<Usage>> {
    Err(Error::new(crate::ErrorKind::Unsupported, "usage").with_detail(sys::LISTING_UNSUPPORTED))
}
