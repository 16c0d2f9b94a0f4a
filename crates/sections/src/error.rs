//! One error type for the whole crate: a kind a program can match on, plus the
//! context a person needs (which operation, which section, what the OS said).
//!
//! Floor 0: uses nothing of this crate.

use std::fmt;
use std::io;

/// What went wrong, in terms a caller can act on.
///
/// # Examples
///
/// ```
/// use sections::{Access, ErrorKind, Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let mut opts = Section::options();
/// opts.size(4096).namespace(&ns);
/// // Open the section another process publishes, or make it ourselves.
/// let section = match opts.open("feed") {
///     Ok(section) => section,
///     Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Stale) => opts.create("feed")?,
///     Err(e) => return Err(e),
/// };
/// # let _ = (section, Access::Read);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No section exists under that name (or the file behind it is gone).
    NotFound,
    /// A section already exists under that name.
    AlreadyExists,
    /// The OS refused access, the section is owned by another user, or a
    /// write was attempted through a read-only handle or view.
    PermissionDenied,
    /// The name is not a valid section name (empty, contains `/` or NUL,
    /// `.`/`..`, too long, or reserved).
    InvalidName,
    /// An offset or length is unaligned or outside the section or view.
    InvalidRange,
    /// A size is zero, too large to map, or smaller than the current size
    /// where only growth is allowed.
    InvalidSize,
    /// The name was left behind by a holder that died: the section is not
    /// live and is never opened as if it were. `create` reclaims it and
    /// [`gc`](crate::gc) removes it.
    Stale,
    /// The name refers to a file that was replaced or removed since the
    /// section was created.
    Replaced,
    /// Another process shrank the section's file under this view: the
    /// access reached past the new end and read or wrote nothing real (the
    /// view sees zeros there from now on).
    Truncated,
    /// A channel has no room for the message now (`try_send`).
    Full,
    /// A channel has no message now (`try_recv`).
    Empty,
    /// A wait ran out.
    TimedOut,
    /// The other side of a channel is gone (dropped or died); everything
    /// it had fully sent was received first.
    Disconnected,
    /// Shared memory holds something the protocol cannot have written: a
    /// peer is buggy or hostile. Nothing was read out of bounds.
    Corrupted,
    /// An entry in the namespace is not something this crate can open as a
    /// section (a directory, a device, a damaged record).
    WrongKind,
    /// The operation is not available on this platform or namespace.
    Unsupported,
    /// The file system (or memory) holding the section has no room for
    /// it: nothing was created, or the section was not grown. A section's
    /// memory is reserved when it is created or grown, so this is reported
    /// then, never as a lost write later.
    NoSpace,
    /// A peer of another version of this library made the object: its
    /// shared layout or protocol differs, so it is not used.
    WrongVersion,
    /// A file is not an image this crate can map, or its headers are
    /// damaged or hostile (truncated, segments overlapping or past the end
    /// of the file, absurd sizes). See [`Image::open`](crate::Image::open).
    BadImage,
    /// An image's code cannot run where it was mapped without a dynamic
    /// loader: it needs relocations or other libraries, or is linked for
    /// fixed addresses. See [`MappedImage::function`](crate::MappedImage::function).
    NeedsRelocation,
    /// Any other operating-system error; see [`Error::os_error`].
    Os,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::InvalidRange => "invalid range",
            ErrorKind::InvalidSize => "invalid size",
            ErrorKind::Stale => "stale (its last holder died without releasing it)",
            ErrorKind::Replaced => "backing file replaced or removed",
            ErrorKind::Truncated => "truncated by another process",
            ErrorKind::Full => "full",
            ErrorKind::Empty => "empty",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Corrupted => "corrupted shared state",
            ErrorKind::WrongKind => "not a section",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NoSpace => "no space",
            ErrorKind::WrongVersion => "made by an incompatible version",
            ErrorKind::BadImage => "not a valid image",
            ErrorKind::NeedsRelocation => "needs relocation by a dynamic loader",
            ErrorKind::Os => "operating-system error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of every fallible operation in this crate.
///
/// Its `Display` is a complete sentence fragment a command-line tool can
/// print as it is, e.g.
/// `section 'telemetry': open: permission denied (owned by uid 1001, not by this user (uid 1000); ...)`.
///
/// It is one pointer wide (the details live in a box), so that `Result`s
/// stay cheap on hot paths that almost never fail.
///
/// # Examples
///
/// ```
/// use sections::{Access, ErrorKind, Namespace, Section};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = Namespace::at(dir.path());
/// let err = Section::options().namespace(&ns).access(Access::Read).open("missing").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.operation(), "open");
/// assert_eq!(err.name(), Some("missing"));
/// println!("{err}"); // section 'missing': open: not found (...)
///
/// // It converts into std::io::Error, for code that speaks io::Result.
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// ```
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    op: &'static str,
    name: Option<String>,
    /// What `name` names: "section", or "image" for image files.
    subject: &'static str,
    detail: Option<String>,
    source: Option<io::Error>,
    /// The owner's uid when the object was refused for belonging to
    /// another user: a tool can then name its own switch for
    /// `allow_foreign_owner`.
    foreign_owner: Option<u32>,
}

impl Error {
    fn from_parts(kind: ErrorKind, op: &'static str, source: Option<io::Error>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                op,
                name: None,
                subject: "section",
                detail: None,
                source,
                foreign_owner: None,
            }),
        }
    }

    pub(crate) fn new(kind: ErrorKind, op: &'static str) -> Self {
        Self::from_parts(kind, op, None)
    }

    /// An error from an OS call, classified by its errno.
    pub(crate) fn os(op: &'static str, err: io::Error) -> Self {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::Unsupported => ErrorKind::Unsupported,
            io::ErrorKind::StorageFull => ErrorKind::NoSpace,
            _ => ErrorKind::Os,
        };
        Self::from_parts(kind, op, Some(err))
    }

    /// Opening an object owned by user `owner` was refused because the
    /// caller (user `user`) did not allow foreign owners.
    #[cfg_attr(windows, allow(dead_code))] // Windows has no owner check.
    pub(crate) fn refused_foreign_owner(op: &'static str, owner: u32, user: u32) -> Self {
        let mut err = Self::new(ErrorKind::PermissionDenied, op).with_detail(format!(
            "owned by uid {owner}, not by this user (uid {user}); opening another user's \
             section must be allowed explicitly, with allow_foreign_owner(true)"
        ));
        err.inner.foreign_owner = Some(owner);
        err
    }

    pub(crate) fn with_name(mut self, name: &str) -> Self {
        if self.inner.name.is_none() {
            self.inner.name = Some(name.to_owned());
        }
        self
    }

    /// Names the image file the error is about.
    pub(crate) fn with_image(mut self, path: &str) -> Self {
        if self.inner.name.is_none() {
            self.inner.name = Some(path.to_owned());
            self.inner.subject = "image";
        }
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }

    pub(crate) fn with_op(mut self, op: &'static str) -> Self {
        self.inner.op = op;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The operation that failed (`"create"`, `"open"`, `"map"`, ...).
    pub fn operation(&self) -> &'static str {
        self.inner.op
    }

    /// The section's name, when the operation concerned a named section.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// The uid of the user who owns the object, when the operation was
    /// refused ([`ErrorKind::PermissionDenied`]) only because it belongs to
    /// another user and `allow_foreign_owner` was not set.
    pub fn foreign_owner(&self) -> Option<u32> {
        self.inner.foreign_owner
    }

    /// The underlying OS error, when there is one.
    pub fn os_error(&self) -> Option<&io::Error> {
        self.inner.source.as_ref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Error")
            .field("kind", &i.kind)
            .field("op", &i.op)
            .field("name", &i.name)
            .field("detail", &i.detail)
            .field("source", &i.source)
            .field("foreign_owner", &i.foreign_owner)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        if let Some(name) = &i.name {
            write!(f, "{} '{}': ", i.subject, name.escape_debug())?;
        }
        write!(f, "{}: {}", i.op, i.kind)?;
        match (&i.detail, &i.source) {
            (Some(d), Some(e)) => write!(f, " ({d}: {e})"),
            (Some(d), None) => write!(f, " ({d})"),
            (None, Some(e)) => write!(f, " ({e})"),
            (None, None) => Ok(()),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err.inner.kind {
            ErrorKind::NotFound | ErrorKind::Stale | ErrorKind::Replaced => io::ErrorKind::NotFound,
            ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
            ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::InvalidName | ErrorKind::InvalidRange | ErrorKind::InvalidSize => {
                io::ErrorKind::InvalidInput
            }
            ErrorKind::WrongKind => io::ErrorKind::InvalidData,
            ErrorKind::Truncated => io::ErrorKind::UnexpectedEof,
            ErrorKind::Full | ErrorKind::Empty => io::ErrorKind::WouldBlock,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::Disconnected => io::ErrorKind::BrokenPipe,
            ErrorKind::Corrupted => io::ErrorKind::InvalidData,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::NoSpace => io::ErrorKind::StorageFull,
            ErrorKind::WrongVersion => io::ErrorKind::InvalidData,
            ErrorKind::BadImage => io::ErrorKind::InvalidData,
            ErrorKind::NeedsRelocation => io::ErrorKind::Unsupported,
            ErrorKind::Os => err
                .inner
                .source
                .as_ref()
                .map_or(io::ErrorKind::Other, io::Error::kind),
        };
        io::Error::new(kind, err)
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_stay_small() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Result<()>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn display_and_source() {
        let e = Error::os("open", io::Error::from(io::ErrorKind::NotFound))
            .with_name("telemetry")
            .with_detail("looked in /dev/shm");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let text = e.to_string();
        assert!(text.starts_with("section 'telemetry': open: "), "{text}");
        assert!(text.contains("looked in /dev/shm"), "{text}");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_foreign_owner_is_named_and_the_switch_is_the_api() {
        let e = Error::refused_foreign_owner("open", 1001, 1000).with_name("telemetry");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(e.foreign_owner(), Some(1001));
        let text = e.to_string();
        assert!(text.contains("owned by uid 1001"), "{text}");
        assert!(text.contains("allow_foreign_owner(true)"), "{text}");
        let other = Error::os("open", io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(other.foreign_owner(), None);
    }
}
