//! [`Section`]: one kernel memory object, four kinds, one type.
//!
//! Floor 2: uses `sys`, `types` and `error`. Its verbs that make views and
//! options live beside those types (`view.rs`, `options.rs`).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use crate::types::{validate_name, Namespace};
use crate::types::{Access, Kind, Lifetime, Removed};

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

    /// A section over the regular file at `path`, opened with `access`.
    /// Its size is the file's length.
    pub fn from_path(path: impl AsRef<Path>, access: Access) -> Result<Section> {
        let (object, kind, actual) = sys::open_path(path.as_ref(), access)?;
        Ok(Section::from_object(
            object,
            kind,
            access.within(actual),
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

/// Removes a named section from `namespace`. See [`Section::remove`].
pub fn remove(namespace: &Namespace, name: &str) -> Result<Removed> {
    validate_name(name).map_err(|e| e.with_op("remove"))?;
    sys::remove(namespace, name)
}
