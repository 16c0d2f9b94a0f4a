//! "No lost wake-up": a waiter killed between being woken and taking the
//! signal (or the permit) never leaves the other waiters asleep while the
//! event is set or a permit is free. The same is model-checked step by
//! step in `sync/protocol.rs` (loom); here real processes are killed right
//! after the signal, round after round, so the kill lands at every point
//! the scheduler offers. The channel's two sides are killed the same way,
//! right after the other side woke them: the survivor must never hang.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::channel::ChannelOptions;
use sections::sync::{Reset, SyncOptions};
use sections::{list, ErrorKind, Namespace, ObjectState};

use crate::ns::private_namespace;
use crate::peer::{spawn, Peer, TestFn};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "an_auto_event_survives_its_woken_waiter_being_killed",
            event_woken_waiter_killed,
        ),
        (
            "a_semaphore_survives_its_woken_waiter_being_killed",
            semaphore_woken_waiter_killed,
        ),
        (
            "a_channel_receiver_killed_as_it_wakes_never_hangs_the_sender",
            receiver_killed_as_it_wakes,
        ),
        (
            "a_channel_sender_killed_as_it_wakes_leaves_every_sent_message",
            sender_killed_as_it_wakes,
        ),
    ]
}

type RoleResult = Result<(), Box<dyn std::error::Error>>;

pub fn role(role: &str, args: &[String]) -> Option<RoleResult> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let mut opts = SyncOptions::new();
    opts.namespace(&Namespace::at(arg(0)));
    let run = |f: &dyn Fn() -> RoleResult| Some(f());
    match role {
        // Untimed waits: a lost wake-up leaves them asleep for ever.
        "event-wait-forever" => run(&|| {
            let e = opts.open_event(arg(1))?;
            println!("waiting");
            e.wait()?;
            println!("released");
            Ok(())
        }),
        // A receiver asleep on an empty channel, then taking whatever comes.
        "channel-recv-forever" => run(&|| {
            let mut rx = channel_opts(arg(0)).open_receiver(arg(1))?;
            println!("waiting");
            loop {
                drop(rx.recv()?);
            }
        }),
        // A sender filling the ring with numbered messages, asleep when it
        // is full.
        "channel-send-forever" => run(&|| {
            let mut tx = channel_opts(arg(0)).open_sender(arg(1))?;
            println!("sending");
            for i in 0u64.. {
                tx.send(&message(i))?;
            }
            Ok(())
        }),
        "semaphore-acquire-forever" => run(&|| {
            let s = opts.open_semaphore(arg(1))?;
            println!("waiting");
            s.acquire()?;
            println!("released");
            Ok(())
        }),
        _ => None,
    }
}

const ROUNDS: usize = 40;
const WAITERS: usize = 3;

/// Whether the object still holds the signal nobody took.
fn still_signalled(ns: &Namespace, name: &str) -> bool {
    let entry = list(ns)
        .unwrap()
        .into_iter()
        .find(|e| e.name == name)
        .expect("the object is listed");
    match entry.object {
        Some(ObjectState::Event { set, .. }) => set,
        Some(ObjectState::Semaphore { count, .. }) => count > 0,
        other => panic!("not an event or semaphore: {other:?}"),
    }
}

/// One round: `WAITERS` processes wait; one signal; the first waiter is
/// killed at once (if it was the one woken, it dies before or after
/// taking the signal). Then a survivor must get the signal, unless the
/// killed one took it. Returns whether a survivor got it.
fn round(
    ns: &Namespace,
    arg: &str,
    name: &str,
    role: &str,
    signal: &dyn Fn() -> sections::Result<()>,
) -> Result<bool, Failed> {
    let mut waiters: Vec<Peer> = (0..WAITERS).map(|_| spawn(role, &[arg, name])).collect();
    for w in &mut waiters {
        w.expect("waiting");
    }
    // Let them reach the futex.
    std::thread::sleep(Duration::from_millis(30));
    signal()?;
    waiters.remove(0).kill();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        for (i, w) in waiters.iter_mut().enumerate() {
            if w.line_within(Duration::from_millis(5)).as_deref() == Some("released") {
                got = Some(i);
            }
        }
    }
    let survivor_got_it = got.is_some();
    if !survivor_got_it {
        assert!(
            !still_signalled(ns, name),
            "lost wake-up: the signal is still there and {} waiters sleep on",
            waiters.len()
        );
    }
    if let Some(i) = got {
        waiters.remove(i).finish();
    }
    // Release the rest, one signal each.
    while !waiters.is_empty() {
        signal()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut released = None;
        while released.is_none() && Instant::now() < deadline {
            for (i, w) in waiters.iter_mut().enumerate() {
                if w.line_within(Duration::from_millis(5)).as_deref() == Some("released") {
                    released = Some(i);
                }
            }
        }
        let i = released.ok_or("a signal released nobody")?;
        waiters.remove(i).finish();
    }
    Ok(survivor_got_it)
}

fn event_woken_waiter_killed() -> Result<(), Failed> {
    let ns = private_namespace("wake-event");
    let mut opts = SyncOptions::new();
    opts.namespace(&ns.ns);
    let mut survivors = 0;
    for r in 0..ROUNDS {
        let name = format!("ev{r}");
        let e = opts.create_event(&name, Reset::Auto, false)?;
        if round(&ns.ns, &ns.arg, &name, "event-wait-forever", &|| e.set())? {
            survivors += 1;
        }
    }
    println!(
        "{survivors} of {ROUNDS} rounds: a survivor took the signal (else the killed waiter had)"
    );
    Ok(())
}

fn semaphore_woken_waiter_killed() -> Result<(), Failed> {
    let ns = private_namespace("wake-sem");
    let mut opts = SyncOptions::new();
    opts.namespace(&ns.ns);
    let mut survivors = 0;
    for r in 0..ROUNDS {
        let name = format!("sem{r}");
        let s = opts.create_semaphore(&name, 0, WAITERS as u32)?;
        if round(&ns.ns, &ns.arg, &name, "semaphore-acquire-forever", &|| {
            s.release(1)
        })? {
            survivors += 1;
        }
    }
    println!(
        "{survivors} of {ROUNDS} rounds: a survivor took the permit (else the killed waiter had)"
    );
    Ok(())
}

/// Small channels, so that a few messages fill them.
fn channel_opts(dir: &str) -> ChannelOptions {
    let mut o = ChannelOptions::new();
    o.namespace(&Namespace::at(dir)).capacity(4096);
    o
}

/// Message `i` of a sender: its number, then filler that depends on it.
fn message(i: u64) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.extend((0..248).map(|k| (i as u8).wrapping_add(k as u8)));
    m
}

/// Spins for a random moment of up to `max_us`, so that kills land at
/// different points after the wake-up.
fn jitter(max_us: u64) {
    let until = Instant::now() + Duration::from_micros(fastrand::u64(0..=max_us));
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Runs `f` on a thread and fails if it has not returned within `limit`
/// (an untimed call that hangs would hang the test run otherwise).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failed> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .map_err(|_| format!("{what}: still waiting after {limit:?}").into())
}

/// The receiver wakes for a message and is killed at once (before or
/// after it takes it): the sender, filling the ring, gets `Disconnected`
/// from an untimed send, and the receiver's slot is free for the next.
fn receiver_killed_as_it_wakes() -> Result<(), Failed> {
    let ns = private_namespace("wake-chan-rx");
    for r in 0..ROUNDS {
        let name = format!("ch{r}");
        let _channel = channel_opts(&ns.arg).create(&name)?;
        let mut tx = channel_opts(&ns.arg).open_sender(&name)?;
        let mut rx = spawn("channel-recv-forever", &[&ns.arg, &name]);
        rx.expect("waiting");
        // Let it reach the futex.
        std::thread::sleep(Duration::from_millis(20));
        tx.send(&message(0))?;
        jitter(200);
        rx.kill();
        let sent = within(Duration::from_secs(10), "an untimed send", move || {
            let mut n = 1u64;
            loop {
                match tx.send(&message(n)) {
                    Ok(()) => n += 1,
                    Err(e) => return (n, e.kind()),
                }
            }
        })?;
        assert_eq!(sent.1, ErrorKind::Disconnected, "round {r}: {sent:?}");
        // The dead receiver's slot is claimable.
        let mut next = spawn("channel-recv-forever", &[&ns.arg, &name]);
        next.expect("waiting");
        next.kill();
    }
    Ok(())
}

/// The sender sleeps on a full ring; the receiver takes one message (which
/// wakes it) and kills it at once: every message it had fully sent is
/// received, intact and in order, then `Disconnected`, never a hang.
fn sender_killed_as_it_wakes() -> Result<(), Failed> {
    let ns = private_namespace("wake-chan-tx");
    for r in 0..ROUNDS {
        let name = format!("ch{r}");
        let _channel = channel_opts(&ns.arg).create(&name)?;
        let mut rx = channel_opts(&ns.arg).open_receiver(&name)?;
        let mut tx = spawn("channel-send-forever", &[&ns.arg, &name]);
        tx.expect("sending");
        // Let it fill the ring and fall asleep.
        std::thread::sleep(Duration::from_millis(20));
        let first = rx.recv()?.to_vec();
        assert_eq!(first, message(0), "round {r}");
        jitter(200);
        tx.kill();
        let got = within(Duration::from_secs(10), "an untimed recv", move || {
            let mut next = 1u64;
            loop {
                match rx.recv() {
                    Ok(m) => {
                        let m = m.to_vec();
                        if m != message(next) {
                            return Err(format!("message {next} arrived as {m:?}"));
                        }
                        next += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::Disconnected => return Ok(next),
                    Err(e) => return Err(e.to_string()),
                }
            }
        })?;
        let n = got.map_err(|e| format!("round {r}: {e}"))?;
        assert!(n >= 2, "round {r}: a 4 KiB ring held more than one message");
    }
    Ok(())
}
