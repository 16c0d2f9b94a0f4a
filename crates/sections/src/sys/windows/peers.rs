//! Peer slots on Windows: a slot's owner word holds its owner's process
//! token (id and creation time); a claim is one compare-and-swap from a
//! free or closed word, or from the token of a process that is gone, so a
//! claimer that dies at any step leaves the slot claimable and two
//! claimers never both win. The kernel says whether a process runs
//! (Windows has no PID namespaces to disagree about it).

use std::io;
use std::sync::atomic::AtomicU64;

use super::{process_alive, process_token, Object};
use crate::sys::claim::claim_by_swap;
use crate::sys::{PEER_CLOSED, PEER_FREE};

/// This endpoint's claim on a slot (its process is what keeps it).
#[derive(Debug)]
pub(crate) struct PeerLock;

impl PeerLock {
    /// Claims slot `index` (`owner` is its word) for a new endpoint;
    /// `Ok(None)` when a live process holds it.
    pub(crate) fn claim(
        _object: &Object,
        _index: u32,
        owner: &AtomicU64,
    ) -> io::Result<Option<PeerLock>> {
        let free = |w: u64| w == PEER_FREE || w == PEER_CLOSED;
        Ok(claim_by_swap(owner, process_token(), free, process_alive).then_some(PeerLock))
    }

    /// No fork on Windows: a claim is always this process's.
    pub(crate) fn claimed_here(&self) -> bool {
        true
    }

    /// Nothing to let go of: the owner word, set free or closed by the
    /// endpoint, was the claim.
    pub(crate) fn release(&mut self) {}
}

/// Whether slot `index`, whose owner word reads `owner`, is held by a
/// running process.
pub(crate) fn peer_held(_object: &Object, _index: u32, owner: u64) -> bool {
    owner != PEER_FREE && owner != PEER_CLOSED && process_alive(owner)
}
