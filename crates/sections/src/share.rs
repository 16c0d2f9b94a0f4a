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
/// Start the child, then drop it. See [`Section::inheritable`] for an
/// example.
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
    ///
    /// # Examples
    ///
    /// An anonymous section handed to a child process (here this program
    /// itself, started again with the token in its environment), which
    /// writes into it:
    ///
    /// ```
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// if let Ok(token) = std::env::var("SHARED_SECTION") {
    ///     // The child.
    ///     let section = Section::from_token(&token)?;
    ///     return section.map_all(Access::ReadWrite)?.write_at(0, b"from the child");
    /// }
    ///
    /// let section = Section::anonymous(4096)?;
    /// let inherit = section.inheritable()?;
    /// let status = std::process::Command::new(std::env::current_exe().unwrap())
    ///     .env("SHARED_SECTION", inherit.token())
    ///     .status()
    ///     .unwrap();
    /// drop(inherit);
    /// assert!(status.success());
    ///
    /// let mut buf = [0u8; 14];
    /// section.map_all(Access::Read)?.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"from the child");
    /// # Ok(()) }
    /// ```
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
    /// in the parent (or, on Windows, by `duplicate_into`). See
    /// [`inheritable`](Self::inheritable) for an example.
    ///
    /// A token names a handle this process inherited. The section adopts
    /// a duplicate of it: whatever the token names (a handle this process
    /// uses for something else, or its own `Inheritable`), nothing of this
    /// process is closed or taken over, on success or on error; the
    /// inherited handle itself stays open until the child closes it or
    /// ends (it holds no lock: the lifetime of anonymous memory is at most
    /// the child's).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidName`](crate::ErrorKind::InvalidName) when
    /// `token` is not a section token; an error from the OS when the handle
    /// it names is not an inherited section.
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::windows::io::AsHandle;
    /// use std::process::{Command, Stdio};
    /// use sections::{Access, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// if std::env::var_os("SECTION_CHILD").is_some() {
    ///     // The child: read the token from stdin, adopt the section.
    ///     let mut token = String::new();
    ///     std::io::stdin().read_line(&mut token).unwrap();
    ///     let section = Section::from_token(token.trim())?;
    ///     return section.map_all(Access::ReadWrite)?.write_at(0, b"duplicated");
    /// }
    ///
    /// let section = Section::anonymous(4096)?;
    /// let mut child = Command::new(std::env::current_exe().unwrap())
    ///     .env("SECTION_CHILD", "1")
    ///     .stdin(Stdio::piped())
    ///     .spawn()
    ///     .unwrap();
    /// let token = section.duplicate_into(child.as_handle())?;
    /// use std::io::Write;
    /// writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    /// assert!(child.wait().unwrap().success());
    ///
    /// let mut buf = [0u8; 10];
    /// section.map_all(Access::Read)?.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"duplicated");
    /// # Ok(()) }
    /// ```
    #[cfg(windows)]
    #[cfg_attr(docsrs, doc(cfg(windows)))]
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
