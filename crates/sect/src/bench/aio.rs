//! The async suite: what async code gains from `sections::aio`.
//!
//! - *The stall, shown and removed*: one tokio thread scans a file evicted
//!   from the page cache through a plain view, through the view populated
//!   ahead with `aio::populate`, and with `tokio::fs` reads, yielding after
//!   every MiB; a second task that only yields records the gaps between
//!   its polls (how long the runtime thread was not free). Reported: the
//!   p99 gap and the scan's throughput.
//! - *Async channel*: 8-byte round trips and 64 KiB streaming between two
//!   processes, both sides awaiting, against a tokio `UnixStream`. Every
//!   stream does the same work at its ends: the producer writes every
//!   word of every block, the consumer sums every word, and the sums are
//!   checked. The channel carries it twice: as a zero-copy pipeline does
//!   (produced in the loan, summed in the message in place; the claim) and
//!   as a socket is used (copied in and out).
//! - *Select*: the CPU time 64 idle receivers cost over a second of
//!   waiting (a note).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use sections::aio::{AsyncReceiver, AsyncSender};
use sections::channel::{ChannelOptions, Select};
use sections::{Access, Namespace, Section, View};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cases::CaseId;
use super::latency::spawn;
use super::load::Meter;
use super::runner::{CaseResult, Metric, Stats};
use super::Config;
use crate::Failure;

const SUITE: &str = "async";
const STALL: &str = "stall (p99 gap between polls of a yielding task)";
const SCAN: &str = "cold scan, yielding every MiB";
const RTT: &str = "round trip, both sides awaiting";
const STREAM: &str = "streaming 64 KiB blocks, each produced and summed, both sides awaiting";
const CHUNK: usize = 1 << 20;
/// How far ahead of the scan the async view is populated.
const AHEAD: usize = 4 << 20;
const MESSAGE: usize = 64 << 10;
/// How long a peer may take to answer before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(30);
/// The bounded spin before registering that the spin case measures.
const SPIN: Duration = Duration::from_micros(20);

fn fail(what: impl std::fmt::Display) -> Failure {
    Failure::new(format!("bench {SUITE}: {what}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(fail)
}

fn evict(file: &std::fs::File) -> Result<(), Failure> {
    file.sync_all().map_err(fail)?;
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| fail(format!("posix_fadvise(DONTNEED): {e}")))
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.chunks_exact(8).fold(0u64, |a, w| {
        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    PlainView,
    PopulatedView,
    TokioFs,
}

/// One cold scan: (seconds, p99 gap in ns, checksum).
fn scan(path: &Path, len: usize, how: Scan) -> Result<(f64, f64, u64), Failure> {
    let file = std::fs::File::open(path).map_err(fail)?;
    evict(&file)?;
    let view = Arc::new(Section::from_path(path, Access::Read)?.map_all(Access::Read)?);
    let rt = runtime()?;
    let done = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let flag = Arc::clone(&done);
        let ticker = tokio::spawn(async move {
            let mut gaps = Vec::with_capacity(1 << 16);
            let mut last = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                let now = Instant::now();
                gaps.push(now.duration_since(last).as_nanos() as u64);
                last = now;
            }
            gaps
        });
        let start = Instant::now();
        let sum = match how {
            Scan::PlainView | Scan::PopulatedView => {
                scan_view(&view, len, how == Scan::PopulatedView).await?
            }
            Scan::TokioFs => scan_fs(path, len).await?,
        };
        let secs = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let mut gaps = ticker.await.map_err(fail)?;
        gaps.sort_unstable();
        let p99 = gaps
            .get(gaps.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0);
        Ok((secs, p99 as f64, sum))
    })
}

async fn scan_view(view: &Arc<View>, len: usize, populate: bool) -> Result<u64, Failure> {
    type Task = tokio::task::JoinHandle<sections::Result<()>>;
    let spawn_populate = |from: usize| -> (usize, Task) {
        let end = (from + AHEAD).min(len);
        let v = Arc::clone(view);
        let task = tokio::spawn(async move { sections::aio::populate(&v, from, end - from).await });
        (end, task)
    };
    // SAFETY: the bench's own file, which nothing writes while it runs.
    let bytes = unsafe { view.as_slice() };
    let mut sum = 0u64;
    // Populated up to `ready`; `pending` reads in the range after it.
    let mut ready = 0;
    let mut pending: Option<(usize, Task)> = None;
    for at in (0..len).step_by(CHUNK) {
        if populate {
            if ready <= at {
                let (end, task) = pending.take().unwrap_or_else(|| spawn_populate(ready));
                task.await.map_err(fail)??;
                ready = end;
            }
            // Keep the next range being read in while this one is scanned.
            if pending.is_none() && ready < len {
                pending = Some(spawn_populate(ready));
            }
        }
        let end = (at + CHUNK).min(len);
        sum = sum.wrapping_add(checksum(&bytes[at..end]));
        tokio::task::yield_now().await;
    }
    if let Some((_, task)) = pending {
        task.await.map_err(fail)??;
    }
    Ok(sum)
}

async fn scan_fs(path: &Path, len: usize) -> Result<u64, Failure> {
    let mut file = tokio::fs::File::open(path).await.map_err(fail)?;
    let mut buf = vec![0u8; CHUNK];
    let mut sum = 0u64;
    let mut at = 0;
    while at < len {
        let n = CHUNK.min(len - at);
        file.read_exact(&mut buf[..n]).await.map_err(fail)?;
        sum = sum.wrapping_add(checksum(&buf[..n]));
        at += n;
        tokio::task::yield_now().await;
    }
    Ok(sum)
}

/// Block `k` of a stream, as its producer writes it: every 8-byte word
/// is `k << 16 ^ i`, so that every byte is written and the sum of a
/// stream is known.
fn produce(block: &mut [u8], k: u64) {
    for (i, word) in block.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&((k << 16) ^ i as u64).to_le_bytes());
    }
}

/// What a consumer of `blocks` blocks must have summed (`checksum` of
/// each, added).
fn stream_sum(blocks: u64) -> u64 {
    let mut block = vec![0u8; MESSAGE];
    (0..blocks).fold(0u64, |a, k| {
        produce(&mut block, k);
        a.wrapping_add(checksum(&block))
    })
}

/// How a stream's blocks travel through the channel.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Blocks {
    /// As a zero-copy pipeline uses it: produced in the loan, summed in
    /// the received message.
    InPlace,
    /// As a socket is used: produced in a buffer and copied into the loan
    /// (`write_at`), copied out of the message (`copy_to`) and summed there.
    Copied,
}

/// The peer side of the channel cases: echoes round trips, or sums a
/// stream (every 8-byte word of every block) and answers with the sum.
pub fn peer(role: &str, arg: &str) -> Result<(), Failure> {
    let rt = runtime()?;
    rt.block_on(async {
        match role {
            "async-channel" | "async-channel-spin" => {
                let mut o = ChannelOptions::new();
                o.namespace(&Namespace::at(arg));
                let mut rx = AsyncReceiver::new(o.open_receiver("ping")?)?;
                if role == "async-channel-spin" {
                    rx.spin(SPIN);
                }
                let mut tx = AsyncSender::new(o.open_sender("pong")?)?;
                let mut buf = vec![0u8; MESSAGE];
                let (mut how, mut sum) = (Blocks::InPlace, 0u64);
                loop {
                    let m = match rx.recv().await {
                        Ok(m) => m,
                        Err(e) if e.kind() == sections::ErrorKind::Disconnected => return Ok(()),
                        Err(e) => return Err(e.into()),
                    };
                    match m.len() {
                        8 => {
                            let mut echo = [0u8; 8];
                            m.copy_to(&mut echo)?;
                            drop(m);
                            tx.send(&echo).await?;
                        }
                        // A stream begins: how its blocks travel.
                        1 => {
                            let mut first = [0u8; 1];
                            m.copy_to(&mut first)?;
                            how = if first[0] == 0 {
                                Blocks::InPlace
                            } else {
                                Blocks::Copied
                            };
                            sum = 0;
                        }
                        // It ends: answer with the sum.
                        0 => {
                            drop(m);
                            tx.send(&sum.to_le_bytes()).await?;
                        }
                        len => {
                            let block = match how {
                                // SAFETY: the channel's protocol gives these
                                // bytes to this receiver until the message
                                // is dropped, and the bench's own sender
                                // follows it.
                                Blocks::InPlace => unsafe { m.as_slice() },
                                Blocks::Copied => {
                                    buf.resize(len, 0);
                                    m.copy_to(&mut buf)?;
                                    &buf[..]
                                }
                            };
                            sum = sum.wrapping_add(checksum(block));
                        }
                    }
                }
            }
            "async-uds" => {
                let mut s = tokio::net::UnixStream::connect(arg).await.map_err(fail)?;
                let mut small = [0u8; 8];
                loop {
                    let mut kind = [0u8; 1];
                    if s.read_exact(&mut kind).await.is_err() {
                        return Ok(());
                    }
                    if kind[0] == 0 {
                        s.read_exact(&mut small).await.map_err(fail)?;
                        s.write_all(&small).await.map_err(fail)?;
                    } else {
                        // A stream: a count, then that many 64 KiB
                        // blocks, each summed; the answer is the sum.
                        let mut count = [0u8; 8];
                        s.read_exact(&mut count).await.map_err(fail)?;
                        let mut block = vec![0u8; MESSAGE];
                        let mut sum = 0u64;
                        for _ in 0..u64::from_le_bytes(count) {
                            s.read_exact(&mut block).await.map_err(fail)?;
                            sum = sum.wrapping_add(checksum(&block));
                        }
                        s.write_all(&sum.to_le_bytes()).await.map_err(fail)?;
                    }
                }
            }
            other => Err(fail(format!("unknown peer {other}"))),
        }
    })
}

/// Median round trip (ns) and stream rates (GB/s: blocks in place, then
/// copied) through the channel.
fn channel_runs(
    dir: &Path,
    trips: usize,
    blocks: u64,
    spin: bool,
    want: u64,
) -> Result<(f64, [f64; 2]), Failure> {
    let ns = dir.join(if spin { "async-ns-spin" } else { "async-ns" });
    std::fs::create_dir_all(&ns).map_err(fail)?;
    let mut o = ChannelOptions::new();
    o.namespace(&Namespace::at(&ns)).capacity(1 << 20);
    let ping = o.create("ping")?;
    let pong = o.create("pong")?;
    let role = if spin {
        "async-channel-spin"
    } else {
        "async-channel"
    };
    let mut child = spawn(role, &ns.to_string_lossy(), |_| {})?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        let mut tx = AsyncSender::new(o.open_sender("ping")?)?;
        let mut rx = AsyncReceiver::new(o.open_receiver("pong")?)?;
        if spin {
            rx.spin(SPIN);
        }
        let mut times = Vec::with_capacity(trips);
        for i in 0..trips {
            let t = Instant::now();
            tx.send(&(i as u64).to_le_bytes()).await?;
            // A peer that died would leave this waiting for ever.
            let m = tokio::time::timeout(PATIENCE, rx.recv())
                .await
                .map_err(|_| fail("the peer stopped answering"))??;
            if m.len() != 8 {
                return Err(fail("a wrong echo"));
            }
            drop(m);
            times.push(t.elapsed().as_nanos() as f64);
        }
        let mut rates = [0.0; 2];
        let mut block = vec![0u8; MESSAGE];
        for (how, rate) in [Blocks::InPlace, Blocks::Copied]
            .into_iter()
            .zip(&mut rates)
        {
            tx.send(&[u8::from(how == Blocks::Copied)]).await?;
            let t = Instant::now();
            for k in 0..blocks {
                let mut loan = tx.loan(MESSAGE).await?;
                match how {
                    // SAFETY: the reservation's bytes are this sender's
                    // until it sends (the channel's protocol, which the
                    // bench's own receiver follows).
                    Blocks::InPlace => produce(unsafe { loan.as_mut_slice() }, k),
                    Blocks::Copied => {
                        produce(&mut block, k);
                        loan.write_at(0, &block)?;
                    }
                }
                loan.send();
            }
            tx.send(b"").await?;
            let answer = tokio::time::timeout(PATIENCE, rx.recv())
                .await
                .map_err(|_| fail("the peer stopped answering"))??;
            *rate = (blocks * MESSAGE as u64) as f64 / t.elapsed().as_secs_f64() / 1e9;
            let mut sum = [0u8; 8];
            answer.copy_to(&mut sum)?;
            if answer.len() != 8 || u64::from_le_bytes(sum) != want {
                return Err(fail(format!(
                    "the channel's stream ({how:?}) arrived damaged"
                )));
            }
        }
        Ok::<_, Failure>((Stats::of(&times).median, rates))
    });
    drop((ping, pong));
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The same over a tokio `UnixStream`.
fn uds_runs(dir: &Path, trips: usize, blocks: u64, want: u64) -> Result<(f64, f64), Failure> {
    let path: PathBuf = dir.join("async.sock");
    let _ = std::fs::remove_file(&path);
    let rt = runtime()?;
    let listener = rt
        .block_on(async { tokio::net::UnixListener::bind(&path) })
        .map_err(fail)?;
    let mut child = spawn("async-uds", &path.to_string_lossy(), |_| {})?;
    let result = rt.block_on(async {
        let (mut s, _) = listener.accept().await.map_err(fail)?;
        let mut times = Vec::with_capacity(trips);
        let mut echo = [0u8; 8];
        for i in 0..trips {
            let t = Instant::now();
            let mut msg = [0u8; 9];
            msg[1..].copy_from_slice(&(i as u64).to_le_bytes());
            s.write_all(&msg).await.map_err(fail)?;
            s.read_exact(&mut echo).await.map_err(fail)?;
            times.push(t.elapsed().as_nanos() as f64);
        }
        let mut block = vec![0u8; MESSAGE];
        let t = Instant::now();
        let mut head = [1u8; 9];
        head[1..].copy_from_slice(&blocks.to_le_bytes());
        s.write_all(&head).await.map_err(fail)?;
        for k in 0..blocks {
            produce(&mut block, k);
            s.write_all(&block).await.map_err(fail)?;
        }
        s.read_exact(&mut echo).await.map_err(fail)?;
        let rate = (blocks * MESSAGE as u64) as f64 / t.elapsed().as_secs_f64() / 1e9;
        if u64::from_le_bytes(echo) != want {
            return Err(fail("the socket's stream arrived damaged"));
        }
        Ok::<_, Failure>((Stats::of(&times).median, rate))
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    result
}

/// CPU time this process used while a `Select` over 64 idle receivers
/// waited for a second, and whether it then woke on the one message.
fn idle_select() -> Result<(Duration, Option<usize>), Failure> {
    let channels = (0..64)
        .map(|_| ChannelOptions::new().capacity(4096).anonymous())
        .collect::<sections::Result<Vec<_>>>()?;
    let rxs = channels
        .iter()
        .map(|c| c.receiver())
        .collect::<sections::Result<Vec<_>>>()?;
    let mut txs = channels
        .iter()
        .map(|c| c.sender())
        .collect::<sections::Result<Vec<_>>>()?;
    let refs: Vec<_> = rxs.iter().collect();
    let select = Select::new(&refs)?;
    let cpu = || {
        // SAFETY: `rusage` is plain data; getrusage fills it.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a rusage struct.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let us =
            |t: libc::timeval| Duration::from_micros((t.tv_sec * 1_000_000 + t.tv_usec) as u64);
        us(ru.ru_utime) + us(ru.ru_stime)
    };
    let before = cpu();
    let idle = select.wait(&refs, Some(Duration::from_secs(1)))?;
    let used = cpu() - before;
    if idle.is_some() {
        return Err(fail("an idle select said something was ready"));
    }
    txs[37].send(b"wake")?;
    let woke = select.wait(&refs, Some(Duration::from_secs(10)))?;
    Ok((used, woke))
}

fn row(
    group: &'static str,
    case: &str,
    id: CaseId,
    metric: Metric,
    values: &[f64],
    meter: Meter,
) -> CaseResult {
    CaseResult {
        suite: SUITE,
        group,
        case: case.to_owned(),
        id: Some(id),
        metric,
        stats: Stats::of(values),
        cost: None,
        load: meter.stop(),
        tail: None,
    }
}

pub fn run(
    cfg: &Config,
    progress: &ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseResult>, Failure> {
    let mut results = Vec::new();
    // The stall: a file on the temporary directory's disk, evicted each run.
    progress.set_message(format!("{SUITE}: writing the data file"));
    let len = (cfg.size as usize).max(CHUNK) / CHUNK * CHUNK;
    let path = cfg.dir.join("async.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).map_err(fail)?;
        let block: Vec<u8> = (0..CHUNK).map(|i| (i * 7 + 3) as u8).collect();
        for _ in 0..len / CHUNK {
            f.write_all(&block).map_err(fail)?;
        }
        f.sync_all().map_err(fail)?;
    }
    let variants = [
        (
            Scan::PlainView,
            "plain view",
            CaseId::AsyncStallPlain,
            CaseId::AsyncScanPlain,
        ),
        (
            Scan::PopulatedView,
            "view, aio::populate ahead",
            CaseId::AsyncStallView,
            CaseId::AsyncScanView,
        ),
        (
            Scan::TokioFs,
            "tokio::fs reads of 1 MiB",
            CaseId::AsyncStallFs,
            CaseId::AsyncScanFs,
        ),
    ];
    let mut stalls = vec![Vec::new(); variants.len()];
    let mut rates = vec![Vec::new(); variants.len()];
    let mut sums = Vec::new();
    let meter = Meter::start();
    for _ in 0..cfg.runs.max(1) {
        // Interleaved, so that a slower disk moment hurts all alike.
        for (i, (how, name, _, _)) in variants.iter().enumerate() {
            progress.set_message(format!("{SUITE}: cold scan, {name}"));
            let (secs, p99, sum) = scan(&path, len, *how)?;
            stalls[i].push(p99);
            rates[i].push(len as f64 / secs / 1e9);
            sums.push(sum);
            progress.inc(1);
        }
    }
    if sums.windows(2).any(|w| w[0] != w[1]) {
        return Err(fail("the scans read different bytes"));
    }
    let load = meter.stop();
    for (i, (_, name, stall_id, scan_id)) in variants.iter().enumerate() {
        let mut r = row(
            STALL,
            name,
            *stall_id,
            Metric::Latency,
            &stalls[i],
            Meter::start(),
        );
        r.load = load;
        results.push(r);
        let mut r = row(
            SCAN,
            name,
            *scan_id,
            Metric::Throughput,
            &rates[i],
            Meter::start(),
        );
        r.load = load;
        results.push(r);
    }

    // The channel against a tokio UnixStream, both sides awaiting.
    let trips = if cfg.quick { 2_000 } else { 20_000 };
    let blocks = if cfg.quick { 2_000 } else { 10_000 };
    let mut chan = (Vec::new(), Vec::new(), Vec::new());
    let mut spun = Vec::new();
    let mut uds = (Vec::new(), Vec::new());
    // What the streams' consumers must sum (computed once, untimed).
    let (want, want_one) = (stream_sum(blocks), stream_sum(1));
    let meter = Meter::start();
    for _ in 0..cfg.runs.max(1) {
        progress.set_message(format!("{SUITE}: channel, awaiting"));
        let (rtt, [in_place, copied]) = channel_runs(&cfg.dir, trips, blocks, false, want)?;
        chan.0.push(rtt);
        chan.1.push(in_place);
        chan.2.push(copied);
        let (rtt, _) = channel_runs(&cfg.dir, trips, 1, true, want_one)?;
        spun.push(rtt);
        progress.inc(1);
        progress.set_message(format!("{SUITE}: tokio UnixStream"));
        let (rtt, rate) = uds_runs(&cfg.dir, trips, blocks, want)?;
        uds.0.push(rtt);
        uds.1.push(rate);
        progress.inc(1);
    }
    let load = meter.stop();
    for (group, case, id, metric, values) in [
        (
            RTT,
            "channel (aio), 8 B",
            CaseId::AsyncChannelRtt8,
            Metric::Latency,
            &chan.0,
        ),
        (
            RTT,
            "channel (aio), 8 B, 20 us spin before registering",
            CaseId::AsyncChannelSpinRtt8,
            Metric::Latency,
            &spun,
        ),
        (
            RTT,
            "tokio UnixStream, 8 B",
            CaseId::AsyncUdsRtt8,
            Metric::Latency,
            &uds.0,
        ),
        (
            STREAM,
            "channel (aio), produced in the loan, summed in place",
            CaseId::AsyncChannelStream64K,
            Metric::Throughput,
            &chan.1,
        ),
        (
            STREAM,
            "channel (aio), copied in (write_at) and out (copy_to)",
            CaseId::AsyncChannelStream64KCopied,
            Metric::Throughput,
            &chan.2,
        ),
        (
            STREAM,
            "tokio UnixStream, written and read",
            CaseId::AsyncUdsStream64K,
            Metric::Throughput,
            &uds.1,
        ),
    ] {
        let mut r = row(group, case, id, metric, values, Meter::start());
        r.load = load;
        results.push(r);
    }

    progress.set_message(format!("{SUITE}: idle select"));
    let (cpu, woke) = idle_select()?;
    notes.push(format!(
        "async: a Select over 64 idle receivers used {:.2} ms of CPU over 1 s of waiting, then woke on the one with a message ({})",
        cpu.as_secs_f64() * 1e3,
        match woke {
            Some(i) => format!("receiver {i} of 64, sent to 37"),
            None => "it did not".to_owned(),
        }
    ));
    Ok(results)
}
