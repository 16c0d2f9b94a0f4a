//! Peer slots: who the receiver and each sender are, and whether they are
//! still there. A slot is an owner word in the header (and, for a sender,
//! a generation that its records carry); who owns it is decided by the
//! platform's peer lock (`sys::PeerLock`): on Linux an open-file-
//! description lock the kernel drops when its process dies, seen alike
//! from every PID namespace; on Windows one swap of the owner word from a
//! free word or the token of a process that is gone.
//!
//! ```text
//!  owner word   event                                         next
//!  FREE (0)     an endpoint claims the slot (the platform's    its token
//!               one atomic decision; a sender then bumps the
//!               generation)
//!  CLOSED (1)   (the receiver's slot) a receiver claims it     its token
//!  token        the endpoint drops its end: FREE (a sender)    FREE / CLOSED
//!               or CLOSED (the receiver, so that senders
//!               learn it at once), then lets go of the claim
//!  token        the endpoint's process dies: the word stays;   claimable
//!               the claim is gone (Linux: the kernel dropped
//!               its lock; Windows: its process is gone)
//!  anything     a claimer that dies at any step: the claim is   claimable
//!               not held, so the next claim takes the slot
//! ```
//!
//! Looking costs: a word read says "connected" (the word is a token) while
//! spinning; asking whether the claim is held is a system call, made now
//! and then and before sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

use super::wait::Shared;
use crate::error::{Error, Result};
use crate::sys::{self, PeerLock, Side, PEER_CLOSED, PEER_FREE};

/// The receiver's peer-lock index; sender slot `i` has index `1 + i`.
pub(crate) const RECEIVER: u32 = 0;

pub(crate) fn sender_index(slot: u32) -> u32 {
    1 + slot
}

/// Whether an owner word names an endpoint (not free, not closed).
pub(crate) fn connected(owner: u64) -> bool {
    owner != PEER_FREE && owner != PEER_CLOSED
}

/// Claims the slot with peer-lock `index` and owner word `owner` for a new
/// endpoint of this process; `None` when a live endpoint holds it.
pub(crate) fn claim(shared: &Shared, index: u32, owner: &AtomicU64) -> Result<Option<PeerLock>> {
    PeerLock::claim(shared.object(), index, owner)
        .map_err(|e| Error::os("connect", e).with_name(&shared.ring.name))
}

/// Whether the slot with peer-lock `index`, whose owner word reads
/// `owner`, is held by a live endpoint: on Linux the lock alone decides (a
/// system call; the word is anyone's to write), on Windows the word and
/// whether its process runs.
pub(crate) fn held(shared: &Shared, index: u32, owner: u64) -> bool {
    sys::peer_held(shared.object(), index, owner)
}

/// An endpoint leaves its slot: writes `left` into its owner word (FREE for
/// a sender, CLOSED for the receiver), lets go of the claim, then wakes
/// `side`, which asks the lock. A forked child's copy does nothing: the
/// slot is the parent's.
pub(crate) fn leave(
    shared: &Shared,
    claim: &mut PeerLock,
    owner: &AtomicU64,
    left: u64,
    side: Side,
) {
    if !claim.claimed_here() {
        return;
    }
    owner.store(left, Ordering::Release);
    claim.release();
    let _ = shared.wake(side);
}

/// The error for an endpoint used in a process forked from the one that
/// opened it: the slot is the parent's.
#[cold]
pub(crate) fn forked_copy(ring: &super::ring::Ring, op: &'static str) -> Error {
    ring.err(crate::error::ErrorKind::Disconnected, op)
        .with_detail(
            "this endpoint was opened by the parent of this forked process and is the parent's; \
         open one in this process",
        )
}

/// Whether sender `slot` of `generation` is connected and alive (for the
/// reservation lock and for skipping its records).
pub(crate) fn sender_alive(shared: &Shared, slot: u32, generation: u32) -> bool {
    let ring = &shared.ring;
    ring.slot_generation(slot).load(Ordering::Acquire) & 0xffff == generation & 0xffff
        && held(
            shared,
            sender_index(slot),
            ring.slot_owner(slot).load(Ordering::Acquire),
        )
}
