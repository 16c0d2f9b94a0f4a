//! Waiting and waking: how a sender waiting for room and a receiver
//! waiting for a message spin, park and wake each other. The announcement
//! protocol on the waiting words is `ring.rs`'s (and in its loom model);
//! sleeping and waking is the platform's `Waker` (a futex on the word on
//! Linux, kernel events on Windows).

use std::time::{Duration, Instant};

use super::layout::{RX_WAITING, TX_WAITING};
use super::ring::{Look, Ring};
use super::WaitStrategy;
use crate::error::Result;
use crate::sys::{Side, Waker};
use crate::view::View;

/// How long one sleep lasts before liveness is checked again.
const NAP: Duration = Duration::from_millis(50);
/// Spins before parking, with `SpinThenPark`.
const SPINS: u32 = 2000;

/// The waiting word of `side` in the header.
fn waiting_word(side: Side) -> usize {
    match side {
        Side::Receiver => RX_WAITING,
        Side::Senders => TX_WAITING,
    }
}

/// What every handle of a channel has: its ring and how to wait.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) ring: Ring,
    pub(crate) waker: Waker,
    pub(crate) wait: WaitStrategy,
}

impl Shared {
    #[inline]
    pub(crate) fn view(&self) -> &View {
        self.ring.mem.view()
    }

    /// The section object (for peer locks).
    #[inline]
    pub(crate) fn object(&self) -> &crate::sys::Object {
        self.view().section().object()
    }

    /// Wakes `side` if it said it is going to sleep.
    #[inline]
    pub(crate) fn wake(&self, side: Side) -> Result<()> {
        let waiting = waiting_word(side);
        if !self.ring.must_wake(waiting) {
            return Ok(());
        }
        self.waker
            .wake(side, self.ring.mem.u32(waiting))
            .map_err(|e| e.with_name(&self.ring.name))
    }

    /// Sleeps (as `side`) until woken or `until`.
    #[inline]
    fn park(&self, side: Side, until: Instant) -> Result<()> {
        self.waker
            .wait(side, self.ring.mem.u32(waiting_word(side)), until)
            .map_err(|e| e.with_name(&self.ring.name))
    }

    /// Waits until `check` yields something, `deadline` passes (None), or
    /// it fails. `check` is told how closely to look: now and then, before
    /// sleeping and when the deadline passes, more than while spinning.
    pub(crate) fn wait_for<T>(
        &self,
        side: Side,
        deadline: Option<Instant>,
        mut check: impl FnMut(Look) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let mut spins = 0u32;
        loop {
            let mode = if spins % 1024 == 1023 {
                Look::Liveness
            } else {
                Look::Fast
            };
            if let Some(v) = check(mode)? {
                return Ok(Some(v));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // A last, closer look: damage and a closed peer show even
                // to `try_` calls.
                return check(Look::Reserve);
            }
            let spin = match self.wait {
                WaitStrategy::Spin => true,
                WaitStrategy::SpinThenPark => spins < SPINS,
                WaitStrategy::Park => false,
            };
            if spin {
                // A short, growing pause between looks.
                for _ in 0..(1 << (spins / 256).min(6)) {
                    std::hint::spin_loop();
                }
                spins = spins.wrapping_add(1);
                continue;
            }
            // Announce, re-check (with the liveness checks), then sleep.
            self.ring.announce(waiting_word(side));
            if let Some(v) = check(Look::Liveness)? {
                return Ok(Some(v));
            }
            let nap = Instant::now() + NAP;
            self.park(side, deadline.map_or(nap, |d| d.min(nap)))?;
        }
    }
}
