//! [`SectionOptions`]: the builder for the less common cases, and the
//! common cases as verbs of [`Section`] (`create`, `open`, `anonymous`).
//!
//! Floor 2: uses `section`, `view`, `named`, `sys`, `types` and `error`.

use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};
use crate::section::{check_size, Section};
use crate::sys;
use crate::types::{validate_name, Namespace};
use crate::types::{Access, Disposition, Kind, Lifetime};
use crate::view::View;

/// Configuration for creating or opening a section. Configuration is data;
/// the verbs ([`create`](Self::create), [`open`](Self::open),
/// [`create_or_open`](Self::create_or_open), [`anonymous`](Self::anonymous))
/// are few.
///
/// # Building options
///
/// The setters take and return `&mut Self` (as `std::process::Command`'s
/// do), so that one options value can be configured once and reused for
/// several verbs without being moved or rebuilt; end a chain in a verb in
/// the same statement, or configure a variable first:
///
/// ```
/// use sections::{Access, Namespace, SectionOptions};
///
/// # fn main() -> sections::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let ns = Namespace::at(dir.path()); // a private namespace: a directory of our own
///
/// // A chain that ends in a verb:
/// let section = SectionOptions::new().size(4096).namespace(&ns).create("telemetry")?;
///
/// // A variable, configured and then used for more than one verb:
/// let mut opts = SectionOptions::new();
/// opts.namespace(&ns).access(Access::Read);
/// let reader = opts.open("telemetry")?;
/// assert_eq!(reader.access(), Access::Read);
/// # drop(section);
/// # Ok(()) }
/// ```
///
/// Binding the chain itself keeps a reference to a temporary that is gone
/// at the end of the statement, which the compiler refuses (E0716); write
/// it as above, or end the chain with `.clone()`:
///
/// ```compile_fail,E0716
/// # use sections::SectionOptions;
/// let opts = SectionOptions::new().size(4096); // error: temporary dropped while borrowed
/// let section = opts.anonymous();
/// ```
#[derive(Debug, Clone)]
pub struct SectionOptions {
    size: Option<u64>,
    mode: u32,
    lifetime: Lifetime,
    file: Option<PathBuf>,
    namespace: Namespace,
    access: Access,
    allow_foreign_owner: bool,
    sparse: bool,
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
            sparse: false,
        }
    }
}

impl SectionOptions {
    /// Options with the defaults: no size, mode 0600, handle-counted,
    /// memory-backed, the default namespace, read-write.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Kind, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let mut opts = SectionOptions::new();
    /// opts.size(64 * 1024);
    /// let section = opts.anonymous()?;
    /// assert_eq!(section.kind(), Kind::Anonymous);
    /// assert_eq!(section.size()?, 64 * 1024);
    /// # Ok(()) }
    /// ```
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
    ///
    /// The name then stands for the file: a process that opens the name
    /// maps the same file without knowing its path, and the data stays in
    /// the file after the name is gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Kind, Namespace, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let ns = Namespace::at(dir.path());
    /// let path = dir.path().join("journal.bin");
    ///
    /// let section = Section::options()
    ///     .size(4096)
    ///     .file(&path)
    ///     .namespace(&ns)
    ///     .create("journal")?;
    /// assert_eq!(section.kind(), Kind::NamedFile);
    ///
    /// // Another process opens the name and writes the file.
    /// let other = Section::options().namespace(&ns).open("journal")?;
    /// let view = other.map_all(Access::ReadWrite)?;
    /// view.write_at(0, b"entry 1")?;
    /// view.flush()?;
    /// drop((view, other, section));
    ///
    /// assert_eq!(&std::fs::read(&path).unwrap()[..7], b"entry 1");
    /// # Ok(()) }
    /// ```
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
    ///
    /// # Examples
    ///
    /// Two services running as different users: the creator lets others
    /// in with [`mode`](Self::mode), the opener accepts a section that is
    /// not its own.
    ///
    /// ```
    /// use sections::{Access, Namespace, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let ns = Namespace::at(dir.path());
    /// let shared = SectionOptions::new()
    ///     .size(4096)
    ///     .mode(0o666)
    ///     .namespace(&ns)
    ///     .create("metrics")?;
    ///
    /// // In the other user's process:
    /// let reader = SectionOptions::new()
    ///     .access(Access::Read)
    ///     .allow_foreign_owner(true)
    ///     .namespace(&ns)
    ///     .open("metrics")?;
    /// # drop((shared, reader));
    /// # Ok(()) }
    /// ```
    pub fn allow_foreign_owner(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// Do not reserve memory when creating or growing (default: reserve).
    ///
    /// By default a memory section's pages are allocated when it is created
    /// (and when it grows), so a namespace without room (Docker's `/dev/shm`
    /// is 64 MiB) is a `NoSpace` error at once, and nothing is created. A
    /// sparse section costs nothing until touched, but if its file system
    /// runs out of room later, the first touch of a page fails: `write_at`
    /// and `read_at` report `Truncated`, and other access reads zeros and
    /// loses writes. For file-backed sections only the bytes this crate adds
    /// to the file are reserved; holes the file already has stay holes.
    pub fn sparse(&mut self, sparse: bool) -> &mut Self {
        self.sparse = sparse;
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

    fn spec(&self) -> sys::Spec<'_> {
        sys::Spec {
            size: self.size,
            mode: self.mode,
            lifetime: self.lifetime,
            file: self.file.as_deref(),
            exec: self.access.executes(),
            reserve: !self.sparse,
        }
    }

    fn check(&self, op: &'static str, name: &str) -> Result<()> {
        validate_name(name).map_err(|e| e.with_op(op))?;
        if let Some(size) = self.size {
            check_size(op, size).map_err(|e| e.with_name(name))?;
        }
        Ok(())
    }

    /// Creates a named section; fails with `AlreadyExists` if the name is
    /// taken by a live or persistent section. A stale name is reclaimed.
    ///
    /// The section appears under its name only fully sized and initialised.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::AlreadyExists`]: a live (or persistent) section has
    ///   the name.
    /// - [`ErrorKind::InvalidName`]: see [`validate_name`].
    /// - [`ErrorKind::InvalidSize`]: no size was set for a memory section,
    ///   or it is 0 or too large.
    /// - [`ErrorKind::NoSpace`]: the namespace (or disk) has no room for
    ///   the memory; nothing was created.
    /// - [`ErrorKind::NotFound`]: the namespace directory does not exist.
    /// - [`ErrorKind::Unsupported`]: a persistent lifetime on Windows, or a
    ///   handle-counted one on macOS.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{ErrorKind, Namespace, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let ns = Namespace::at(dir.path());
    /// let mut opts = SectionOptions::new();
    /// opts.size(1 << 20).namespace(&ns);
    /// let section = opts.create("frames")?;
    /// assert_eq!(section.name(), Some("frames"));
    ///
    /// // The name is taken while the section lives.
    /// let again = opts.create("frames").unwrap_err();
    /// assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    /// # Ok(()) }
    /// ```
    pub fn create(&self, name: &str) -> Result<Section> {
        self.create_with_object(name, None)
    }

    /// Creates a named memory-backed section and runs `init` on a writable
    /// view of it *before* it is published under `name`: no opener can see
    /// the section until `init` has returned `Ok`. If `init` fails, nothing
    /// is published and its error is returned.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create), and [`ErrorKind::Unsupported`] for a
    /// file-backed section and on Windows and macOS, which publish a named
    /// section the moment it exists (there, create it, initialise it, then
    /// tell readers, e.g. with a [`sync::Event`](crate::sync::Event)).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Namespace, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let ns = Namespace::at(dir.path());
    /// let made = SectionOptions::new()
    ///     .size(4096)
    ///     .namespace(&ns)
    ///     .create_with("config", |view| view.write_at(0, b"version=2"));
    /// match made {
    ///     Ok(_section) => {
    ///         // Whoever opens "config" sees it initialised.
    ///         let opened = SectionOptions::new().namespace(&ns).open("config")?;
    ///         let mut buf = [0u8; 9];
    ///         opened.map_all(Access::Read)?.read_at(0, &mut buf)?;
    ///         assert_eq!(&buf, b"version=2");
    ///     }
    ///     Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported), // Windows, macOS
    /// }
    /// # Ok(()) }
    /// ```
    pub fn create_with(
        &self,
        name: &str,
        mut init: impl FnMut(&View) -> Result<()>,
    ) -> Result<Section> {
        if self.file.is_some() {
            return Err(Error::new(ErrorKind::Unsupported, "create")
                .with_name(name)
                .with_detail("create_with initialises memory-backed sections; a file-backed one shows its file"));
        }
        self.create_with_object(
            name,
            Some(&mut |object| {
                let private = Section::from_object(
                    object,
                    Kind::Anonymous,
                    Access::ReadWrite,
                    None,
                    Lifetime::Counted,
                );
                init(&private.map_all(Access::ReadWrite)?)
            }),
        )
    }

    /// Creates a named memory section with `init` run on it: before it is
    /// published where the platform allows ([`create_with`](Self::create_with)),
    /// otherwise (Windows, macOS) right after creating it, before returning.
    /// Callers that must not be seen half made write a ready mark last.
    pub(crate) fn create_initialised(
        &self,
        name: &str,
        mut init: impl FnMut(&View) -> Result<()>,
    ) -> Result<Section> {
        if sys::PUBLISHES_INITIALISED {
            return self.create_with(name, init);
        }
        let section = self.create(name)?;
        init(&section.map_all(Access::ReadWrite)?)?;
        Ok(section)
    }

    fn create_with_object(
        &self,
        name: &str,
        init: Option<&mut dyn FnMut(sys::Object) -> Result<()>>,
    ) -> Result<Section> {
        const OP: &str = "create";
        self.check(OP, name)?;
        let (object, kind) = sys::create_named(&self.namespace, name, &self.spec(), init)?;
        Ok(Section::from_object(
            object,
            kind,
            self.creator_access(),
            Some(name),
            self.lifetime,
        )
        .with_sparse(self.sparse))
    }

    /// Opens an existing named section with the configured access; fails
    /// with `NotFound` if there is none and `Stale` if its last holder died.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::NotFound`]: no section has the name.
    /// - [`ErrorKind::Stale`]: its last holder died (Linux); the next
    ///   `create` reclaims the name.
    /// - [`ErrorKind::PermissionDenied`]: the OS refused the access, or the
    ///   section belongs to another user and
    ///   [`allow_foreign_owner`](Self::allow_foreign_owner) was not set.
    /// - [`ErrorKind::Replaced`]: a named file-backed section's file was
    ///   replaced or removed.
    /// - [`ErrorKind::WrongKind`]: the name is not a section (a directory,
    ///   a FIFO, a symbolic link).
    /// - [`ErrorKind::InvalidName`]: see [`validate_name`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Namespace, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let ns = Namespace::at(dir.path());
    /// let mut opts = SectionOptions::new();
    /// opts.namespace(&ns).access(Access::Read);
    /// assert_eq!(opts.open("prices").unwrap_err().kind(), ErrorKind::NotFound);
    ///
    /// let _writer = SectionOptions::new().size(4096).namespace(&ns).create("prices")?;
    /// let reader = opts.open("prices")?;
    /// assert_eq!(reader.access(), Access::Read);
    /// # Ok(()) }
    /// ```
    pub fn open(&self, name: &str) -> Result<Section> {
        const OP: &str = "open";
        validate_name(name).map_err(|e| e.with_op(OP))?;
        let (object, kind, lifetime) =
            sys::open_named(&self.namespace, name, self.access, self.allow_foreign_owner)?;
        Ok(
            Section::from_object(object, kind, self.access, Some(name), lifetime)
                .with_sparse(self.sparse),
        )
    }

    /// Opens the named section, creating it if it does not exist. Says
    /// which happened; an opened section keeps its actual size, which
    /// [`Disposition::Opened`] reports (it is never silently resized).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Disposition, Namespace, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let ns = Namespace::at(dir.path());
    /// let mut opts = SectionOptions::new();
    /// opts.size(4096).namespace(&ns);
    /// let (first, how) = opts.create_or_open("cache")?;
    /// assert_eq!(how, Disposition::Created);
    ///
    /// // A second caller asks for more, and is told the real size.
    /// opts.size(8192);
    /// let (second, how) = opts.create_or_open("cache")?;
    /// assert_eq!(how, Disposition::Opened { size: 4096 });
    /// # drop((first, second));
    /// # Ok(()) }
    /// ```
    pub fn create_or_open(&self, name: &str) -> Result<(Section, Disposition)> {
        let (section, created) =
            crate::named::create_or_open(name, || self.create(name), || self.open(name))?;
        if created {
            return Ok((section, Disposition::Created));
        }
        let size = section.size()?;
        Ok((section, Disposition::Opened { size }))
    }

    /// Creates an anonymous memory-backed section of the configured size.
    ///
    /// It has no name: share it with a child process
    /// ([`Section::inheritable`]) or, on Unix, over a socket
    /// (`Section::send`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSize`] without a size (or with 0);
    /// [`ErrorKind::NoSpace`] when the memory cannot be reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, SectionOptions};
    ///
    /// # fn main() -> sections::Result<()> {
    /// // Sparse: on Linux, no memory is taken until a page is touched.
    /// let big = SectionOptions::new().size(64 << 20).sparse(true).anonymous()?;
    /// big.map(0, 4096, Access::ReadWrite)?.write_at(0, b"only this page")?;
    /// # Ok(()) }
    /// ```
    pub fn anonymous(&self) -> Result<Section> {
        const OP: &str = "create anonymous";
        let size = self.size.ok_or_else(|| {
            Error::new(ErrorKind::InvalidSize, OP).with_detail("an anonymous section needs a size")
        })?;
        check_size(OP, size)?;
        let object = sys::anonymous(size, self.access.executes(), !self.sparse)?;
        Ok(Section::from_object(
            object,
            Kind::Anonymous,
            self.creator_access(),
            None,
            Lifetime::Counted,
        )
        .with_sparse(self.sparse))
    }
}

/// The common cases, as verbs of [`Section`].
impl Section {
    /// A builder for the less common cases: [`SectionOptions`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Lifetime, Namespace, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let ns = Namespace::at(dir.path());
    /// let section = Section::options()
    ///     .size(64 * 1024)
    ///     .mode(0o640)
    ///     .namespace(&ns)
    ///     .create("telemetry")?;
    /// assert_eq!(section.lifetime(), Lifetime::Counted);
    /// # Ok(()) }
    /// ```
    pub fn options() -> SectionOptions {
        SectionOptions::new()
    }

    /// Creates a named, memory-backed, handle-counted section of `size`
    /// bytes in the default namespace, read-write, mode 0600.
    ///
    /// On Linux that is the file `/dev/shm/NAME`, on Windows `Local\NAME`.
    /// Use [`Section::options`] for another namespace, a file, or a
    /// persistent name.
    ///
    /// # Errors
    ///
    /// As [`SectionOptions::create`]: [`ErrorKind::AlreadyExists`] when a
    /// live section has the name, [`ErrorKind::NoSpace`] when there is no
    /// room for `size` bytes, [`ErrorKind::InvalidName`] for a bad name.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let name = &format!("doc-create-{}", std::process::id());
    /// let section = Section::create(name, 4096)?;
    /// section.map_all(Access::ReadWrite)?.write_at(0, b"hello")?;
    /// // Dropping the last handle (and view) removes the name.
    /// # Ok(()) }
    /// ```
    pub fn create(name: &str, size: u64) -> Result<Section> {
        Section::options().size(size).create(name)
    }

    /// Opens a named section in the default namespace.
    ///
    /// # Errors
    ///
    /// As [`SectionOptions::open`]: [`ErrorKind::NotFound`] when no section
    /// has the name, [`ErrorKind::Stale`] when its last holder died,
    /// [`ErrorKind::PermissionDenied`] when `access` is refused or the
    /// section belongs to another user.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// # let name = &format!("doc-open-{}", std::process::id());
    /// let writer = Section::create(name, 4096)?;
    /// writer.map_all(Access::ReadWrite)?.write_at(0, b"ready")?;
    ///
    /// // Usually in another process:
    /// let reader = Section::open(name, Access::Read)?;
    /// let mut buf = [0u8; 5];
    /// reader.map_all(Access::Read)?.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"ready");
    /// # Ok(()) }
    /// ```
    pub fn open(name: &str, access: Access) -> Result<Section> {
        Section::options().access(access).open(name)
    }

    /// Creates an anonymous memory-backed section of `size` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Kind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let section = Section::anonymous(4096)?;
    /// assert_eq!(section.kind(), Kind::Anonymous);
    /// assert_eq!(section.name(), None);
    /// let view = section.map_all(Access::ReadWrite)?;
    /// view.write_at(0, b"scratch")?;
    /// # Ok(()) }
    /// ```
    pub fn anonymous(size: u64) -> Result<Section> {
        Section::options().size(size).anonymous()
    }
}
