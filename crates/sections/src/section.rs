//! [`Section`]: one kernel memory object, four kinds, and its options builder.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::name::{validate_name, Namespace};
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

    fn tag(self) -> u8 {
        match self {
            Access::Read => 0,
            Access::ReadWrite => 1,
            Access::CopyOnWrite => 2,
            Access::ReadExecute => 3,
            Access::ReadWriteExecute => 4,
            Access::CopyOnWriteExecute => 5,
        }
    }

    fn from_tag(tag: u8) -> Option<Access> {
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
    /// The memory: a memfd or the backing file; `None` for a named memory
    /// section, whose memory is the entry itself.
    data: Option<OwnedFd>,
    /// For named sections, the name and this handle's hold on it. Dropped
    /// after `data`, and only when the last handle and view are gone.
    entry: Option<sys::Entry>,
    kind: Kind,
    access: Access,
    name: Option<String>,
    lifetime: Lifetime,
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

fn check_size(op: &'static str, size: u64) -> Result<()> {
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

/// Configuration for creating or opening a section. Configuration is data;
/// the verbs ([`create`](Self::create), [`open`](Self::open),
/// [`create_or_open`](Self::create_or_open), [`anonymous`](Self::anonymous))
/// are few.
#[derive(Debug, Clone)]
pub struct SectionOptions {
    size: Option<u64>,
    mode: u32,
    lifetime: Lifetime,
    file: Option<PathBuf>,
    namespace: Namespace,
    access: Access,
    allow_foreign_owner: bool,
}

impl Default for SectionOptions {
    fn default() -> Self {
        SectionOptions {
            size: None,
            mode: 0o600,
            lifetime: Lifetime::Counted,
            file: None,
            namespace: Namespace::default(),
            access: Access::ReadWrite,
            allow_foreign_owner: false,
        }
    }
}

impl SectionOptions {
    /// Options with the defaults: no size, mode 0600, handle-counted,
    /// memory-backed, the default namespace, read-write.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size in bytes of a new section. Required for memory-backed
    /// sections; for file-backed ones, a missing file is created at this
    /// size and a shorter one extended to it.
    pub fn size(&mut self, size: u64) -> &mut Self {
        self.size = Some(size);
        self
    }

    /// Permission bits of a new named section (default `0o600`: owner
    /// only). Only read and write bits count (`mode & 0o666`): mapping never
    /// needs the execute bit, and the special bits mark how the entry was
    /// made.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o666;
        self
    }

    /// How long a new named section's name lives.
    pub fn lifetime(&mut self, lifetime: Lifetime) -> &mut Self {
        self.lifetime = lifetime;
        self
    }

    /// Back a new named section by this file instead of memory.
    pub fn file(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.file = Some(path.into());
        self
    }

    /// The namespace of the name (default: `/dev/shm`).
    pub fn namespace(&mut self, namespace: &Namespace) -> &mut Self {
        self.namespace = namespace.clone();
        self
    }

    /// The access of the handle (default [`Access::ReadWrite`]). It bounds
    /// every view made from it. A creator's handle is always read-write;
    /// ask for an `Execute` access to also allow executable views.
    pub fn access(&mut self, access: Access) -> &mut Self {
        self.access = access;
        self
    }

    /// Allow opening a section owned by another user. Off by default: a
    /// name another user created first may be a trap (name squatting).
    pub fn allow_foreign_owner(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// The access of a creator's handle: always read-write, plus execute
    /// when the options ask for it.
    fn creator_access(&self) -> Access {
        if self.access.executes() {
            Access::ReadWriteExecute
        } else {
            Access::ReadWrite
        }
    }

    /// Creates a named section; fails with `AlreadyExists` if the name is
    /// taken by a live or persistent section. A stale name is reclaimed.
    ///
    /// The section appears under its name only fully sized and initialised.
    pub fn create(&self, name: &str) -> Result<Section> {
        const OP: &str = "create";
        validate_name(name).map_err(|e| e.with_op(OP))?;
        match &self.file {
            None => self.create_memory(OP, name, &mut |_| Ok(())),
            Some(path) => self.create_file(OP, name, path),
        }
    }

    /// Creates a named memory-backed section and runs `init` on a writable
    /// view of it *before* it is published under `name`: no opener can see
    /// the section until `init` has returned `Ok`. If `init` fails, nothing
    /// is published and its error is returned.
    pub fn create_with(
        &self,
        name: &str,
        mut init: impl FnMut(&View) -> Result<()>,
    ) -> Result<Section> {
        const OP: &str = "create";
        validate_name(name).map_err(|e| e.with_op(OP))?;
        if self.file.is_some() {
            return Err(Error::new(ErrorKind::Unsupported, OP)
                .with_name(name)
                .with_detail(
                "create_with initialises memory-backed sections; a file-backed one shows its file",
            ));
        }
        let mut failure = None;
        let result = self.create_memory(OP, name, &mut |fd| {
            let mut run = || -> Result<()> {
                let fd = fd.try_clone_to_owned().map_err(|e| Error::os(OP, e))?;
                let private = Section::from_parts(
                    Some(fd),
                    None,
                    Kind::Anonymous,
                    Access::ReadWrite,
                    None,
                    Lifetime::Counted,
                );
                let view = private.map_all(Access::ReadWrite)?;
                init(&view)
            };
            run().map_err(|e| {
                failure = Some(e);
                std::io::Error::other("initialisation failed")
            })
        });
        match failure {
            Some(e) => Err(e),
            None => result,
        }
    }

    fn create_memory(
        &self,
        op: &'static str,
        name: &str,
        init: &mut dyn FnMut(BorrowedFd<'_>) -> std::io::Result<()>,
    ) -> Result<Section> {
        let size = self.size.ok_or_else(|| {
            Error::new(ErrorKind::InvalidSize, op)
                .with_name(name)
                .with_detail("a memory-backed section needs a size")
        })?;
        check_size(op, size).map_err(|e| e.with_name(name))?;
        let entry = sys::create_named(
            self.namespace.dir(),
            name,
            sys::Content::Memory { size },
            self.mode,
            self.lifetime,
            init,
        )
        .map_err(|e| create_error(op, name, &self.namespace, e))?;
        Ok(Section::from_parts(
            None,
            Some(entry),
            Kind::Memory,
            self.creator_access(),
            Some(name),
            self.lifetime,
        ))
    }

    fn create_file(&self, op: &'static str, name: &str, path: &Path) -> Result<Section> {
        if let Some(size) = self.size {
            check_size(op, size).map_err(|e| e.with_name(name))?;
        }
        let file_err = |e: std::io::Error| {
            Error::os(op, e)
                .with_name(name)
                .with_detail(format!("backing file {}", path.display()))
        };
        let data = sys::open_file(path, Access::ReadWrite, self.size).map_err(file_err)?;
        let st = sys::fstat(data.as_fd()).map_err(file_err)?;
        if st.size == 0 {
            return Err(Error::new(ErrorKind::InvalidSize, op)
                .with_name(name)
                .with_detail(format!(
                    "backing file {} is empty; give a size",
                    path.display()
                )));
        }
        let canonical = std::fs::canonicalize(path).map_err(file_err)?;
        let record = sys::Record {
            path: canonical,
            dev: st.dev,
            ino: st.ino,
        };
        let entry = sys::create_named(
            self.namespace.dir(),
            name,
            sys::Content::File(&record),
            self.mode,
            self.lifetime,
            &mut |_| Ok(()),
        )
        .map_err(|e| create_error(op, name, &self.namespace, e))?;
        Ok(Section::from_parts(
            Some(data),
            Some(entry),
            Kind::NamedFile,
            self.creator_access(),
            Some(name),
            self.lifetime,
        ))
    }

    /// Opens an existing named section with the configured access; fails
    /// with `NotFound` if there is none and `Stale` if its last holder died.
    pub fn open(&self, name: &str) -> Result<Section> {
        const OP: &str = "open";
        validate_name(name).map_err(|e| e.with_op(OP))?;
        let path = self.namespace.dir().join(name);
        let entry = sys::open_named(&path, self.access, self.allow_foreign_owner)
            .map_err(|e| open_error(OP, name, &self.namespace, e))?;
        let marker = entry.marker();
        let lifetime = marker.lifetime;
        if marker.file {
            let record = entry.read_record().map_err(|e| {
                Error::new(ErrorKind::WrongKind, OP)
                    .with_name(name)
                    .with_detail(e.to_string())
            })?;
            let gone = |what: &str| {
                Error::new(ErrorKind::Replaced, OP)
                    .with_name(name)
                    .with_detail(format!(
                        "backing file {} {what} since the section was created",
                        record.path.display()
                    ))
            };
            let data = match sys::open_file(&record.path, self.access, None) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(gone("was removed"))
                }
                Err(e) => {
                    return Err(Error::os(OP, e)
                        .with_name(name)
                        .with_detail(format!("backing file {}", record.path.display())))
                }
            };
            let st = sys::fstat(data.as_fd()).map_err(|e| Error::os(OP, e).with_name(name))?;
            if (st.dev, st.ino) != (record.dev, record.ino) {
                return Err(gone("was replaced"));
            }
            return Ok(Section::from_parts(
                Some(data),
                Some(entry),
                Kind::NamedFile,
                self.access,
                Some(name),
                lifetime,
            ));
        }
        Ok(Section::from_parts(
            None,
            Some(entry),
            Kind::Memory,
            self.access,
            Some(name),
            lifetime,
        ))
    }

    /// Opens the named section, creating it if it does not exist. Says
    /// which happened; an opened section keeps its actual size, which
    /// [`Disposition::Opened`] reports (it is never silently resized).
    pub fn create_or_open(&self, name: &str) -> Result<(Section, Disposition)> {
        let mut last = None;
        for _ in 0..8 {
            match self.create(name) {
                Ok(section) => return Ok((section, Disposition::Created)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match self.open(name) {
                Ok(section) => {
                    let size = section.size()?;
                    return Ok((section, Disposition::Opened { size }));
                }
                // Removed, or its holder died, between our two attempts.
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Stale) => {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| Error::new(ErrorKind::NotFound, "create or open").with_name(name)))
    }

    /// Creates an anonymous memory-backed section of the configured size.
    pub fn anonymous(&self) -> Result<Section> {
        const OP: &str = "create anonymous";
        let size = self.size.ok_or_else(|| {
            Error::new(ErrorKind::InvalidSize, OP).with_detail("an anonymous section needs a size")
        })?;
        check_size(OP, size)?;
        let data = sys::memfd(size).map_err(|e| Error::os(OP, e))?;
        Ok(Section::from_parts(
            Some(data),
            None,
            Kind::Anonymous,
            self.creator_access(),
            None,
            Lifetime::Counted,
        ))
    }
}

fn create_error(op: &'static str, name: &str, ns: &Namespace, e: std::io::Error) -> Error {
    let detail = match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Some("a live or persistent section has this name".to_owned())
        }
        std::io::ErrorKind::NotFound => Some(format!(
            "namespace directory {} does not exist",
            ns.dir().display()
        )),
        std::io::ErrorKind::PermissionDenied => Some(format!(
            "cannot create files in namespace directory {}",
            ns.dir().display()
        )),
        _ => None,
    };
    let err = Error::os(op, e).with_name(name);
    match detail {
        Some(d) => err.with_detail(d),
        None => err,
    }
}

fn open_error(op: &'static str, name: &str, ns: &Namespace, e: sys::OpenError) -> Error {
    match e {
        sys::OpenError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Error::new(ErrorKind::NotFound, op)
                .with_name(name)
                .with_detail(format!("no such section in {}", ns.dir().display()))
        }
        sys::OpenError::Io(e) => Error::os(op, e).with_name(name),
        sys::OpenError::NotRegular => Error::new(ErrorKind::WrongKind, op)
            .with_name(name)
            .with_detail("the entry is not a regular file"),
        sys::OpenError::ForeignOwner(uid) => Error::new(ErrorKind::PermissionDenied, op)
            .with_name(name)
            .with_detail(format!(
                "owned by uid {uid}, not by this user (uid {}); allow it with allow_foreign_owner",
                sys::euid()
            )),
        sys::OpenError::Stale => Error::new(ErrorKind::Stale, op)
            .with_name(name)
            .with_detail("create reclaims the name, gc removes it"),
    }
}

impl Section {
    fn from_parts(
        data: Option<OwnedFd>,
        entry: Option<sys::Entry>,
        kind: Kind,
        access: Access,
        name: Option<&str>,
        lifetime: Lifetime,
    ) -> Section {
        Section {
            inner: Arc::new(Inner {
                data,
                entry,
                kind,
                access,
                name: name.map(str::to_owned),
                lifetime,
            }),
        }
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
        const OP: &str = "open file";
        let path = path.as_ref();
        let data = sys::open_file(path, access, None)
            .map_err(|e| Error::os(OP, e).with_detail(format!("file {}", path.display())))?;
        Section::from_fd_with(data, Kind::File, OP)
    }

    /// A section over an open regular file, with the access the file was
    /// opened with. The section keeps its own descriptor.
    pub fn from_file(file: &File) -> Result<Section> {
        const OP: &str = "open file";
        let data = file
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os(OP, e))?;
        Section::from_fd_with(data, Kind::File, OP)
    }

    /// Adopts a descriptor of a section, for example one inherited from a
    /// parent process. Its access is the descriptor's; a memfd becomes an
    /// anonymous section, a regular file a file-backed one.
    pub fn from_fd(fd: OwnedFd) -> Result<Section> {
        let kind = if sys::is_memfd(fd.as_fd()) {
            Kind::Anonymous
        } else {
            Kind::File
        };
        Section::from_fd_with(fd, kind, "adopt descriptor")
    }

    fn from_fd_with(data: OwnedFd, kind: Kind, op: &'static str) -> Result<Section> {
        let st = sys::fstat(data.as_fd()).map_err(|e| Error::os(op, e))?;
        if !st.is_regular {
            return Err(
                Error::new(ErrorKind::WrongKind, op).with_detail("not a regular file or memfd")
            );
        }
        let writable = sys::fd_writable(data.as_fd()).map_err(|e| Error::os(op, e))?;
        let access = if writable {
            Access::ReadWrite
        } else {
            Access::Read
        };
        Ok(Section::from_parts(
            Some(data),
            None,
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
        sys::fstat(self.data_fd())
            .map(|st| st.size)
            .map_err(|e| self.err_os("size", e))
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
    /// while any descriptor or view exists, which is reported as `Counted`
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

    pub(crate) fn data_fd(&self) -> BorrowedFd<'_> {
        match (&self.inner.data, &self.inner.entry) {
            (Some(fd), _) => fd.as_fd(),
            (None, Some(entry)) => entry.fd(),
            (None, None) => unreachable!("every section has a descriptor"),
        }
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
        let fd = self.data_fd();
        let grow = || {
            // Re-read under the gate: a peer may have grown it meanwhile.
            let now = sys::fstat(fd)?.size;
            if now < new_size {
                sys::set_len(fd, new_size)?;
            }
            Ok(())
        };
        let result = match &self.inner.entry {
            Some(entry) => entry.with_gate(grow),
            None => grow(),
        };
        result.map_err(|e| self.err_os(OP, e))
    }

    /// Sends this section over a Unix socket with this handle's access.
    /// The receiver gets a handle to the same memory (see [`receive`](Self::receive)).
    pub fn send(&self, stream: &UnixStream) -> Result<()> {
        self.send_as(stream, self.inner.access)
    }

    /// Sends this section over a Unix socket with at most `access`. A
    /// read-only send hands over a new read-only descriptor, so the receiver
    /// cannot write even by mapping it itself.
    ///
    /// A named section's receiver holds the memory, not the name: it does
    /// not count as a holder for the name's lifetime.
    pub fn send_as(&self, stream: &UnixStream, access: Access) -> Result<()> {
        const OP: &str = "send";
        if !self.inner.access.allows(access) {
            return Err(self
                .err(ErrorKind::PermissionDenied, OP)
                .with_detail(format!(
                    "cannot send {:?} access from a {:?} handle",
                    access, self.inner.access
                )));
        }
        let reopened;
        let fd = if !access.needs_writable_handle()
            && sys::fd_writable(self.data_fd()).unwrap_or(true)
        {
            reopened = sys::reopen_read_only(self.data_fd()).map_err(|e| self.err_os(OP, e))?;
            reopened.as_fd()
        } else {
            self.data_fd()
        };
        let tag = access.tag() | if self.kind().is_file() { 0x80 } else { 0 };
        sys::send_fd(stream, fd, tag).map_err(|e| self.err_os(OP, e))
    }

    /// Receives a section sent with [`send`](Self::send). It arrives with
    /// the access it was sent with (never more than its descriptor allows).
    pub fn receive(stream: &UnixStream) -> Result<Section> {
        const OP: &str = "receive";
        let (fd, tag) = sys::receive_fd(stream).map_err(|e| Error::os(OP, e))?;
        let mut access = Access::from_tag(tag & 0x7f).ok_or_else(|| {
            Error::new(ErrorKind::WrongKind, OP).with_detail(format!("unknown access tag {tag}"))
        })?;
        let kind = if tag & 0x80 != 0 {
            Kind::File
        } else {
            Kind::Anonymous
        };
        let section = Section::from_fd_with(fd, kind, OP)?;
        if access.needs_writable_handle() && !section.access().needs_writable_handle() {
            access = Access::Read;
        }
        let inner =
            Arc::into_inner(section.inner).expect("a section that was just made has one handle");
        Ok(Section::from_parts(
            inner.data,
            None,
            kind,
            access,
            None,
            Lifetime::Counted,
        ))
    }

    /// A duplicate of the section's descriptor that is inherited across
    /// `exec` (no close-on-exec flag), for handing the section to a child
    /// process: pass its number to the child, which adopts it with
    /// [`Section::from_fd`]. Close it in the parent once the child runs.
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        sys::inheritable_dup(self.data_fd()).map_err(|e| self.err_os("share with child", e))
    }
}

impl AsFd for Section {
    /// The descriptor of the section's memory.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.data_fd()
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
    const OP: &str = "remove";
    validate_name(name).map_err(|e| e.with_op(OP))?;
    let removed = sys::remove_named(&namespace.dir().join(name)).map_err(|e| {
        Error::os(OP, e)
            .with_name(name)
            .with_detail(format!("in {}", namespace.dir().display()))
    })?;
    Ok(Removed {
        still_held: removed.held,
    })
}
