//! Handing a section to a child process, the same way on every platform:
//! make it inheritable, pass the token (an argument or an environment
//! variable), and adopt it in the child with [`Section::from_token`].
//!
//! Floor 2: uses `section`, `sys`, `types` and `error`.

use crate::error::Result;
use crate::section::Section;
use crate::sys;
use crate::types::{Kind, Lifetime};

/// A handle of a section that child processes inherit while it lives.
/// Start the child, then drop it.
#[derive(Debug)]
pub struct Inheritable {
    #[cfg(unix)]
    _handle: std::os::fd::OwnedFd,
    #[cfg(windows)]
    _handle: std::os::windows::io::OwnedHandle,
    token: String,
}

impl Inheritable {
    /// What the child passes to [`Section::from_token`]: a short string
    /// naming the inherited handle and the access it was shared with.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Section {
    /// Makes this section inheritable by child processes started while the
    /// returned value lives (with `std::process::Command`, for example),
    /// with this handle's access.
    pub fn inheritable(&self) -> Result<Inheritable> {
        let (handle, token) = self
            .object()
            .inheritable(self.access(), self.kind())
            .map_err(|e| self.err_os("share with child", e))?;
        Ok(Inheritable {
            _handle: handle,
            token,
        })
    }

    /// Adopts a section from a token made by [`inheritable`](Self::inheritable)
    /// in the parent (or, on Windows, by `duplicate_into`).
    pub fn from_token(token: &str) -> Result<Section> {
        let (object, kind, access) = sys::from_inherited(token)?;
        let lifetime = if kind == Kind::Anonymous {
            Lifetime::Counted
        } else {
            Lifetime::Persistent
        };
        Ok(Section::from_object(object, kind, access, None, lifetime))
    }

    /// Duplicates this section's handle into another process (the Windows
    /// counterpart of sending a descriptor over a Unix socket) and returns
    /// the token for [`Section::from_token`] in that process.
    #[cfg(windows)]
    pub fn duplicate_into(
        &self,
        process: std::os::windows::io::BorrowedHandle<'_>,
    ) -> Result<String> {
        let value = self
            .object()
            .duplicate_into(process)
            .map_err(|e| self.err_os("duplicate into process", e))?;
        Ok(format!(
            "handle:{value}:{}:{}",
            self.access().tag(),
            u8::from(self.kind().is_file())
        ))
    }
}
