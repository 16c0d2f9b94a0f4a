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
    pub fn create(&self, name: &str) -> Result<Section> {
        self.create_with_object(name, None)
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
}
