//! Peer slots: who the receiver and each sender are, and whether they
//! still run. A slot is a state word and an owner word (the process token)
//! in the header; the receiver has one, each sender one of `senders`.
//!
//! ```text
//!  state     event                                        next
//!  FREE      a peer connects: swap FREE → TAKEN, store    TAKEN
//!            its token
//!  TAKEN     the peer drops its end: store FREE (a         FREE / CLOSED
//!            sender) or CLOSED (the receiver)
//!  CLOSED    a receiver connects: swap CLOSED → TAKEN      TAKEN
//!  TAKEN     a peer connects and finds the owner's         TAKEN (its own)
//!            process gone: swap the owner word
//! ```
//!
//! Liveness is asked of the process token (`sys::process_alive`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::ring::Ring;
use crate::sys;

/// Peer slot states.
pub(crate) const FREE: u32 = 0;
pub(crate) const TAKEN: u32 = 1;
pub(crate) const CLOSED: u32 = 2;

/// Takes a peer slot for the process `token` names: a slot in one of the
/// `reusable` states, or one whose process is gone.
pub(crate) fn claim(state: &AtomicU32, owner: &AtomicU64, token: u64, reusable: &[u32]) -> bool {
    let taken = reusable.iter().any(|&from| {
        state
            .compare_exchange(from, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    let taken = taken || {
        let old = owner.load(Ordering::Acquire);
        !sys::process_alive(old)
            && owner
                .compare_exchange(old, token, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    };
    if taken {
        owner.store(token, Ordering::Release);
    }
    taken
}

/// Whether a peer slot is held by a running process.
pub(crate) fn peer_alive(state: u32, token: u64) -> bool {
    state == TAKEN && sys::process_alive(token)
}

/// Whether sender `slot` of `generation` is connected in a live process
/// (for the reservation lock and for skipping its records).
pub(crate) fn sender_alive(ring: &Ring, slot: u32, generation: u32) -> bool {
    ring.slot_generation(slot).load(Ordering::Acquire) & 0xffff == generation & 0xffff
        && peer_alive(
            ring.slot_state(slot).load(Ordering::Acquire),
            ring.slot_token(slot).load(Ordering::Acquire),
        )
}
