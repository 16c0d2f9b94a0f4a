//! "No lost wake-up": a waiter killed between being woken and taking the
//! signal (or the permit) never leaves the other waiters asleep while the
//! event is set or a permit is free. The same is model-checked step by
//! step in `sync/protocol.rs` (loom); here real processes are killed right
//! after the signal, round after round, so the kill lands at every point
//! the scheduler offers.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::sync::{Reset, SyncOptions};
use sections::{list, Namespace, ObjectState};

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
