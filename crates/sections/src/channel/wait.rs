//! Waiting and waking: how a sender waiting for room and a receiver
//! waiting for a message spin, park and wake each other. The announcement
//! protocol on the waiting words is `ring.rs`'s (and in its loom model);
//! sleeping and waking is the platform's `Waker` (a futex on the word on
//! Linux, kernel events on Windows).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::layout::{RX_WAITING, TX_WAITING};
use super::ring::{Look, Ring};
use super::WaitStrategy;
use crate::error::Result;
use crate::sys::{Readiness, Side, Waker, Watch, BELL, SLEEPER};
use crate::view::View;

/// How long one sleep lasts before liveness is checked again.
const NAP: Duration = Duration::from_millis(50);
/// The longest `SpinThenPark` spins before it yields and parks: about what
/// waking a parked thread costs (a futex wake or an event set, then a
/// scheduler pass: a few microseconds on an idle machine). Spinning longer
/// than a wake-up costs saves nothing, and on a busy machine it takes the
/// CPU the peer needs to answer.
const SPIN_CAP: Duration = Duration::from_micros(20);
/// The shortest spin an adaptive wait keeps: none (it parks at once).
const SPIN_FLOOR: Duration = Duration::ZERO;
/// A gap this long between two looks at the clock while spinning means
/// this thread lost its CPU: the machine has more runnable threads than
/// cores, and spinning takes CPU time the peer may be waiting for.
const PREEMPTED: Duration = Duration::from_micros(50);
/// At the shortest spin, one wait in this many spins the longest again, to
/// find out whether spinning pays again.
const PROBE_EVERY: u32 = 32;

/// How long a `SpinThenPark` wait spins, learnt from the waits before it:
/// a wait the spin itself caught doubles the spin (up to [`SPIN_CAP`]); one
/// that had to sleep halves it, down to [`SPIN_FLOOR`], and so does a spin
/// that lost its CPU ([`PREEMPTED`]). So a handle spins while spinning has
/// recently paid off and parks at once while the peer is slow or the
/// machine is busy; one wait in [`PROBE_EVERY`] at the floor spins the
/// longest again, to find its way back when waits get short again.
#[derive(Debug)]
pub(crate) struct Adaptive {
    /// The current spin, in nanoseconds.
    spin_ns: AtomicU32,
    /// Waits so far (for probing).
    waits: AtomicU32,
}

impl Adaptive {
    pub(crate) fn new() -> Adaptive {
        Adaptive {
            spin_ns: AtomicU32::new(SPIN_CAP.as_nanos() as u32),
            waits: AtomicU32::new(0),
        }
    }

    /// How long the next wait spins.
    #[inline]
    fn spin(&self) -> Duration {
        let now = self.spin_ns.load(Ordering::Relaxed);
        let wait = self.waits.fetch_add(1, Ordering::Relaxed);
        if now <= SPIN_FLOOR.as_nanos() as u32 && wait % PROBE_EVERY == 0 {
            return SPIN_CAP;
        }
        Duration::from_nanos(u64::from(now))
    }

    /// Learns from a wait that took `waited` (`Duration::MAX`: it had to
    /// sleep; `preempted`: its spin lost the CPU).
    #[inline]
    fn learn(&self, waited: Duration, preempted: bool) {
        let now = self.spin_ns.load(Ordering::Relaxed);
        let cap = SPIN_CAP.as_nanos() as u32;
        let floor = SPIN_FLOOR.as_nanos() as u32;
        let next = if preempted {
            (now / 2).max(floor)
        } else if waited <= SPIN_CAP {
            now.saturating_mul(2)
                .max(2 * waited.as_nanos() as u32)
                .max(1_000)
                .min(cap)
        } else {
            (now / 2).max(floor)
        };
        self.spin_ns.store(next, Ordering::Relaxed);
    }
}

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
    /// How long `SpinThenPark` spins, learnt per handle.
    pub(crate) adaptive: Adaptive,
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

    /// Wakes `side` if it said it waits: a sleeper through the waker, an
    /// event loop by its bell.
    #[inline]
    pub(crate) fn wake(&self, side: Side) -> Result<()> {
        let waiting = waiting_word(side);
        let how = self.ring.must_wake(waiting);
        if how == 0 {
            return Ok(());
        }
        let named = |e: crate::error::Error| e.with_name(&self.ring.name);
        // Anything but the bell (bits a hostile peer set included) wakes
        // sleepers: a spurious wake-up costs a look.
        if how & !BELL != 0 {
            self.waker
                .wake(side, self.ring.mem.u32(waiting))
                .map_err(named)?;
        }
        if how & BELL != 0 {
            self.waker.ring(side, self.object()).map_err(named)?;
        }
        Ok(())
    }

    /// Announces that `side` waits for its bell (see `Waker::ring`); the
    /// caller then re-checks before it waits on its [`Readiness`].
    #[inline]
    pub(crate) fn announce_bell(&self, side: Side) {
        self.ring.announce(waiting_word(side), BELL);
    }

    /// What a readiness of `side` watches.
    pub(crate) fn watch(&self, side: Side) -> Watch<'_> {
        self.waker.watch(side, self.object(), &self.ring.name)
    }

    /// What becomes ready when `side`'s bell rings.
    pub(crate) fn readiness(&self, side: Side) -> Result<Readiness> {
        crate::sys::ready_one(self.watch(side))
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
    ///
    /// `Spin` spins with a growing pause; `Park` sleeps at once;
    /// `SpinThenPark` spins for as long as [`Adaptive`] says, then sleeps,
    /// and learns from how long the wait took. (It does not yield between:
    /// a thread woken from a sleep gets the CPU back sooner, on a busy
    /// machine, than one that yielded it.)
    pub(crate) fn wait_for<T>(
        &self,
        side: Side,
        deadline: Option<Instant>,
        mut check: impl FnMut(Look) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        // Nothing to wait for: no clock read, nothing learnt.
        if let Some(v) = check(Look::Fast)? {
            return Ok(Some(v));
        }
        if self.wait != WaitStrategy::SpinThenPark {
            return self.wait_slowly(side, deadline, None, &mut check);
        }
        let mut spin = Spin {
            budget: self.adaptive.spin(),
            started: None,
            last: None,
            preempted: false,
            parked: false,
        };
        let found = self.wait_slowly(side, deadline, Some(&mut spin), &mut check);
        if let Ok(Some(_)) = &found {
            // Spinning paid only if the spin itself found it: a wait that
            // ended after parking may have ended only because this thread
            // let go of the CPU its peer needed. A wait that ended before
            // the first look at the clock was short.
            let waited = match (spin.parked, spin.started) {
                (true, _) => Duration::MAX,
                (false, Some(started)) => started.elapsed(),
                (false, None) => Duration::ZERO,
            };
            self.adaptive.learn(waited, spin.preempted);
        }
        found
    }

    fn wait_slowly<T>(
        &self,
        side: Side,
        deadline: Option<Instant>,
        mut adaptive: Option<&mut Spin>,
        check: &mut impl FnMut(Look) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let mut spins = 1u32;
        let mut spinning = match (self.wait, adaptive.as_deref()) {
            (WaitStrategy::Park, _) => false,
            (_, Some(spin)) => !spin.budget.is_zero(),
            (_, None) => true,
        };
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
            if spinning && spins % CLOCK_EVERY == 0 {
                if let Some(spin) = adaptive.as_deref_mut() {
                    spinning = spin.goes_on();
                }
            }
            if spinning {
                // A short, growing pause between looks.
                for _ in 0..(1 << (spins / 256).min(6)) {
                    std::hint::spin_loop();
                }
                spins = spins.wrapping_add(1);
                continue;
            }
            // Announce, re-check (with the liveness checks: a peer that
            // left before the announcement sent no wake-up, and one that
            // died sends none), then sleep.
            self.ring.announce(waiting_word(side), SLEEPER);
            if let Some(v) = check(Look::Liveness)? {
                return Ok(Some(v));
            }
            if let Some(spin) = adaptive.as_deref_mut() {
                spin.parked = true;
            }
            let nap = Instant::now() + NAP;
            self.park(side, deadline.map_or(nap, |d| d.min(nap)))?;
        }
    }
}

/// Spins between two looks at the clock (a few hundred nanoseconds to a
/// few microseconds): a wait that ends sooner reads no clock at all.
const CLOCK_EVERY: u32 = 64;

/// One adaptive spin: how long, since when (the first look at the clock),
/// whether it lost its CPU, and whether the wait went on to sleep.
struct Spin {
    budget: Duration,
    started: Option<Instant>,
    last: Option<Instant>,
    preempted: bool,
    parked: bool,
}

impl Spin {
    /// Whether to spin on (a look at the clock).
    #[inline]
    fn goes_on(&mut self) -> bool {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        if let Some(last) = self.last {
            if now.duration_since(last) >= PREEMPTED {
                self.preempted = true;
                return false;
            }
        }
        self.last = Some(now);
        now.duration_since(started) < self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_shrinks_while_waits_are_long_and_grows_back() {
        let a = Adaptive::new();
        assert_eq!(a.spin(), SPIN_CAP);
        for _ in 0..20 {
            a.learn(Duration::from_micros(300), false);
        }
        // At the floor, one wait in PROBE_EVERY spins the longest.
        let spins: Vec<Duration> = (0..PROBE_EVERY).map(|_| a.spin()).collect();
        assert_eq!(spins.iter().filter(|&&s| s == SPIN_CAP).count(), 1);
        assert_eq!(
            spins.iter().filter(|&&s| s == SPIN_FLOOR).count() as u32,
            PROBE_EVERY - 1,
            "long waits leave the shortest spin"
        );
        a.learn(Duration::from_micros(5), false);
        assert_eq!(
            a.spin(),
            Duration::from_micros(10),
            "twice the wait that paid"
        );
        a.learn(Duration::from_micros(1), false);
        assert_eq!(a.spin(), SPIN_CAP, "doubled, never past the cap");
        a.learn(Duration::from_micros(2), true);
        assert_eq!(a.spin(), SPIN_CAP / 2, "a spin that lost its CPU halves");
        // From the floor, a short wait found by a probe grows the spin.
        for _ in 0..20 {
            a.learn(Duration::MAX, false);
        }
        assert!(
            (0..PROBE_EVERY).any(|_| a.spin() == SPIN_CAP),
            "a probe within PROBE_EVERY waits"
        );
        a.learn(Duration::ZERO, false);
        assert_eq!(a.spin(), Duration::from_micros(1), "grown from nothing");
    }

    #[test]
    fn a_spin_that_loses_its_cpu_stops() {
        let mut spin = Spin {
            budget: Duration::from_secs(10),
            started: None,
            last: None,
            preempted: false,
            parked: false,
        };
        assert!(spin.goes_on());
        assert!(spin.goes_on());
        // As if descheduled for longer than PREEMPTED.
        std::thread::sleep(PREEMPTED * 2);
        assert!(!spin.goes_on());
        assert!(spin.preempted);
    }

    #[test]
    fn a_spin_ends_with_its_budget() {
        let mut spin = Spin {
            budget: Duration::from_micros(30),
            started: None,
            last: None,
            preempted: false,
            parked: false,
        };
        let start = Instant::now();
        while spin.goes_on() {
            assert!(start.elapsed() < Duration::from_secs(5), "spun on");
        }
        assert!(!spin.preempted || start.elapsed() >= PREEMPTED);
        assert!(start.elapsed() >= Duration::from_micros(30) || spin.preempted);
    }
}
