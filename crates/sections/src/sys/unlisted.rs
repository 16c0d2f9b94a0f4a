//! The namespace part of the contract for platforms that cannot list their
//! named sections (Windows, macOS): every answer is `Unsupported`, with the
//! platform's reason (`LISTING_UNSUPPORTED`), and nothing is ever stale.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use super::imp::LISTING_UNSUPPORTED;
use super::{Listing, ProcUse};

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, LISTING_UNSUPPORTED)
}

pub(crate) fn list_namespace(_dir: &Path) -> io::Result<Vec<Listing>> {
    Err(unsupported())
}

pub(crate) fn list_entry(_dir: &Path, _name: &str) -> io::Result<Option<Listing>> {
    Err(unsupported())
}

pub(crate) fn entry_type(_path: &Path) -> Option<&'static str> {
    None
}

pub(crate) fn reclaim_stale(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

pub(crate) fn remove_abandoned_build(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

pub(crate) fn resident_bytes(_path: &Path) -> io::Result<u64> {
    Err(unsupported())
}

pub(crate) fn users_of(_ids: &[(u64, u64)]) -> io::Result<HashMap<(u64, u64), Vec<ProcUse>>> {
    Err(unsupported())
}

pub(crate) fn peer_held_at(_path: &Path, _index: u32) -> Option<bool> {
    None
}
