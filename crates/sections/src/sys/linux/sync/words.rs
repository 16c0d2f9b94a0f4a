//! The event and semaphore protocols over one shared word, free of the OS:
//! waiting and waking come from a [`Word`], so the same code runs on
//! shared futexes (`mod.rs`) and on loom's model of them (the
//! tests at the end, `--cfg loom`).
//!
//! # Waking after a waiter dies
//!
//! Windows never leaves a waiter asleep on a signalled object, and neither
//! may we, even when the waiter the kernel picked is killed between being
//! woken and taking the signal. So `set` and `release` wake *every*
//! sleeper, and each one re-checks the word and takes what is there with
//! one compare-and-swap; those that find nothing sleep again. A sleeper
//! killed at any step takes nothing with it: before its swap it has taken
//! nothing, and every other sleeper was woken too and looks for itself;
//! after its swap it took the signal, as a waiter that returned and then
//! died would have.
//!
//! The cost is that every sleeper wakes for every signal (a "thundering
//! herd"): with many processes waiting on one auto-reset event, each `set`
//! runs all of them briefly. Sync objects are for coordination, not for
//! passing messages (the channel is), so correctness under a crash wins.
//!
//! # The words
//!
//! ```text
//!  event      bit 0: set; bits 1..32: how many times it was set (wrapping)
//!    set      swap in "set, one more set" (AcqRel), wake all
//!    reset    swap the set bit off (the count stays)
//!    wait     manual: return when the set bit is on, or when the count
//!             moved since the wait began (set, then reset at once);
//!             auto: return when a swap clears the set bit (AcqRel);
//!             otherwise sleep while the word is unchanged, then look again
//!  semaphore  the count (at most the maximum)
//!    release  add n with a swap that refuses to pass the maximum, wake all
//!    acquire  return when a swap c → c - 1 (c > 0) succeeds;
//!             otherwise sleep while the count is 0, then look again
//! ```
//!
//! A sleeper sleeps only while its word still holds the value it saw
//! (the futex contract), so a signal between its look and its sleep makes
//! the sleep return at once: no wake-up is lost to that race either.
//!
//! # Waiters in an event loop: the bell
//!
//! A task on an event loop cannot sleep on a futex; it waits for a
//! descriptor (`mod.rs`: an inotify watch of the object's file) that a
//! [`Bell`] makes readable. It announces itself in the bell's word
//! instead, then looks again:
//!
//! ```text
//!  waiter (poll)    look (take if set / a count); else
//!                   announce: store 1 (SeqCst), fence (SeqCst); look again;
//!                   nothing: wait for the descriptor, then poll again
//!  signaller        set / release as above, wake all sleepers, then
//!                   fence (SeqCst); if the bell's word is not 0, swap 0
//!                   in and ring (every waiter's descriptor fires)
//! ```
//!
//! The two fences order each side's store before its load, so either the
//! waiter's second look sees the signal or the signaller sees the
//! announcement and rings (loom: `no_lost_bell_*`). Every waiter watches
//! on its own, so one ring reaches all; those that find nothing announce
//! again. A hostile value in the bell's word costs a spurious ring.

#[cfg(loom)]
use loom::sync::atomic::fence;
#[cfg(not(loom))]
use std::sync::atomic::fence;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::error::Result;

/// A shared 32-bit word that threads of any process can sleep on.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u32;
    /// A strong compare-and-swap, `AcqRel` on success, `Acquire` on failure.
    fn compare_exchange(&self, current: u32, new: u32) -> std::result::Result<u32, u32>;
    /// Sleeps while the word is `expected`, at most until `deadline`. May
    /// return early (a wake-up, a signal, a changed value); callers look
    /// again.
    fn wait(&self, expected: u32, deadline: Option<Instant>) -> Result<()>;
    /// Wakes every sleeper.
    fn wake_all(&self) -> Result<()>;
    /// The error for a value the protocol never writes (a peer is buggy
    /// or hostile).
    fn corrupted(&self, what: String) -> crate::error::Error;
}

/// The doorbell of waiters in an event loop (see the module docs).
pub(crate) trait Bell {
    /// Marks "a waiter in an event loop may wait" (SeqCst).
    fn announce(&self);
    /// Whether a waiter announced itself, clearing the mark (SeqCst).
    fn take_announcement(&self) -> bool;
    /// Makes every announced waiter's descriptor readable.
    fn ring(&self) -> Result<()>;
}

/// A waiter's announcement, ordered before its second look.
fn announce(bell: &impl Bell) {
    bell.announce();
    fence(Ordering::SeqCst);
}

/// After a signal: rings if a waiter announced itself.
fn ring_if_announced(bell: &impl Bell) -> Result<()> {
    // Pairs with the fence in `announce`.
    fence(Ordering::SeqCst);
    if bell.take_announcement() {
        bell.ring()?;
    }
    Ok(())
}

/// An event word's "set" bit; the bits above count `set` calls (wrapping).
const SET: u32 = 1;
/// One `set` in the count.
const ONE_SET: u32 = 2;

/// Sets an event: the set bit, and one more in the count of sets.
pub(crate) fn set(word: &impl Word, bell: &impl Bell) -> Result<()> {
    let mut w = word.load(Ordering::Relaxed);
    loop {
        // Release (in the swap): what the setter wrote before is visible
        // to the waiter that sees the new word.
        match word.compare_exchange(w, (w | SET).wrapping_add(ONE_SET)) {
            Ok(_) => break,
            Err(now) => w = now,
        }
    }
    word.wake_all()?;
    ring_if_announced(bell)
}

/// Clears an event's set bit (the count of sets stays).
pub(crate) fn reset(word: &impl Word) {
    let mut w = word.load(Ordering::Relaxed);
    while w & SET != 0 {
        match word.compare_exchange(w, w & !SET) {
            Ok(_) => return,
            Err(now) => w = now,
        }
    }
}

/// Waits for an event; `false` if `deadline` passed first.
///
/// A manual-reset event releases a waiter that finds it set, and one
/// that was waiting when it was set even if it was reset before the
/// waiter ran (the count of sets moved), as Windows releases every thread
/// waiting at the moment of `SetEvent`. An auto-reset event releases the
/// waiter whose swap clears the set bit: one per `set` (sets that come
/// before anyone takes one coalesce, as on Windows). Every value of the
/// word means something, so no value a peer writes makes a waiter spin.
pub(crate) fn wait(word: &impl Word, manual: bool, deadline: Option<Instant>) -> Result<bool> {
    // Acquire pairs with the setter's release.
    let first = word.load(Ordering::Acquire);
    let mut w = first;
    loop {
        let released = if manual {
            w & SET != 0 || (w >> 1) != (first >> 1)
        } else {
            w & SET != 0 && word.compare_exchange(w, w & !SET).is_ok()
        };
        if released {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        if w & SET == 0 {
            word.wait(w, deadline)?;
        }
        w = word.load(Ordering::Acquire);
    }
}

/// Takes the event if it is set (clearing it, if auto-reset), without
/// waiting.
fn try_wait(word: &impl Word, manual: bool) -> bool {
    let mut w = word.load(Ordering::Acquire);
    loop {
        if w & SET == 0 {
            return false;
        }
        if manual {
            return true;
        }
        match word.compare_exchange(w, w & !SET) {
            Ok(_) => return true,
            Err(now) => w = now,
        }
    }
}

/// An event loop's wait: takes the event if it is set (as [`wait`]
/// would, without sleeping); otherwise announces the waiter on `bell` and
/// looks again. `false`: wait for the bell's descriptor, then poll again.
/// A manual-reset event set and reset while nobody polled is not seen
/// (only sleepers are released by a set they did not look at).
pub(crate) fn poll_wait(word: &impl Word, bell: &impl Bell, manual: bool) -> bool {
    if try_wait(word, manual) {
        return true;
    }
    announce(bell);
    try_wait(word, manual)
}

/// An event loop's acquire: as [`poll_wait`], for a semaphore's count.
pub(crate) fn poll_acquire(count: &impl Word, bell: &impl Bell, max: u32) -> Result<bool> {
    // A deadline already passed: one look, no sleep.
    let now = Some(Instant::now());
    if acquire(count, max, now)? {
        return Ok(true);
    }
    announce(bell);
    acquire(count, max, now)
}

/// Takes one count of a semaphore; `false` if `deadline` passed first. A
/// count above `max` is `Corrupted`.
pub(crate) fn acquire(count: &impl Word, max: u32, deadline: Option<Instant>) -> Result<bool> {
    loop {
        let c = count.load(Ordering::Acquire);
        if c > max {
            return Err(count.corrupted(format!("semaphore count {c} above its maximum {max}")));
        }
        if c > 0 {
            // AcqRel: taking a count pairs with the release that gave it.
            if count.compare_exchange(c, c - 1).is_ok() {
                return Ok(true);
            }
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        count.wait(0, deadline)?;
    }
}

/// Returns `n` counts unless that passes `max`; `Err(count)` (with the
/// count seen) if it would, and then nothing was released.
pub(crate) fn release(
    count: &impl Word,
    bell: &impl Bell,
    max: u32,
    n: u32,
) -> Result<std::result::Result<(), u32>> {
    let mut c = count.load(Ordering::Acquire);
    loop {
        if c > max {
            return Err(count.corrupted(format!("semaphore count {c} above its maximum {max}")));
        }
        let Some(next) = c.checked_add(n).filter(|&v| v <= max) else {
            return Ok(Err(c));
        };
        match count.compare_exchange(c, next) {
            Ok(_) => break,
            Err(now) => c = now,
        }
    }
    count.wake_all()?;
    ring_if_announced(bell)?;
    Ok(Ok(()))
}

#[cfg(all(test, loom))]
mod model {
    //! `RUSTFLAGS="--cfg loom" cargo test -p sections --lib --release model`
    //! (see .ci/run). A futex is modelled by a mutex and a condition
    //! variable: a sleeper checks the word under the mutex, a waker takes
    //! it before notifying, so a store before the wake is never missed.
    //! A waiter killed between being woken and acting is a [`Doomed`]
    //! word: the first time it sees the word change (by a wake-up or a
    //! look) it stops, having taken nothing.

    use super::*;
    use crate::error::{Error, ErrorKind};
    use loom::sync::atomic::AtomicU32;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    struct Futex {
        value: AtomicU32,
        lock: Mutex<()>,
        sleepers: Condvar,
        /// How many threads sleep in `wait` right now.
        asleep: AtomicU32,
        /// The bell's word, and the descriptor it makes readable.
        announced: AtomicU32,
        rang: Mutex<bool>,
        bell: Condvar,
    }

    impl Futex {
        fn new(value: u32) -> Arc<Futex> {
            Arc::new(Futex {
                value: AtomicU32::new(value),
                lock: Mutex::new(()),
                sleepers: Condvar::new(),
                asleep: AtomicU32::new(0),
                announced: AtomicU32::new(0),
                rang: Mutex::new(false),
                bell: Condvar::new(),
            })
        }

        /// An event loop waiting for the descriptor, then clearing it.
        fn wait_for_bell(&self) {
            let mut rang = self.rang.lock().unwrap();
            while !*rang {
                rang = self.bell.wait(rang).unwrap();
            }
            *rang = false;
        }
    }

    impl Bell for Futex {
        fn announce(&self) {
            self.announced.store(1, Ordering::SeqCst);
        }
        fn take_announcement(&self) -> bool {
            self.announced.load(Ordering::SeqCst) != 0
                && self.announced.swap(0, Ordering::SeqCst) != 0
        }
        fn ring(&self) -> Result<()> {
            *self.rang.lock().unwrap() = true;
            self.bell.notify_all();
            Ok(())
        }
    }

    impl Word for Futex {
        fn load(&self, order: Ordering) -> u32 {
            self.value.load(order)
        }
        fn compare_exchange(&self, current: u32, new: u32) -> std::result::Result<u32, u32> {
            self.value
                .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
        }
        fn wait(&self, expected: u32, _: Option<Instant>) -> Result<()> {
            let guard = self.lock.lock().unwrap();
            if self.value.load(Ordering::SeqCst) == expected {
                self.asleep.fetch_add(1, Ordering::SeqCst);
                let guard = self.sleepers.wait(guard).unwrap();
                self.asleep.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
            }
            Ok(())
        }
        fn wake_all(&self) -> Result<()> {
            let _guard = self.lock.lock().unwrap();
            self.sleepers.notify_all();
            Ok(())
        }
        fn corrupted(&self, what: String) -> Error {
            Error::new(ErrorKind::Corrupted, "model").with_detail(what)
        }
    }

    /// A waiter that is killed as soon as it is woken from a sleep, or at
    /// the swap that would take the signal (before it takes effect): from
    /// then on it is dead, and the next thing it does returns an error
    /// that ends its thread.
    struct Doomed {
        word: Arc<Futex>,
        dead: std::cell::Cell<bool>,
    }

    impl Doomed {
        fn new(word: Arc<Futex>) -> Doomed {
            Doomed {
                word,
                dead: std::cell::Cell::new(false),
            }
        }
    }

    impl Word for Doomed {
        fn load(&self, order: Ordering) -> u32 {
            if self.dead.get() {
                return 0;
            }
            self.word.load(order)
        }
        fn compare_exchange(&self, current: u32, _new: u32) -> std::result::Result<u32, u32> {
            let actual = self.word.load(Ordering::Acquire);
            if actual == current {
                // Killed at the swap that would have taken it.
                self.dead.set(true);
            }
            Err(actual)
        }
        fn wait(&self, expected: u32, deadline: Option<Instant>) -> Result<()> {
            if !self.dead.get() {
                self.word.wait(expected, deadline)?;
            }
            // Killed between being woken and acting on it.
            self.dead.set(true);
            Err(Error::new(ErrorKind::Os, "killed"))
        }
        fn wake_all(&self) -> Result<()> {
            self.word.wake_all()
        }
        fn corrupted(&self, what: String) -> Error {
            self.word.corrupted(what)
        }
    }

    /// An auto-reset event with two sleepers, one of which dies as soon
    /// as it is woken: the other still gets the one `set`. (When `set`
    /// woke a single sleeper, the model deadlocked here: the signal went
    /// to the dying one and the other slept for ever on a set event.)
    #[test]
    fn event_survives_a_woken_waiter_dying() {
        loom::model(|| {
            let word = Futex::new(0);
            let doomed = {
                let word = Doomed::new(word.clone());
                thread::spawn(move || {
                    let _ = wait(&word, false, None);
                })
            };
            let waiter = {
                let word = word.clone();
                thread::spawn(move || assert!(wait(&*word, false, None).unwrap()))
            };
            set(&*word, &*word).unwrap();
            waiter.join().unwrap();
            // The one set was taken by the live waiter. Another set ends
            // the doomed one if it is still asleep.
            assert_eq!(word.load(Ordering::SeqCst) & SET, 0);
            set(&*word, &*word).unwrap();
            doomed.join().unwrap();
        });
    }

    /// A manual-reset event set and at once reset releases the waiters
    /// that were waiting, as Windows' `SetEvent` does. (When waiters
    /// looked only at the set bit, the model deadlocked: woken, they found
    /// it cleared and slept again.)
    #[test]
    fn manual_event_releases_its_waiters_even_if_reset_at_once() {
        loom::model(|| {
            let word = Futex::new(0);
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let word = word.clone();
                    thread::spawn(move || assert!(wait(&*word, true, None).unwrap()))
                })
                .collect();
            // Set once both sleep in their wait.
            while word.asleep.load(Ordering::SeqCst) < 2 {
                thread::yield_now();
            }
            set(&*word, &*word).unwrap();
            reset(&*word);
            for w in waiters {
                w.join().unwrap();
            }
        });
    }

    /// A semaphore: the same, for one released count.
    #[test]
    fn semaphore_survives_a_woken_waiter_dying() {
        loom::model(|| {
            let count = Futex::new(0);
            let doomed = {
                let count = Doomed::new(count.clone());
                thread::spawn(move || {
                    let _ = acquire(&count, 2, None);
                })
            };
            let waiter = {
                let count = count.clone();
                thread::spawn(move || assert!(acquire(&*count, 2, None).unwrap()))
            };
            release(&*count, &*count, 2, 1).unwrap().unwrap();
            waiter.join().unwrap();
            assert_eq!(count.load(Ordering::SeqCst), 0);
            release(&*count, &*count, 2, 1).unwrap().unwrap();
            doomed.join().unwrap();
        });
    }

    /// A waiter in an event loop (announce, look again, wait for the
    /// bell) and a `set` from another thread: the waiter always gets it.
    /// Without the fence in `announce` or in `ring_if_announced` the
    /// model finds the interleaving where neither sees the other: a
    /// waiter asleep on its descriptor beside a set event.
    #[test]
    fn no_lost_bell_event() {
        loom::model(|| {
            let word = Futex::new(0);
            let setter = {
                let word = word.clone();
                thread::spawn(move || set(&*word, &*word).unwrap())
            };
            while !poll_wait(&*word, &*word, false) {
                word.wait_for_bell();
            }
            assert_eq!(word.load(Ordering::SeqCst) & SET, 0, "taken");
            setter.join().unwrap();
        });
    }

    /// The same for a semaphore's count.
    #[test]
    fn no_lost_bell_semaphore() {
        loom::model(|| {
            let count = Futex::new(0);
            let releaser = {
                let count = count.clone();
                thread::spawn(move || release(&*count, &*count, 1, 1).unwrap().unwrap())
            };
            while !poll_acquire(&*count, &*count, 1).unwrap() {
                count.wait_for_bell();
            }
            assert_eq!(count.load(Ordering::SeqCst), 0, "taken");
            releaser.join().unwrap();
        });
    }
}
