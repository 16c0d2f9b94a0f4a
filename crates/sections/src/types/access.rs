//! [`Access`]: what a handle or a view may do with the memory, and the one
//! rule by which an access is narrowed to what the OS granted.
//!
//! Floor 0: uses nothing of this crate.

/// What a handle or a view may do with the memory.
///
/// A handle's access bounds its views: a section opened with
/// [`Access::Read`] has a read-only descriptor, so the kernel itself refuses
/// a writable shared mapping. Copy-on-write views only need read access.
///
/// # Examples
///
/// ```
/// use sections::{Access, ErrorKind, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let _owner = Section::options().size(4096).namespace(&ns).create("prices")?;
/// let reader = Section::options().access(Access::Read).namespace(&ns).open("prices")?;
///
/// assert!(reader.map_all(Access::Read).is_ok());
/// // A private copy needs only read access; its writes stay in the view.
/// let scratch = reader.map_all(Access::CopyOnWrite)?;
/// assert!(scratch.access().writes() && scratch.access().is_private());
/// scratch.write_at(0, b"what if")?;
/// // A shared writable view needs a read-write handle.
/// assert_eq!(reader.map_all(Access::ReadWrite).unwrap_err().kind(), ErrorKind::PermissionDenied);
/// # Ok(()) }
/// ```
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

    /// The access a handle asked for as `self` really has when its OS
    /// handle turned out to allow `actual`: never more than either. (The
    /// one rule for narrowing an access: opening a file, adopting a
    /// descriptor, receiving one.)
    pub(crate) fn within(self, actual: Access) -> Access {
        if self.needs_writable_handle() && !actual.needs_writable_handle() {
            Access::Read
        } else {
            self
        }
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
