//! The bottom floor: the plain vocabulary every other module speaks, with
//! no OS and no I/O (`sys/` builds on this and on `error` only).

mod access;
mod names;

pub use access::Access;
pub(crate) use names::RESERVED_PREFIX;
pub use names::{validate_name, Namespace, MAX_NAME_LEN};

/// A number no other call in this process returns: which object a value is
/// (for `Select`'s check that it waits on what it was built for), where an
/// address or a handle could be reused by another object.
pub(crate) fn unique_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// How long a named section's name lives.
///
/// # Examples
///
/// ```
/// use sections::{Lifetime, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let counted = Section::options().size(4096).namespace(&ns).create("session")?;
/// assert_eq!(counted.lifetime(), Lifetime::Counted);
/// drop(counted); // the last holder: the name goes with it
/// assert!(Section::options().namespace(&ns).open("session").is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lifetime {
    /// As on Windows: while any process holds a handle or a view. The last
    /// holder's drop removes the name; if the last holder is killed, the
    /// name is stale (never opened as live, reclaimed by the next `create`
    /// and by [`gc`](crate::gc)).
    #[default]
    Counted,
    /// As POSIX `shm_open`: the name stays until
    /// [`Section::remove`](crate::Section::remove). Not on Windows
    /// (`Unsupported`), where a name always goes with its last handle.
    Persistent,
}

/// Which of the four kinds a section is.
///
/// # Examples
///
/// ```
/// use sections::{Kind, Section};
///
/// # fn main() -> sections::Result<()> {
/// let kind = Section::anonymous(4096)?.kind();
/// assert_eq!(kind, Kind::Anonymous);
/// assert!(!kind.is_named() && !kind.is_file());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Memory-backed, without a name (a sealed memfd on Linux).
    Anonymous,
    /// Memory-backed, under a name in a namespace.
    Memory,
    /// Backed by a file, without a name.
    File,
    /// Backed by a file, under a name in a namespace.
    NamedFile,
}

impl Kind {
    /// Whether the section's memory is a file on disk.
    pub fn is_file(self) -> bool {
        matches!(self, Kind::File | Kind::NamedFile)
    }

    /// Whether the section has a name.
    pub fn is_named(self) -> bool {
        matches!(self, Kind::Memory | Kind::NamedFile)
    }
}

/// What [`SectionOptions::create_or_open`](crate::SectionOptions::create_or_open) did.
///
/// # Examples
///
/// ```
/// use sections::{Disposition, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let (section, how) = Section::options().size(4096).namespace(&ns).create_or_open("shared")?;
/// match how {
///     Disposition::Created => { /* initialise it, then tell the others */ }
///     Disposition::Opened { size } => assert!(size >= 4096, "made smaller by someone else"),
/// }
/// # drop(section);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an opened section may have a different size than requested"]
pub enum Disposition {
    /// A new section was created with the requested size.
    Created,
    /// An existing section was opened; `size` is its actual size, which can
    /// differ from the size that was asked for.
    Opened {
        /// The existing section's size in bytes.
        size: u64,
    },
}

/// The result of removing a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Whether processes still held the section; they keep their handles
    /// and views, but the name is gone.
    pub still_held: bool,
}

/// Access-pattern hints for [`View::advise`](crate::View::advise). None of them can lose data;
/// hints that can (such as `MADV_DONTNEED` on a private view) are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Advice {
    /// No particular pattern (the default).
    Normal,
    /// Read front to back: read ahead aggressively, drop pages behind.
    Sequential,
    /// Random access: little read-ahead.
    Random,
    /// The range will be needed soon: start reading it in.
    WillNeed,
    /// Back the range with huge pages where the kernel allows.
    HugePage,
    /// Do not use huge pages for the range.
    NoHugePage,
}

/// How much of a range is resident in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// Pages of the range that are resident.
    pub resident_pages: usize,
    /// Pages the range spans.
    pub total_pages: usize,
    /// The page size the counts are in.
    pub page_size: usize,
}

impl Residency {
    /// Resident bytes (whole pages).
    pub fn resident_bytes(&self) -> u64 {
        self.resident_pages as u64 * self.page_size as u64
    }

    /// Whether every page of the range is resident: touching it now
    /// faults at most softly (no read from a disk or from swap).
    pub fn is_complete(&self) -> bool {
        self.resident_pages >= self.total_pages
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

/// A process a channel's peer slot or a mutex names, for people to read:
/// nothing is decided by it (a channel's peer lock decides liveness), and
/// a pid from another PID namespace names another process, or none, in the
/// reader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerProcess {
    /// Its process id, as its own PID namespace numbers it.
    pub pid: u32,
    /// Whether that is the reader's PID namespace.
    pub pid_namespace: PidNamespace,
}

/// Where a [`PeerProcess`] runs, seen from the process that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PidNamespace {
    /// The reader's PID namespace: the pid names the process here.
    Ours,
    /// Another PID namespace (as a process in another container): the pid
    /// names another process, or none, here.
    Another,
    /// Not recorded (the process had no `/proc` to tell, or the reader
    /// has none): the pid may name another process here.
    Unknown,
}

/// The state of a sync object or channel as a listing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectState {
    /// A mutex.
    Mutex {
        /// Whether it is held (or was, by a holder that died).
        held: bool,
        /// The holding process, when it is alive and the OS tells (a
        /// holder in another PID namespace is named, not looked at).
        holder: Option<PeerProcess>,
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
        /// The connected receiver's process, when its slot names one.
        receiver_process: Option<PeerProcess>,
        /// The connected senders' processes, in slot order (a sender whose
        /// slot names no process is left out).
        sender_processes: Vec<PeerProcess>,
    },
}
