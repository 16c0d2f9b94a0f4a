//! The ring's loom models.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p sections --lib --release model`
//! (see .ci/run): every interleaving and weak-memory outcome loom can
//! produce for small rings.

use std::cell::Cell;

use super::layout::{HEADER, KEY, RX_WAITING, TX_EVER};
use super::ring::*;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

const CAP: u64 = 64;

fn ring(senders: u32) -> Arc<Ring> {
    let mem = Mem::zeroed(HEADER + CAP as usize);
    mem.u64(KEY).store(0x5a5a_0000_1234_0000, Ordering::Relaxed);
    mem.u32(TX_EVER).store(1, Ordering::Relaxed);
    Arc::new(Ring::new(mem, "model", CAP, senders))
}

fn send(ring: &Ring, slot: u32, read: &Cell<u64>, value: u64, len: usize) {
    loop {
        if let Some(r) = ring.reserve(slot, 1, len, read).unwrap() {
            ring.mem
                .write(ring.payload(&r), &value.to_le_bytes()[..len.min(8)])
                .unwrap();
            ring.commit(&r, slot, 1, false);
            return;
        }
        thread::yield_now();
    }
}

fn recv(ring: &Ring) -> (u64, usize) {
    let alive = |_: u32, _: u32| true;
    let senders = || false;
    loop {
        match ring.look(Look::Reserve, &alive, &senders).unwrap().0 {
            Found::Message { payload, len, next } => {
                let mut b = [0u8; 8];
                ring.mem.read(payload, &mut b[..len.min(8)]).unwrap();
                ring.advance(next);
                return (u64::from_le_bytes(b), len);
            }
            Found::Nothing => thread::yield_now(),
        }
    }
}

/// One sender, messages that fill the 64-byte ring and wrap (the third
/// needs padding): all arrive, in order, intact.
#[test]
fn single_sender_wraps_in_order() {
    loom::model(|| {
        let ring = ring(1);
        let tx = ring.clone();
        let t = thread::spawn(move || {
            let read = Cell::new(0);
            send(&tx, 0, &read, 11, 8);
            send(&tx, 0, &read, 22, 24);
            send(&tx, 0, &read, 33, 8);
        });
        assert_eq!(recv(&ring), (11, 8));
        assert_eq!(recv(&ring), (22, 24));
        assert_eq!(recv(&ring), (33, 8));
        t.join().unwrap();
    });
}

/// Takes the reservation lock for sender `slot`, asking `alive` about
/// the holder after the first failed attempt.
fn lock(ring: &Ring, slot: u32, alive: &dyn Fn(u32, u32) -> bool) -> u32 {
    let me = Ring::lock_word(slot, 1);
    let mut attempts = 0;
    while !ring.try_lock(me, attempts > 0, alive).unwrap() {
        attempts += 1;
        thread::yield_now();
    }
    me
}

/// Two senders under the reservation lock (two messages and one): each
/// one's messages in its order, none lost or doubled. Bounded to one
/// preemption.
#[test]
fn two_senders_keep_their_order() {
    let mut model = loom::model::Builder::new();
    model.max_branches = 100_000;
    model.preemption_bound = Some(1);
    model.check(|| {
        let ring = ring(2);
        let spawn = |slot: u32| {
            let ring = ring.clone();
            thread::spawn(move || {
                let read = Cell::new(0);
                let alive = |_: u32, _: u32| true;
                for k in 0..u64::from(2 - slot) {
                    loop {
                        let me = lock(&ring, slot, &alive);
                        let r = ring.reserve(slot, 1, 8, &read).unwrap();
                        ring.unlock(me);
                        if let Some(r) = r {
                            let v = u64::from(slot) * 10 + k;
                            ring.mem.write(ring.payload(&r), &v.to_le_bytes()).unwrap();
                            ring.commit(&r, slot, 1, false);
                            break;
                        }
                        thread::yield_now();
                    }
                }
            })
        };
        let (a, b) = (spawn(0), spawn(1));
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(recv(&ring).0);
        }
        a.join().unwrap();
        b.join().unwrap();
        let of = |s: u64| {
            got.iter()
                .filter(|v| **v / 10 == s)
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(of(0), vec![0, 1]);
        assert_eq!(of(1), vec![10]);
    });
}

/// A sender that dies holding the reservation lock, after reserving (or
/// not: loom runs the other sender at every point before the death), does
/// not stop the other sender: told the holder is gone, it takes the lock
/// over, and its message arrives past the dead one's reservation. The
/// model's liveness oracle is exact; the real one is the peer slots'
/// (`peers.rs`).
#[test]
fn a_dead_lock_holder_is_taken_over() {
    loom::model(|| {
        let ring = ring(2);
        let dead = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let dying = {
            let (ring, dead) = (ring.clone(), dead.clone());
            thread::spawn(move || {
                let read = Cell::new(0);
                lock(&ring, 0, &|_, _| true);
                // Killed while holding the lock, after reserving.
                let _ = ring.reserve(0, 1, 8, &read).unwrap();
                dead.store(true, Ordering::SeqCst);
            })
        };
        let alive = {
            let dead = dead.clone();
            move |slot: u32, _: u32| slot != 0 || !dead.load(Ordering::SeqCst)
        };
        let read = Cell::new(0);
        let me = lock(&ring, 1, &alive);
        let r = loop {
            if let Some(r) = ring.reserve(1, 1, 8, &read).unwrap() {
                break r;
            }
            thread::yield_now();
        };
        ring.unlock(me);
        ring.mem
            .write(ring.payload(&r), &42u64.to_le_bytes())
            .unwrap();
        ring.commit(&r, 1, 1, false);
        dying.join().unwrap();
        // The dead sender's reservation (if it made one) is skipped.
        let skip_dead = move |slot: u32, _: u32| slot != 0;
        let got = loop {
            match ring.look(Look::Liveness, &skip_dead, &|| true).unwrap().0 {
                Found::Message { payload, next, .. } => {
                    let mut b = [0u8; 8];
                    ring.mem.read(payload, &mut b).unwrap();
                    ring.advance(next);
                    break u64::from_le_bytes(b);
                }
                Found::Nothing => thread::yield_now(),
            }
        };
        assert_eq!(got, 42);
    });
}

/// The park protocol: a receiver that announces, re-checks and sleeps
/// on an (auto-reset) event is always woken by a commit. A lost
/// wake-up leaves it asleep forever, which loom reports as a deadlock.
#[test]
fn no_lost_wake_up() {
    loom::model(|| {
        let ring = ring(1);
        let event = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, ev) = (ring.clone(), event.clone());
        let t = thread::spawn(move || {
            let read = Cell::new(0);
            send(&tx, 0, &read, 7, 8);
            if tx.must_wake(RX_WAITING) != 0 {
                *ev.0.lock().unwrap() = true;
                ev.1.notify_one();
            }
        });
        let alive = |_: u32, _: u32| true;
        let senders = || false;
        let message = loop {
            if let Found::Message { next, .. } = ring.look(Look::Fast, &alive, &senders).unwrap().0
            {
                break next;
            }
            ring.announce(RX_WAITING, 1);
            if let Found::Message { next, .. } =
                ring.look(Look::Liveness, &alive, &senders).unwrap().0
            {
                break next;
            }
            let mut set = event.0.lock().unwrap();
            while !*set {
                set = event.1.wait(set).unwrap();
            }
            *set = false;
        };
        assert_eq!(message, 32);
        t.join().unwrap();
    });
}

/// The bell of an event loop (`poll_recv`): the receiver announces the
/// bell bit instead of the sleeper bit, re-checks, and waits for the bell
/// (here a condition the sender sets when `must_wake` reports the bit).
/// Taking the announcement's fence or the publisher's out makes this a
/// deadlock: a lost async wake-up.
#[test]
fn no_lost_bell() {
    loom::model(|| {
        let ring = ring(1);
        let bell = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, b) = (ring.clone(), bell.clone());
        let t = thread::spawn(move || {
            let read = Cell::new(0);
            send(&tx, 0, &read, 7, 8);
            if tx.must_wake(RX_WAITING) & 2 != 0 {
                *b.0.lock().unwrap() = true;
                b.1.notify_one();
            }
        });
        let alive = |_: u32, _: u32| true;
        let senders = || false;
        let message = loop {
            if let Found::Message { next, .. } = ring.look(Look::Fast, &alive, &senders).unwrap().0
            {
                break next;
            }
            // `Receiver::poll_recv`: arm the bell, look again.
            ring.announce(RX_WAITING, 2);
            if let Found::Message { next, .. } =
                ring.look(Look::Liveness, &alive, &senders).unwrap().0
            {
                break next;
            }
            // The event loop waits for the descriptor, then clears it.
            let mut rang = bell.0.lock().unwrap();
            while !*rang {
                rang = bell.1.wait(rang).unwrap();
            }
            *rang = false;
        };
        assert_eq!(message, 32);
        t.join().unwrap();
    });
}
