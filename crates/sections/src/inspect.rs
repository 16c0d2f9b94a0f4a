//! The top floor: what is in a namespace and what each entry is, asked of
//! every object kind (sections, sync objects, channels); removing stale
//! names. Listing and inspecting never change lifetime state.
//!
//! Floor 5: uses every floor below (`sys` for the listing itself, `sync`
//! and `channel` to say what an entry holds).

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::types::Lifetime;
use crate::types::{validate_name, EntryKind, Namespace, ObjectState, RESERVED_PREFIX};

/// One entry of a namespace, as [`list`] found it. See [`list`] and
/// [`entry`] for examples.
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

fn dir_error(op: &'static str, namespace: &Namespace, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::Unsupported {
        // The platform cannot list; its reason says why.
        return Error::new(ErrorKind::Unsupported, op).with_detail(e.to_string());
    }
    Error::os(op, e).with_detail(format!("namespace directory {}", namespace.dir().display()))
}

/// Lists every regular file of a namespace, sections made by this library
/// and segments made by other programs alike, without changing any
/// lifetime state: no lock is taken that could make a concurrent last
/// holder believe it is not the last.
///
/// Linux only: Windows and macOS have no API to enumerate their named
/// sections (`Unsupported`).
///
/// # Errors
///
/// [`ErrorKind::Unsupported`] on Windows and macOS;
/// [`ErrorKind::NotFound`] when the namespace directory does not exist.
///
/// # Examples
///
/// ```
/// use sections::{ErrorKind, Lifetime, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let _a = Section::options().size(4096).namespace(&ns).create("alpha")?;
/// let _b = Section::options().size(8192).namespace(&ns).create("beta")?;
///
/// match sections::list(&ns) {
///     Ok(entries) => {
///         let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
///         assert_eq!(names, ["alpha", "beta"]);
///         assert_eq!(entries[1].size, 8192);
///         assert_eq!(entries[0].lifetime, Lifetime::Counted);
///         assert_eq!(entries[0].held, Some(true)); // this process holds it
///     }
///     Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported), // Windows, macOS
/// }
/// # Ok(()) }
/// ```
pub fn list(namespace: &Namespace) -> Result<Vec<EntryInfo>> {
    const OP: &str = "list";
    let raw = sys::list_namespace(namespace.dir()).map_err(|e| dir_error(OP, namespace, e))?;
    let mut out: Vec<EntryInfo> = raw
        .into_iter()
        .filter(|r| !r.name.starts_with(RESERVED_PREFIX))
        .map(|r| entry_info(namespace.dir(), r))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The one entry `name` of a namespace, as [`list`] describes it, without
/// looking at any other entry. `NotFound` if there is none; `WrongKind` if
/// the name is something other than a regular file (a directory, a FIFO, a
/// symbolic link, which is never followed). `Unsupported` where [`list`]
/// is.
///
/// # Examples
///
/// ```
/// use sections::sync::SyncOptions;
/// use sections::{ErrorKind, Namespace, ObjectState};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let mutex = SyncOptions::new().namespace(&ns).create_mutex("jobs-lock")?;
/// let _guard = mutex.lock()?.into_guard();
///
/// match sections::entry(&ns, "jobs-lock") {
///     // Sync objects and channels say what they are.
///     Ok(info) => assert!(matches!(info.object, Some(ObjectState::Mutex { held: true, .. }))),
///     Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported), // Windows, macOS
/// }
/// let missing = sections::entry(&ns, "nothing-here").unwrap_err();
/// assert!(matches!(missing.kind(), ErrorKind::NotFound | ErrorKind::Unsupported));
/// # Ok(()) }
/// ```
pub fn entry(namespace: &Namespace, name: &str) -> Result<EntryInfo> {
    const OP: &str = "inspect";
    validate_name(name).map_err(|e| e.with_op(OP))?;
    let found = sys::list_entry(namespace.dir(), name)
        .map_err(|e| dir_error(OP, namespace, e).with_name(name))?;
    match found {
        Some(raw) => Ok(entry_info(namespace.dir(), raw)),
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

fn entry_info(dir: &std::path::Path, r: sys::Listing) -> EntryInfo {
    let path = dir.join(&r.name);
    let file = r.backing.as_ref().map(|(path, _)| path.clone());
    let mut ids = vec![r.id];
    ids.extend(r.backing.as_ref().map(|(_, id)| *id));
    let size = match &file {
        Some(path) => std::fs::metadata(path).map_or(0, |md| md.len()),
        None if r.file_record => 0,
        None => r.size,
    };
    EntryInfo {
        name: r.name,
        kind: if r.file_record {
            EntryKind::File
        } else {
            EntryKind::Memory
        },
        size,
        owner_uid: r.uid,
        mode: r.mode,
        lifetime: r.lifetime,
        held: r.held,
        stale: r.lifetime == Lifetime::Counted && r.held == Some(false),
        file,
        object: crate::sync::describe(&r.head).or_else(|| {
            crate::channel::describe(&r.head, &|index| sys::peer_held_at(&path, index))
        }),
        ids,
    }
}

/// Removes the stale names of a namespace (counted sections whose last
/// holder died) and the leftovers of sections whose creator died before
/// publishing them. Returns the names removed. Live and persistent
/// sections are never touched: each removal re-checks, under the name's
/// lock, that nobody holds it.
///
/// Where names cannot be listed nothing is ever stale: Windows removes a
/// name with its last handle even when the holder was killed, and macOS
/// sections are persistent. There `gc` removes nothing.
///
/// # Examples
///
/// A child process (this program, started again) creates a section and
/// is killed holding it:
///
/// ```
/// use std::io::{BufRead, BufReader};
/// use std::process::{Command, Stdio};
/// use sections::{Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// if let Ok(dir) = std::env::var("GC_EXAMPLE_NAMESPACE") {
///     // The child: hold a section until killed.
///     let ns = Namespace::at(dir);
///     let _section = Section::options().size(4096).namespace(&ns).create("orphan")?;
///     println!("holding");
///     std::thread::sleep(std::time::Duration::from_secs(60));
///     return Ok(());
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let ns = Namespace::at(dir.path());
/// let _live = Section::options().size(4096).namespace(&ns).create("live")?;
/// let mut child = Command::new(std::env::current_exe().unwrap())
///     .env("GC_EXAMPLE_NAMESPACE", dir.path())
///     .stdout(Stdio::piped())
///     .spawn()
///     .unwrap();
/// let mut line = String::new();
/// BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
/// assert_eq!(line.trim(), "holding");
/// child.kill().unwrap(); // like kill -9: no chance to let go
/// child.wait().unwrap();
///
/// let removed = sections::gc(&ns)?;
/// if cfg!(target_os = "linux") {
///     assert_eq!(removed, ["orphan"]); // the stale name; "live" stays
/// } else {
///     assert!(removed.is_empty()); // Windows removed it with its last handle
/// }
/// # Ok(()) }
/// ```
pub fn gc(namespace: &Namespace) -> Result<Vec<String>> {
    const OP: &str = "gc";
    let raw = match sys::list_namespace(namespace.dir()) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(Vec::new()),
        Err(e) => return Err(dir_error(OP, namespace, e)),
    };
    let mut removed = Vec::new();
    for r in raw {
        let gone = if r.abandoned_build {
            sys::remove_abandoned_build(&namespace.dir().join(&r.name))
        } else if r.lifetime == Lifetime::Counted && r.held == Some(false) {
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
