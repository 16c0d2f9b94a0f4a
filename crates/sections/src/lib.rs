//! Windows-style *sections* for Rust: one abstraction behind memory-mapped
//! files and named shared memory, with views, access rights and
//! handle-counted lifetime.
//!
//! A [`Section`] is a kernel memory object: anonymous or named, backed by
//! memory or by a file. A [`View`] maps a range of it with one [`Access`].
//! A named section lives, by default, while any process holds a handle or a
//! view of it, as on Windows; when the last holder goes away (by drop or by
//! `kill -9`), the name goes too.
//!
//! ```
//! use sections::{Access, Namespace, Section};
//!
//! # fn main() -> sections::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let ns = Namespace::at(dir.path());
//! // One process creates a named section...
//! let section = Section::options().size(4096).namespace(&ns).create("telemetry")?;
//! let view = section.map_all(Access::ReadWrite)?;
//! view.write_at(0, b"hello")?;
//!
//! // ...another opens it by name, with the access it may have.
//! let reader = Section::options().access(Access::Read).namespace(&ns).open("telemetry")?;
//! let mut buf = [0u8; 5];
//! reader.map(0, 4096, Access::Read)?.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//!
//! // A read-only handle cannot make a writable view.
//! assert!(reader.map_all(Access::ReadWrite).is_err());
//!
//! // When the last handle and view are gone, so is the name.
//! drop((section, view, reader));
//! assert!(Section::options().namespace(&ns).open("telemetry").is_err());
//! # Ok(()) }
//! ```
//!
//! The default namespace is `/dev/shm`, so a section named `telemetry` is
//! the object `shm_open("/telemetry")` opens in C and
//! `SharedMemory("telemetry")` opens in Python.
//!
//! # Safety of shared bytes
//!
//! Another process may write a shared page at any moment, so the safe API
//! copies ([`View::read_at`], [`View::write_at`]) or hands out atomics
//! ([`View::atomic_u32`]); slices over the memory are `unsafe` and say what
//! they need. Memory-backed sections never shrink (anonymous ones are
//! sealed against it); if another program shrinks a file or a named
//! section under a view, an access past the new end reads zeros instead of
//! raising SIGBUS, and `read_at`/`write_at` report
//! [`ErrorKind::Truncated`].

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The floors, bottom up: a module uses only modules of its own floor or
// below (checked by tests/architecture.rs).
//
// 0  types, error            plain vocabulary and the error type
// 1  sys                     the only code that talks to the OS
// 2  section, view, options, share, share_unix, named, image
//                            sections and views
// 3  sync                    mutexes, events, semaphores, guarded values
// 4  channel                 the channel
// 5  inspect, usage          listing, gc and usage: ask every kind above
//    aio                     async endpoints on tokio (feature `tokio`)
mod error;
mod types;

mod sys;

mod image;
mod named;
mod options;
mod section;
mod share;
#[cfg(unix)]
mod share_unix;
mod view;

pub mod sync;

pub mod channel;

#[cfg(all(target_os = "linux", feature = "tokio"))]
#[cfg_attr(docsrs, doc(cfg(all(target_os = "linux", feature = "tokio"))))]
pub mod aio;
mod inspect;
mod usage;

pub use error::{Error, ErrorKind, Result};
pub use image::{
    Image, ImageFormat, ImageKind, MappedImage, PageSet, Protection, Segment, Symbol, SymbolKind,
    MAX_METADATA, MAX_SPAN,
};
pub use inspect::{entry, gc, list, EntryInfo};
pub use options::SectionOptions;
pub use section::{remove, Section};
pub use share::Inheritable;
pub use types::{
    validate_name, Access, Advice, Disposition, EntryKind, Kind, Lifetime, Namespace, ObjectState,
    PeerProcess, PidNamespace, Removed, Residency, MAX_NAME_LEN,
};
pub use usage::{usage, MappedRange, SectionUser, Usage};
pub use view::View;

/// The alignment of view offsets: the page size on Linux and macOS, the
/// allocation granularity (64 KiB) on Windows.
///
/// # Examples
///
/// ```
/// use sections::{Access, Section};
///
/// # fn main() -> sections::Result<()> {
/// let gran = sections::granularity();
/// let section = Section::anonymous(3 * gran as u64)?;
/// // Views start at multiples of the granularity.
/// let middle = section.map(gran as u64, gran, Access::Read)?;
/// assert_eq!(middle.offset(), gran as u64);
/// # Ok(()) }
/// ```
pub fn granularity() -> usize {
    sys::granularity()
}

/// The README's examples, compiled and run as doctests. `README.md` beside
/// `Cargo.toml` is a link to the workspace's README, and the packaged
/// crate carries the file itself, so the path holds in both.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
