//! Claiming a peer slot by one swap of its owner word: Windows' peer lock
//! (Linux's is a kernel lock, `linux/peers.rs`), written once over a small
//! trait so that loom checks it (`--cfg loom`, the models at the end).
//!
//! ```text
//!  owner word         event                                     next
//!  free / closed      a claimer swaps in its token              its token
//!  token of a live    a claimer looks: refused, nothing written  unchanged
//!  process
//!  token of a dead    a claimer swaps it for its own token      its token
//!  process
//! ```
//!
//! The swap is the whole decision: two claimers that both saw a free word
//! (or the same dead owner) cannot both succeed, and a claimer that dies
//! right after its swap leaves its own token, which the next claimer finds
//! dead.

use std::sync::atomic::Ordering;

/// The owner word of a slot.
pub(crate) trait OwnerWord {
    fn load(&self, order: Ordering) -> u64;
    /// A strong compare-and-swap, `AcqRel` on success, `Acquire` on failure.
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64>;
}

impl OwnerWord for std::sync::atomic::AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        self.load(order)
    }

    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        self.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

/// Claims `owner` for `me` if it is free, closed (`free(word)`), or names
/// an owner that is gone (`!alive(word)`); whether it did.
#[cfg_attr(not(windows), allow(dead_code))]
pub(crate) fn claim_by_swap(
    owner: &impl OwnerWord,
    me: u64,
    free: impl Fn(u64) -> bool,
    alive: impl Fn(u64) -> bool,
) -> bool {
    let mut current = owner.load(Ordering::Acquire);
    loop {
        if !free(current) && alive(current) {
            return false;
        }
        match owner.compare_exchange(current, me) {
            Ok(_) => return true,
            Err(now) => current = now,
        }
    }
}

#[cfg(all(test, loom))]
mod model {
    //! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p sections --lib --release model`

    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
    use loom::sync::Arc;
    use loom::thread;

    impl OwnerWord for AtomicU64 {
        fn load(&self, order: Ordering) -> u64 {
            AtomicU64::load(self, order)
        }
        fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
            AtomicU64::compare_exchange(self, current, new, Ordering::AcqRel, Ordering::Acquire)
        }
    }

    const FREE: u64 = 0;
    /// Tokens of the model's processes; 9 is one that died long ago.
    const DEAD: u64 = 9;

    /// Two claimers race for a slot whose owner died: exactly one gets it.
    #[test]
    fn two_claimers_never_both_win() {
        loom::model(|| {
            let owner = Arc::new(AtomicU64::new(DEAD));
            let winners = Arc::new(AtomicU32::new(0));
            let racers: Vec<_> = [1u64, 2]
                .into_iter()
                .map(|me| {
                    let (owner, winners) = (owner.clone(), winners.clone());
                    thread::spawn(move || {
                        if claim_by_swap(&*owner, me, |w| w == FREE, |w| w != DEAD) {
                            winners.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for r in racers {
                r.join().unwrap();
            }
            assert_eq!(winners.load(Ordering::SeqCst), 1);
            let w = owner.load(Ordering::SeqCst);
            assert!(w == 1 || w == 2);
        });
    }

    /// A claimer that dies at any step (before its swap, or after it,
    /// leaving its token) never keeps the slot from the next claimer: the
    /// other one, trying until it wins, always does (a slot stuck with a
    /// dead owner would leave it trying for ever, a loom failure).
    #[test]
    fn a_dying_claimer_leaves_the_slot_claimable() {
        loom::model(|| {
            let owner = Arc::new(AtomicU64::new(FREE));
            let dead = Arc::new(AtomicBool::new(false));
            let dying = {
                let (owner, dead) = (owner.clone(), dead.clone());
                thread::spawn(move || {
                    let won = claim_by_swap(&*owner, 1, |w| w == FREE, |_| true);
                    dead.store(true, Ordering::SeqCst);
                    won
                })
            };
            let alive = {
                let dead = dead.clone();
                move |w: u64| !(w == 1 && dead.load(Ordering::SeqCst))
            };
            // The other claimer tries until the slot is free or its owner
            // dead; it never wins while the first one lives and owns it.
            loop {
                if claim_by_swap(&*owner, 2, |w| w == FREE, &alive) {
                    assert!(
                        owner.load(Ordering::SeqCst) == 2,
                        "won, but the word is not ours"
                    );
                    break;
                }
                thread::yield_now();
            }
            dying.join().unwrap();
        });
    }
}
