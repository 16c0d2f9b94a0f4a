//! Handing sections to other processes on Unix: over a Unix socket with
//! `SCM_RIGHTS`, or by descriptor inheritance.
//!
//! Floor 2: uses `section`, `sys`, `types` and `error`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::error::{Error, ErrorKind, Result};
use crate::section::Section;
use crate::sys;
use crate::types::{Access, Kind, Lifetime};

impl Section {
    /// Sends this section over a Unix socket with this handle's access.
    /// The receiver gets a handle to the same memory (see [`receive`](Self::receive)).
    ///
    /// Unix only (`SCM_RIGHTS`); on Windows, use
    /// [`inheritable`](Self::inheritable) or `duplicate_into`.
    ///
    /// # Examples
    ///
    /// Both ends of the socket are in this process here; usually the
    /// other end is another process, connected through a socket path.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    ///
    /// let section = Section::anonymous(4096)?;
    /// section.map_all(Access::ReadWrite)?.write_at(0, b"over the socket")?;
    /// section.send(&ours)?;
    ///
    /// let received = Section::receive(&theirs)?;
    /// let mut buf = [0u8; 15];
    /// received.map_all(Access::Read)?.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"over the socket");
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn send(&self, stream: &UnixStream) -> Result<()> {
        self.send_as(stream, self.access())
    }

    /// Sends this section over a Unix socket with at most `access`. A
    /// read-only send hands over a new read-only descriptor, so the receiver
    /// cannot write even by mapping it itself.
    ///
    /// A named section's receiver holds the memory, not the name: it does
    /// not count as a holder for the name's lifetime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PermissionDenied`] when `access` is more than this
    /// handle has.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use sections::{Access, ErrorKind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    /// let section = Section::anonymous(4096)?;
    /// section.send_as(&ours, Access::Read)?;
    ///
    /// let received = Section::receive(&theirs)?;
    /// assert_eq!(received.access(), Access::Read);
    /// let refused = received.map_all(Access::ReadWrite).unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn send_as(&self, stream: &UnixStream, access: Access) -> Result<()> {
        const OP: &str = "send";
        if !self.access().allows(access) {
            return Err(self
                .err(ErrorKind::PermissionDenied, OP)
                .with_detail(format!(
                    "cannot send {:?} access from a {:?} handle",
                    access,
                    self.access()
                )));
        }
        let fd = self.object().fd();
        let reopened;
        let fd = if !access.needs_writable_handle() && sys::fd_writable(fd).unwrap_or(true) {
            reopened = sys::reopen_read_only(fd).map_err(|e| self.err_os(OP, e))?;
            reopened.as_fd()
        } else {
            fd
        };
        let tag = access.tag() | if self.kind().is_file() { 0x80 } else { 0 };
        sys::send_fd(stream, fd, tag).map_err(|e| self.err_os(OP, e))
    }

    /// Receives a section sent with [`send`](Self::send). It arrives with
    /// the access it was sent with (never more than its descriptor allows).
    ///
    /// Waits until a message arrives on `stream`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKind`] when the message is not a section sent by
    /// this library; an OS error when the socket fails or carries no
    /// descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use sections::{Access, Kind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    /// std::thread::spawn(move || Section::anonymous(4096)?.send(&ours));
    ///
    /// let received = Section::receive(&theirs)?;
    /// assert_eq!(received.kind(), Kind::Anonymous);
    /// assert_eq!(received.access(), Access::ReadWrite);
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn receive(stream: &UnixStream) -> Result<Section> {
        const OP: &str = "receive";
        let (fd, tag) = sys::receive_fd(stream).map_err(|e| Error::os(OP, e))?;
        let sent = Access::from_tag(tag & 0x7f).ok_or_else(|| {
            Error::new(ErrorKind::WrongKind, OP).with_detail(format!("unknown access tag {tag}"))
        })?;
        let (object, _, actual) = sys::Object::adopt(fd, OP)?;
        let kind = if tag & 0x80 != 0 {
            Kind::File
        } else {
            Kind::Anonymous
        };
        let access = sent.within(actual);
        Ok(Section::from_object(
            object,
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
    ///
    /// [`inheritable`](Self::inheritable) does the same on every platform,
    /// with a token instead of a descriptor number.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// if let Ok(fd) = std::env::var("SECTION_FD") {
    ///     // The child, after exec: adopt the inherited descriptor.
    ///     let fd: i32 = fd.parse().unwrap();
    ///     // SAFETY: the parent passed this descriptor to us alone, and
    ///     // nothing else in this process owns it.
    ///     let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ///     return Section::from_fd(fd)?.map_all(Access::ReadWrite)?.write_at(0, b"by fd");
    /// }
    ///
    /// let section = Section::anonymous(4096)?;
    /// let fd = section.inheritable_fd()?;
    /// let status = std::process::Command::new(std::env::current_exe().unwrap())
    ///     .env("SECTION_FD", fd.as_raw_fd().to_string())
    ///     .status()
    ///     .unwrap();
    /// drop(fd); // the child has its copy
    /// assert!(status.success());
    /// let mut buf = [0u8; 5];
    /// section.map_all(Access::Read)?.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"by fd");
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        sys::inheritable_dup(self.object().fd()).map_err(|e| self.err_os("share with child", e))
    }

    /// Adopts a descriptor of a section, for example one inherited from a
    /// parent process. Its access is the descriptor's; a memfd becomes an
    /// anonymous section, a regular file a file-backed one.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WrongKind`] when the descriptor is neither a memfd nor
    /// a regular file.
    ///
    /// # Examples
    ///
    /// A file opened by other code becomes a section; see
    /// [`inheritable_fd`](Self::inheritable_fd) for a descriptor inherited
    /// from a parent.
    ///
    /// ```
    /// use std::os::fd::OwnedFd;
    /// use sections::{Access, Kind, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let file = tempfile::tempfile().unwrap();
    /// file.set_len(4096).unwrap();
    /// let section = Section::from_fd(OwnedFd::from(file))?;
    /// assert_eq!(section.kind(), Kind::File);
    /// assert_eq!(section.access(), Access::ReadWrite);
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn from_fd(fd: OwnedFd) -> Result<Section> {
        let (object, kind, access) = sys::Object::adopt(fd, "adopt descriptor")?;
        let lifetime = if kind == Kind::Anonymous {
            Lifetime::Counted
        } else {
            Lifetime::Persistent
        };
        Ok(Section::from_object(object, kind, access, None, lifetime))
    }
}

#[cfg_attr(docsrs, doc(cfg(unix)))]
impl AsFd for Section {
    /// The descriptor of the section's memory.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.object().fd()
    }
}
