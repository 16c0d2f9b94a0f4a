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
    pub fn send(&self, stream: &UnixStream) -> Result<()> {
        self.send_as(stream, self.access())
    }

    /// Sends this section over a Unix socket with at most `access`. A
    /// read-only send hands over a new read-only descriptor, so the receiver
    /// cannot write even by mapping it itself.
    ///
    /// A named section's receiver holds the memory, not the name: it does
    /// not count as a holder for the name's lifetime.
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
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        sys::inheritable_dup(self.object().fd()).map_err(|e| self.err_os("share with child", e))
    }

    /// Adopts a descriptor of a section, for example one inherited from a
    /// parent process. Its access is the descriptor's; a memfd becomes an
    /// anonymous section, a regular file a file-backed one.
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

impl AsFd for Section {
    /// The descriptor of the section's memory.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.object().fd()
    }
}
