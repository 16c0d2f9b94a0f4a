//! A process forked from one with channel endpoints (as Python's
//! multiprocessing forks) holds none of their slots: its copies refuse to
//! send or receive, change nothing shared when dropped (loans and messages
//! included), and never keep a slot alive after its owner dies, even when
//! the fork races with claims and releases on other threads or the process
//! has no descriptor to spare.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;
use sections::channel::ChannelOptions;
use sections::{ErrorKind, ObjectState};

use crate::containers::opts;
use crate::ns::private_namespace;
use crate::peer::{spawn, wait_stdin_eof, TestFn};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "a_forked_child_does_not_keep_its_parents_slot_alive",
            forked_child,
        ),
        (
            "a_forked_childs_loan_and_message_change_nothing",
            forked_copies,
        ),
        (
            "forks_racing_claims_on_other_threads_leave_no_slot_held",
            racing_forks,
        ),
        (
            "a_claim_with_one_descriptor_left_never_outlives_its_owner",
            one_descriptor_left,
        ),
        (
            "past_4096_endpoints_a_claim_is_an_error_and_frees_nothing",
            endpoint_limit,
        ),
    ]
}

type RoleResult = Result<(), Box<dyn std::error::Error>>;

/// A pipe: (read end, write end).
fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    fds
}

/// Writes one byte (async-signal-safe: fit for a forked child).
fn put(fd: i32, byte: u8) {
    // SAFETY: writing one byte from a live buffer to a descriptor we own.
    unsafe { libc::write(fd, [byte].as_ptr().cast(), 1) };
}

/// Reads one byte; `None` at the end of the pipe.
fn take(fd: i32) -> Option<u8> {
    let mut b = [0u8];
    // SAFETY: reading one byte into a live buffer from a descriptor we own.
    (unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) } == 1).then_some(b[0])
}

/// Forks a child that runs `child` (async-signal-safe calls only if the
/// process has other threads), then sleeps until killed; its pid.
fn fork_then_sleep(child: impl FnOnce()) -> i32 {
    // SAFETY: the child runs `child` (see above) and then only sleeps and
    // leaves without running destructors.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child();
        // SAFETY: async-signal-safe calls.
        unsafe {
            libc::sleep(60);
            libc::_exit(0);
        }
    }
    assert!(pid > 0, "fork failed");
    pid
}

pub fn role(role: &str, args: &[String]) -> Option<RoleResult> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let run = |f: &dyn Fn() -> RoleResult| Some(f());
    match role {
        "fork-sender" => run(&|| {
            let mut tx = Some(opts(arg(0)).open_sender(arg(1))?);
            let drops = arg(2) == "drop";
            let answer = pipe();
            let child = fork_then_sleep(|| {
                // The child's copy of the sender: sending is refused, and
                // dropping it (or keeping it) leaves the parent's slot as
                // it was. (This process has one thread: the child may run
                // anything.)
                let refused = tx
                    .as_mut()
                    .expect("the sender")
                    .send(b"from the child")
                    .is_err_and(|e| e.kind() == ErrorKind::Disconnected);
                if drops {
                    drop(tx.take());
                } else {
                    std::mem::forget(tx.take());
                }
                put(answer[1], u8::from(refused));
            });
            println!("forked {child} refused {}", take(answer[0]).unwrap_or(9));
            wait_stdin_eof();
            Ok(())
        }),
        "fork-copies" => run(&|| forked_copies_role(arg(0))),
        "fork-race" => run(&|| racing_forks_role(arg(0).parse()?)),
        "one-fd-left" => run(&|| one_descriptor_left_role(arg(0), arg(1))),
        "endpoint-limit" => run(&endpoint_limit_role),
        _ => None,
    }
}

/// A process forked while it has a sender (as Python's multiprocessing
/// forks) does not keep the sender's slot alive: its copy refuses to send
/// and its drop changes nothing; killed, the parent is seen gone while the
/// child lives on.
fn forked_child() -> Result<(), Failed> {
    // The child that keeps its copy (as a forked worker that never touches
    // it does) and the child that drops it.
    for mode in ["keep", "drop"] {
        forked_child_that(mode)?;
    }
    Ok(())
}

fn forked_child_that(mode: &str) -> Result<(), Failed> {
    let ns = private_namespace("fork");
    let o = opts(&ns.arg);
    let _c = o.create("c")?;
    let mut rx = o.open_receiver("c")?;
    let mut parent = spawn("fork-sender", &[&ns.arg, "c", mode]);
    let line = parent.line();
    let words: Vec<&str> = line.split_whitespace().collect();
    let ["forked", child, "refused", refused] = words.as_slice() else {
        return Err(format!("bad line {line}").into());
    };
    let child: i32 = child.parse()?;
    assert_eq!(*refused, "1", "the child's copy sent, or failed otherwise");
    // Nothing came from the child, and its drop left the slot connected.
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    match sections::entry(&ns.ns, "c")?.object {
        Some(ObjectState::Channel { senders: 1, .. }) => {}
        other => panic!("listed as {other:?}"),
    }
    parent.kill();
    let err = rx.recv_timeout(Duration::from_secs(10)).unwrap_err();
    // SAFETY: asking whether our grandchild still runs, then ending it.
    let child_alive = unsafe { libc::kill(child, 0) } == 0;
    // SAFETY: ending our grandchild.
    unsafe { libc::kill(child, libc::SIGKILL) };
    assert!(child_alive, "the forked child was gone already");
    assert_eq!(
        err.kind(),
        ErrorKind::Disconnected,
        "child that {mode}s: {err}"
    );
    Ok(())
}

/// In one process: a message held in place while a child is forked, which
/// drops its copy; then a loan taken before a fork, which the child drops
/// (and so would cancel) and the parent sends. Prints what each saw.
fn forked_copies_role(dir: &str) -> RoleResult {
    let mut o = ChannelOptions::new();
    o.namespace(&sections::Namespace::at(dir))
        .capacity(64)
        .senders(2);
    let _c = o.create("copies")?;
    let mut tx = o.open_sender("copies")?;
    let mut rx = o.open_receiver("copies")?;
    // A message that fills the ring, held in place.
    tx.send(&[b'A'; 48])?;
    let mut message = Some(rx.recv()?);
    let done = pipe();
    let child = fork_then_sleep(|| {
        drop(message.take());
        put(done[1], 1);
    });
    let message = message.expect("the parent's message");
    take(done[0]);
    // The child's drop freed nothing: the ring is still full, and the
    // message still reads as sent.
    let full = tx.try_send(&[b'B'; 48]).map_err(|e| e.kind());
    let mut held = vec![0; 48];
    message.copy_to(&mut held)?;
    println!(
        "message: try_send {full:?}, intact {}",
        held.iter().all(|&b| b == b'A')
    );
    drop(message);
    // SAFETY: ending our child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    // A loan across a fork: the child's drop cancels nothing.
    let mut loan = Some(tx.loan(5)?);
    let child = fork_then_sleep(|| {
        drop(loan.take());
        put(done[1], 1);
    });
    take(done[0]);
    let mut loan = loan.expect("the parent's loan");
    loan.write_at(0, b"hello")?;
    loan.send();
    let got = rx
        .recv_timeout(Duration::from_secs(5))
        .map(|m| m.to_vec())
        .map_err(|e| e.kind());
    println!("loan: {:?}", got.map(String::from_utf8));
    // SAFETY: ending our child.
    unsafe { libc::kill(child, libc::SIGKILL) };
    Ok(())
}

fn forked_copies() -> Result<(), Failed> {
    let ns = private_namespace("fork-copies");
    let mut p = spawn("fork-copies", &[&ns.arg]);
    p.expect("message: try_send Err(Full), intact true");
    p.expect("loan: Ok(Ok(\"hello\"))");
    p.finish();
    Ok(())
}

/// One thread opens and drops a sender of an anonymous channel as fast as
/// it can while the main thread forks, `rounds` times. Each child tells it
/// has started (its fork handlers have run) and then waits; with no sender
/// left in the parent, a new one must connect every time. Prints how many
/// rounds refused it.
fn racing_forks_role(rounds: u32) -> RoleResult {
    let mut o = ChannelOptions::new();
    o.capacity(4096);
    let ch = Arc::new(o.anonymous()?);
    let _rx = ch.receiver()?;
    let mut refused = 0;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let (ch, stop) = (ch.clone(), stop.clone());
            std::thread::spawn(move || -> sections::Result<u64> {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match ch.sender() {
                        Ok(tx) => drop(tx),
                        // For the moment between a fork and the child's
                        // fork handler, the child's copy of a lock
                        // descriptor still holds the slot.
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    n += 1;
                }
                Ok(n)
            })
        };
        // A different moment of the churn each round.
        std::thread::sleep(Duration::from_micros(u64::from(round % 50) * 7));
        let (started, release) = (pipe(), pipe());
        // Only async-signal-safe calls in the child: other threads run.
        let child = fork_then_sleep(|| {
            // SAFETY: closing the child's copy of the write end, so that
            // the parent's close ends the read below.
            unsafe { libc::close(release[1]) };
            put(started[1], 1);
            take(release[0]);
            // SAFETY: leaving at once.
            unsafe { libc::_exit(0) };
        });
        take(started[0]);
        stop.store(true, Ordering::Relaxed);
        churn.join().expect("the churning thread")?;
        if ch.sender().is_err() {
            refused += 1;
        }
        // SAFETY: closing our pipes; reaping our child.
        unsafe {
            for fd in [started[0], started[1], release[0], release[1]] {
                libc::close(fd);
            }
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
    }
    println!("refused {refused} of {rounds}");
    Ok(())
}

fn racing_forks() -> Result<(), Failed> {
    let mut p = spawn("fork-race", &["300"]);
    p.expect("refused 0 of 300");
    p.finish();
    Ok(())
}

/// Creates the channel `name`, fills the descriptor table but for one,
/// then tries for the receiver and forks a child that sleeps: prints
/// "refused" (and, on a line from the test, frees one descriptor and tries
/// again) or "claimed CHILD".
fn one_descriptor_left_role(dir: &str, name: &str) -> RoleResult {
    let ch = opts(dir).create(name)?;
    println!("created");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    // A small table, quickly filled.
    // SAFETY: reading and lowering our own limit in a valid struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_cur.min(256);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let mut spare = Vec::new();
    loop {
        // SAFETY: duplicating standard input; the copies are closed below
        // or at exit.
        let fd = unsafe { libc::dup(0) };
        if fd < 0 {
            break;
        }
        spare.push(fd);
    }
    let free_one = |spare: &mut Vec<i32>| {
        // SAFETY: closing a copy we made.
        unsafe { libc::close(spare.pop().expect("a copy to close")) };
    };
    free_one(&mut spare);
    let rx = match ch.receiver() {
        Ok(rx) => rx,
        Err(e) => {
            println!("refused");
            eprintln!("one descriptor left: {e}");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            free_one(&mut spare);
            ch.receiver()?
        }
    };
    let child = fork_then_sleep(|| {});
    println!("claimed {child}");
    wait_stdin_eof();
    drop(rx);
    Ok(())
}

fn one_descriptor_left() -> Result<(), Failed> {
    let ns = private_namespace("fork-fds");
    let o = opts(&ns.arg);
    let mut p = spawn("one-fd-left", &[&ns.arg, "c"]);
    p.expect("created");
    // A sender here holds the name when the owner dies.
    let _tx = o.open_sender("c")?;
    p.send("go");
    let mut line = p.line();
    if line == "refused" {
        p.send("more");
        line = p.line();
    }
    let child: i32 = line
        .strip_prefix("claimed ")
        .ok_or_else(|| format!("bad line {line}"))?
        .parse()?;
    // The owner dies; its forked child lives on and must not hold the slot.
    p.kill();
    let deadline = Instant::now() + Duration::from_secs(1);
    let claimed = loop {
        match o.open_receiver("c") {
            Ok(_) => break true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break false,
        }
    };
    // SAFETY: asking whether our grandchild lives, then ending it.
    let child_alive = unsafe { libc::kill(child, 0) } == 0;
    // SAFETY: ending our grandchild.
    unsafe { libc::kill(child, libc::SIGKILL) };
    assert!(child_alive, "the forked child was gone already");
    assert!(claimed, "the dead owner's forked child kept its slot");
    Ok(())
}

/// Opens senders of anonymous channels until refused (with room for far
/// more descriptors), then lets one go: every other still holds its slot,
/// and the one let go can be taken again. Prints what it saw.
fn endpoint_limit_role() -> RoleResult {
    // SAFETY: reading and raising our own limit in a valid struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let mut o = ChannelOptions::new();
    o.capacity(4096).senders(16);
    let mut channels = Vec::new();
    let mut senders = Vec::new();
    let refusal = loop {
        if senders.len() % 16 == 0 {
            channels.push(o.anonymous()?);
        }
        match channels.last().expect("a channel").sender() {
            Ok(tx) => senders.push(tx),
            Err(e) => break e,
        }
        if senders.len() > 100_000 {
            return Err("no limit".into());
        }
    };
    println!("open {} then {:?}", senders.len(), refusal.kind());
    eprintln!("refused: {refusal}");
    // One let go (the last sender of the last full channel): every other
    // slot is still held, so the room made is that slot's alone.
    drop(senders.pop());
    let full = &channels[..channels.len() - 2];
    let held = full
        .iter()
        .filter(|c| {
            c.sender()
                .is_err_and(|e| e.kind() == ErrorKind::AlreadyExists)
        })
        .count();
    println!("held {} of {}", held, full.len());
    let again = channels[channels.len() - 2].sender().map(drop);
    println!("after one let go {:?}", again.map_err(|e| e.kind()));
    Ok(())
}

fn endpoint_limit() -> Result<(), Failed> {
    let mut p = spawn("endpoint-limit", &[]);
    p.expect("open 4096 then Os");
    p.expect("held 255 of 255");
    p.expect("after one let go Ok(())");
    p.finish();
    Ok(())
}
