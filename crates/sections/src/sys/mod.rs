//! The platform boundary: the only module that talks to the operating system.
//!
//! Everything above this module works with owned descriptors and the small
//! functions re-exported here; nothing above it calls `libc` or `rustix`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("sections currently supports Linux only");
