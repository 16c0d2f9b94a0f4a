//! The platform boundary: the only module that talks to the operating system.
//!
//! Floor 1: uses `types` and `error` only. Everything above works with the
//! items this module names below, one list that every platform module
//! (`linux`, `windows`, `macos`; `unix` holds what Linux and macOS share)
//! provides under the same names: a new platform implements that list.
//! Nothing above this module calls `libc`, `rustix` or `windows-sys`, and
//! nothing above it needs a platform `cfg` to use what is listed here.
//!
//! What the OS lacks, the platform module builds: on Linux the
//! handle-counted lifetime of names (`linux/lifetime.rs`) and named sync
//! objects made of futex words in a small section (`linux/sync/`), which
//! Windows has as kernel objects.

use std::path::{Path, PathBuf};

use crate::types::Lifetime;

/// One loadable segment of an image, as `map_elf` maps it: `vaddr` is
/// relative to the start of the image's page-aligned range.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // read by Linux's `map_elf`
pub(crate) struct LoadSegment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub offset: u64,
    pub file_size: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

/// What a new named section is asked to be.
pub(crate) struct Spec<'a> {
    pub size: Option<u64>,
    /// Permission bits (Windows gives named objects the creator's default
    /// security instead).
    #[cfg_attr(windows, allow(dead_code))]
    pub mode: u32,
    pub lifetime: Lifetime,
    /// Back it by this file instead of memory.
    pub file: Option<&'a Path>,
    /// Allow executable views (Windows must say so when it creates the
    /// section; Unix needs nothing).
    #[cfg_attr(unix, allow(dead_code))]
    pub exec: bool,
    /// Reserve the memory (or the bytes added to a file) now, so that no
    /// room is an error at creation, not a lost write later.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub reserve: bool,
}

impl Spec<'_> {
    /// The size of a memory-backed section, which must be given.
    pub(crate) fn memory_size(&self, op: &'static str, name: &str) -> crate::error::Result<u64> {
        self.size.ok_or_else(|| {
            crate::error::Error::new(crate::error::ErrorKind::InvalidSize, op)
                .with_name(name)
                .with_detail("a memory-backed section needs a size")
        })
    }
}

/// Where and how a named sync object lives (the options `sync` exposes).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub(crate) struct SyncSpec<'a> {
    pub namespace: &'a crate::types::Namespace,
    pub lifetime: Lifetime,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub allow_foreign_owner: bool,
    /// Permission bits of a new object's section (Linux).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub mode: u32,
}

/// A random word: std's randomly keyed hasher over this process and the
/// time (for channel position-word keys and anonymous objects' names).
pub(crate) fn random_word() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(process_token());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// One regular file of a namespace, as a listing finds it without changing
/// anything (see `inspect.rs`).
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Listing {
    pub name: String,
    /// `(st_dev, st_ino)` of the entry.
    pub id: (u64, u64),
    pub size: u64,
    pub uid: u32,
    /// Permission bits (`0o777`), without the bits that mark how the
    /// library made the entry.
    pub mode: u32,
    pub lifetime: Lifetime,
    /// A record naming a backing file, rather than the memory itself.
    pub file_record: bool,
    /// Whether any process holds it; `None` when it could not be asked.
    pub held: Option<bool>,
    /// The backing file a record names, and its `(st_dev, st_ino)`.
    pub backing: Option<(PathBuf, (u64, u64))>,
    /// The first bytes of a memory entry (a sync object or channel says
    /// what it is there), read without a mapping or a lock.
    pub head: Vec<u8>,
    /// A private name of a section being built whose builder is gone.
    pub abandoned_build: bool,
}

/// One process's use of one file: a descriptor of it, mappings of it.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct ProcUse {
    pub pid: u32,
    pub comm: String,
    pub has_fd: bool,
    /// `(start, end, perms)` of each mapping.
    pub maps: Vec<(u64, u64, String)>,
}

/// A peer slot's owner word when no endpoint has it (see `PeerLock`).
pub(crate) const PEER_FREE: u64 = 0;
/// A peer slot's owner word when its endpoint left in order (a receiver
/// that closed: its senders are told at once).
pub(crate) const PEER_CLOSED: u64 = 1;

/// A channel's waiting word: a side sleeps on it (futex or event) and
/// wants a wake-up.
pub(crate) const SLEEPER: u32 = 1;
/// A channel's waiting word: a side waits in an event loop and wants its
/// bell rung (`Waker::ring`).
pub(crate) const BELL: u32 = 2;

/// Which side of a channel sleeps or is woken (see `Waker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Receiver,
    Senders,
}

#[cfg(unix)]
mod unix;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!("sections supports Linux, macOS and Windows");

mod claim;
mod mapping;
#[cfg(not(target_os = "linux"))]
mod unlisted;
pub(crate) use mapping::{ImageMapping, Mapping};

// The contract: what every platform provides.
/// Whether `create_named` can run an initialiser before the name appears
/// (Linux); elsewhere a section is visible the moment it is created.
pub(crate) use imp::PUBLISHES_INITIALISED;
pub(crate) use imp::{
    // Views (a view's mapping is a `Mapping`).
    advise,
    // Section objects and their names.
    anonymous,
    create_named,
    // Namespaces: listing and collecting stale names, one entry, who uses
    // what (`Unsupported` where the OS cannot tell).
    entry_type,
    flush,
    from_file,
    from_inherited,
    granularity,
    list_entry,
    list_namespace,
    lock,
    lock_limit_hint,
    open_named,
    open_path,
    page_size,
    prefetch,
    reclaim_stale,
    remove,
    remove_abandoned_build,
    resident_bytes,
    resident_pages,
    unlock,
    users_of,
    Object,
};
// For `Mapping` only.
use imp::{unmap, Guard};

// Image sections: a file mapped by its segments (`map_elf` on Linux,
// `map_pe` on Windows; `Unsupported` elsewhere), the page cache's residency
// of a file (`None` where the OS does not tell this process), the pages of
// a range mapped in this process.
pub(crate) use imp::{header_reader, map_elf, map_pe, open_image_file, page_cache, present_pages};

// Processes, named sync objects, a channel's peer slots and waking its
// sides.
/// The public face of a channel endpoint's, an event's or a semaphore's
/// readiness (re-exported by `channel` and `sync`).
pub use imp::Readiness;
pub(crate) use imp::{
    peer_held, peer_held_at, process_of, process_token, ready_for, sync, wait_any, PeerLock, Waker,
    WakerShare, Watch,
};

/// The readiness of one watch.
pub(crate) fn ready_one(watch: Watch<'_>) -> crate::error::Result<Readiness> {
    ready_for(vec![watch])?.pop().ok_or_else(|| {
        crate::error::Error::new(crate::error::ErrorKind::Unsupported, "watch")
            .with_detail("no readiness was made")
    })
}
/// Whether a `wait_any` that returns an event's or semaphore's readiness
/// has taken it (Windows: the readiness is the object's own handle, and a
/// wait takes it), rather than only said that a poll may find it.
pub(crate) const WAIT_ANY_TAKES_SYNC_OBJECTS: bool = cfg!(windows);
/// How many readiness `wait_any` takes at once (Windows:
/// `MAXIMUM_WAIT_OBJECTS`).
pub(crate) const WAIT_ANY_MAX: Option<usize> = if cfg!(windows) { Some(64) } else { None };

// Descriptors: passing them over Unix sockets, reopening them.
#[cfg(unix)]
pub(crate) use imp::reopen_read_only;
#[cfg(unix)]
pub(crate) use unix::{fd_writable, inheritable_dup, receive_fd, send_fd};
