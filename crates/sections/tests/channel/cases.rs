use std::time::Duration;

use libtest_mimic::Failed;
use sections::channel::{ChannelOptions, WaitStrategy};
use sections::{Access, ErrorKind, Namespace, Section};

#[path = "../common/ns.rs"]
mod ns;
#[path = "../common/peer.rs"]
mod peer;
use ns::{private_namespace, PrivateNamespace};
use peer::{spawn, wait_stdin_eof, Peer};

pub fn main() {
    let tests: Vec<(&str, peer::TestFn)> = vec![
        ("spsc_stream_of_random_messages", spsc_stream),
        ("mpsc_three_senders_keep_their_order", mpsc_three_senders),
        ("killed_sender_leaves_every_sent_message", killed_sender),
        ("killed_receiver_disconnects_the_sender", killed_receiver),
        ("back_pressure_timeouts_and_sizes", back_pressure),
        ("corrupted_shared_state_is_an_error", corrupted_state),
        ("random_garbage_never_crashes_or_hangs", random_garbage),
        ("wait_strategies_all_deliver", wait_strategies),
        ("anonymous_channel_handed_to_a_child", anonymous_channel),
        ("messages_over_half_the_ring_wrap", over_half_the_ring),
        (
            "sender_dead_between_commit_and_publish",
            dead_between_commit_and_publish,
        ),
        (
            "closed_peers_show_to_try_calls",
            closed_peers_show_to_try_calls,
        ),
        (
            "anonymous_channel_killed_child_disconnects",
            anonymous_killed_child,
        ),
    ];
    peer::main(tests, run_role);
}

// ---------------------------------------------------------------- helpers

struct Private {
    opts: ChannelOptions,
    arg: String,
    _ns: PrivateNamespace,
}

fn private(capacity: u32, senders: u32) -> Private {
    let ns = private_namespace("chan");
    let mut opts = ChannelOptions::new();
    opts.namespace(&ns.ns).capacity(capacity).senders(senders);
    Private {
        opts,
        arg: ns.arg.clone(),
        _ns: ns,
    }
}

fn opts_from(dir: &str) -> ChannelOptions {
    let mut opts = ChannelOptions::new();
    opts.namespace(&Namespace::at(dir));
    opts
}

/// A message: sender id, sequence number, a pattern derived from both, and
/// a checksum over it all.
fn message(sender: u32, seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; len.max(16)];
    m[0..4].copy_from_slice(&sender.to_le_bytes());
    m[4..12].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[16..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    let sum = m[16..]
        .iter()
        .fold(0u32, |a, &b| a.wrapping_mul(33).wrapping_add(u32::from(b)));
    m[12..16].copy_from_slice(&sum.to_le_bytes());
    m
}

/// A message of exactly `len` bytes (1 or more): `message` cut to length,
/// so that a receiver that knows `seq` and `len` can check every byte.
fn exact(sender: u32, seq: u64, len: usize) -> Vec<u8> {
    let mut m = message(sender, seq, len);
    m.truncate(len);
    m
}

/// Lengths from 1 byte to `max`, mostly short: the same sequence for the
/// same seed in sender and receiver.
fn any_lengths(seed: u64, max: usize) -> impl Iterator<Item = usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    std::iter::repeat_with(move || {
        if rng.u8(..) < 8 {
            rng.usize(1..=max)
        } else {
            rng.usize(1..=256)
        }
    })
}

/// Checks a message and returns (sender, seq).
fn check(m: &[u8]) -> Result<(u32, u64), String> {
    if m.len() < 16 {
        return Err(format!("a {}-byte message", m.len()));
    }
    let sender = u32::from_le_bytes(m[0..4].try_into().unwrap());
    let seq = u64::from_le_bytes(m[4..12].try_into().unwrap());
    let want = message(sender, seq, m.len());
    if want != m {
        return Err(format!("message {seq} of sender {sender} is corrupted"));
    }
    Ok((sender, seq))
}

fn lengths(seed: u64, max: usize) -> impl Iterator<Item = usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    std::iter::repeat_with(move || {
        if rng.u8(..) < 8 {
            rng.usize(16..=max)
        } else {
            rng.usize(16..=256)
        }
    })
}

// ------------------------------------------------------------------ roles

fn run_role(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let opts = opts_from(arg(0));
    match role {
        "send" => {
            // send DIR NAME SENDER COUNT MAXLEN
            let mut tx = opts.open_sender(arg(1))?;
            let id: u32 = arg(2).parse()?;
            let count: u64 = arg(3).parse()?;
            let max: usize = arg(4).parse()?;
            println!("ready");
            for (seq, len) in (0..count).zip(lengths(u64::from(id), max)) {
                tx.send(&message(id, seq, len))?;
            }
            println!("sent");
            wait_stdin_eof();
        }
        "send-any" => {
            // send-any DIR NAME COUNT MAXLEN: lengths from 1 byte
            let mut tx = opts.open_sender(arg(1))?;
            let count: u64 = arg(2).parse()?;
            let max: usize = arg(3).parse()?;
            println!("ready");
            for (seq, len) in (0..count).zip(any_lengths(7, max)) {
                tx.send(&exact(7, seq, len))?;
            }
            println!("sent");
            wait_stdin_eof();
        }
        "send-forever" => {
            let mut tx = opts.open_sender(arg(1))?;
            println!("ready");
            let mut seq = 0;
            loop {
                let m = message(0, seq, 64);
                let mut loan = tx.loan(m.len())?;
                loan.write_at(0, &m)?;
                loan.send();
                seq += 1;
            }
        }
        "receive-forever" => {
            let mut rx = opts.open_receiver(arg(1))?;
            println!("ready");
            let mut buf = Vec::new();
            loop {
                rx.recv_into(&mut buf)?;
            }
        }
        "send-token" => {
            // send-token TOKEN COUNT (0: for ever)
            let mut tx = ChannelOptions::new().sender_from_token(arg(0))?;
            let count: u64 = arg(1).parse()?;
            println!("ready");
            let lengths = lengths(9, 4096);
            for (seq, len) in (0..).zip(lengths) {
                if count != 0 && seq == count {
                    break;
                }
                tx.send(&message(9, seq, len))?;
            }
            println!("sent");
            wait_stdin_eof();
        }
        "receive-token" => {
            // receive-token TOKEN COUNT
            let mut rx = ChannelOptions::new().receiver_from_token(arg(0))?;
            let count: u64 = arg(1).parse()?;
            println!("ready");
            let mut buf = Vec::new();
            for want in 0..count {
                rx.recv_into(&mut buf)?;
                if check(&buf)? != (4, want) {
                    return Err(format!("message {want} out of order").into());
                }
            }
            println!("received");
            wait_stdin_eof();
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

// ------------------------------------------------------------------ tests

fn spsc_stream() -> Result<(), Failed> {
    let count: u64 = 1_000_000;
    let p = private(256 * 1024, 1);
    let _channel = p.opts.create("stream")?;
    let mut rx = p.opts.open_receiver("stream")?;
    let max = 64 * 1024; // a quarter of the ring
    let mut sender = spawn(
        "send-any",
        &[&p.arg, "stream", &count.to_string(), &max.to_string()],
    );
    sender.expect("ready");
    let mut buf = Vec::new();
    // The receiver knows each message's length and bytes from its number:
    // any loss, repeat, reordering or damage shows as a difference.
    for (want, len) in (0..count).zip(any_lengths(7, max)) {
        rx.recv_into(&mut buf)?;
        if buf != exact(7, want, len) {
            let got = if buf.len() >= 16 {
                check(&buf).ok()
            } else {
                None
            };
            return Err(format!(
                "message {want} ({len} bytes): got {} bytes {got:?}",
                buf.len()
            )
            .into());
        }
    }
    sender.expect("sent");
    sender.finish();
    let err = rx.recv_timeout(Duration::from_secs(20)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    Ok(())
}

fn mpsc_three_senders() -> Result<(), Failed> {
    let count: u64 = 100_000;
    let p = private(64 * 1024, 3);
    let _channel = p.opts.create("many")?;
    let mut rx = p.opts.open_receiver("many")?;
    let mut senders: Vec<Peer> = (0..3u32)
        .map(|id| {
            spawn(
                "send",
                &[&p.arg, "many", &id.to_string(), &count.to_string(), "4096"],
            )
        })
        .collect();
    for s in &mut senders {
        s.expect("ready");
    }
    let mut next = [0u64; 3];
    let mut buf = Vec::new();
    for _ in 0..3 * count {
        rx.recv_into(&mut buf)?;
        let (id, seq) = check(&buf)?;
        assert_eq!(seq, next[id as usize], "sender {id} out of order");
        next[id as usize] += 1;
    }
    assert_eq!(next, [count; 3]);
    for mut s in senders {
        s.expect("sent");
        s.finish();
    }
    Ok(())
}

fn killed_sender() -> Result<(), Failed> {
    let p = private(64 * 1024, 1);
    let _channel = p.opts.create("doomed")?;
    let mut rx = p.opts.open_receiver("doomed")?;
    let mut sender = spawn("send-forever", &[&p.arg, "doomed"]);
    sender.expect("ready");
    let mut buf = Vec::new();
    for want in 0..5000 {
        rx.recv_into(&mut buf)?;
        assert_eq!(check(&buf)?.1, want);
    }
    sender.kill();
    // Everything fully sent before the kill arrives, in order, then
    // Disconnected (a message the sender was writing is skipped).
    drain_to_disconnected(&mut rx, 5000)
}

/// Receives messages numbered on from `next` without a gap or a repeat
/// until `Disconnected`.
fn drain_to_disconnected(
    rx: &mut sections::channel::Receiver,
    mut next: u64,
) -> Result<(), Failed> {
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(m) => {
                assert_eq!(check(&m.to_vec())?.1, next, "a gap or a repeat");
                next += 1;
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn killed_receiver() -> Result<(), Failed> {
    let p = private(16 * 1024, 1);
    let _channel = p.opts.create("deaf")?;
    let mut tx = p.opts.open_sender("deaf")?;
    let mut receiver = spawn("receive-forever", &[&p.arg, "deaf"]);
    receiver.expect("ready");
    for i in 0..1000u64 {
        tx.send(&message(0, i, 100))?;
    }
    receiver.kill();
    let start = std::time::Instant::now();
    loop {
        match tx.send_timeout(&message(0, 0, 1000), Duration::from_secs(20)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => return Err(e.into()),
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the sender never noticed"
        );
    }
    Ok(())
}

fn back_pressure() -> Result<(), Failed> {
    let p = private(1024, 1);
    let channel = p.opts.create("small")?;
    let mut tx = p.opts.open_sender("small")?;
    let mut rx = p.opts.open_receiver("small")?;
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    assert_eq!(
        tx.try_send(&[0u8; 2000]).unwrap_err().kind(),
        ErrorKind::InvalidSize,
        "larger than the ring"
    );
    let mut sent = 0;
    while tx.try_send(&[9u8; 100]).is_ok() {
        sent += 1;
    }
    assert!(sent >= 7, "{sent}");
    assert_eq!(
        tx.try_send(&[9u8; 100]).unwrap_err().kind(),
        ErrorKind::Full
    );
    assert_eq!(
        tx.send_timeout(&[9u8; 100], Duration::from_millis(50))
            .unwrap_err()
            .kind(),
        ErrorKind::TimedOut
    );
    assert!(channel.fill() > 0);
    for _ in 0..sent {
        assert_eq!(rx.recv()?.to_vec(), vec![9u8; 100]);
    }
    // A cancelled loan is never received; zero-copy loans round-trip.
    drop(tx.loan(10)?);
    let mut loan = tx.loan(5)?;
    // SAFETY: the loan's bytes are ours until sent.
    unsafe { loan.as_mut_slice() }.copy_from_slice(b"inner");
    loan.send();
    let m = rx.recv()?;
    // SAFETY: the message's bytes are ours until dropped.
    assert_eq!(unsafe { m.as_slice() }, b"inner");
    drop(m);
    // Wrap-around many times with odd sizes.
    for i in 0..2000u64 {
        let m = message(1, i, 16 + (i as usize * 7) % 300);
        tx.send(&m)?;
        assert_eq!(rx.recv()?.to_vec(), m);
    }
    assert_eq!(channel.fill(), 0);
    drop(tx);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    Ok(())
}

/// Writes `bytes` at `offset` of the channel's section, as a hostile peer.
fn scribble(p: &Private, name: &str, offset: usize, bytes: &[u8]) -> Result<(), Failed> {
    let ns = Namespace::at(&p.arg);
    let s = Section::options().namespace(&ns).open(name)?;
    s.map_all(Access::ReadWrite)?.write_at(offset, bytes)?;
    Ok(())
}

/// The key the channel's position words are stored with (a hostile peer
/// can read it as easily).
fn key(p: &Private, name: &str) -> Result<u64, Failed> {
    let ns = Namespace::at(&p.arg);
    let s = Section::options().namespace(&ns).open(name)?;
    let mut word = [0u8; 8];
    s.map_all(Access::Read)?.read_at(24, &mut word)?;
    Ok(u64::from_le_bytes(word))
}

fn corrupted_state() -> Result<(), Failed> {
    let p = private(4096, 1);
    let _channel = p.opts.create("evil")?;
    let mut tx = p.opts.open_sender("evil")?;
    let mut rx = p.opts.open_receiver("evil")?;
    tx.send(b"fine")?;
    // A reserve position far ahead of the read position.
    scribble(&p, "evil", 128, &u64::MAX.to_le_bytes())?;
    // The message committed before is still delivered; then the damage shows.
    assert_eq!(rx.try_recv()?.to_vec(), b"fine");
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Corrupted);
    assert_eq!(tx.try_send(b"x").unwrap_err().kind(), ErrorKind::Corrupted);
    // Put it back, then commit a record at the read position (32) that lies
    // about its length.
    scribble(&p, "evil", 128, &64u64.to_le_bytes())?;
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(&(1u64 << 31).to_le_bytes());
    header[8..].copy_from_slice(&((32u64 | 1 << 62) ^ key(&p, "evil")?).to_le_bytes());
    scribble(&p, "evil", 512 + 32, &header)?;
    let err = rx.try_recv().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupted);
    assert!(err.to_string().contains("claims"), "{err}");
    // Not a channel at all.
    let ns = Namespace::at(&p.arg);
    drop(
        Section::options()
            .size(8192)
            .namespace(&ns)
            .create("plain")?,
    );
    let _keep = Section::options()
        .size(8192)
        .namespace(&ns)
        .create("plain2")?;
    assert_eq!(
        p.opts.open_receiver("plain2").unwrap_err().kind(),
        ErrorKind::WrongKind
    );
    Ok(())
}

/// Property: whatever a hostile peer writes over the channel's positions
/// and ring, the receiver and sender only ever see messages, Empty, Full or
/// Corrupted: no panic, no hang, no out-of-bounds access (proptest, with
/// shrinking; `PROPTEST_CASES` sets how many cases, 256 by default).
fn random_garbage() -> Result<(), Failed> {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    // (offset region, bytes): the read word, the reserve word, the first
    // record header, or any record header of the ring.
    let scribbles = proptest::collection::vec(
        (
            prop_oneof![
                3 => Just(512usize),
                1 => Just(64usize),
                1 => Just(128usize),
                2 => (0usize..64).prop_map(|i| 512 + 16 * i),
            ],
            proptest::array::uniform16(any::<u8>()),
            // Mostly a plausible record header instead of raw bytes: any
            // length, a flag (none, padding, cancelled), sender 0 or 1, a
            // position (often the one the receiver reads next).
            proptest::option::weighted(
                0.75,
                (
                    any::<u32>(),
                    prop_oneof![Just(0u64), Just(1u64 << 32), Just(1u64 << 33)],
                    prop_oneof![3 => Just(0u64), 1 => Just(1u64)],
                    prop_oneof![3 => Just(0u64), 1 => 0u64..2048],
                    // committed, reserved, or neither
                    prop_oneof![2 => Just(1u64 << 62), 1 => Just(1u64 << 63), 1 => Just(0u64)],
                ),
            ),
        ),
        1..6,
    );
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    // A fixed seed: the same cases on every run, here and in CI.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    runner
        .run(&(1usize..6, scribbles), |(prefill, scribbles)| {
            let p = private(1024, 1);
            let _channel = p.opts.create("fuzz").unwrap();
            let mut tx = p.opts.open_sender("fuzz").unwrap();
            let mut rx = p.opts.open_receiver("fuzz").unwrap();
            let key = key(&p, "fuzz").unwrap();
            for i in 0..prefill {
                let _ = tx.try_send(&message(0, i as u64, 16 + 37 * i));
            }
            for (offset, mut junk, header) in scribbles {
                if let Some((len, flag, slot, pos, state)) = header {
                    let len_word = u64::from(len) | flag | (slot << 40);
                    junk[..8].copy_from_slice(&len_word.to_le_bytes());
                    let pos_word = ((pos & !15) | state) ^ key;
                    junk[8..16].copy_from_slice(&pos_word.to_le_bytes());
                }
                scribble(&p, "fuzz", offset, &junk).unwrap();
            }
            for _ in 0..10 {
                match rx.try_recv() {
                    Ok(m) => {
                        // A message lies inside the ring, and reads back.
                        prop_assert!(m.len() <= 1024 - 16, "a {}-byte message", m.len());
                        let mut buf = vec![0u8; m.len()];
                        prop_assert!(m.copy_to(&mut buf).is_ok());
                    }
                    Err(e) => prop_assert!(
                        matches!(e.kind(), ErrorKind::Empty | ErrorKind::Corrupted),
                        "{e}"
                    ),
                }
                match tx.try_send(b"probe-message!!") {
                    Ok(()) => {}
                    Err(e) => prop_assert!(
                        matches!(e.kind(), ErrorKind::Full | ErrorKind::Corrupted),
                        "{e}"
                    ),
                }
            }
            Ok(())
        })
        .map_err(|e| Failed::from(e.to_string()))
}

fn wait_strategies() -> Result<(), Failed> {
    for strategy in [
        WaitStrategy::Spin,
        WaitStrategy::SpinThenPark,
        WaitStrategy::Park,
    ] {
        let mut p = private(8192, 1);
        p.opts.wait(strategy);
        let _channel = p.opts.create("ways")?;
        let mut rx = p.opts.open_receiver("ways")?;
        let mut sender = spawn("send", &[&p.arg, "ways", "3", "2000", "2000"]);
        sender.expect("ready");
        let mut buf = Vec::new();
        for want in 0..2000 {
            rx.recv_into(&mut buf)?;
            assert_eq!(check(&buf)?, (3, want), "{strategy:?}");
        }
        sender.expect("sent");
        sender.finish();
    }
    Ok(())
}

/// An anonymous channel (no name anywhere) handed to a child process in
/// both directions: every message arrives, in order, intact.
fn anonymous_channel() -> Result<(), Failed> {
    let p = private(64 * 1024, 1);
    let channel = p.opts.anonymous()?;
    #[cfg(unix)]
    assert_eq!(
        std::fs::read_dir(&p.arg)?.count(),
        0,
        "an anonymous channel leaves no name behind"
    );
    assert!(matches!(
        ChannelOptions::new().sender_from_token("channel:nonsense").map(drop),
        Err(e) if e.kind() == ErrorKind::InvalidName
    ));
    // The child sends.
    let inherit = channel.inheritable()?;
    let mut rx = channel.receiver()?;
    let mut child = spawn("send-token", &[inherit.token(), "20000"]);
    drop(inherit);
    child.expect("ready");
    let mut buf = Vec::new();
    for want in 0..20_000 {
        rx.recv_into(&mut buf)?;
        assert_eq!(check(&buf)?, (9, want));
    }
    child.expect("sent");
    child.finish();
    // The child receives.
    let channel = p.opts.anonymous()?;
    let inherit = channel.inheritable()?;
    let mut tx = channel.sender()?;
    let mut child = spawn("receive-token", &[inherit.token(), "20000"]);
    drop(inherit);
    child.expect("ready");
    for (seq, len) in (0..20_000).zip(lengths(4, 4096)) {
        tx.send(&message(4, seq, len))?;
    }
    child.expect("received");
    child.finish();
    Ok(())
}

/// `kill -9` of the child sending on an anonymous channel: the parent
/// receives what was fully sent, then `Disconnected`.
fn anonymous_killed_child() -> Result<(), Failed> {
    let p = private(64 * 1024, 1);
    let channel = p.opts.anonymous()?;
    let inherit = channel.inheritable()?;
    let mut rx = channel.receiver()?;
    let mut child = spawn("send-token", &[inherit.token(), "0"]);
    drop(inherit);
    child.expect("ready");
    let mut buf = Vec::new();
    for want in 0..2000 {
        rx.recv_into(&mut buf)?;
        assert_eq!(check(&buf)?.1, want);
    }
    child.kill();
    drain_to_disconnected(&mut rx, 2000)
}

/// Messages of more than half the ring need padding before them at most
/// positions; the padding is published on its own so they always get in
/// (before, a sender could wait for room for ever).
fn over_half_the_ring() -> Result<(), Failed> {
    for senders in [1, 2] {
        let p = private(4096, senders);
        let _channel = p.opts.create("wide")?;
        let mut tx = p.opts.open_sender("wide")?;
        let mut rx = p.opts.open_receiver("wide")?;
        for (seq, len) in (0..200).zip([3000usize, 4080, 2100, 17, 4000].into_iter().cycle()) {
            let m = message(1, seq, len);
            if let Err(e) = tx.try_send(&m) {
                // Full until the receiver has passed the padding, which
                // a look (finding nothing else) does.
                assert_eq!(e.kind(), ErrorKind::Full);
                assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
                tx.try_send(&m)?;
            }
            assert_eq!(check(&rx.try_recv()?.to_vec())?, (1, seq));
        }
    }
    Ok(())
}

/// A single sender publishes `reserve` after committing; one killed in
/// between leaves a committed record behind `reserve`. The receiver takes
/// it, and the next sender publishes it instead of calling the ring
/// corrupted. (The dead sender's commit is written here by hand.)
fn dead_between_commit_and_publish() -> Result<(), Failed> {
    let p = private(4096, 1);
    let _channel = p.opts.create("torn")?;
    let mut rx = p.opts.open_receiver("torn")?;
    let mut tx = p.opts.open_sender("torn")?;
    tx.send(b"first")?;
    assert_eq!(rx.try_recv()?.to_vec(), b"first");
    drop(tx);
    // Record at position 32: length 5, sender 0, generation 1, committed.
    let mut record = [0u8; 32];
    record[..8].copy_from_slice(&(5u64 | 1 << 48).to_le_bytes());
    record[8..16].copy_from_slice(&((32u64 | 1 << 62) ^ key(&p, "torn")?).to_le_bytes());
    record[16..21].copy_from_slice(b"hello");
    scribble(&p, "torn", 512 + 32, &record)?;
    assert_eq!(rx.try_recv()?.to_vec(), b"hello");
    let mut tx = p.opts.open_sender("torn")?;
    tx.try_send(b"next")?;
    assert_eq!(rx.try_recv()?.to_vec(), b"next");
    Ok(())
}

/// A peer that closed shows at once to the `try_` calls: the receiver gets
/// what was sent, then `Disconnected`; a sender whose receiver closed gets
/// `Disconnected` instead of `Full`.
fn closed_peers_show_to_try_calls() -> Result<(), Failed> {
    let p = private(4096, 1);
    let _channel = p.opts.create("closing")?;
    let mut rx = p.opts.open_receiver("closing")?;
    let mut tx = p.opts.open_sender("closing")?;
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    tx.try_send(b"last words")?;
    drop(tx);
    assert_eq!(rx.try_recv()?.to_vec(), b"last words");
    assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Disconnected);
    let mut tx = p.opts.open_sender("closing")?;
    let big = [0u8; 100];
    while tx.try_send(&big).is_ok() {}
    assert_eq!(tx.try_send(&big).unwrap_err().kind(), ErrorKind::Full);
    drop(rx);
    assert_eq!(
        tx.try_send(&big).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    Ok(())
}
