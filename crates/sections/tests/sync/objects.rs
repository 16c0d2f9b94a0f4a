//! Sync objects across real processes, on Linux and under Wine on Windows:
//! abandonment (hundreds of kills at random moments), mutual exclusion,
//! events, semaphores, wrong kinds.

use std::time::{Duration, Instant};

use libtest_mimic::Failed;

#[path = "../common/ns.rs"]
mod ns;
#[path = "../common/peer.rs"]
mod peer;
use ns::{private_namespace, PrivateNamespace};
use peer::{spawn, wait_stdin_eof, Peer, TIMEOUT};
use sections::sync::{Locked, Origin, Reset, SyncOptions};
use sections::{ErrorKind, Namespace, Section};

pub fn main() {
    let tests: Vec<(&str, peer::TestFn)> = vec![
        (
            "abandoned_mutex_is_reported_to_the_next_locker",
            abandoned_once,
        ),
        (
            "abandonment_under_random_kills",
            abandonment_under_random_kills,
        ),
        ("mutual_exclusion_across_processes", mutual_exclusion),
        ("lock_timeout_and_try_lock", lock_timeout_and_try_lock),
        ("manual_reset_event_releases_every_waiter", manual_event),
        ("auto_reset_event_releases_one_per_set", auto_event),
        ("event_survives_a_killed_waiter", event_killed_waiter),
        ("semaphore_never_passes_its_maximum", semaphore_maximum),
        ("wrong_kinds_and_bad_arguments", wrong_kinds),
        ("sync_objects_follow_section_lifetime", lifetime),
    ];
    peer::main(tests, run_role);
}

// ---------------------------------------------------------------- helpers

struct Private {
    opts: SyncOptions,
    arg: String,
    _ns: PrivateNamespace,
}

fn private() -> Private {
    let ns = private_namespace("sync");
    let mut opts = SyncOptions::new();
    opts.namespace(&ns.ns);
    Private {
        opts,
        arg: ns.arg.clone(),
        _ns: ns,
    }
}

fn opts_from(arg: &str) -> SyncOptions {
    let mut opts = SyncOptions::new();
    opts.namespace(&Namespace::at(arg));
    opts
}

// ------------------------------------------------------------------ roles

fn run_role(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let opts = opts_from(arg(0));
    match role {
        "lock-hold" => {
            let m = opts.open_mutex(arg(1))?;
            let _guard = m.lock()?.into_guard();
            println!("locked");
            wait_stdin_eof();
        }
        "hammer" => {
            // Takes and releases the guarded counter as fast as it can,
            // until killed.
            let g = opts.open_guarded::<u64>(arg(1))?;
            println!("ready");
            loop {
                let mut v = g.lock()?.into_guard();
                *v += 1;
            }
        }
        "add" => {
            let g = opts.open_guarded::<u64>(arg(1))?;
            let n: u64 = arg(2).parse()?;
            for _ in 0..n {
                let mut guard = g.lock()?.into_guard();
                // A read-modify-write that only the mutex makes exact.
                let v = *guard;
                std::hint::black_box(&v);
                *guard = v + 1;
            }
            println!("added");
        }
        "wait-event-forever" => {
            let e = opts.open_event(arg(1))?;
            println!("waiting");
            e.wait()?;
            println!("released");
        }
        "wait-event" => {
            let e = opts.open_event(arg(1))?;
            println!("waiting");
            let released = e.wait_timeout(Duration::from_millis(arg(2).parse()?))?;
            println!("{}", if released { "released" } else { "timeout" });
        }
        "release" => {
            let s = opts.open_semaphore(arg(1))?;
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..arg(2).parse::<u32>()? {
                match s.release(1) {
                    Ok(()) => ok += 1,
                    Err(e) if e.kind() == ErrorKind::InvalidRange => refused += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            println!("ok={ok} refused={refused}");
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

// ------------------------------------------------------------------ tests

fn abandoned_once() -> Result<(), Failed> {
    let p = private();
    let m = p.opts.create_mutex("m")?;
    let mut holder = spawn("lock-hold", &[&p.arg, "m"]);
    holder.expect("locked");
    if cfg!(target_os = "linux") {
        assert!(m.holder().is_some(), "Linux tells who holds it");
    }
    holder.kill();
    match m.lock()? {
        Locked::Abandoned(mut guard) => guard.mark_consistent()?,
        Locked::Acquired(_) => return Err("the abandonment was not reported".into()),
    }
    // Told once; the mutex works on.
    assert!(!m.lock()?.is_abandoned());
    assert!(!m.try_lock()?.expect("free").is_abandoned());
    // Dropping an abandoned guard without marking it keeps it usable too.
    let mut holder = spawn("lock-hold", &[&p.arg, "m"]);
    holder.expect("locked");
    holder.kill();
    assert!(m.lock()?.is_abandoned());
    assert!(!m.lock()?.is_abandoned());
    Ok(())
}

fn abandonment_under_random_kills() -> Result<(), Failed> {
    let rounds: usize = std::env::var("SECTIONS_SYNC_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let p = private();
    let g = p.opts.create_guarded("counter", 0u64)?;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut abandoned = 0;
    for _ in 0..rounds {
        // Two hammers contend; one is killed at a random moment, maybe
        // holding the lock while the other waits for it.
        let mut a = spawn("hammer", &[&p.arg, "counter"]);
        let mut b = spawn("hammer", &[&p.arg, "counter"]);
        a.expect("ready");
        b.expect("ready");
        std::thread::sleep(Duration::from_micros(rng.u64(0..3000)));
        a.kill();
        std::thread::sleep(Duration::from_micros(rng.u64(0..1000)));
        b.kill();
        let locked = g
            .lock_timeout(Duration::from_secs(30))?
            .ok_or("lock blocked after its holders were killed")?;
        if locked.is_abandoned() {
            abandoned += 1;
        }
        let mut guard = locked.into_guard();
        guard.mark_consistent()?;
        *guard += 0;
    }
    println!("{abandoned} of {rounds} rounds found the lock abandoned");
    assert!(abandoned > 0, "no kill landed while the lock was held");
    Ok(())
}

fn mutual_exclusion() -> Result<(), Failed> {
    let p = private();
    let g = p.opts.create_guarded("total", 1000u64)?;
    let n = "20000";
    let peers: Vec<Peer> = (0..3)
        .map(|_| spawn("add", &[&p.arg, "total", n]))
        .collect();
    for mut peer in peers {
        peer.expect("added");
        peer.finish();
    }
    assert_eq!(*g.lock()?.into_guard(), 1000 + 3 * n.parse::<u64>()?);
    Ok(())
}

fn lock_timeout_and_try_lock() -> Result<(), Failed> {
    let p = private();
    let m = p.opts.create_mutex("busy")?;
    let mut holder = spawn("lock-hold", &[&p.arg, "busy"]);
    holder.expect("locked");
    assert!(m.try_lock()?.is_none());
    let start = Instant::now();
    assert!(m.lock_timeout(Duration::from_millis(200))?.is_none());
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    holder.finish();
    assert!(m.lock_timeout(Duration::from_secs(10))?.is_some());
    Ok(())
}

fn manual_event() -> Result<(), Failed> {
    let p = private();
    let e = p.opts.create_event("go", Reset::Manual, false)?;
    assert!(
        !e.wait_timeout(Duration::from_millis(50))?,
        "unset: times out"
    );
    // Untimed waits: one set must wake every one of them (a set that woke
    // only one left the others asleep for as long as they were willing to
    // wait).
    let mut waiters: Vec<Peer> = (0..3)
        .map(|_| spawn("wait-event-forever", &[&p.arg, "go"]))
        .collect();
    for w in &mut waiters {
        w.expect("waiting");
    }
    std::thread::sleep(Duration::from_millis(100));
    e.set()?;
    for mut w in waiters {
        w.expect("released");
        w.finish();
    }
    // Set and reset at once: every waiter waiting at the set is released,
    // as Windows' SetEvent releases every waiting thread.
    e.reset()?;
    let mut waiters: Vec<Peer> = (0..3)
        .map(|_| spawn("wait-event-forever", &[&p.arg, "go"]))
        .collect();
    for w in &mut waiters {
        w.expect("waiting");
    }
    std::thread::sleep(Duration::from_millis(100));
    e.set()?;
    e.reset()?;
    for mut w in waiters {
        w.expect("released");
        w.finish();
    }
    e.set()?;
    assert!(e.wait_timeout(Duration::ZERO)?, "stays set");
    e.reset()?;
    assert!(!e.wait_timeout(Duration::from_millis(20))?);
    Ok(())
}

fn auto_event() -> Result<(), Failed> {
    let p = private();
    let e = p.opts.create_event("one", Reset::Auto, false)?;
    let mut waiters: Vec<Peer> = (0..3)
        .map(|_| spawn("wait-event", &[&p.arg, "one", "30000"]))
        .collect();
    for w in &mut waiters {
        w.expect("waiting");
    }
    // Give every waiter time to go to sleep in the wait.
    std::thread::sleep(Duration::from_millis(300));
    let mut released = 0;
    for _ in 0..3 {
        e.set()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut this_round = 0;
        while this_round == 0 && Instant::now() < deadline {
            for w in &mut waiters {
                if let Some(line) = w.line_within(Duration::from_millis(10)) {
                    assert_eq!(line, "released");
                    this_round += 1;
                }
            }
        }
        // No second waiter may follow for this set.
        std::thread::sleep(Duration::from_millis(200));
        for w in &mut waiters {
            assert!(
                w.line_within(Duration::ZERO).is_none(),
                "a set released two waiters"
            );
        }
        assert_eq!(this_round, 1);
        released += this_round;
    }
    assert_eq!(released, 3);
    for w in waiters {
        w.finish();
    }
    assert!(
        !e.wait_timeout(Duration::from_millis(20))?,
        "auto-reset after the last release"
    );
    e.set()?;
    assert!(
        e.wait_timeout(Duration::ZERO)?,
        "a set with no waiter stays for the next one"
    );
    assert!(!e.wait_timeout(Duration::ZERO)?, "and releases only it");
    Ok(())
}

fn event_killed_waiter() -> Result<(), Failed> {
    let p = private();
    let e = p.opts.create_event("k", Reset::Auto, false)?;
    let mut doomed = spawn("wait-event", &[&p.arg, "k", "30000"]);
    doomed.expect("waiting");
    std::thread::sleep(Duration::from_millis(100));
    doomed.kill();
    let mut w = spawn("wait-event", &[&p.arg, "k", "30000"]);
    w.expect("waiting");
    std::thread::sleep(Duration::from_millis(100));
    e.set()?;
    w.expect("released");
    w.finish();
    let mut late = spawn("wait-event", &[&p.arg, "k", "100"]);
    late.expect("waiting");
    late.expect("timeout");
    late.finish();
    Ok(())
}

fn semaphore_maximum() -> Result<(), Failed> {
    let p = private();
    let s = p.opts.create_semaphore("sem", 0, 5)?;
    let peers: Vec<Peer> = (0..4)
        .map(|_| spawn("release", &[&p.arg, "sem", "5"]))
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for mut peer in peers {
        let line = peer.line_within(TIMEOUT).ok_or("no report")?;
        let (a, b) = line
            .strip_prefix("ok=")
            .and_then(|r| r.split_once(" refused="))
            .ok_or_else(|| format!("bad report {line}"))?;
        ok += a.parse::<u32>()?;
        refused += b.parse::<u32>()?;
        peer.finish();
    }
    assert_eq!((ok, refused), (5, 15), "exactly the maximum got in");
    for _ in 0..5 {
        assert!(s.try_acquire()?);
    }
    assert!(!s.try_acquire()?);
    assert!(!s.acquire_timeout(Duration::from_millis(50))?);
    s.release(2)?;
    s.acquire()?;
    assert!(s.acquire_timeout(Duration::from_secs(1))?);
    assert_eq!(s.release(6).unwrap_err().kind(), ErrorKind::InvalidRange);
    Ok(())
}

fn wrong_kinds() -> Result<(), Failed> {
    let p = private();
    let _e = p.opts.create_event("thing", Reset::Manual, false)?;
    assert_eq!(
        p.opts.open_mutex("thing").unwrap_err().kind(),
        ErrorKind::WrongKind
    );
    assert_eq!(
        p.opts.open_semaphore("thing").unwrap_err().kind(),
        ErrorKind::WrongKind
    );
    assert_eq!(
        p.opts.create_mutex("thing").unwrap_err().kind(),
        if cfg!(windows) {
            ErrorKind::WrongKind
        } else {
            ErrorKind::AlreadyExists
        }
    );
    let (_again, origin) = p.opts.create_or_open_event("thing", Reset::Auto)?;
    assert_eq!(origin, Origin::Opened);
    let _g = p.opts.create_guarded("value", [1u32; 4])?;
    assert_eq!(
        p.opts.open_guarded::<u64>("value").unwrap_err().kind(),
        ErrorKind::WrongKind
    );
    assert_eq!(
        *p.opts
            .open_guarded::<[u32; 4]>("value")?
            .lock()?
            .into_guard(),
        [1; 4]
    );
    assert_eq!(
        p.opts.create_semaphore("bad", 3, 2).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        p.opts.open_mutex("missing").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        p.opts.open_mutex("../x").unwrap_err().kind(),
        ErrorKind::InvalidName
    );
    if cfg!(unix) {
        // A plain section is not a mutex.
        let mut o = Section::options();
        let ns = Namespace::at(&p.arg);
        o.size(4096).namespace(&ns);
        let _s = o.create("plain")?;
        let err = p.opts.open_mutex("plain").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind, "{err}");
    }
    Ok(())
}

fn lifetime() -> Result<(), Failed> {
    let p = private();
    let m = p.opts.create_mutex("temp")?;
    let other = p.opts.open_mutex("temp")?;
    drop(m);
    assert!(p.opts.open_mutex("temp").is_ok(), "another handle holds it");
    drop(other);
    assert_eq!(
        p.opts.open_mutex("temp").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    Ok(())
}
