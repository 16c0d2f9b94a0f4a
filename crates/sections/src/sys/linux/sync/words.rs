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

/// An event word's "set" bit; the bits above count `set` calls (wrapping).
const SET: u32 = 1;
/// One `set` in the count.
const ONE_SET: u32 = 2;

/// Sets an event: the set bit, and one more in the count of sets.
pub(crate) fn set(word: &impl Word) -> Result<()> {
    let mut w = word.load(Ordering::Relaxed);
    loop {
        // Release (in the swap): what the setter wrote before is visible
        // to the waiter that sees the new word.
        match word.compare_exchange(w, (w | SET).wrapping_add(ONE_SET)) {
            Ok(_) => break,
            Err(now) => w = now,
        }
    }
    word.wake_all()
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
pub(crate) fn release(count: &impl Word, max: u32, n: u32) -> Result<std::result::Result<(), u32>> {
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
    }

    impl Futex {
        fn new(value: u32) -> Arc<Futex> {
            Arc::new(Futex {
                value: AtomicU32::new(value),
                lock: Mutex::new(()),
                sleepers: Condvar::new(),
                asleep: AtomicU32::new(0),
            })
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
            set(&*word).unwrap();
            waiter.join().unwrap();
            // The one set was taken by the live waiter. Another set ends
            // the doomed one if it is still asleep.
            assert_eq!(word.load(Ordering::SeqCst) & SET, 0);
            set(&*word).unwrap();
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
            set(&*word).unwrap();
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
            release(&*count, 2, 1).unwrap().unwrap();
            waiter.join().unwrap();
            assert_eq!(count.load(Ordering::SeqCst), 0);
            release(&*count, 2, 1).unwrap().unwrap();
            doomed.join().unwrap();
        });
    }
}
