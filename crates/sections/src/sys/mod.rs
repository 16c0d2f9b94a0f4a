//! The platform boundary: the only module that talks to the operating system.
//!
//! Everything above this module works with owned descriptors and the small
//! functions re-exported here; nothing above it calls `libc` or `rustix`.

use std::path::Path;

use crate::section::Lifetime;

/// What a new named section is asked to be.
pub(crate) struct Spec<'a> {
    pub size: Option<u64>,
    pub mode: u32,
    pub lifetime: Lifetime,
    /// Back it by this file instead of memory.
    pub file: Option<&'a Path>,
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("sections currently supports Linux only");
