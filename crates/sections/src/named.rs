//! Small helpers for named objects that sections, sync objects and channels
//! share: create-or-open with retries, and deadlines for timed waits.
//!
//! Floor 2: uses only the error type.

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// Creates, or else opens, a named object; `true` if it was created. Retries
/// when the object disappears between the two attempts (removed, or its
/// last holder died).
pub(crate) fn create_or_open<T>(
    name: &str,
    create: impl Fn() -> Result<T>,
    open: impl Fn() -> Result<T>,
) -> Result<(T, bool)> {
    let mut last = None;
    for _ in 0..8 {
        match create() {
            Ok(object) => return Ok((object, true)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match open() {
            Ok(object) => return Ok((object, false)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Stale) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::new(ErrorKind::NotFound, "create or open").with_name(name)))
}

/// The instant `timeout` from now (far in the future if that overflows).
pub(crate) fn deadline(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
}
