//! Suite `ipc`: messages between two processes. Round trips (a request of
//! the given size, an 8-byte reply) through a raw atomic ping-pong on one
//! shared cache line (the physical floor), the channel (busy-spin and
//! spin-then-park), a pipe and a Unix socket; streaming throughput; and a
//! 4 MiB loaned (zero-copy) message against an 8-byte one.
//!
//! The peer is this same program, started again with `SECT_BENCH_PEER` set.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use indicatif::ProgressBar;
use sections::channel::{ChannelOptions, WaitStrategy};
use sections::{Access, Namespace, Section};

use super::cases::CaseId;
use super::latency::{
    fail, round_trips, rtt_result, spawn, Failure, ROUND_TRIP, SUITE, UNDER_LOAD,
};
use super::load::{Burners, Meter};
use super::runner::{CaseResult, Metric, Stats};
use super::Config;
const STOP: u64 = u64::MAX;
/// In a request's 8-byte header: do not reply (streaming).
const NOREPLY: u64 = 1 << 63;
const REPLY: usize = 8;
/// Ring size: room for a 4 MiB request and its reply.
const RING: u32 = 16 << 20;

fn channel_opts(dir: &str, wait: WaitStrategy) -> ChannelOptions {
    let mut o = ChannelOptions::new();
    o.namespace(&Namespace::at(dir)).capacity(RING).wait(wait);
    o
}

/// The peer side; never returns.
pub fn peer(role: &str) -> ! {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let result = match role {
        "floor" => peer_floor(&arg),
        #[cfg(feature = "peers")]
        "iceoryx2" => super::iceoryx::peer(&arg),
        "image" => super::image::peer(&arg),
        "async-channel" | "async-channel-spin" | "async-uds" => super::aio::peer(role, &arg),
        "channel-spin" => peer_channel(&arg, WaitStrategy::Spin),
        "channel-park" => peer_channel(&arg, WaitStrategy::SpinThenPark),
        "pipe" => {
            let (input, output) = (std::io::stdin().lock(), std::io::stdout().lock());
            peer_stream(input, output)
        }
        "uds" => arg.parse::<i32>().map_err(fail).and_then(|fd| {
            // SAFETY: the parent passed this inherited descriptor for us.
            let s = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
            let r = s.try_clone().map_err(fail)?;
            peer_stream(r, s)
        }),
        other => Err(fail(format!("unknown peer {other}"))),
    };
    if let Err(e) = result {
        eprintln!("sect bench peer: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn peer_floor(dir: &str) -> Result<(), Failure> {
    let s = Section::options()
        .namespace(&Namespace::at(dir))
        .open("floor")?;
    let v = s.map_all(Access::ReadWrite)?;
    let word = v.atomic_u64(0)?;
    let mut seen = 0;
    loop {
        let now = word.load(Ordering::Acquire);
        if now == STOP {
            return Ok(());
        }
        if now != seen && now % 2 == 1 {
            seen = now + 1;
            word.store(seen, Ordering::Release);
        }
        std::hint::spin_loop();
    }
}

fn peer_channel(dir: &str, wait: WaitStrategy) -> Result<(), Failure> {
    let o = channel_opts(dir, wait);
    let mut rx = o.open_receiver("ping")?;
    let mut tx = o.open_sender("pong")?;
    let mut sink = vec![0u8; 64 << 10];
    loop {
        let m = rx.recv()?;
        let len = m.len();
        let mut head = [0u8; 8];
        if len >= 8 {
            m.read_at(0, &mut head)?;
        }
        let streaming = u64::from_le_bytes(head) & NOREPLY != 0;
        if streaming && len <= sink.len() {
            // Streamed messages are read in full, as a pipe reader must.
            m.copy_to(&mut sink[..len])?;
        }
        if len == 0 {
            return Ok(());
        }
        if streaming {
            continue;
        }
        // A zero-copy server answers while the request is still in place,
        // then releases it.
        let mut reply = tx.loan(REPLY)?;
        reply.write_at(0, &(len as u64).to_le_bytes())?;
        reply.send();
        drop(m);
    }
}

/// Length-prefixed requests on a byte stream; 8-byte replies.
fn peer_stream(mut input: impl Read, mut output: impl Write) -> Result<(), Failure> {
    let mut buf = vec![0u8; 4 << 20];
    let mut len = [0u8; 8];
    loop {
        if input.read_exact(&mut len).is_err() {
            return Ok(());
        }
        let header = u64::from_le_bytes(len);
        let n = (header & !NOREPLY) as usize;
        if n == 0 {
            return Ok(());
        }
        if n > buf.len() {
            buf.resize(n, 0);
        }
        input.read_exact(&mut buf[..n]).map_err(fail)?;
        if header & NOREPLY == 0 {
            output.write_all(&len).map_err(fail)?;
            output.flush().map_err(fail)?;
        }
    }
}

/// What streaming measures: `(size, count)` pairs, and the ids of the
/// 64 KiB stream for claims.
struct Streams<'a> {
    group: &'static str,
    sizes: &'a [(usize, usize)],
    id: fn(&str, usize) -> Option<CaseId>,
}

/// Streams messages of each size (only the last one answered), `runs`
/// times each, as throughput and time per message.
fn stream(
    cfg: &Config,
    progress: &ProgressBar,
    kind: &str,
    what: &Streams<'_>,
    send: &mut dyn FnMut(usize, bool) -> Result<(), Failure>,
) -> Result<Vec<CaseResult>, Failure> {
    let mut out = Vec::new();
    for &(size, count) in what.sizes {
        let mut gbps = Vec::new();
        let mut per = Vec::new();
        let meter = Meter::start();
        for _ in 0..cfg.runs.max(1) {
            let start = Instant::now();
            for i in 0..count {
                send(size, i + 1 == count)?;
            }
            let secs = start.elapsed().as_secs_f64();
            gbps.push((size * count) as f64 / secs / 1e9);
            per.push(secs * 1e9 / count as f64);
        }
        let load = meter.stop();
        let result = |case: String, id, metric, values: &[f64]| CaseResult {
            suite: SUITE,
            group: what.group,
            case,
            id,
            metric,
            stats: Stats::of(values),
            cost: None,
            load,
            tail: None,
        };
        out.push(result(
            format!("{kind} {} stream", label(size)),
            (what.id)(kind, size),
            Metric::Throughput,
            &gbps,
        ));
        out.push(result(
            format!("{kind} {} per message", label(size)),
            None,
            Metric::Latency,
            &per,
        ));
        progress.inc(1);
    }
    Ok(out)
}

fn label(size: usize) -> String {
    crate::units::human(size as u64).replace(".0 ", " ")
}

/// Round trips of each `(size, count)` and then, if `streams` says so,
/// streaming, through a pair of channels to a peer that waits with
/// `wait`; `id` names the round trips claims use.
#[allow(clippy::too_many_arguments)]
fn channel_cases(
    cfg: &Config,
    progress: &ProgressBar,
    dir: &str,
    (role, wait, name): (&str, WaitStrategy, &str),
    group: &'static str,
    sizes: &[(usize, usize)],
    id: fn(&str, usize) -> Option<CaseId>,
    streams: Option<&Streams<'_>>,
) -> Result<Vec<CaseResult>, Failure> {
    progress.set_message(format!("{SUITE}: {name} ({group})"));
    let o = channel_opts(dir, wait);
    let _ping = o.create("ping")?;
    let _pong = o.create("pong")?;
    let mut tx = o.open_sender("ping")?;
    let mut rx = o.open_receiver("pong")?;
    let mut child = spawn(role, dir, |_| {})?;
    let mut results = Vec::new();
    for &(size, n) in sizes {
        // Zero-copy: the request is loaned and only its first bytes are
        // written; the peer does not read it either.
        let r = round_trips(n, cfg.runs, || {
            let mut loan = tx.loan(size)?;
            loan.write_at(0, &(size as u64).to_le_bytes())?;
            loan.send();
            drop(rx.recv()?);
            Ok(())
        })?;
        let case = format!("{name} {}", label(size));
        results.push(rtt_result(group, &case, id(role, size), &r));
        progress.inc(1);
    }
    if let Some(streams) = streams {
        let body = vec![7u8; 64 << 10];
        results.extend(stream(
            cfg,
            progress,
            "channel",
            streams,
            &mut |size, last| {
                // Streamed messages are written in full, as a pipe writer
                // must.
                let mut loan = tx.loan(size)?;
                let flag = if last { 0 } else { NOREPLY };
                loan.write_at(0, &body[..size])?;
                loan.write_at(0, &(size as u64 | flag).to_le_bytes())?;
                loan.send();
                if last {
                    drop(rx.recv()?);
                }
                Ok(())
            },
        )?);
    }
    tx.send(&[])?;
    child.wait().map_err(fail)?;
    Ok(results)
}

/// The same through a pipe (`kind` "pipe") or a Unix socket ("uds"), with
/// length-prefixed requests.
#[allow(clippy::too_many_arguments)]
fn stream_cases(
    cfg: &Config,
    progress: &ProgressBar,
    dir: &str,
    kind: &str,
    group: &'static str,
    sizes: &[(usize, usize)],
    id: fn(&str, usize) -> Option<CaseId>,
    streams: Option<&Streams<'_>>,
) -> Result<Vec<CaseResult>, Failure> {
    progress.set_message(format!("{SUITE}: {kind} ({group})"));
    let (mut child, mut to, mut from): (Child, Box<dyn Write>, Box<dyn Read>) = if kind == "pipe" {
        let mut child = spawn("pipe", dir, |c| {
            c.stdin(Stdio::piped()).stdout(Stdio::piped());
        })?;
        let to = child.stdin.take().ok_or_else(|| fail("no stdin"))?;
        let from = child.stdout.take().ok_or_else(|| fail("no stdout"))?;
        (child, Box::new(to), Box::new(from))
    } else {
        let (mine, theirs) = UnixStream::pair().map_err(fail)?;
        let fd = theirs.as_raw_fd();
        // SAFETY: clearing close-on-exec on our own descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let child = spawn("uds", &fd.to_string(), |_| {})?;
        drop(theirs);
        let from = mine.try_clone().map_err(fail)?;
        (child, Box::new(mine), Box::new(from))
    };
    let payload = vec![7u8; 4 << 20];
    let mut reply = [0u8; REPLY];
    let mut results = Vec::new();
    for &(size, n) in sizes {
        let n = if size >= 4 << 20 { n.min(100) } else { n };
        let r = round_trips(n, cfg.runs, || {
            to.write_all(&(size as u64).to_le_bytes()).map_err(fail)?;
            to.write_all(&payload[..size]).map_err(fail)?;
            to.flush().map_err(fail)?;
            from.read_exact(&mut reply).map_err(fail)?;
            Ok(())
        })?;
        let case = format!("{kind} {}", label(size));
        results.push(rtt_result(group, &case, id(kind, size), &r));
        progress.inc(1);
    }
    if let Some(streams) = streams {
        results.extend(stream(cfg, progress, kind, streams, &mut |size, last| {
            let flag = if last { 0 } else { NOREPLY };
            to.write_all(&(size as u64 | flag).to_le_bytes())
                .map_err(fail)?;
            to.write_all(&payload[..size]).map_err(fail)?;
            if last {
                to.flush().map_err(fail)?;
                from.read_exact(&mut reply).map_err(fail)?;
            }
            Ok(())
        })?);
    }
    to.write_all(&0u64.to_le_bytes()).map_err(fail)?;
    to.flush().map_err(fail)?;
    drop(to);
    child.wait().map_err(fail)?;
    Ok(results)
}

/// Round trips claims refer to, on an idle machine.
fn idle_rtt_id(kind: &str, size: usize) -> Option<CaseId> {
    match (kind, size) {
        ("channel-spin", 8) => Some(CaseId::ChannelSpinRtt8),
        ("channel-spin", s) if s == 4 << 20 => Some(CaseId::ChannelSpinRtt4M),
        ("pipe", 8) => Some(CaseId::PipeRtt8),
        ("uds", 8) => Some(CaseId::UdsRtt8),
        _ => None,
    }
}

fn idle_stream_id(kind: &str, size: usize) -> Option<CaseId> {
    match (kind, size) {
        ("channel", 65536) => Some(CaseId::ChannelStream64K),
        ("uds", 65536) => Some(CaseId::UdsStream64K),
        _ => None,
    }
}

fn loaded_rtt_id(kind: &str, size: usize) -> Option<CaseId> {
    match (kind, size) {
        ("channel-park", 8) => Some(CaseId::ChannelLoadedRtt8),
        ("pipe", 8) => Some(CaseId::PipeLoadedRtt8),
        ("uds", 8) => Some(CaseId::UdsLoadedRtt8),
        _ => None,
    }
}

fn loaded_stream_id(kind: &str, size: usize) -> Option<CaseId> {
    match (kind, size) {
        ("channel", 65536) => Some(CaseId::ChannelLoadedStream64K),
        ("uds", 65536) => Some(CaseId::UdsLoadedStream64K),
        _ => None,
    }
}

pub fn run(
    cfg: &Config,
    progress: &ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseResult>, Failure> {
    let dir = tempfile::Builder::new()
        .prefix("sect-ipc-")
        .tempdir_in("/dev/shm")
        .map_err(fail)?;
    let d = dir
        .path()
        .to_str()
        .ok_or_else(|| fail("temporary path is not UTF-8"))?
        .to_owned();
    let scale = if cfg.quick { 4 } else { 1 };
    let count = |n: usize| (n / scale).max(50);
    let sizes = [
        (8usize, count(20_000)),
        (4096, count(20_000)),
        (65536, count(4_000)),
        (4 << 20, count(200)),
    ];
    let streams = Streams {
        group: "streaming",
        sizes: &[(64, 200_000 / scale), (65536, 4_000 / scale)],
        id: idle_stream_id,
    };
    let mut results = Vec::new();

    // The floor: one cache line bounced between two processes.
    progress.set_message(format!("{SUITE}: floor"));
    {
        let s = Section::options()
            .namespace(&Namespace::at(&d))
            .size(4096)
            .create("floor")?;
        let v = s.map_all(Access::ReadWrite)?;
        let word = v.atomic_u64(0)?;
        let mut child = spawn("floor", &d, |_| {})?;
        let mut k = 0u64;
        let r = round_trips(count(50_000), cfg.runs, || {
            k += 2;
            word.store(k - 1, Ordering::Release);
            while word.load(Ordering::Acquire) != k {
                std::hint::spin_loop();
            }
            Ok(())
        })?;
        word.store(STOP, Ordering::Release);
        child.wait().map_err(fail)?;
        results.push(rtt_result(
            ROUND_TRIP,
            "floor (atomic ping-pong) 8 B",
            Some(CaseId::FloorRtt8),
            &r,
        ));
        progress.inc(1);
    }

    // The channel, both ways of waiting; a pipe and a Unix socket.
    let spin = ("channel-spin", WaitStrategy::Spin, "channel busy-spin");
    let park = (
        "channel-park",
        WaitStrategy::SpinThenPark,
        "channel spin-then-park",
    );
    results.extend(channel_cases(
        cfg,
        progress,
        &d,
        spin,
        ROUND_TRIP,
        &sizes,
        idle_rtt_id,
        Some(&streams),
    )?);
    results.extend(channel_cases(
        cfg,
        progress,
        &d,
        park,
        ROUND_TRIP,
        &sizes,
        idle_rtt_id,
        None,
    )?);
    for kind in ["pipe", "uds"] {
        results.extend(stream_cases(
            cfg,
            progress,
            &d,
            kind,
            ROUND_TRIP,
            &sizes,
            idle_rtt_id,
            Some(&streams),
        )?);
    }
    // Another middleware's round trip, same processes, same polling.
    #[cfg(feature = "peers")]
    {
        progress.set_message(format!("{SUITE}: iceoryx2"));
        results.extend(super::iceoryx::run(sizes[0].1, cfg.runs)?);
    }

    // Under load: this process keeps every core busy while the channel
    // (waiting the default way), a pipe and a socket take turns.
    {
        let _burners = Burners::start();
        let loaded = [(8usize, count(20_000))];
        let loaded_streams = Streams {
            group: "streaming under load",
            sizes: &[(65536, 4_000 / scale)],
            id: loaded_stream_id,
        };
        results.extend(channel_cases(
            cfg,
            progress,
            &d,
            park,
            UNDER_LOAD,
            &loaded,
            loaded_rtt_id,
            Some(&loaded_streams),
        )?);
        results.extend(stream_cases(
            cfg,
            progress,
            &d,
            "pipe",
            UNDER_LOAD,
            &loaded,
            loaded_rtt_id,
            None,
        )?);
        results.extend(stream_cases(
            cfg,
            progress,
            &d,
            "uds",
            UNDER_LOAD,
            &loaded,
            loaded_rtt_id,
            Some(&loaded_streams),
        )?);
    }
    notes.push(
        "ipc: a round trip is a request of the given size and an 8-byte reply; channel requests are \
         loaned and not copied (zero-copy), pipe and socket requests are written in full; streamed \
         messages are written and read in full on every path; \"under load\" runs with one busy \
         thread per core in this process (not counted as others' load)"
            .to_owned(),
    );
    Ok(results)
}
