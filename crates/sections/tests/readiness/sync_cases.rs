//! Events and semaphores in `Select` and in async code, signalled by
//! other processes (Linux, and Windows under Wine for `Select`).

use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::channel::{Select, Source};
use sections::sync::{Reset, SyncOptions};
use sections::Namespace;

use super::ns::private_namespace;
use super::peer::{self, spawn, wait_stdin_eof};
use super::{message, next, opts};

pub fn tests() -> Vec<(&'static str, peer::TestFn)> {
    vec![
        (
            "select_takes_events_and_semaphores_signalled_by_another_process_exactly_once",
            select_mixed,
        ),
        (
            "a_select_refuses_sources_it_was_not_built_for",
            select_identity,
        ),
        #[cfg(target_os = "linux")]
        (
            "select_takes_an_event_set_from_another_pid_namespace",
            select_mixed_across_pid_namespaces,
        ),
        #[cfg(target_os = "linux")]
        (
            "a_select_over_300_events_takes_each_set_by_the_right_index",
            select_many,
        ),
        #[cfg(target_os = "linux")]
        (
            "a_hostile_bell_word_costs_spurious_wake_ups_never_a_false_report_or_a_hang",
            hostile_bell,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "async_event_and_semaphore_are_woken_by_another_process",
            tokio_sync::ping_pong,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "event_wait_futures_dropped_mid_wait_10000_times_take_nothing",
            tokio_sync::dropped_waits,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "an_async_wait_whose_runtime_is_gone_is_an_error_not_a_spin",
            tokio_sync::runtime_gone,
        ),
    ]
}

/// Counts the waits that lasted as long as the waiter's coarse look
/// again (100 ms: a select or an async wait that no bell woke), and fails
/// once there are more than `limit`: a bell that does not ring shows here
/// (everything still arrives, 100 ms late), not as a hang.
struct SlowWaits {
    seen: u32,
    limit: u32,
}

impl SlowWaits {
    fn new(limit: u32) -> SlowWaits {
        SlowWaits { seen: 0, limit }
    }

    fn record(&mut self, started: Instant) -> Result<(), Failed> {
        if started.elapsed() >= Duration::from_millis(95) {
            self.seen += 1;
            if self.seen > self.limit {
                return Err(format!(
                    "{} waits ended by the 100 ms look, not by a bell",
                    self.seen
                )
                .into());
            }
        }
        Ok(())
    }
}

fn sync_opts(dir: &str) -> SyncOptions {
    let mut o = SyncOptions::new();
    o.namespace(&Namespace::at(dir));
    o
}

/// What the signalling peer does at step `i` of seed `seed`: 0 set the
/// event (and wait for the acknowledgement), 1 release one count, 2 send a
/// message.
fn step(seed: &mut u64) -> u64 {
    next(seed) % 3
}

/// What `count` steps of `seed` add up to: (sets, releases, messages).
fn totals(count: u64, seed: u64) -> (u64, u64, u64) {
    let mut s = seed | 1;
    let mut t = (0, 0, 0);
    for _ in 0..count {
        match step(&mut s) {
            0 => t.0 += 1,
            1 => t.1 += 1,
            _ => t.2 += 1,
        }
        next(&mut s);
    }
    t
}

pub fn run_role(role: &str, args: &[String]) -> Option<Result<(), Box<dyn std::error::Error>>> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        match role {
            "signal" => {
                // signal DIR COUNT SEED: sets "e" (then waits for "ack"),
                // releases "s", sends on "c", at random, pausing now and then
                let o = sync_opts(arg(0));
                let (event, ack, sem) = (
                    o.open_event("e")?,
                    o.open_event("ack")?,
                    o.open_semaphore("s")?,
                );
                let mut tx = opts(arg(0)).open_sender("c")?;
                println!("ready");
                let count: u64 = arg(1).parse()?;
                let mut s = arg(2).parse::<u64>()? | 1;
                for i in 0..count {
                    match step(&mut s) {
                        0 => {
                            event.set()?;
                            if !ack.wait_timeout(Duration::from_secs(30))? {
                                return Err(format!("step {i}: the set was never taken").into());
                            }
                        }
                        1 => sem.release(1)?,
                        _ => tx.send(&message(0, i))?,
                    }
                    if next(&mut s) % 32 == 0 {
                        std::thread::sleep(Duration::from_micros(300));
                    }
                }
                println!("done");
                wait_stdin_eof();
            }
            "set-named" => {
                // set-named DIR: sets the event each line of stdin names
                let o = sync_opts(arg(0));
                println!("ready");
                let mut line = String::new();
                while std::io::stdin().read_line(&mut line)? > 0 {
                    o.open_event(line.trim())?.set()?;
                    line.clear();
                }
            }
            "ping" => {
                // ping DIR COUNT: sets "ping" and waits for "pong", COUNT
                // times; then releases COUNT counts of "s", at random pace
                let o = sync_opts(arg(0));
                let (ping, pong, sem) = (
                    o.open_event("ping")?,
                    o.open_event("pong")?,
                    o.open_semaphore("s")?,
                );
                println!("ready");
                let count: u64 = arg(1).parse()?;
                for i in 0..count {
                    // Late enough that the other side already waits.
                    std::thread::sleep(Duration::from_micros(50));
                    ping.set()?;
                    if !pong.wait_timeout(Duration::from_secs(30))? {
                        return Err(format!("round {i}: no pong").into());
                    }
                }
                let mut s = 7u64;
                for _ in 0..count {
                    sem.release(1)?;
                    if next(&mut s) % 16 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                println!("done");
                wait_stdin_eof();
            }
            _ => return Err(format!("unknown role {role}").into()),
        }
        Ok(())
    };
    matches!(role, "signal" | "set-named" | "ping").then(run)
}

/// The objects of a mixed select, in namespace `dir`.
fn mixed_objects(dir: &str) -> Result<MixedObjects, Failed> {
    let o = sync_opts(dir);
    let channel = opts(dir).create("c")?;
    Ok(MixedObjects {
        rx: channel.receiver()?,
        event: o.create_event("e", Reset::Auto, false)?,
        ack: o.create_event("ack", Reset::Auto, false)?,
        sem: o.create_semaphore("s", 0, 1 << 20)?,
        _channel: channel,
    })
}

struct MixedObjects {
    rx: sections::channel::Receiver,
    event: sections::sync::Event,
    ack: sections::sync::Event,
    sem: sections::sync::Semaphore,
    _channel: sections::channel::Channel,
}

/// Selects over the receiver, the event and the semaphore until the
/// signalling peer's `count` steps of `seed` have all arrived, each once:
/// sets taken (and acknowledged), counts taken, messages in order; then
/// nothing more.
fn select_until_all(m: &mut MixedObjects, count: u64, seed: u64) -> Result<(), Failed> {
    let (sets, releases, messages) = totals(count, seed);
    let select = Select::new(&[
        Source::from(&m.rx),
        Source::from(&m.event),
        Source::from(&m.sem),
    ])?;
    let mut got = (0u64, 0u64, 0u64);
    let mut slow = SlowWaits::new(20);
    let mut s = seed | 1;
    // The sequence numbers the peer's messages carry, in order.
    let mut want = (0..count).filter(|_| {
        let send = step(&mut s) == 2;
        next(&mut s);
        send
    });
    while got != (sets, releases, messages) {
        let sources = [
            Source::from(&m.rx),
            Source::from(&m.event),
            Source::from(&m.sem),
        ];
        let started = Instant::now();
        let Some(i) = select.wait(&sources, Some(Duration::from_secs(30)))? else {
            return Err(format!(
                "nothing for 30 s, with {got:?} of {:?}",
                (sets, releases, messages)
            )
            .into());
        };
        slow.record(started)?;
        match i {
            0 => {
                let Some(msg) = m.rx.poll_recv()? else {
                    return Err("the receiver was reported ready with nothing to receive".into());
                };
                let seq = want.next().ok_or("a message more than was sent")?;
                if msg.to_vec() != message(0, seq) {
                    return Err(format!("message {seq} damaged or out of order").into());
                }
                got.2 += 1;
            }
            1 => {
                got.0 += 1;
                m.ack.set()?;
            }
            _ => got.1 += 1,
        }
    }
    // Everything was taken: a last wait finds nothing.
    let sources = [
        Source::from(&m.rx),
        Source::from(&m.event),
        Source::from(&m.sem),
    ];
    let extra = select.wait(&sources, Some(Duration::from_millis(200)))?;
    assert_eq!(extra, None, "a source reported beyond what was signalled");
    assert!(!m.event.poll_wait()? && !m.sem.poll_acquire()?);
    println!("sets {sets}, counts {releases}, messages {messages}: each taken once");
    Ok(())
}

fn select_mixed() -> Result<(), Failed> {
    select_mixed_with(3_000, 17, false)
}

#[cfg(target_os = "linux")]
fn select_mixed_across_pid_namespaces() -> Result<(), Failed> {
    select_mixed_with(1_000, 5, true)
}

/// A select over a receiver, an event and a semaphore that a process
/// signals `count` times at random (from `seed`), in a PID namespace of
/// its own if `elsewhere`.
fn select_mixed_with(count: u64, seed: u64, elsewhere: bool) -> Result<(), Failed> {
    let ns = private_namespace("syncsel");
    let mut m = mixed_objects(&ns.arg)?;
    let args = [ns.arg.as_str(), &count.to_string(), &seed.to_string()];
    let peer = if elsewhere {
        super::peer_in_new_pid_namespace("signal", &args)?
    } else {
        Some(spawn("signal", &args))
    };
    let Some(mut peer) = peer else {
        return Ok(());
    };
    peer.expect("ready");
    select_until_all(&mut m, count, seed)?;
    peer.expect("done");
    peer.finish();
    Ok(())
}

/// A select built for one event, given another made after the first was
/// dropped (which may reuse its address, or on Windows its handle's
/// value): refused, never a wait on the first one's readiness that reports
/// the second (on Windows that would take the first one's set).
fn select_identity() -> Result<(), Failed> {
    let ns = private_namespace("syncsel");
    let o = sync_opts(&ns.arg);
    let first = o.create_event("a", Reset::Auto, false)?;
    let select = Select::new(&[&first])?;
    drop(first);
    for round in 0..20 {
        let other = o.create_event(&format!("b{round}"), Reset::Auto, true)?;
        let e = select
            .wait(&[&other], Some(Duration::from_millis(10)))
            .expect_err("a select accepted a source it was not built for");
        assert_eq!(e.kind(), sections::ErrorKind::InvalidRange, "{e}");
    }
    Ok(())
}

/// A select over 300 events (more than a user's default 128 inotify
/// instances, which one per source would pass): one instance watches them
/// all, and sets made by another process to events picked at random are
/// each taken, by the right index.
#[cfg(target_os = "linux")]
fn select_many() -> Result<(), Failed> {
    let ns = private_namespace("syncmany");
    let o = sync_opts(&ns.arg);
    let n = 300usize;
    let events = (0..n)
        .map(|i| o.create_event(&format!("e{i}"), Reset::Auto, false))
        .collect::<sections::Result<Vec<_>>>()?;
    // One instance per source would pass the user's limit (128 here).
    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")?;
    println!("inotify instances per user: {}", limit.trim());
    let select = Select::new(&events.iter().collect::<Vec<_>>())?;
    let mut peer = spawn("set-named", &[&ns.arg]);
    peer.expect("ready");
    let mut seed = 41u64;
    for round in 0..200 {
        let i = (next(&mut seed) % n as u64) as usize;
        peer.send(&format!("e{i}"));
        let got = select.wait(
            &events.iter().collect::<Vec<_>>(),
            Some(Duration::from_secs(10)),
        )?;
        if got != Some(i) {
            return Err(format!("round {round}: set e{i}, the select said {got:?}").into());
        }
    }
    peer.finish();
    Ok(())
}

/// A peer that writes any values into an event's bell word and its rung
/// word (here a view of the event's file and writes into the file, as a
/// hostile process would) while a select waits on it: the waiter wakes
/// for nothing again and again, but reports the event only when it was
/// set, and takes every set made in the middle of it all.
#[cfg(target_os = "linux")]
fn hostile_bell() -> Result<(), Failed> {
    use sections::{Access, Section};
    use std::sync::atomic::{AtomicBool, Ordering};

    let ns = private_namespace("syncbell");
    let o = sync_opts(&ns.arg);
    let event = o.create_event("e", Reset::Auto, false)?;
    let path = std::path::Path::new(&ns.arg).join("e");
    let view = Section::from_path(&path, Access::ReadWrite)?.map_all(Access::ReadWrite)?;
    let stop = AtomicBool::new(false);
    let file = std::fs::OpenOptions::new().write(true).open(&path)?;
    std::thread::scope(|s| -> Result<(), Failed> {
        let writer = s.spawn(|| -> Result<u64, String> {
            use std::os::unix::fs::FileExt;
            let mut seed = 3u64;
            let mut writes = 0;
            while !stop.load(Ordering::Relaxed) {
                // The bell's word and the word a ring writes (64 + 8, + 12):
                // stores into the mapping, and a write into the file as a
                // ring is (which every watch hears: a spurious wake-up).
                let word = (next(&mut seed) as u32).to_ne_bytes();
                view.write_at(72, &word).map_err(|e| e.to_string())?;
                let word = (next(&mut seed) as u32).to_ne_bytes();
                if writes % 2 == 0 {
                    view.write_at(76, &word).map_err(|e| e.to_string())?;
                } else {
                    file.write_all_at(&word, 76).map_err(|e| e.to_string())?;
                }
                writes += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            Ok(writes)
        });
        let sources = [Source::from(&event)];
        let select = Select::new(&sources)?;
        let result = (|| -> Result<(), Failed> {
            // Nothing set: every wake-up the writer causes is spurious.
            let started = Instant::now();
            let none = select.wait(&sources, Some(Duration::from_millis(500)))?;
            if none.is_some() {
                return Err("an event that was never set was reported".into());
            }
            if started.elapsed() < Duration::from_millis(450) {
                return Err("the wait ended early".into());
            }
            // A set from another process is taken, once.
            let mut peer = spawn("set-named", &[&ns.arg]);
            peer.expect("ready");
            for round in 0..50 {
                peer.send("e");
                if select.wait(&sources, Some(Duration::from_secs(10)))? != Some(0) {
                    return Err(format!("round {round}: the set was not taken").into());
                }
                if event.poll_wait()? {
                    return Err(format!("round {round}: one set taken twice").into());
                }
            }
            peer.finish();
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let writes = writer.join().unwrap()?;
        println!("{writes} hostile writes into the bell's words");
        result
    })?;
    Ok(())
}

#[cfg(all(target_os = "linux", feature = "tokio"))]
mod tokio_sync {
    use super::super::tokio_cases::runtime;
    use super::*;
    use sections::aio::{AsyncEvent, AsyncSemaphore};

    /// 2,000 rounds of ping (set by a blocking process, awaited here) and
    /// pong; then 2,000 counts released at random pace by that process
    /// and acquired here by two tasks sharing one `AsyncSemaphore`.
    pub fn ping_pong() -> Result<(), Failed> {
        let ns = private_namespace("aiosync");
        let o = sync_opts(&ns.arg);
        let ping = o.create_event("ping", Reset::Auto, false)?;
        let pong = o.create_event("pong", Reset::Auto, false)?;
        let sem = o.create_semaphore("s", 0, 1 << 20)?;
        let count = 2_000u64;
        let mut peer = spawn("ping", &[&ns.arg, &count.to_string()]);
        peer.expect("ready");
        runtime().block_on(async {
            let ping = AsyncEvent::new(ping)?;
            let mut slow = SlowWaits::new(20);
            for round in 0..count {
                let started = Instant::now();
                tokio::time::timeout(Duration::from_secs(30), ping.wait())
                    .await
                    .map_err(|_| {
                        Failed::from(format!("round {round}: ping never woke the task"))
                    })??;
                slow.record(started)?;
                pong.set()?;
            }
            let sem = AsyncSemaphore::new(sem)?;
            let slow = std::cell::RefCell::new(slow);
            let take = |n: u64| {
                let (sem, slow) = (&sem, &slow);
                async move {
                    for _ in 0..n {
                        let started = Instant::now();
                        tokio::time::timeout(Duration::from_secs(30), sem.acquire())
                            .await
                            .map_err(|_| Failed::from("a released count never woke the task"))??;
                        slow.borrow_mut().record(started)?;
                    }
                    Ok::<_, Failed>(())
                }
            };
            tokio::try_join!(take(count / 2), take(count - count / 2))?;
            if sem.get_ref().poll_acquire()? {
                return Err(Failed::from("a count more than was released"));
            }
            Ok::<_, Failed>(())
        })?;
        peer.expect("done");
        peer.finish();
        Ok(())
    }

    /// 10,000 event waits polled once (so they announce themselves and
    /// wait) and dropped; after each, another process sets the event once,
    /// which the next wait must take: a dropped wait takes nothing, and a
    /// set is never taken twice.
    pub fn dropped_waits() -> Result<(), Failed> {
        let ns = private_namespace("aiosync");
        let event = sync_opts(&ns.arg).create_event("e", Reset::Auto, false)?;
        let mut peer = spawn("set-named", &[&ns.arg]);
        peer.expect("ready");
        let peer = std::cell::RefCell::new(peer);
        runtime().block_on(async {
            let event = AsyncEvent::new(event)?;
            let mut slow = SlowWaits::new(50);
            for round in 0..10_000u32 {
                let dropped = tokio::select! {
                    biased;
                    r = event.wait() => Err(Failed::from(format!("round {round}: taken before it was set: {r:?}"))),
                    () = std::future::ready(()) => Ok(()),
                };
                dropped?;
                peer.borrow_mut().send("e");
                let started = Instant::now();
                tokio::time::timeout(Duration::from_secs(30), event.wait())
                    .await
                    .map_err(|_| Failed::from(format!("round {round}: the set was lost")))??;
                slow.record(started)?;
            }
            if event.get_ref().poll_wait()? {
                return Err(Failed::from("a set more than was made"));
            }
            Ok::<_, Failed>(())
        })?;
        peer.into_inner().finish();
        Ok(())
    }

    /// An event registered with a runtime that was then dropped, awaited
    /// on another runtime: its reactor answers every wait at once with an
    /// error, which the wait returns (it looped on it, holding the thread
    /// at 100% CPU, and a timeout around it never fired). Receivers and
    /// senders share the waiting code.
    pub fn runtime_gone() -> Result<(), Failed> {
        let ns = private_namespace("aiosync");
        let o = sync_opts(&ns.arg);
        let first = runtime();
        let event =
            first.block_on(async { AsyncEvent::new(o.create_event("e", Reset::Auto, false)?) })?;
        let channel = opts(&ns.arg).create("c")?;
        let mut rx =
            first.block_on(async { sections::aio::AsyncReceiver::new(channel.receiver()?) })?;
        drop(first);
        let started = Instant::now();
        // On a thread of its own: a wait that spins never returns to a
        // timeout around it.
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcomes = runtime().block_on(async {
                let limit = Duration::from_secs(5);
                let waited = tokio::time::timeout(limit, event.wait()).await;
                let received = tokio::time::timeout(limit, rx.recv())
                    .await
                    .map(|r| r.map(drop));
                (waited, received)
            });
            let _ = done.send(outcomes);
        });
        let (waited, received) = outcome.recv_timeout(Duration::from_secs(20)).map_err(|_| {
            Failed::from("the waits never returned (spinning on a reactor that is gone)")
        })?;
        drop(channel);
        for (what, outcome) in [("event", waited), ("receiver", received)] {
            match outcome {
                Ok(Err(e)) => assert_eq!(e.kind(), sections::ErrorKind::Unsupported, "{what}: {e}"),
                Ok(Ok(())) => return Err(format!("{what}: a wait with nothing set returned").into()),
                Err(_) => return Err(format!("{what}: the wait did not end (and its timeout fired only because the task yielded)").into()),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        Ok(())
    }
}
