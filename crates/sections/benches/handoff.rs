//! Cross-process hand-off latency: one process sets an event, another
//! wakes up, against a one-byte write/read on a pipe, and an 8-byte
//! message over a channel (busy-spin and spin-then-park), in the same run.
//! Two processes ping-pong; a hand-off is half a round trip. Prints p50
//! and p99. Linux only.
//!
//! Run with `cargo bench -p sections --bench handoff`.

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use sections::channel::{ChannelOptions, WaitStrategy};
    use sections::sync::{Reset, SyncOptions};
    use sections::Namespace;

    const ROLE: &str = "SECTIONS_HANDOFF_ROLE";
    const ROUNDS: usize = 20_000;

    fn opts(dir: &str) -> SyncOptions {
        let mut o = SyncOptions::new();
        o.namespace(&Namespace::at(dir));
        o
    }

    fn strategy(role: &str) -> WaitStrategy {
        if role == "channel-spin" {
            WaitStrategy::Spin
        } else {
            WaitStrategy::SpinThenPark
        }
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    fn report(what: &str, mut rtts: Vec<f64>) -> f64 {
        rtts.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&rtts, 0.5) / 2.0, percentile(&rtts, 0.99) / 2.0);
        println!("{what:<22} hand-off p50 {p50:>8.0} ns   p99 {p99:>8.0} ns");
        p50
    }

    pub fn main() {
        if let Ok(role) = std::env::var(ROLE) {
            let arg = std::env::args().nth(1).unwrap_or_default();
            match role.as_str() {
                "event" => {
                    let o = opts(&arg);
                    let ping = o.open_event("ping").unwrap();
                    let pong = o.open_event("pong").unwrap();
                    for _ in 0..ROUNDS + 100 {
                        ping.wait().unwrap();
                        pong.set().unwrap();
                    }
                }
                "channel-spin" | "channel-park" => {
                    let mut o = ChannelOptions::new();
                    o.namespace(&Namespace::at(&arg)).wait(strategy(&role));
                    let mut rx = o.open_receiver("ping").unwrap();
                    let mut tx = o.open_sender("pong").unwrap();
                    for _ in 0..ROUNDS + 100 {
                        let m = rx.recv().unwrap().to_vec();
                        tx.send(&m).unwrap();
                    }
                }
                "pipe" => {
                    let mut input = std::io::stdin().lock();
                    let mut output = std::io::stdout().lock();
                    let mut b = [0u8];
                    for _ in 0..ROUNDS + 100 {
                        input.read_exact(&mut b).unwrap();
                        output.write_all(&b).unwrap();
                        output.flush().unwrap();
                    }
                }
                _ => unreachable!("unknown role"),
            }
            return;
        }
        if std::env::args().any(|a| a == "--list") {
            return;
        }
        let me = std::env::current_exe().unwrap();

        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let o = opts(dir.path().to_str().unwrap());
        let ping = o.create_event("ping", Reset::Auto, false).unwrap();
        let pong = o.create_event("pong", Reset::Auto, false).unwrap();
        let mut child = Command::new(&me)
            .env(ROLE, "event")
            .arg(dir.path())
            .spawn()
            .unwrap();
        let mut event_rtts = Vec::with_capacity(ROUNDS);
        for i in 0..ROUNDS + 100 {
            let start = Instant::now();
            ping.set().unwrap();
            pong.wait().unwrap();
            if i >= 100 {
                event_rtts.push(start.elapsed().as_nanos() as f64);
            }
        }
        child.wait().unwrap();

        let mut child = Command::new(&me)
            .env(ROLE, "pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // SAFETY: the descriptors come from the child handles we own.
        let mut to = unsafe {
            std::fs::File::from(OwnedFd::from_raw_fd(
                child.stdin.take().unwrap().into_raw_fd(),
            ))
        };
        let mut from = child.stdout.take().unwrap();
        let mut pipe_rtts = Vec::with_capacity(ROUNDS);
        let mut b = [7u8];
        for i in 0..ROUNDS + 100 {
            let start = Instant::now();
            to.write_all(&b).unwrap();
            from.read_exact(&mut b).unwrap();
            if i >= 100 {
                pipe_rtts.push(start.elapsed().as_nanos() as f64);
            }
        }
        child.wait().unwrap();

        let mut channel = Vec::new();
        for role in ["channel-spin", "channel-park"] {
            let dir = tempfile::tempdir_in("/dev/shm").unwrap();
            let mut o = ChannelOptions::new();
            o.namespace(&Namespace::at(dir.path()))
                .capacity(4096)
                .wait(strategy(role));
            let _ping = o.create("ping").unwrap();
            let _pong = o.create("pong").unwrap();
            let mut tx = o.open_sender("ping").unwrap();
            let mut rx = o.open_receiver("pong").unwrap();
            let mut child = Command::new(&me)
                .env(ROLE, role)
                .arg(dir.path())
                .spawn()
                .unwrap();
            let mut rtts = Vec::with_capacity(ROUNDS);
            for i in 0..ROUNDS + 100 {
                let start = Instant::now();
                tx.send(&(i as u64).to_le_bytes()).unwrap();
                drop(rx.recv().unwrap());
                if i >= 100 {
                    rtts.push(start.elapsed().as_nanos() as f64);
                }
            }
            child.wait().unwrap();
            channel.push((role, rtts));
        }

        for (role, rtts) in channel {
            report(role, rtts);
        }
        let event = report("event (futex)", event_rtts);
        let pipe = report("pipe", pipe_rtts);
        println!("pipe p50 / event p50 = {:.2}", pipe / event);
    }
}
