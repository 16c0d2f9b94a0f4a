//! Peers in other containers: a channel's peers in different PID
//! namespaces (the same `/dev/shm`, as containers sharing it have) stay
//! connected, learn at once that a peer died, and never both own one slot;
//! and no two processes, racing or paused between the steps of a claim,
//! ever own one slot. Needs root for `unshare` (CI runs as root with
//! `SECTIONS_REQUIRE_ROOT=1`).

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::channel::{ChannelOptions, Receiver, Sender};
use sections::sync::{Locked, SyncOptions};
use sections::{ErrorKind, Namespace, ObjectState, PeerProcess, PidNamespace};

use crate::ns::private_namespace;
use crate::peer::{
    spawn, spawn_command, spawn_in_new_pid_namespace, spawn_in_new_pid_namespace_with,
    wait_stdin_eof, Peer, TestFn,
};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "peers_in_another_pid_namespace_stay_connected_both_ways",
            across_namespaces,
        ),
        (
            "a_peer_killed_in_another_pid_namespace_is_gone_within_a_second",
            killed_across_namespaces,
        ),
        (
            "a_second_receiver_in_another_pid_namespace_is_refused",
            second_receiver_across_namespaces,
        ),
        (
            "a_mutex_holder_in_another_pid_namespace_is_named_and_its_death_seen",
            mutex_across_namespaces,
        ),
        (
            "a_peer_of_another_uid_connects_only_when_mode_and_owner_allow",
            foreign_user,
        ),
        (
            "a_peer_without_proc_locks_by_the_entry_or_is_told_why",
            without_proc,
        ),
        (
            "eight_racing_processes_never_double_own_a_slot",
            racing_claims,
        ),
        (
            "a_claim_is_decided_by_the_peer_lock_alone",
            claim_by_lock_alone,
        ),
        (
            "hostile_owner_words_never_make_a_live_peer_look_gone",
            hostile_owner_words,
        ),
        (
            "short_timed_calls_see_a_killed_peer",
            short_timed_calls_see_a_killed_peer,
        ),
    ]
}

type RoleResult = Result<(), Box<dyn std::error::Error>>;

const MESSAGES: u64 = 100_000;

pub(crate) fn opts(dir: &str) -> ChannelOptions {
    let mut o = ChannelOptions::new();
    // A small ring: both sides wait often, which is when liveness is asked.
    o.namespace(&Namespace::at(dir)).capacity(4096).senders(2);
    o
}

/// The message with sequence number `seq`: its number, then a length and
/// bytes that follow from it.
fn message(seq: u64) -> Vec<u8> {
    let len = 8 + (seq % 97) as usize;
    let mut m = vec![(seq % 251) as u8; len];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

/// Pauses now and then, so that the other side has to wait (and so look at
/// whether this side lives).
fn pause(seq: u64, every: u64) {
    if seq % every == every - 1 {
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn receive_all(rx: &mut Receiver, count: u64) -> Result<(), String> {
    let mut buf = Vec::new();
    for seq in 0..count {
        rx.recv_into(&mut buf)
            .map_err(|e| format!("message {seq}: {e}"))?;
        if buf != message(seq) {
            return Err(format!("message {seq} arrived damaged"));
        }
        pause(seq, 7_001);
    }
    Ok(())
}

pub fn role(role: &str, args: &[String]) -> Option<RoleResult> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let run = |f: &dyn Fn() -> RoleResult| Some(f());
    match role {
        "ns-send" => run(&|| {
            let mut tx = opts(arg(0)).open_sender(arg(1))?;
            println!("connected");
            for seq in 0..MESSAGES {
                tx.send(&message(seq))?;
                pause(seq, 5_003);
            }
            println!("sent");
            wait_stdin_eof();
            Ok(())
        }),
        "ns-recv" => run(&|| {
            let mut rx = opts(arg(0)).open_receiver(arg(1))?;
            println!("connected");
            receive_all(&mut rx, MESSAGES)?;
            println!("received");
            wait_stdin_eof();
            Ok(())
        }),
        "ns-hold" => run(&|| {
            let o = opts(arg(0));
            let _end: Box<dyn std::any::Any> = if arg(2) == "receiver" {
                Box::new(o.open_receiver(arg(1))?)
            } else {
                Box::new(o.open_sender(arg(1))?)
            };
            println!("connected");
            wait_stdin_eof();
            Ok(())
        }),
        "ns-try-receiver" => run(&|| {
            let got = opts(arg(0)).open_receiver(arg(1)).map(drop);
            println!("{:?}", got.map_err(|e| e.kind()));
            Ok(())
        }),
        "ns-lock" => run(&|| {
            let m = SyncOptions::new()
                .namespace(&Namespace::at(arg(0)))
                .open_mutex(arg(1))?;
            let _guard = m.lock()?;
            println!("locked {}", std::process::id());
            wait_stdin_eof();
            Ok(())
        }),
        "foreign-send" => run(&|| {
            let mut o = opts(arg(0));
            let strict = o.open_sender(arg(1)).map(drop).map_err(|e| e.kind());
            println!("strict {strict:?}");
            match o.allow_foreign_owner(true).open_sender(arg(1)) {
                Err(e) => println!("allowed Err({:?})", e.kind()),
                Ok(mut tx) => {
                    println!("allowed Ok");
                    for seq in 0..1_000 {
                        tx.send(&message(seq))?;
                    }
                    wait_stdin_eof();
                }
            }
            Ok(())
        }),
        "no-proc" => run(&|| {
            // In a mount namespace of its own: take /proc away, then try.
            let proc_path = std::ffi::CString::new("/proc")?;
            // SAFETY: a NUL-terminated path; detaching a mount of our own
            // private mount namespace.
            if unsafe { libc::umount2(proc_path.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            // A named channel's slot is locked through its entry.
            let named = opts(arg(0)).open_sender(arg(1));
            match &named {
                Ok(_) => println!("named connected"),
                Err(e) => println!("named {:?}: {e}", e.kind()),
            }
            // An anonymous one has nothing but /proc to reopen it by.
            let anonymous = ChannelOptions::new().anonymous()?;
            match anonymous.sender() {
                Ok(_) => println!("anonymous connected"),
                Err(e) => println!("anonymous {:?}: {e}", e.kind()),
            }
            wait_stdin_eof();
            drop(named);
            Ok(())
        }),
        "claimer" => run(&|| claimer(arg(0))),
        _ => None,
    }
}

fn unshare_or_skip(role: &str, args: &[&str]) -> Result<Option<Peer>, Failed> {
    match spawn_in_new_pid_namespace(role, args) {
        Some(peer) => Ok(Some(peer)),
        None if std::env::var_os("SECTIONS_REQUIRE_ROOT").is_some() => {
            Err("unshare cannot make a PID namespace, and SECTIONS_REQUIRE_ROOT is set".into())
        }
        None => {
            eprintln!("skipped: a PID namespace of its own needs root and unshare");
            Ok(None)
        }
    }
}

fn across_namespaces() -> Result<(), Failed> {
    let ns = private_namespace("containers");
    let o = opts(&ns.arg);
    // A namespaced sender, a receiver here.
    let _c = o.create("one-way")?;
    let mut rx = o.open_receiver("one-way")?;
    let Some(mut sender) = unshare_or_skip("ns-send", &[&ns.arg, "one-way"])? else {
        return Ok(());
    };
    sender.expect("connected");
    receive_all(&mut rx, MESSAGES)?;
    sender.expect("sent");
    sender.finish();
    // A sender here, a namespaced receiver.
    let _c = o.create("other-way")?;
    let Some(mut receiver) = unshare_or_skip("ns-recv", &[&ns.arg, "other-way"])? else {
        return Ok(());
    };
    receiver.expect("connected");
    let mut tx = o.open_sender("other-way")?;
    for seq in 0..MESSAGES {
        tx.send(&message(seq))?;
        pause(seq, 5_003);
    }
    receiver.expect("received");
    receiver.finish();
    Ok(())
}

fn killed_across_namespaces() -> Result<(), Failed> {
    let ns = private_namespace("containers-kill");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    let mut rx = o.open_receiver("c")?;
    let Some(mut sender) = unshare_or_skip("ns-hold", &[&ns.arg, "c", "sender"])? else {
        return Ok(());
    };
    sender.expect("connected");
    // Connected: nothing to receive, and not disconnected.
    let err = rx.recv_timeout(Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    sender.kill();
    let killed = Instant::now();
    let err = rx.recv_timeout(Duration::from_secs(10)).unwrap_err();
    let took = killed.elapsed();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert!(took < Duration::from_secs(1), "learned it after {took:?}");
    // The other way: a namespaced receiver killed; a sender here learns it.
    let _c2 = o.create("d")?;
    let Some(mut receiver) = unshare_or_skip("ns-hold", &[&ns.arg, "d", "receiver"])? else {
        return Ok(());
    };
    receiver.expect("connected");
    let mut tx = o.open_sender("d")?;
    receiver.kill();
    let killed = Instant::now();
    let err = loop {
        match tx.send_timeout(&[7; 512], Duration::from_secs(10)) {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    let took = killed.elapsed();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert!(took < Duration::from_secs(1), "learned it after {took:?}");
    Ok(())
}

fn second_receiver_across_namespaces() -> Result<(), Failed> {
    let ns = private_namespace("containers-second");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    // A namespaced receiver: one here is refused.
    let Some(mut receiver) = unshare_or_skip("ns-hold", &[&ns.arg, "c", "receiver"])? else {
        return Ok(());
    };
    receiver.expect("connected");
    let err = o.open_receiver("c").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    // A listing names it as a process of another PID namespace.
    match sections::entry(&ns.ns, "c")?.object {
        Some(ObjectState::Channel {
            receiver: true,
            receiver_process: Some(p),
            ..
        }) => assert_eq!(p.pid_namespace, PidNamespace::Another, "{p:?}"),
        other => panic!("listed as {other:?}"),
    }
    receiver.finish();
    // A receiver here: a namespaced one is refused.
    let _rx = o.open_receiver("c")?;
    let Some(mut other) = unshare_or_skip("ns-try-receiver", &[&ns.arg, "c"])? else {
        return Ok(());
    };
    other.expect("Err(AlreadyExists)");
    other.finish();
    Ok(())
}

/// A mutex held from another PID namespace: a listing and `holder()` name
/// the holder's own pid, marked as another namespace's (the lock word's
/// thread id means nothing here); `sect info` says so; killed, the next
/// lock here is told it was abandoned.
fn mutex_across_namespaces() -> Result<(), Failed> {
    let ns = private_namespace("containers-mutex");
    let m = SyncOptions::new().namespace(&ns.ns).create_mutex("m")?;
    let Some(mut holder) = unshare_or_skip("ns-lock", &[&ns.arg, "m"])? else {
        return Ok(());
    };
    let line = holder.line();
    let pid: u32 = line
        .strip_prefix("locked ")
        .ok_or_else(|| format!("bad line {line}"))?
        .parse()?;
    let expected = PeerProcess {
        pid,
        pid_namespace: PidNamespace::Another,
    };
    assert_eq!(m.holder(), Some(expected));
    match sections::entry(&ns.ns, "m")?.object {
        Some(ObjectState::Mutex {
            held: true,
            holder: Some(p),
        }) => assert_eq!(p, expected),
        other => panic!("listed as {other:?}"),
    }
    holder.kill();
    let abandoned = m
        .lock_timeout(Duration::from_secs(5))?
        .map(|l| matches!(l, Locked::Abandoned(_)));
    assert_eq!(abandoned, Some(true), "taken (as abandoned) after the kill");
    Ok(())
}

/// A peer of another user (uid 65534) in another PID namespace, as in a
/// container with other uids: refused while the channel is another user's
/// (the owner check), refused by the OS while its mode is `0600` even when
/// it allows another owner, and connected when it is `0666` and it allows
/// another owner.
fn foreign_user() -> Result<(), Failed> {
    if !is_root() {
        return skip_unless_required("another uid needs root");
    }
    let ns = private_namespace("containers-uid");
    std::fs::set_permissions(ns.ns.dir(), std::fs::Permissions::from_mode(0o1777))?;
    let mut o = opts(&ns.arg);
    let _private = o.create("private")?;
    let _shared = o.mode(0o666).create("shared")?;
    // Sync objects take the same mode.
    let _m = SyncOptions::new()
        .namespace(&ns.ns)
        .mode(0o666)
        .create_mutex("m")?;
    let mode = std::fs::metadata(ns.ns.dir().join("m"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666, "the mutex's mode {mode:o}");
    let as_nobody = ["--setuid", "65534", "--setgid", "65534"];
    let Some(mut peer) =
        spawn_in_new_pid_namespace_with("foreign-send", &[&ns.arg, "private"], &as_nobody)
    else {
        return skip_unless_required("unshare cannot make a PID namespace");
    };
    peer.expect("strict Err(PermissionDenied)");
    peer.expect("allowed Err(PermissionDenied)");
    peer.finish();
    let mut rx = o.open_receiver("shared")?;
    let Some(mut peer) =
        spawn_in_new_pid_namespace_with("foreign-send", &[&ns.arg, "shared"], &as_nobody)
    else {
        return skip_unless_required("unshare cannot make a PID namespace");
    };
    peer.expect("strict Err(PermissionDenied)");
    peer.expect("allowed Ok");
    receive_all(&mut rx, 1_000)?;
    peer.finish();
    Ok(())
}

/// A peer whose `/proc` is gone (a hardened sandbox) locks a named
/// channel's slot through the channel's entry, and that lock goes with the
/// peer; an anonymous channel, which has no entry, is refused with a
/// reason, and nothing is left claimed.
fn without_proc() -> Result<(), Failed> {
    if !is_root() {
        return skip_unless_required("a mount namespace needs root");
    }
    let ns = private_namespace("containers-proc");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe()?)
        .args([&ns.arg, "c"]);
    let mut peer = spawn_command("no-proc", cmd);
    peer.expect("named connected");
    let line = peer.line();
    assert!(
        line.starts_with("anonymous Unsupported:") && line.contains("is /proc mounted?"),
        "the peer without /proc said: {line}"
    );
    // Its slot is held: one of the two is left.
    let a = o.open_sender("c")?;
    let refused = o.open_sender("c").map(drop).map_err(|e| e.kind());
    assert_eq!(refused, Err(ErrorKind::AlreadyExists));
    // Killed, it holds nothing: both slots connect.
    peer.kill();
    let _b = o.open_sender("c")?;
    drop(a);
    let _a = o.open_sender("c")?;
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: plain call.
    unsafe { libc::geteuid() == 0 }
}

fn skip_unless_required(why: &str) -> Result<(), Failed> {
    if std::env::var_os("SECTIONS_REQUIRE_ROOT").is_some() {
        return Err(format!("{why}, and SECTIONS_REQUIRE_ROOT is set").into());
    }
    eprintln!("skipped: {why}");
    Ok(())
}

/// One of eight racing processes: on "go NAME" it tries for the receiver
/// and a sender slot of that channel at once and says what it got; on
/// "release" it lets go of them.
fn claimer(dir: &str) -> RoleResult {
    let o = opts(dir);
    let mut rx: Option<Receiver> = None;
    let mut tx: Option<Sender> = None;
    let mut line = String::new();
    println!("ready");
    while std::io::stdin().read_line(&mut line)? > 0 {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["go", name] => {
                let r = o.open_receiver(name);
                let t = o.open_sender(name);
                for e in [r.as_ref().err(), t.as_ref().err()].into_iter().flatten() {
                    if e.kind() != ErrorKind::AlreadyExists {
                        return Err(e.to_string().into());
                    }
                }
                println!("rx {} tx {}", u8::from(r.is_ok()), u8::from(t.is_ok()));
                rx = r.ok();
                tx = t.ok();
            }
            ["release"] => {
                rx = None;
                tx = None;
                println!("released");
            }
            _ => return Err(format!("bad command {line:?}").into()),
        }
        line.clear();
    }
    drop((rx, tx));
    Ok(())
}

/// Eight processes race for the receiver and the two sender slots of a
/// fresh channel, round after round: exactly one receiver and exactly two
/// senders each time, never more. (The claim used to be two steps, and a
/// racer between them could take a slot another had just taken.)
fn racing_claims() -> Result<(), Failed> {
    let rounds: usize = std::env::var("SECTIONS_CLAIM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let ns = private_namespace("claims");
    let o = opts(&ns.arg);
    let mut racers: Vec<Peer> = (0..8).map(|_| spawn("claimer", &[&ns.arg])).collect();
    for r in &mut racers {
        r.expect("ready");
    }
    for round in 0..rounds {
        let name = format!("r{round}");
        let channel = o.create(&name)?;
        for r in &mut racers {
            r.send(&format!("go {name}"));
        }
        let (mut receivers, mut senders) = (0, 0);
        for r in &mut racers {
            let line = r.line();
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["rx", a, "tx", b] => {
                    receivers += a.parse::<u32>()?;
                    senders += b.parse::<u32>()?;
                }
                _ => return Err(format!("round {round}: {line}").into()),
            }
        }
        assert_eq!(
            (receivers, senders),
            (1, 2),
            "round {round}: receivers and senders"
        );
        for r in &mut racers {
            r.send("release");
        }
        for r in &mut racers {
            r.expect("released");
        }
        drop(channel);
    }
    for r in racers {
        r.finish();
    }
    println!("{rounds} rounds of eight racers: one receiver and two senders each");
    Ok(())
}

/// A claimer paused between the steps of its claim, written by hand: the
/// slot's peer lock taken through a description of the channel's file,
/// the owner word still saying "free". A new receiver is refused: the lock
/// decides, not the word. Let go of the lock, and the slot is claimable;
/// and a word that names a live-looking owner without the lock behind it
/// does not keep anyone out.
fn claim_by_lock_alone() -> Result<(), Failed> {
    let ns = private_namespace("claim-steps");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    let path = ns.ns.dir().join("c");
    // Lock index 0 is the receiver, 1 + i sender slot i (`peers.rs`), at
    // byte 2^40 + index of the file.
    let paused_claimer = |index: u64| -> Result<std::fs::File, Failed> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        // SAFETY: a zeroed flock is valid; fcntl with an OFD lock command
        // on our own descriptor.
        let rc = unsafe {
            let mut fl: libc::flock = std::mem::zeroed();
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            fl.l_start = ((1u64 << 40) + index) as libc::off_t;
            fl.l_len = 1;
            libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl)
        };
        assert_eq!(rc, 0, "took the lock by hand");
        Ok(file)
    };
    let paused = paused_claimer(0)?;
    let err = o.open_receiver("c").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    drop(paused);
    let rx = o.open_receiver("c")?;
    drop(rx);
    // Both sender slots held by paused claimers: no third sender.
    let (a, b) = (paused_claimer(1)?, paused_claimer(2)?);
    let err = o.open_sender("c").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    drop(a);
    let _tx = o.open_sender("c")?;
    drop(b);
    // An owner word naming pid 1 (alive everywhere) with no lock behind it:
    // the receiver slot is free.
    let raw = sections::Section::options()
        .namespace(&ns.ns)
        .open("c")?
        .map_all(sections::Access::ReadWrite)?;
    raw.atomic_u64(80)?
        .store(1u64 << 32, std::sync::atomic::Ordering::Relaxed);
    let _rx = o.open_receiver("c")?;
    Ok(())
}

/// The receiver's and both sender slots' owner words (version 4 layout).
const OWNER_WORDS: [usize; 3] = [80, 192, 192 + 16];

/// While `run` streams messages between a peer process and this one, a
/// thread here writes hostile values (free, closed, a dead process's token,
/// all ones) into every owner word, as a peer that can write the section
/// could. On Linux the peer locks alone say who is there: neither side is
/// told the other is gone while it runs, and once the peer is killed the
/// survivor is told so, whatever the words say.
fn hostile_owner_words() -> Result<(), Failed> {
    let ns = private_namespace("containers-owner-words");
    let o = opts(&ns.arg);
    let scribbling = |name: &str, run: &mut dyn FnMut() -> Result<(), Failed>| {
        let raw = sections::Section::options()
            .namespace(&ns.ns)
            .open(name)?
            .map_all(sections::Access::ReadWrite)?;
        let (stop, started) = (AtomicBool::new(false), AtomicBool::new(false));
        let values = [0, 1, 0x7fff_fff0u64 << 32, u64::MAX];
        std::thread::scope(|scope| -> Result<(), Failed> {
            let writer = scope.spawn(|| -> sections::Result<u64> {
                let mut writes = 0;
                while !stop.load(Ordering::Relaxed) {
                    for &offset in &OWNER_WORDS {
                        let value = values[(writes % values.len() as u64) as usize];
                        raw.atomic_u64(offset)?.store(value, Ordering::Relaxed);
                        writes += 1;
                    }
                    started.store(true, Ordering::Release);
                    std::thread::sleep(Duration::from_micros(200));
                }
                Ok(writes)
            });
            // Hostile words from the start.
            while !started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let result = run();
            stop.store(true, Ordering::Relaxed);
            writer.join().expect("the scribbler")?;
            result
        })
    };
    // A sender there, the receiver here.
    let _c = o.create("to-here")?;
    let mut rx = o.open_receiver("to-here")?;
    let mut sender = spawn("ns-send", &[&ns.arg, "to-here"]);
    sender.expect("connected");
    scribbling("to-here", &mut || {
        receive_all(&mut rx, MESSAGES)?;
        Ok(())
    })?;
    sender.expect("sent");
    // Killed: the receiver is told, whatever the words say.
    let mut sender = Some(sender);
    scribbling("to-here", &mut || {
        sender.take().expect("the sender").kill();
        let err = rx.recv_timeout(Duration::from_secs(10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
        Ok(())
    })?;
    // The receiver there, a sender here.
    let _c = o.create("to-there")?;
    let mut receiver = spawn("ns-recv", &[&ns.arg, "to-there"]);
    receiver.expect("connected");
    let mut tx = o.open_sender("to-there")?;
    scribbling("to-there", &mut || {
        for seq in 0..MESSAGES {
            tx.send(&message(seq))?;
            pause(seq, 5_003);
        }
        Ok(())
    })?;
    receiver.expect("received");
    let mut receiver = Some(receiver);
    scribbling("to-there", &mut || {
        receiver.take().expect("the receiver").kill();
        // The ring fills, the sender waits, and learns the receiver left.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tx.send_timeout(&message(0), Duration::from_millis(100)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Disconnected => return Ok(()),
                Err(e) if e.kind() == ErrorKind::TimedOut => {}
                Err(e) => return Err(e.into()),
            }
            assert!(Instant::now() < deadline, "the sender never learned");
        }
    })?;
    Ok(())
}

/// Calls with deadlines shorter than one nap (50 ms), made again and again
/// as a polling loop does, still learn that the peer was killed: every
/// sleep is preceded by a look at the peer locks.
fn short_timed_calls_see_a_killed_peer() -> Result<(), Failed> {
    let ns = private_namespace("containers-short-timeouts");
    let o = opts(&ns.arg);
    let short = Duration::from_millis(10);
    let within = Duration::from_secs(5);
    // A sender killed; the receiver polls.
    let _c = o.create("rx-polls")?;
    let mut rx = o.open_receiver("rx-polls")?;
    let mut peer = spawn("ns-hold", &[&ns.arg, "rx-polls", "sender"]);
    peer.expect("connected");
    peer.kill();
    let start = Instant::now();
    loop {
        match rx.recv_timeout(short) {
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            other => return Err(format!("unexpected {:?}", other.map(|m| m.len())).into()),
        }
        assert!(start.elapsed() < within, "a killed sender was never seen");
    }
    // A receiver killed; a sender with a full ring polls.
    let _c = o.create("tx-polls")?;
    let mut peer = spawn("ns-hold", &[&ns.arg, "tx-polls", "receiver"]);
    peer.expect("connected");
    let mut tx = o.open_sender("tx-polls")?;
    while tx.try_send(&[7; 64]).is_ok() {}
    peer.kill();
    let start = Instant::now();
    loop {
        match tx.send_timeout(&[7; 64], short) {
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) if e.kind() == ErrorKind::TimedOut => {}
            other => return Err(format!("unexpected {other:?}").into()),
        }
        assert!(start.elapsed() < within, "a killed receiver was never seen");
    }
    Ok(())
}
