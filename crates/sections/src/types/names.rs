//! Names and the namespace they live in: [`Namespace`], the validation
//! every name passes before it reaches the OS, and the prefix reserved for
//! sections being built.
//!
//! Floor 0: uses only the error type.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// The longest name, in bytes (the file-name limit of Linux file systems).
pub const MAX_NAME_LEN: usize = 255;

/// Names beginning with this are the crate's own files (sections being
/// built, before they are published) and are refused as section names.
pub(crate) const RESERVED_PREFIX: &str = ".sections-";

/// Where named sections live: a directory, `/dev/shm` by default.
///
/// A section named `telemetry` in the default namespace is the file
/// `/dev/shm/telemetry`, the very object that `shm_open("/telemetry")` in C,
/// `SharedMemory("telemetry")` in Python and Boost.Interprocess open.
/// [`Namespace::at`] picks any other directory, the analog of a Windows
/// private namespace: names there are invisible to the default namespace.
///
/// # Examples
///
/// ```
/// use sections::{Namespace, Section};
///
/// # fn main() -> sections::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let ns = Namespace::at(dir.path());
/// # let name = &format!("doc-namespace-{}", std::process::id());
/// let private = Section::options().size(4096).namespace(&ns).create(name)?;
///
/// // The same name in the default namespace is another object.
/// assert!(Section::open(name, sections::Access::Read).is_err());
/// let public = Section::create(name, 4096)?;
/// # drop((private, public));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    dir: PathBuf,
}

impl Namespace {
    /// A namespace rooted at `dir`, which must be an existing directory
    /// (checked when a section is created or opened in it).
    ///
    /// On Windows, `dir` only names the namespace: its objects' names get
    /// a prefix made from it, and the directory need not exist. On macOS
    /// only the default namespace exists (`Unsupported` otherwise).
    ///
    /// # Examples
    ///
    /// A namespace per test, so that tests running at once never meet
    /// each other's names:
    ///
    /// ```
    /// use sections::{Namespace, Section};
    ///
    /// # fn main() -> sections::Result<()> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let ns = Namespace::at(dir.path());
    /// assert_eq!(ns.dir(), dir.path());
    /// let _s = Section::options().size(4096).namespace(&ns).create("fixture")?;
    /// # Ok(()) }
    /// ```
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Namespace { dir: dir.into() }
    }

    /// The directory of this namespace.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Default for Namespace {
    /// `/dev/shm`, the POSIX shared-memory namespace, on Linux; the
    /// session's `Local\` object namespace on Windows.
    fn default() -> Self {
        #[cfg(windows)]
        return Namespace::at("Local\\");
        #[cfg(not(windows))]
        Namespace::at("/dev/shm")
    }
}

/// Checks that `name` is usable as a section name.
///
/// A valid name is 1 to [`MAX_NAME_LEN`] bytes, contains no `/` and no NUL,
/// is not `.` or `..`, and does not begin with the crate's reserved prefix
/// `.sections-`. A leading `/` (as in `shm_open("/name")`) is not accepted:
/// pass the bare name. Nothing that passes can name a file outside the
/// namespace directory.
///
/// # Errors
///
/// [`ErrorKind::InvalidName`], saying what is wrong with the name.
///
/// # Examples
///
/// ```
/// use sections::{validate_name, ErrorKind};
///
/// assert!(validate_name("telemetry").is_ok());
/// for bad in ["", "a/b", "..", "/telemetry"] {
///     assert_eq!(validate_name(bad).unwrap_err().kind(), ErrorKind::InvalidName);
/// }
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    // Windows object names may say which session namespace they live in.
    #[cfg(windows)]
    let name = name
        .strip_prefix("Local\\")
        .or_else(|| name.strip_prefix("Global\\"))
        .unwrap_or(name);
    let reason = if name.is_empty() {
        Some("a name cannot be empty".to_owned())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "a name is at most {MAX_NAME_LEN} bytes, this one is {}",
            name.len()
        ))
    } else if name.contains('/') {
        Some("a name cannot contain '/'".to_owned())
    } else if cfg!(windows) && name.contains('\\') {
        Some("a name cannot contain '\\' beyond a Local\\ or Global\\ prefix".to_owned())
    } else if name.contains('\0') {
        Some("a name cannot contain a NUL byte".to_owned())
    } else if name == "." || name == ".." {
        Some(format!("'{name}' is not a name"))
    } else if name.starts_with(RESERVED_PREFIX) {
        Some(format!(
            "names beginning with '{RESERVED_PREFIX}' are reserved for sections being built"
        ))
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::new(ErrorKind::InvalidName, "validate name")
            .with_name(name)
            .with_detail(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "a",
            "telemetry",
            "psm_12ab",
            ".hidden",
            "x.y-z_1",
            &"n".repeat(255),
        ] {
            validate_name(name).unwrap();
        }
    }

    #[test]
    fn rejects_hostile_names() {
        let long = "n".repeat(256);
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/abs",
            "nul\0byte",
            long.as_str(),
            ".sections-tmp",
        ] {
            let err = validate_name(name).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}");
        }
    }
}
