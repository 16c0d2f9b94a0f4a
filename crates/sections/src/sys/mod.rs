//! The platform boundary: the only module that talks to the operating system.
//!
//! Everything above this module works with owned descriptors and the small
//! functions re-exported here; nothing above it calls `libc` or `rustix`.

use std::path::Path;

use crate::section::Lifetime;

/// What a new named section is asked to be.
pub(crate) struct Spec<'a> {
    pub size: Option<u64>,
    /// Permission bits (Windows gives named objects the creator's default
    /// security instead).
    #[cfg_attr(windows, allow(dead_code))]
    pub mode: u32,
    pub lifetime: Lifetime,
    /// Back it by this file instead of memory.
    pub file: Option<&'a Path>,
    /// Allow executable views (Windows must say so when it creates the
    /// section; Unix needs nothing).
    #[cfg_attr(unix, allow(dead_code))]
    pub exec: bool,
    /// Reserve the memory (or the bytes added to a file) now, so that no
    /// room is an error at creation, not a lost write later.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub reserve: bool,
}

impl Spec<'_> {
    /// The size of a memory-backed section, which must be given.
    pub(crate) fn memory_size(&self, op: &'static str, name: &str) -> crate::error::Result<u64> {
        self.size.ok_or_else(|| {
            crate::error::Error::new(crate::error::ErrorKind::InvalidSize, op)
                .with_name(name)
                .with_detail("a memory-backed section needs a size")
        })
    }
}

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub(crate) use macos::*;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!("sections supports Linux, macOS and Windows");
