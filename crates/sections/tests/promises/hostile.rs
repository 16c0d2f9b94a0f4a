//! "A hostile peer never hangs you": whatever a peer writes into a word it
//! shares with us (the channel's lock word, positions, slot states, owner
//! tokens, waiting words; a sync object's futex and mutex words), a call
//! with a deadline returns by it (with a message, `Empty`/`Full`,
//! `TimedOut`, `Disconnected` or `Corrupted`), and a value the protocol
//! never writes is an error rather than a spin.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::channel::{ChannelOptions, Receiver, Sender};
use sections::sync::{Reset, SyncOptions};
use sections::{Access, ErrorKind, Namespace, Section, View};

use crate::ns::{private_namespace, PrivateNamespace};
use crate::peer::{spawn, wait_stdin_eof, TestFn};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "timed_sends_return_on_time_whatever_the_lock_word_says",
            lock_word_values,
        ),
        (
            "timed_calls_return_on_time_whatever_any_header_word_says",
            every_header_word,
        ),
        (
            "hostile_sync_words_are_errors_or_timeouts_not_hangs",
            hostile_sync_words,
        ),
        (
            "objects_of_another_layout_version_are_refused",
            other_versions_are_refused,
        ),
        (
            "a_receiver_learns_its_senders_left_whatever_the_header_says",
            senders_left_whatever_the_header_says,
        ),
        (
            "positions_at_the_end_of_u64_never_panic",
            positions_at_the_end_of_u64,
        ),
        (
            "a_loan_longer_than_the_ring_is_refused_whatever_its_length",
            loans_longer_than_the_ring,
        ),
    ]
}

/// A peer sets the read and reserve positions (consistently: an empty
/// ring) to the last values a u64 holds: sends and receives across the
/// wrap give messages or `Corrupted`, never an arithmetic panic (the tests
/// run with overflow checks).
fn positions_at_the_end_of_u64() -> Result<(), Failed> {
    for senders in [1, 2] {
        for at in [
            u64::MAX - 15,
            u64::MAX - 4095,
            u64::MAX - 4111,
            u64::MAX - 2047,
        ] {
            let Rig {
                mut tx,
                mut rx,
                raw,
                ..
            } = rig(senders)?;
            raw.write_at(READ, &at.to_le_bytes())?;
            raw.write_at(RESERVE, &at.to_le_bytes())?;
            let t = Duration::from_millis(20);
            for i in 0..8u8 {
                let sent = on_time("send_timeout", || tx.send_timeout(&[i; 1000], t));
                let got = on_time("recv_timeout", || rx.recv_timeout(t).map(|m| m.to_vec()));
                for (call, result) in [("send", sent.map(|()| None)), ("recv", got.map(Some))] {
                    match result {
                        Ok(Some(bytes)) => {
                            assert!(bytes.len() == 1000, "{call}: {} bytes", bytes.len())
                        }
                        Ok(None) => {}
                        Err(e) => assert!(
                            matches!(e.kind(), ErrorKind::Corrupted | ErrorKind::TimedOut),
                            "at {at:#x}, {call}: {e}"
                        ),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Lengths whose rounding to a record would wrap a u64 are refused like
/// any length longer than the ring: no loan of `usize::MAX` bytes.
fn loans_longer_than_the_ring() -> Result<(), Failed> {
    let Rig { mut tx, .. } = rig(1)?;
    for len in [
        4097,
        4096,
        usize::MAX,
        usize::MAX - 15,
        usize::MAX - 30,
        1 << 63,
    ] {
        for result in [
            tx.try_loan(len).map(|l| l.len()),
            tx.loan_timeout(len, Duration::from_millis(10))
                .map(|l| l.len()),
        ] {
            let e = result.expect_err("a loan longer than the ring");
            assert_eq!(e.kind(), ErrorKind::InvalidSize, "{len}: {e}");
        }
    }
    Ok(())
}

type RoleResult = Result<(), Box<dyn std::error::Error>>;

pub fn role(role: &str, args: &[String]) -> Option<RoleResult> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match role {
        "sender-idle" => Some((|| {
            let mut opts = ChannelOptions::new();
            opts.namespace(&Namespace::at(arg(0)));
            let _tx = opts.open_sender(arg(1))?;
            println!("connected");
            wait_stdin_eof();
            Ok(())
        })()),
        _ => None,
    }
}

// The channel's header, as its module docs lay it out (version 4).
const READ: usize = 64;
const RX_OWNER: usize = 80;
const RESERVE: usize = 128;
const TX_EVER: usize = 140;
const SLOTS: usize = 192;
/// A sender slot: owner word, then generation.
const SLOT_GENERATION: usize = 8;
const RX_WAITING: usize = 448;
const TX_WAITING: usize = 452;
const LOCK: usize = 456;
const RING: usize = 512;

/// A deadline every timed call here must keep, with room for a loaded
/// machine: the calls ask for 50 ms.
const LATE: Duration = Duration::from_secs(5);

struct Rig {
    ns: PrivateNamespace,
    _channel: sections::channel::Channel,
    tx: Sender,
    rx: Receiver,
    /// The channel's bytes, as a hostile peer maps them.
    raw: View,
}

fn rig(senders: u32) -> Result<Rig, Failed> {
    let ns = private_namespace("hostile");
    let mut opts = ChannelOptions::new();
    opts.capacity(4096).senders(senders).namespace(&ns.ns);
    let channel = opts.create("c")?;
    let tx = opts.open_sender("c")?;
    let rx = opts.open_receiver("c")?;
    let raw = Section::options()
        .namespace(&ns.ns)
        .open("c")?
        .map_all(Access::ReadWrite)?;
    Ok(Rig {
        ns,
        _channel: channel,
        tx,
        rx,
        raw,
    })
}

/// Runs `call`, failing the test if it takes longer than [`LATE`].
fn on_time<T>(what: &str, call: impl FnOnce() -> sections::Result<T>) -> sections::Result<T> {
    let start = Instant::now();
    let result = call();
    let took = start.elapsed();
    assert!(took < LATE, "{what} took {took:?}");
    result
}

fn lock_word_values() -> Result<(), Failed> {
    let r = rig(2)?;
    let Rig {
        ns, mut tx, raw, ..
    } = r;
    let mut peer = spawn("sender-idle", &[&ns.arg, "c"]);
    peer.expect("connected");
    let lock = raw.atomic_u32(LOCK)?;
    // The live peer is in slot 1; its generation is in its slot.
    let generation = raw
        .atomic_u32(SLOTS + 16 + SLOT_GENERATION)?
        .load(Ordering::Relaxed);
    let live_peer = ((generation & 0xffff) << 16) | 2;
    let ours = {
        let g = raw
            .atomic_u32(SLOTS + SLOT_GENERATION)?
            .load(Ordering::Relaxed);
        ((g & 0xffff) << 16) | 1
    };
    let timeout = Duration::from_millis(50);

    // A live sender's word that it will never release: a slow peer, as far
    // as anyone can tell. Timed calls return on time; nothing is sent.
    lock.store(live_peer, Ordering::Relaxed);
    let err = on_time("send_timeout", || tx.send_timeout(b"x", timeout)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let err = on_time("try_send", || tx.try_send(b"x")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Full, "{err}");

    // Words naming no sender slot of this channel are damage.
    for bad in [0xffff_ffff, 0x0000_0003, 0x0001_0011, 0x8000_0010] {
        lock.store(bad, Ordering::Relaxed);
        let err = on_time("send_timeout", || tx.send_timeout(b"x", timeout)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupted, "{bad:#x}: {err}");
    }

    // A word of a sender that is gone (slot 1 of another generation) is
    // taken over; so is our own word, which we do not hold.
    for stale in [live_peer ^ 0x0005_0000, ours] {
        lock.store(stale, Ordering::Relaxed);
        on_time("send_timeout", || tx.send_timeout(b"taken over", LATE / 2))?;
    }
    // Once the peer is killed, its word is taken over too.
    lock.store(live_peer, Ordering::Relaxed);
    peer.kill();
    on_time("send_timeout", || {
        tx.send_timeout(b"after the kill", LATE / 2)
    })?;
    assert_eq!(lock.load(Ordering::Relaxed), 0, "released after use");
    Ok(())
}

/// Every word a peer can write in the header, set to each of a handful of
/// hostile values, in an SPSC and an MPSC channel: timed sends and
/// receives return on time with an outcome they are allowed to have.
fn every_header_word() -> Result<(), Failed> {
    let words: [(usize, usize); 10] = [
        (READ, 8),
        (RX_OWNER, 8),
        (RESERVE, 8),
        (TX_EVER, 4),
        (SLOTS, 8),
        (SLOTS + SLOT_GENERATION, 4),
        (RX_WAITING, 4),
        (TX_WAITING, 4),
        (LOCK, 4),
        (RING + 8, 8),
    ];
    let values: [u64; 6] = [0, 1, 2, 0x7fff_ffff, u64::MAX, 0x8000_0000_0000_1230];
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for senders in [1, 2] {
        for &(offset, width) in &words {
            for value in values {
                let Rig {
                    mut tx,
                    mut rx,
                    raw,
                    ..
                } = rig(senders)?;
                tx.send(b"before")?;
                let bytes = value.to_le_bytes();
                raw.write_at(offset, &bytes[..width])?;
                let t = Duration::from_millis(20);
                for _ in 0..2 {
                    let got = on_time("recv_timeout", || rx.recv_timeout(t).map(|m| m.len()));
                    let sent = on_time("send_timeout", || tx.send_timeout(b"probe", t));
                    for (call, result) in [("recv", got.map(drop)), ("send", sent)] {
                        let outcome = match result {
                            Ok(()) => "ok".to_owned(),
                            Err(e) => {
                                assert!(
                                    matches!(
                                        e.kind(),
                                        ErrorKind::TimedOut
                                            | ErrorKind::Corrupted
                                            | ErrorKind::Disconnected
                                    ),
                                    "word {offset} = {value:#x}: {call}: {e}"
                                );
                                format!("{:?}", e.kind())
                            }
                        };
                        *outcomes.entry(format!("{call} {outcome}")).or_default() += 1;
                    }
                }
            }
        }
    }
    println!("outcomes: {outcomes:?}");
    Ok(())
}

fn hostile_sync_words() -> Result<(), Failed> {
    let ns = private_namespace("hostile-sync");
    let mut opts = SyncOptions::new();
    opts.namespace(&ns.ns);
    let raw = |name: &str| -> Result<View, Failed> {
        Ok(Section::options()
            .namespace(&ns.ns)
            .open(name)?
            .map_all(Access::ReadWrite)?)
    };
    let t = Duration::from_millis(50);

    // Every event word means something (a set bit, a count of sets):
    // whatever a peer writes, timed waits return on time, and a set bit
    // releases at once.
    let e = opts.create_event("e", Reset::Auto, false)?;
    let word = raw("e")?;
    for value in [7u32, u32::MAX, 0x8000_0000, 2, 0] {
        word.atomic_u32(64)?.store(value, Ordering::Relaxed);
        let got = on_time("wait_timeout", || e.wait_timeout(t))?;
        assert_eq!(got, value & 1 == 1, "event word {value:#x}");
    }

    // A semaphore count above its maximum: an error, for both sides.
    let s = opts.create_semaphore("s", 0, 4)?;
    raw("s")?.atomic_u32(64)?.store(9, Ordering::Relaxed);
    let err = on_time("acquire", || s.acquire()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");
    let err = on_time("release", || s.release(1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted, "{err}");

    // A mutex whose lock word names a live thread that will never unlock
    // it (a thread of this process, parked, whose id a hostile peer could
    // write as well): lock_timeout waits its time and times out; try_lock
    // says it is busy.
    let m = opts.create_mutex("m")?;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        tid_tx
            .send(rustix::thread::gettid().as_raw_nonzero().get())
            .unwrap();
        let _ = stop_rx.recv();
    });
    let tid = tid_rx.recv()? as u32;
    let words = raw("m")?;
    words.atomic_u32(64)?.store(tid, Ordering::Relaxed);
    words.atomic_u32(72)?.store(tid, Ordering::Relaxed);
    let start = Instant::now();
    let got = on_time("lock_timeout", || m.lock_timeout(t).map(|l| l.is_some()))?;
    assert!(!got, "took a lock a live thread holds");
    assert!(start.elapsed() >= t, "gave up before its timeout");
    let got = on_time("try_lock", || m.try_lock().map(|l| l.is_some()))?;
    assert!(!got, "took a lock a live thread holds");
    drop(stop_tx);
    holder.join().unwrap();
    Ok(())
}

/// A peer built with another layout (an event that woke one sleeper, a
/// channel with a C-library reservation mutex) is refused by name, never
/// misread.
fn other_versions_are_refused() -> Result<(), Failed> {
    let ns = private_namespace("versions");
    let mut sync = SyncOptions::new();
    sync.namespace(&ns.ns);
    let mut chan = ChannelOptions::new();
    chan.capacity(4096).namespace(&ns.ns);
    let _e = sync.create_event("old-event", Reset::Auto, false)?;
    let _c = chan.create("old-channel")?;
    for (name, at, old) in [("old-event", 8, 1u32), ("old-channel", 8, 3u32)] {
        Section::options()
            .namespace(&ns.ns)
            .open(name)?
            .map_all(Access::ReadWrite)?
            .write_at(at, &old.to_ne_bytes())?;
    }
    let err = sync.open_event("old-event").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongVersion, "{err}");
    assert!(err.to_string().contains("version 1"), "{err}");
    for err in [
        chan.open_sender("old-channel").unwrap_err(),
        chan.open_receiver("old-channel").unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::WrongVersion, "{err}");
        assert!(err.to_string().contains("version 3"), "{err}");
    }
    Ok(())
}

/// A peer that zeroes "a sender ever came" (or truncates and regrows the
/// section, which zeroes the whole header) must not make a receiver that
/// has seen a sender wait for ever once the senders are gone.
fn senders_left_whatever_the_header_says() -> Result<(), Failed> {
    for received_one in [true, false] {
        let Rig {
            mut tx,
            mut rx,
            raw,
            ..
        } = rig(1)?;
        if received_one {
            tx.send(b"hello")?;
            assert_eq!(rx.recv()?.to_vec(), b"hello");
        } else {
            // Seen connected, while waiting for a message.
            let err = rx.recv_timeout(Duration::from_millis(20)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimedOut);
        }
        raw.write_at(TX_EVER, &[0u8; 4])?;
        drop(tx);
        let err = on_time("recv_timeout", || rx.recv_timeout(LATE / 2)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    }
    Ok(())
}
