//! [`Section`]: one kernel memory object, four kinds, one type.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::name::{validate_name, Namespace};
use crate::options::SectionOptions;
use crate::sys;
use crate::view::View;

/// What a handle or a view may do with the memory.
///
/// A handle's access bounds its views: a section opened with
/// [`Access::Read`] has a read-only descriptor, so the kernel itself refuses
/// a writable shared mapping. Copy-on-write views only need read access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and write; writes are seen by every other view and process.
    ReadWrite,
    /// A private copy: writes stay in this view and never reach the section.
    CopyOnWrite,
    /// Read and execute.
    ReadExecute,
    /// Read, write and execute.
    ReadWriteExecute,
    /// Private copy-on-write with execute.
    CopyOnWriteExecute,
}

impl Access {
    /// Whether a handle with this access needs a descriptor open for writing.
    pub(crate) fn needs_writable_handle(self) -> bool {
        matches!(self, Access::ReadWrite | Access::ReadWriteExecute)
    }

    /// Whether a view with this access can be written through.
    pub fn writes(self) -> bool {
        !matches!(self, Access::Read | Access::ReadExecute)
    }

    /// Whether a view with this access is executable.
    pub fn executes(self) -> bool {
        matches!(
            self,
            Access::ReadExecute | Access::ReadWriteExecute | Access::CopyOnWriteExecute
        )
    }

    /// Whether writes stay private to the view.
    pub fn is_private(self) -> bool {
        matches!(self, Access::CopyOnWrite | Access::CopyOnWriteExecute)
    }

    /// Whether a handle with access `self` may map a view with `view`.
    pub(crate) fn allows(self, view: Access) -> bool {
        (!view.needs_writable_handle() || self.needs_writable_handle())
            && (!view.executes() || self.executes())
    }

    pub(crate) fn tag(self) -> u8 {
        match self {
            Access::Read => 0,
            Access::ReadWrite => 1,
            Access::CopyOnWrite => 2,
            Access::ReadExecute => 3,
            Access::ReadWriteExecute => 4,
            Access::CopyOnWriteExecute => 5,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Access> {
        Some(match tag {
            0 => Access::Read,
            1 => Access::ReadWrite,
            2 => Access::CopyOnWrite,
            3 => Access::ReadExecute,
            4 => Access::ReadWriteExecute,
            5 => Access::CopyOnWriteExecute,
            _ => return None,
        })
    }
}

/// How long a named section's name lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lifetime {
    /// As on Windows: while any process holds a handle or a view. The last
    /// holder's drop removes the name; if the last holder is killed, the
    /// name is stale (never opened as live, reclaimed by the next `create`
    /// and by [`gc`]).
    #[default]
    Counted,
    /// As POSIX `shm_open`: the name stays until [`Section::remove`].
    Persistent,
}

/// Which of the four kinds a section is.
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

/// What [`SectionOptions::create_or_open`] did.
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

#[derive(Debug)]
struct Inner {
    /// The kernel object; for a named, handle-counted section its drop is
    /// this handle leaving, which happens when the last clone and view of
    /// this `Section` are gone.
    object: sys::Object,
    kind: Kind,
    access: Access,
    name: Option<String>,
    lifetime: Lifetime,
    /// Grow without reserving memory ([`SectionOptions::sparse`]).
    sparse: bool,
}

/// A section: a memory object that views map.
///
/// Cloning a `Section` gives another handle to the same object in this
/// process. Every [`View`] keeps its section alive, so a named,
/// handle-counted section lives on after its `Section` is dropped for as
/// long as one of its views does.
///
/// # Fork
///
/// A child created by `fork` (without `exec`) inherits the parent's
/// descriptor and its hold on a named section: the two processes count as
/// one holder, and the name lives while the parent's handle does. Dropping
/// the inherited handle in the child never removes the name. A child that
/// must keep the section alive on its own opens it by name. Anonymous
/// sections are shared with children by inheritance
/// ([`inheritable_fd`](Self::inheritable_fd), [`from_fd`](Self::from_fd))
/// and live while any process has the descriptor or a view.
#[derive(Debug, Clone)]
pub struct Section {
    inner: Arc<Inner>,
}

/// Sizes beyond this cannot be mapped on any platform this crate runs on.
const MAX_SIZE: u64 = isize::MAX as u64;

pub(crate) fn check_size(op: &'static str, size: u64) -> Result<()> {
    if size == 0 {
        return Err(
            Error::new(ErrorKind::InvalidSize, op).with_detail("size must be at least 1 byte")
        );
    }
    if size > MAX_SIZE {
        return Err(Error::new(ErrorKind::InvalidSize, op).with_detail(format!(
            "{size} bytes is more than this platform can map (at most {MAX_SIZE})"
        )));
    }
    Ok(())
}

impl Section {
    pub(crate) fn from_object(
        object: sys::Object,
        kind: Kind,
        access: Access,
        name: Option<&str>,
        lifetime: Lifetime,
    ) -> Section {
        Section {
            inner: Arc::new(Inner {
                object,
                kind,
                access,
                name: name.map(str::to_owned),
                lifetime,
                sparse: false,
            }),
        }
    }

    /// Marks a section just made as one that grows without reserving.
    pub(crate) fn with_sparse(mut self, sparse: bool) -> Section {
        Arc::get_mut(&mut self.inner)
            .expect("called on a section nobody else holds yet")
            .sparse = sparse;
        self
    }

    /// A builder for the less common cases.
    pub fn options() -> SectionOptions {
        SectionOptions::new()
    }

    /// Creates a named, memory-backed, handle-counted section of `size`
    /// bytes in the default namespace, read-write, mode 0600.
    pub fn create(name: &str, size: u64) -> Result<Section> {
        Section::options().size(size).create(name)
    }

    /// Opens a named section in the default namespace.
    pub fn open(name: &str, access: Access) -> Result<Section> {
        Section::options().access(access).open(name)
    }

    /// Creates an anonymous memory-backed section of `size` bytes.
    pub fn anonymous(size: u64) -> Result<Section> {
        Section::options().size(size).anonymous()
    }

    /// A section over the regular file at `path`, opened with `access`.
    /// Its size is the file's length.
    pub fn from_path(path: impl AsRef<Path>, access: Access) -> Result<Section> {
        let (object, kind, actual) = sys::open_path(path.as_ref(), access)?;
        Ok(Section::from_object(
            object,
            kind,
            narrow(access, actual),
            None,
            Lifetime::Persistent,
        ))
    }

    /// A section over an open regular file, with the access the file was
    /// opened with. The section keeps its own handle.
    pub fn from_file(file: &File) -> Result<Section> {
        let (object, kind, access) = sys::from_file(file)?;
        Ok(Section::from_object(
            object,
            kind,
            access,
            None,
            Lifetime::Persistent,
        ))
    }

    /// Removes a named section from the default namespace. Processes that
    /// hold it keep their handles and views; the name is free at once.
    pub fn remove(name: &str) -> Result<Removed> {
        remove(&Namespace::default(), name)
    }

    /// The section's current size in bytes (growth by any process shows).
    pub fn size(&self) -> Result<u64> {
        self.inner.object.size().map_err(|e| self.err_os("size", e))
    }

    /// The name, for a named section.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// Which kind of section this is.
    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// The access of this handle.
    pub fn access(&self) -> Access {
        self.inner.access
    }

    /// The lifetime of the name (anonymous and unnamed file sections live
    /// while any handle or view exists, which is reported as `Counted`
    /// for anonymous and `Persistent` for files).
    pub fn lifetime(&self) -> Lifetime {
        self.inner.lifetime
    }

    /// Adds this section's name, if it has one, to an error.
    fn named(&self, e: Error) -> Error {
        match self.name() {
            Some(n) => e.with_name(n),
            None => e,
        }
    }

    pub(crate) fn err(&self, kind: ErrorKind, op: &'static str) -> Error {
        self.named(Error::new(kind, op))
    }

    pub(crate) fn err_os(&self, op: &'static str, io: std::io::Error) -> Error {
        self.named(Error::os(op, io))
    }

    pub(crate) fn object(&self) -> &sys::Object {
        &self.inner.object
    }

    /// Maps `len` bytes at `offset` with `access`.
    ///
    /// `offset` must be a multiple of [`granularity`](crate::granularity),
    /// the range must lie within the section's current size, and `access`
    /// may not exceed the handle's.
    pub fn map(&self, offset: u64, len: usize, access: Access) -> Result<View> {
        self.map_within(offset, len, access, self.size()?)
    }

    fn map_within(&self, offset: u64, len: usize, access: Access, size: u64) -> Result<View> {
        const OP: &str = "map";
        if !self.inner.access.allows(access) {
            return Err(self
                .err(ErrorKind::PermissionDenied, OP)
                .with_detail(format!(
                    "a {:?} view needs more access than this {:?} handle has",
                    access, self.inner.access
                )));
        }
        let gran = sys::granularity() as u64;
        if offset % gran != 0 {
            return Err(self.err(ErrorKind::InvalidRange, OP).with_detail(format!(
                "offset {offset} is not a multiple of the granularity {gran}"
            )));
        }
        if len == 0 {
            return Err(self
                .err(ErrorKind::InvalidRange, OP)
                .with_detail("a view cannot be empty"));
        }
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > size) {
            return Err(self.err(ErrorKind::InvalidRange, OP).with_detail(format!(
                "{len} bytes at offset {offset} go past the end of the section ({size} bytes)"
            )));
        }
        View::new(self.clone(), offset, len, access)
    }

    /// Maps the whole section (at its current size) with `access`.
    pub fn map_all(&self, access: Access) -> Result<View> {
        let size = self.size()?;
        let len = usize::try_from(size).map_err(|_| {
            self.err(ErrorKind::InvalidSize, "map")
                .with_detail(format!("{size} bytes do not fit in this address space"))
        })?;
        self.map_within(0, len, access, size)
    }

    /// Grows the section to `new_size` bytes. Never shrinks: a smaller size
    /// is an `InvalidSize` error; the same size, or a size a peer already
    /// grew past, is a no-op. Existing views stay valid; new views can
    /// cover the new range.
    ///
    /// The added bytes get their memory (or disk space) now, unless the
    /// section was made with [`SectionOptions::sparse`]: a namespace (or
    /// disk) without room is a `NoSpace` error here, and the section keeps
    /// its size.
    pub fn grow(&self, new_size: u64) -> Result<()> {
        const OP: &str = "grow";
        check_size(OP, new_size).map_err(|e| self.named(e))?;
        if !self.inner.access.needs_writable_handle() {
            return Err(self
                .err(ErrorKind::PermissionDenied, OP)
                .with_detail("the handle is read-only"));
        }
        let current = self.size()?;
        if new_size < current {
            return Err(self
                .err(ErrorKind::InvalidSize, OP)
                .with_detail(format!("cannot shrink from {current} to {new_size} bytes")));
        }
        self.inner
            .object
            .grow(new_size, !self.inner.sparse)
            .map_err(|e| {
                let no_room = e.kind() == std::io::ErrorKind::StorageFull;
                let err = self.err_os(OP, e);
                if no_room {
                    err.with_detail(format!(
                        "no room to grow from {current} to {new_size} bytes; the section keeps \
                         its size"
                    ))
                } else {
                    err
                }
            })
    }
}

/// The access of a handle opened asking for `asked` whose OS handle turned
/// out to allow `actual`: never more than either.
fn narrow(asked: Access, actual: Access) -> Access {
    if asked.needs_writable_handle() && !actual.needs_writable_handle() {
        Access::Read
    } else {
        asked
    }
}

/// The result of removing a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Whether processes still held the section; they keep their handles
    /// and views, but the name is gone.
    pub still_held: bool,
}

/// Removes a named section from `namespace`. See [`Section::remove`].
pub fn remove(namespace: &Namespace, name: &str) -> Result<Removed> {
    validate_name(name).map_err(|e| e.with_op("remove"))?;
    sys::remove(namespace, name)
}
