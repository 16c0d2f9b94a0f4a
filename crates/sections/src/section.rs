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
    /// Grow without reserving memory ([`SectionOptions::sparse`](crate::SectionOptions::sparse)).
    sparse: bool,
}

/// A section: a memory object that views map.
///
/// Cloning a `Section` gives another handle to the same object in this
/// process. Every [`View`](crate::View) keeps its section alive, so a named,
/// handle-counted section lives on after its `Section` is dropped for as
/// long as one of its views does.
///
/// # Examples
///
/// A named section in a private namespace (any directory of your own;
/// the default namespace is `/dev/shm` on Linux): one handle writes, a
/// second one, as another process would, opens it by name and reads.
///
/// ```
/// use sections::{Access, Kind, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let ns = Namespace::at(dir.path());
///
/// let section = Section::options().size(4096).namespace(&ns).create("orders")?;
/// assert_eq!(section.kind(), Kind::Memory);
/// let view = section.map_all(Access::ReadWrite)?;
/// view.write_at(0, b"order 17")?;
///
/// let opened = Section::options().access(Access::Read).namespace(&ns).open("orders")?;
/// let mut buf = [0u8; 8];
/// opened.map_all(Access::Read)?.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"order 17");
///
/// // The view keeps the section, and so its name, alive.
/// drop((section, opened));
/// assert!(Section::options().namespace(&ns).open("orders").is_ok());
/// drop(view);
/// assert!(Section::options().namespace(&ns).open("orders").is_err());
/// # Ok(()) }
/// ```
///
/// # Fork
///
/// A child created by `fork` (without `exec`) inherits the parent's
/// descriptor and its hold on a named section: the two processes count as
/// one holder, and the name lives while the parent's handle does. Dropping
/// the inherited handle in the child never removes the name. A child that
/// must keep the section alive on its own opens it by name. Anonymous
/// sections are shared with children by inheritance
/// ([`inheritable`](Self::inheritable) and [`from_token`](Self::from_token)
/// on every platform; `inheritable_fd` and `from_fd` on Unix)
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
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when there is no such file;
    /// [`ErrorKind::PermissionDenied`] when it cannot be opened with
    /// `access`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Kind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("table.bin");
    /// std::fs::write(&path, b"key=value").unwrap();
    ///
    /// let section = Section::from_path(&path, Access::Read)?;
    /// assert_eq!(section.kind(), Kind::File);
    /// assert_eq!(section.size()?, 9);
    /// let mut buf = [0u8; 9];
    /// section.map_all(Access::Read)?.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"key=value");
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let file = tempfile::tempfile().unwrap(); // read-write, already unlinked
    /// file.set_len(4096).unwrap();
    ///
    /// let section = Section::from_file(&file)?;
    /// assert_eq!(section.access(), Access::ReadWrite);
    /// section.map_all(Access::ReadWrite)?.write_at(0, b"in the file")?;
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when no section has the name;
    /// [`ErrorKind::Unsupported`] on Windows, where a name goes with the
    /// last handle and cannot be removed before.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let name = &format!("doc-remove-{}", std::process::id());
    /// let section = Section::create(name, 4096)?;
    /// match Section::remove(name) {
    ///     Ok(removed) => {
    ///         // This process still holds the memory; the name is gone.
    ///         assert!(removed.still_held);
    ///         let again = Section::open(name, Access::Read).unwrap_err();
    ///         assert_eq!(again.kind(), ErrorKind::NotFound);
    ///     }
    ///     Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported), // Windows
    /// }
    /// section.map_all(Access::ReadWrite)?.write_at(0, b"still mine")?;
    /// # Ok(()) }
    /// ```
    pub fn remove(name: &str) -> Result<Removed> {
        remove(&Namespace::default(), name)
    }

    /// The section's current size in bytes (growth by any process shows).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> sections::Result<()> {
    /// let section = sections::Section::anonymous(8192)?;
    /// assert_eq!(section.size()?, 8192);
    /// # Ok(()) }
    /// ```
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
    /// section was made with [`SectionOptions::sparse`](crate::SectionOptions::sparse):
    /// a namespace (or disk) without room is a `NoSpace` error here, and
    /// the section keeps its size.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::InvalidSize`]: `new_size` is smaller than the size.
    /// - [`ErrorKind::PermissionDenied`]: the handle is read-only.
    /// - [`ErrorKind::NoSpace`]: no room for the added bytes.
    /// - [`ErrorKind::Unsupported`]: a memory section on Windows or macOS,
    ///   where only file-backed sections grow.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("log.bin");
    /// std::fs::write(&path, [0u8; 4096]).unwrap();
    ///
    /// let section = Section::from_path(&path, Access::ReadWrite)?;
    /// section.grow(16 * 1024)?;
    /// assert_eq!(section.size()?, 16 * 1024);
    /// // A new view can cover the added bytes.
    /// section.map_all(Access::ReadWrite)?.write_at(12 * 1024, b"tail")?;
    ///
    /// // Sections never shrink.
    /// assert_eq!(section.grow(4096).unwrap_err().kind(), ErrorKind::InvalidSize);
    /// # Ok(()) }
    /// ```
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
///
/// # Examples
///
/// A persistent name outlives its handles until it is removed:
///
/// ```
/// use sections::{ErrorKind, Lifetime, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let mut opts = Section::options();
/// opts.size(4096).lifetime(Lifetime::Persistent).namespace(&ns);
/// match opts.create("settings") {
///     Ok(section) => {
///         drop(section);
///         assert!(opts.open("settings").is_ok()); // still there
///         let removed = sections::remove(&ns, "settings")?;
///         assert!(!removed.still_held);
///         assert_eq!(opts.open("settings").unwrap_err().kind(), ErrorKind::NotFound);
///     }
///     // Windows has no persistent names: a name goes with its last handle.
///     Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported),
/// }
/// # Ok(()) }
/// ```
pub fn remove(namespace: &Namespace, name: &str) -> Result<Removed> {
    validate_name(name).map_err(|e| e.with_op("remove"))?;
    sys::remove(namespace, name)
}

impl Section {
    /// Opens an executable or shared library as an image section: the same
    /// as [`Image::open`](crate::Image::open). An image is its own type,
    /// not a kind of `Section`: it is mapped by its segments, each with its
    /// own protection, rather than as one range of bytes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sections::Section;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let image = Section::image("/usr/bin/true")?;
    /// println!("{} segments", image.segments().len());
    /// # Ok(()) }
    /// ```
    pub fn image(path: impl AsRef<Path>) -> Result<crate::Image> {
        crate::Image::open(path)
    }
}
