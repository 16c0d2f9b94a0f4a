use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::channel::{ChannelOptions, Readiness, Receiver, Select, Sender};
use sections::{ErrorKind, Namespace};

#[path = "../common/ns.rs"]
mod ns;
#[path = "../common/peer.rs"]
mod peer;
#[path = "sync_cases.rs"]
mod sync_cases;
use ns::private_namespace;
use peer::{spawn, wait_stdin_eof};

pub fn main() {
    let tests: Vec<(&str, peer::TestFn)> = vec![
        (
            "a_poll_loop_receives_100000_messages_woken_by_its_bell",
            poll_loop_named,
        ),
        (
            "an_anonymous_channels_bell_wakes_a_poll_loop_in_a_child",
            poll_loop_anonymous,
        ),
        (
            "a_sender_waiting_for_room_is_woken_by_its_bell",
            poll_loan_room,
        ),
        (
            "select_over_16_channels_fed_at_random_delivers_every_message_once",
            select_sixteen,
        ),
        (
            "a_sender_killed_while_select_waits_is_disconnected",
            select_killed_sender,
        ),
        (
            "a_polling_sender_takes_over_a_dead_senders_reservation_lock",
            dead_lock_holder,
        ),
        // Windows: the side's auto-reset event wakes one waiter (README).
        #[cfg(unix)]
        (
            "two_waiters_on_one_side_both_hear_one_bell_named_and_anonymous",
            two_waiters_one_side,
        ),
        #[cfg(target_os = "linux")]
        (
            "a_receiver_in_another_pid_namespace_wakes_by_its_bell",
            across_pid_namespaces,
        ),
        #[cfg(target_os = "linux")]
        (
            "hostile_waiting_words_make_select_and_tokio_wake_late_or_for_nothing_never_lose_a_message",
            hostile_waiting_words,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "a_tokio_receiver_gets_100000_messages_from_two_blocking_sender_processes",
            tokio_cases::two_senders,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "a_sender_killed_while_a_tokio_receiver_awaits_is_disconnected",
            tokio_cases::killed_sender,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "recv_futures_dropped_mid_wait_10000_times_lose_and_repeat_nothing",
            tokio_cases::dropped_recv_futures,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "loan_futures_dropped_mid_wait_leave_no_slot_reserved",
            tokio_cases::dropped_loan_futures,
        ),
        #[cfg(all(target_os = "linux", feature = "tokio"))]
        (
            "populate_makes_an_evicted_range_resident_off_the_runtime",
            tokio_cases::populate_evicted,
        ),
    ];
    let tests = tests.into_iter().chain(sync_cases::tests()).collect();
    peer::main(tests, run_role);
}

fn opts(dir: &str) -> ChannelOptions {
    let mut o = ChannelOptions::new();
    o.namespace(&Namespace::at(dir)).capacity(4096);
    o
}

/// Message `seq` of channel `chan`: its numbers, then a pattern of them.
fn message(chan: u32, seq: u64) -> Vec<u8> {
    let len = 12 + (seq % 97) as usize;
    let mut m = vec![0u8; len];
    m[..4].copy_from_slice(&chan.to_le_bytes());
    m[4..12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[12..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8).wrapping_mul(7) ^ chan as u8;
    }
    m
}

/// A tiny pseudo-random sequence (no shared state between processes).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Sends `count` messages on `tx`, pausing now and then (so that the
/// receiver arms and waits in between), from seed `seed`.
fn feed(tx: &mut Sender, chan: u32, count: u64, seed: u64) -> sections::Result<()> {
    let mut s = seed | 1;
    for seq in 0..count {
        tx.send(&message(chan, seq))?;
        match next(&mut s) % 64 {
            0 => std::thread::sleep(Duration::from_micros(next(&mut s) % 2000)),
            1..=3 => std::thread::yield_now(),
            _ => {}
        }
    }
    Ok(())
}

fn run_role(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(done) = sync_cases::run_role(role, args) {
        return done;
    }
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match role {
        "feed" => {
            // feed DIR NAME CHAN COUNT SEED
            let mut tx = opts(arg(0)).open_sender(arg(1))?;
            println!("ready");
            feed(&mut tx, arg(2).parse()?, arg(3).parse()?, arg(4).parse()?)?;
            println!("sent");
            wait_stdin_eof();
        }
        "feed-token" => {
            // feed-token TOKEN COUNT
            let mut tx = ChannelOptions::new().sender_from_token(arg(0))?;
            println!("ready");
            feed(&mut tx, 0, arg(1).parse()?, 11)?;
            println!("sent");
            wait_stdin_eof();
        }
        "feed-on-demand" => {
            // feed-on-demand DIR NAME: one message per line of stdin
            let mut tx = opts(arg(0)).open_sender(arg(1))?;
            println!("ready");
            let mut line = String::new();
            let mut seq = 0;
            while std::io::stdin().read_line(&mut line)? > 0 {
                tx.send(&message(0, seq))?;
                seq += 1;
                line.clear();
            }
        }
        "drain" => {
            // drain DIR NAME COUNT: receives slowly, freeing room now and then
            let mut rx = opts(arg(0)).open_receiver(arg(1))?;
            println!("ready");
            let count: u64 = arg(2).parse()?;
            for seq in 0..count {
                let got = rx.recv()?.to_vec();
                if got != message(0, seq) {
                    return Err(format!("message {seq} damaged").into());
                }
                if seq % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            println!("received");
            wait_stdin_eof();
        }
        "select-receive" => {
            // select-receive DIR N COUNT: a receiver of N channels in a
            // PID namespace of its own
            let o = opts(arg(0));
            let n: u32 = arg(1).parse()?;
            let count: u64 = arg(2).parse()?;
            let mut rxs = (0..n)
                .map(|i| o.open_receiver(&format!("c{i}")))
                .collect::<sections::Result<Vec<_>>>()?;
            println!("ready");
            select_all(&mut rxs, count).map_err(|e| format!("{e:?}"))?;
            println!("received");
            wait_stdin_eof();
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

/// Waits for `ready` to be readable (at most `wait`), then clears it.
#[cfg(unix)]
fn wait_ready(ready: &Readiness, wait: Duration) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(ready, PollFlags::IN)];
    let t = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let _ = poll(&mut fds, Some(&t));
    ready.clear();
}

#[cfg(windows)]
fn wait_ready(ready: &Readiness, wait: Duration) {
    use std::os::windows::io::AsRawHandle;
    extern "system" {
        fn WaitForSingleObject(handle: *mut std::ffi::c_void, ms: u32) -> u32;
    }
    // SAFETY: a valid event handle borrowed from `ready` for the call.
    unsafe { WaitForSingleObject(ready.as_raw_handle(), wait.as_millis() as u32) };
    ready.clear();
}

/// An event loop's receive: poll, and wait for the bell between polls
/// (with a coarse timeout: a peer that dies rings nothing). Counts the
/// waits that ended by the timeout rather than by the bell.
fn poll_receive(rx: &mut Receiver, ready: &Readiness, count: u64) -> Result<u64, Failed> {
    let mut timeouts = 0;
    for want in 0..count {
        loop {
            if let Some(m) = rx.poll_recv()? {
                let got = m.to_vec();
                if got != message(0, want) {
                    return Err(format!("message {want} damaged or out of order").into());
                }
                break;
            }
            let started = Instant::now();
            wait_ready(ready, Duration::from_secs(1));
            if started.elapsed() >= Duration::from_secs(1) {
                timeouts += 1;
            }
        }
    }
    Ok(timeouts)
}

fn poll_loop_named() -> Result<(), Failed> {
    let ns = private_namespace("ready");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    let mut rx = o.open_receiver("c")?;
    let ready = rx.readiness()?;
    let count = 100_000u64;
    let mut peer = spawn("feed", &[&ns.arg, "c", "0", &count.to_string(), "7"]);
    peer.expect("ready");
    let timeouts = poll_receive(&mut rx, &ready, count)?;
    peer.expect("sent");
    peer.finish();
    // A wait that needed the one-second timeout is a lost wake-up (the
    // sender never stops for a second).
    assert_eq!(timeouts, 0, "waits that the bell did not end");
    Ok(())
}

fn poll_loop_anonymous() -> Result<(), Failed> {
    let mut o = ChannelOptions::new();
    o.capacity(4096);
    let channel = o.anonymous()?;
    let mut rx = channel.receiver()?;
    let ready = rx.readiness()?;
    let inherit = channel.inheritable()?;
    let count = 20_000u64;
    let mut peer = spawn("feed-token", &[inherit.token(), &count.to_string()]);
    drop(inherit);
    peer.expect("ready");
    let timeouts = poll_receive(&mut rx, &ready, count)?;
    peer.expect("sent");
    peer.finish();
    assert_eq!(timeouts, 0, "waits that the bell did not end");
    Ok(())
}

fn poll_loan_room() -> Result<(), Failed> {
    let ns = private_namespace("ready");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    let mut tx = o.open_sender("c")?;
    let ready = tx.readiness()?;
    let count = 20_000u64;
    let mut peer = spawn("drain", &[&ns.arg, "c", &count.to_string()]);
    peer.expect("ready");
    let mut timeouts = 0;
    for seq in 0..count {
        let m = message(0, seq);
        loop {
            if let Some(mut loan) = tx.poll_loan(m.len())? {
                loan.write_at(0, &m)?;
                loan.send();
                break;
            }
            let started = Instant::now();
            wait_ready(&ready, Duration::from_secs(1));
            if started.elapsed() >= Duration::from_secs(1) {
                timeouts += 1;
            }
        }
    }
    peer.expect("received");
    peer.finish();
    assert_eq!(timeouts, 0, "waits for room that the bell did not end");
    Ok(())
}

/// Receives `count` messages from each receiver through a `Select`, each
/// exactly once and in order per channel.
fn select_all(rxs: &mut [Receiver], count: u64) -> Result<(), Failed> {
    let select = {
        let refs: Vec<&Receiver> = rxs.iter().collect();
        Select::new(&refs)?
    };
    let mut next = vec![0u64; rxs.len()];
    let total = count * rxs.len() as u64;
    let mut got = 0;
    while got < total {
        let i = {
            let refs: Vec<&Receiver> = rxs.iter().collect();
            select
                .wait(&refs, Some(Duration::from_secs(30)))?
                .ok_or("select waited 30 s with messages still to come")?
        };
        // Everything ready on that channel now.
        loop {
            match rxs[i].poll_recv() {
                Ok(Some(m)) => {
                    if m.to_vec() != message(i as u32, next[i]) {
                        return Err(format!("channel {i}: message {} damaged", next[i]).into());
                    }
                    next[i] += 1;
                    got += 1;
                }
                Ok(None) => break,
                Err(e) if e.kind() == ErrorKind::Disconnected && next[i] == count => break,
                Err(e) => return Err(format!("channel {i}: {e}").into()),
            }
        }
    }
    if next.iter().any(|&n| n != count) {
        return Err(format!("per-channel counts {next:?}").into());
    }
    Ok(())
}

fn select_sixteen() -> Result<(), Failed> {
    let ns = private_namespace("select");
    let o = opts(&ns.arg);
    let n = 16u32;
    let count = 2_000u64;
    let channels = (0..n)
        .map(|i| o.create(&format!("c{i}")))
        .collect::<sections::Result<Vec<_>>>()?;
    let mut rxs = (0..n)
        .map(|i| o.open_receiver(&format!("c{i}")))
        .collect::<sections::Result<Vec<_>>>()?;
    let mut peers: Vec<_> = (0..n)
        .map(|i| {
            spawn(
                "feed",
                &[
                    &ns.arg,
                    &format!("c{i}"),
                    &i.to_string(),
                    &count.to_string(),
                    &(i * 31 + 5).to_string(),
                ],
            )
        })
        .collect();
    for p in &mut peers {
        p.expect("ready");
    }
    select_all(&mut rxs, count)?;
    for mut p in peers {
        p.expect("sent");
        p.finish();
    }
    drop(channels);
    Ok(())
}

fn select_killed_sender() -> Result<(), Failed> {
    let ns = private_namespace("select");
    let o = opts(&ns.arg);
    let _a = o.create("quiet")?;
    let _b = o.create("dies")?;
    let _quiet_tx = o.open_sender("quiet")?;
    let rx_quiet = o.open_receiver("quiet")?;
    let mut rx_dies = o.open_receiver("dies")?;
    let mut peer = spawn("feed", &[&ns.arg, "dies", "0", "1", "3"]);
    peer.expect("ready");
    peer.expect("sent");
    let select = Select::new(&[&rx_quiet, &rx_dies])?;
    assert_eq!(
        select.wait(&[&rx_quiet, &rx_dies], Some(Duration::from_secs(30)))?,
        Some(1)
    );
    assert_eq!(rx_dies.poll_recv()?.expect("ready").to_vec(), message(0, 0));
    peer.kill();
    // The dead sender rings nothing: the select notices it all the same,
    // and `poll_recv` (which looks closely) says so.
    let ready = select.wait(&[&rx_quiet, &rx_dies], Some(Duration::from_secs(30)))?;
    assert_eq!(ready, Some(1), "the dead sender's channel is ready");
    let e = rx_dies.poll_recv().map(|m| m.is_some()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    Ok(())
}

/// A hostile or dead sender's value in the reservation lock word (slot 1,
/// a generation nobody holds): a sender polling in an event loop takes the
/// lock over on its own poll, as a blocking one does, instead of waiting
/// for a bell nobody will ring.
fn dead_lock_holder() -> Result<(), Failed> {
    let ns = private_namespace("ready");
    let mut o = opts(&ns.arg);
    o.senders(2);
    let _c = o.create("c")?;
    let mut rx = o.open_receiver("c")?;
    let mut tx = o.open_sender("c")?;
    let raw = sections::Section::options()
        .namespace(&Namespace::at(&ns.arg))
        .open("c")?
        .map_all(sections::Access::ReadWrite)?;
    raw.write_at(456, &0x1234_0002u32.to_le_bytes())?;
    let ready = tx.readiness()?;
    let started = Instant::now();
    loop {
        if let Some(mut loan) = tx.poll_loan(5)? {
            loan.write_at(0, b"taken")?;
            loan.send();
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            return Err("poll_loan never took over a dead holder's lock".into());
        }
        wait_ready(&ready, Duration::from_millis(100));
    }
    assert_eq!(rx.recv()?.to_vec(), b"taken");
    Ok(())
}

/// Two waiters on one side (two readiness of a receiver: a `Select` and an
/// event loop, say), on a named and an anonymous channel: one bell wakes
/// both (each has its own watch; none takes the other's wake-up).
#[cfg(unix)]
fn two_waiters_one_side() -> Result<(), Failed> {
    let ns = private_namespace("ready");
    let o = opts(&ns.arg);
    let named = o.create("c")?;
    let anonymous = o.anonymous()?;
    for (what, channel) in [("named", &named), ("anonymous", &anonymous)] {
        let mut rx = channel.receiver()?;
        let mut tx = channel.sender()?;
        let (first, second) = (rx.readiness()?, rx.readiness()?);
        assert!(rx.poll_recv()?.is_none(), "armed");
        tx.send(b"one bell")?;
        for (i, ready) in [&first, &second].into_iter().enumerate() {
            let started = Instant::now();
            wait_ready(ready, Duration::from_secs(2));
            if started.elapsed() >= Duration::from_secs(2) {
                return Err(format!("{what}: waiter {i} never heard the bell").into());
            }
        }
        assert_eq!(rx.poll_recv()?.expect("sent").to_vec(), b"one bell");
    }
    Ok(())
}

/// A thread that writes any values into a named channel's two waiting
/// words (offsets 448 and 452: the sleeper and bell bits of each side)
/// and, every other time, writes into the channel's file as a ring does,
/// every 50 µs; while it runs, a select and then a tokio receiver take
/// 5,000 messages each from a sender process that pauses at random. Every
/// message arrives, in order: a wake-up may come for nothing, or late (a
/// bell bit cleared by the writer leaves the receiver to its 100 ms look),
/// never a wrong report, a lost message or a hang.
#[cfg(target_os = "linux")]
fn hostile_waiting_words() -> Result<(), Failed> {
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    let ns = private_namespace("hostilewait");
    let o = opts(&ns.arg);
    let count = 5_000u64;
    let _channels = (o.create("c")?, o.create("d")?);
    let views = ["c", "d"]
        .iter()
        .map(|name| {
            sections::Section::options()
                .namespace(&Namespace::at(&ns.arg))
                .open(name)?
                .map_all(sections::Access::ReadWrite)
        })
        .collect::<sections::Result<Vec<_>>>()?;
    let files = ["c", "d"]
        .iter()
        .map(|name| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(std::path::Path::new(&ns.arg).join(name))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<(), Failed> {
        let writer = s.spawn(|| -> Result<u64, String> {
            let mut seed = 77u64;
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (view, file) in views.iter().zip(&files) {
                    for at in [448, 452] {
                        let word = (next(&mut seed) as u32).to_ne_bytes();
                        view.write_at(at, &word).map_err(|e| e.to_string())?;
                    }
                    if writes % 2 == 1 {
                        file.write_all_at(&[0u8; 4], 508)
                            .map_err(|e| e.to_string())?;
                    }
                }
                writes += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            Ok(writes)
        });
        let result = (|| -> Result<(), Failed> {
            let mut rx = o.open_receiver("c")?;
            let mut peer = spawn("feed", &[&ns.arg, "c", "0", &count.to_string(), "9"]);
            peer.expect("ready");
            select_all(std::slice::from_mut(&mut rx), count)?;
            peer.expect("sent");
            peer.finish();
            #[cfg(feature = "tokio")]
            {
                let rx = o.open_receiver("d")?;
                let mut peer = spawn("feed", &[&ns.arg, "d", "0", &count.to_string(), "13"]);
                peer.expect("ready");
                tokio_cases::runtime().block_on(async {
                    let mut rx = sections::aio::AsyncReceiver::new(rx)?;
                    for seq in 0..count {
                        let m = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                            .await
                            .map_err(|_| Failed::from(format!("message {seq}: waited 30 s")))??;
                        if m.to_vec() != message(0, seq) {
                            return Err(Failed::from(format!(
                                "message {seq} damaged or out of order"
                            )));
                        }
                    }
                    Ok::<_, Failed>(())
                })?;
                peer.expect("sent");
                peer.finish();
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let writes = writer.join().unwrap()?;
        println!("{writes} rounds of hostile writes into the waiting words");
        result
    })
}

/// A peer in a PID namespace of its own; `None` (the test skips, saying
/// so) where unshare cannot make one, an error if SECTIONS_REQUIRE_ROOT
/// says it must.
fn peer_in_new_pid_namespace(role: &str, args: &[&str]) -> Result<Option<peer::Peer>, Failed> {
    #[cfg(target_os = "linux")]
    if let Some(peer) = peer::spawn_in_new_pid_namespace(role, args) {
        return Ok(Some(peer));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (role, args);
    if std::env::var_os("SECTIONS_REQUIRE_ROOT").is_some() {
        return Err("unshare cannot make a PID namespace, and SECTIONS_REQUIRE_ROOT is set".into());
    }
    eprintln!("skipped: a PID namespace of its own needs root and unshare");
    Ok(None)
}

#[cfg(target_os = "linux")]
fn across_pid_namespaces() -> Result<(), Failed> {
    let ns = private_namespace("select");
    let o = opts(&ns.arg);
    let n = 4u32;
    let count = 5_000u64;
    let _channels = (0..n)
        .map(|i| o.create(&format!("c{i}")))
        .collect::<sections::Result<Vec<_>>>()?;
    let Some(mut peer) = peer_in_new_pid_namespace(
        "select-receive",
        &[&ns.arg, &n.to_string(), &count.to_string()],
    )?
    else {
        return Ok(());
    };
    peer.expect("ready");
    let mut txs = (0..n)
        .map(|i| o.open_sender(&format!("c{i}")))
        .collect::<sections::Result<Vec<_>>>()?;
    let mut seed = 99u64;
    let mut sent = vec![0u64; n as usize];
    while sent.iter().any(|&s| s < count) {
        let i = (next(&mut seed) % u64::from(n)) as usize;
        if sent[i] < count {
            txs[i].send(&message(i as u32, sent[i]))?;
            sent[i] += 1;
        }
        if next(&mut seed) % 256 == 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    peer.expect("received");
    peer.finish();
    Ok(())
}

#[cfg(all(target_os = "linux", feature = "tokio"))]
mod tokio_cases {
    use super::*;
    use sections::aio::{AsyncReceiver, AsyncSender};

    pub(super) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub fn two_senders() -> Result<(), Failed> {
        let ns = private_namespace("aio");
        let mut o = opts(&ns.arg);
        o.senders(2);
        let _c = o.create("c")?;
        let rx = o.open_receiver("c")?;
        let count = 50_000u64;
        let mut peers: Vec<_> = (0..2u32)
            .map(|chan| {
                spawn(
                    "feed",
                    &[
                        &ns.arg,
                        "c",
                        &chan.to_string(),
                        &count.to_string(),
                        &(chan + 3).to_string(),
                    ],
                )
            })
            .collect();
        for p in &mut peers {
            p.expect("ready");
        }
        runtime().block_on(async {
            let mut rx = AsyncReceiver::new(rx)?;
            let mut next = [0u64; 2];
            while next.iter().sum::<u64>() < 2 * count {
                let m = rx.recv().await?.to_vec();
                let chan = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
                if chan > 1 || m != message(chan as u32, next[chan]) {
                    return Err(Failed::from(format!(
                        "sender {chan}: message {} damaged or out of order",
                        next.get(chan).copied().unwrap_or(0)
                    )));
                }
                next[chan] += 1;
            }
            Ok::<_, Failed>(())
        })?;
        for mut p in peers {
            p.expect("sent");
            p.finish();
        }
        Ok(())
    }

    pub fn killed_sender() -> Result<(), Failed> {
        let ns = private_namespace("aio");
        let o = opts(&ns.arg);
        let _c = o.create("c")?;
        let rx = o.open_receiver("c")?;
        let mut peer = spawn("feed", &[&ns.arg, "c", "0", "10", "1"]);
        peer.expect("ready");
        peer.expect("sent");
        let kill = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            peer.kill();
        });
        runtime().block_on(async {
            let mut rx = AsyncReceiver::new(rx)?;
            for seq in 0..10 {
                assert_eq!(rx.recv().await?.to_vec(), message(0, seq));
            }
            // Awaiting while the sender is killed: Disconnected, not a hang.
            let e = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .map_err(|_| Failed::from("recv hung after the sender died"))?
                .map(|m| m.len())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
            Ok::<_, Failed>(())
        })?;
        kill.join().unwrap();
        Ok(())
    }

    /// 10,000 receive futures polled once on an empty channel (so they
    /// arm the bell and wait) and dropped; after each, the sender process
    /// sends one message, which the next receive must get: none lost, none
    /// repeated, and a dropped future's armed bell misleads nothing.
    pub fn dropped_recv_futures() -> Result<(), Failed> {
        let ns = private_namespace("aio");
        let o = opts(&ns.arg);
        let _c = o.create("c")?;
        let rx = o.open_receiver("c")?;
        let count = 10_000u64;
        let mut peer = spawn("feed-on-demand", &[&ns.arg, "c"]);
        peer.expect("ready");
        let peer = std::cell::RefCell::new(peer);
        runtime().block_on(async {
            let mut rx = AsyncReceiver::new(rx)?;
            for seq in 0..count {
                let dropped = tokio::select! {
                    biased;
                    m = rx.recv() => Err(Failed::from(format!("a message before {seq} was sent: {:?}", m.map(|m| m.len())))),
                    () = std::future::ready(()) => Ok(()),
                };
                dropped?;
                peer.borrow_mut().send("go");
                let m = rx.recv().await?.to_vec();
                if m != message(0, seq) {
                    return Err(Failed::from(format!("message {seq} lost, repeated or damaged")));
                }
            }
            Ok::<_, Failed>(())
        })?;
        peer.into_inner().finish();
        Ok(())
    }

    /// Loans awaited on a full ring and dropped (polled once): none leaves
    /// room reserved; every sent message arrives once.
    pub fn dropped_loan_futures() -> Result<(), Failed> {
        let ns = private_namespace("aio");
        let o = opts(&ns.arg);
        let _c = o.create("c")?;
        let tx = o.open_sender("c")?;
        let count = 20_000u64;
        let mut peer = spawn("drain", &[&ns.arg, "c", &count.to_string()]);
        peer.expect("ready");
        let dropped = runtime().block_on(async {
            let mut tx = AsyncSender::new(tx)?;
            let (mut seq, mut dropped, mut turn) = (0u64, 0u64, 0u64);
            while seq < count {
                turn += 1;
                let m = message(0, seq);
                if turn % 2 == 0 {
                    let sent = tokio::select! {
                        biased;
                        loan = tx.loan(m.len()) => {
                            let mut loan = loan?;
                            loan.write_at(0, &m)?;
                            loan.send();
                            true
                        }
                        () = std::future::ready(()) => false,
                    };
                    if sent {
                        seq += 1;
                    } else {
                        dropped += 1;
                        tokio::task::yield_now().await;
                    }
                } else {
                    tx.send(&m).await?;
                    seq += 1;
                }
            }
            Ok::<_, Failed>(dropped)
        })?;
        peer.expect("received");
        peer.finish();
        assert!(dropped > 0, "no loan future had to wait");
        Ok(())
    }

    /// A file-backed view evicted from the page cache: `populate` reads it
    /// in on the blocking pool while a task on the (single) runtime thread
    /// keeps running, and afterwards the range is resident.
    #[cfg(target_os = "linux")]
    pub fn populate_evicted() -> Result<(), Failed> {
        use sections::{Access, Section};
        use std::os::fd::AsRawFd;
        use std::sync::Arc;

        // On the build directory's disk (tmpfs could not evict).
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
        let path = dir.path().join("cold.bin");
        let len = 16 << 20;
        std::fs::write(&path, vec![0x5au8; len])?;
        let file = std::fs::File::open(&path)?;
        file.sync_all()?;
        // SAFETY: posix_fadvise on our own open descriptor.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let view = Arc::new(Section::from_path(&path, Access::Read)?.map_all(Access::Read)?);
        let before = view.residency(0, len)?;
        let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let after = runtime().block_on(async {
            let counter = Arc::clone(&ticks);
            // A task that only yields: it runs only while the runtime
            // thread is free.
            let ticker = tokio::spawn(async move {
                loop {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            });
            sections::aio::populate(&view, 0, len).await?;
            ticker.abort();
            Ok::<_, Failed>(view.residency(0, len)?)
        })?;
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        assert!(ticks > 0, "the runtime thread was blocked while populating");
        assert!(
            after.is_complete(),
            "resident after populate: {after:?} (before: {before:?})"
        );
        let mut probe = [0u8; 8];
        view.read_at(len - 8, &mut probe)?;
        assert_eq!(probe, [0x5a; 8]);
        println!(
            "resident before populate: {} of {} pages; the runtime thread ran {ticks} times meanwhile",
            before.resident_pages, before.total_pages
        );
        Ok(())
    }
}
