//! The load a measurement ran under. A ratio measured while other programs
//! used the CPUs says little about this library, so every case records how
//! much CPU time *other processes* took while it ran (every process but
//! this one and its bench peers, from `/proc/<pid>/stat`) and how much the
//! hypervisor stole; a claim whose cases ran on a busy machine says so
//! instead of a verdict. The bench's own load threads (the "under load"
//! group) run in this process and are not counted as others'.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Others' CPU time (plus stolen time) above this fraction of the machine's
/// cores makes a measurement "busy": on a two-core machine, a fifth of one
/// core. A desktop's background chatter stays well below it; a build, a
/// browser tab playing video or a second benchmark does not.
pub const BUSY_FRACTION: f64 = 0.10;

/// The load during one measurement, in cores: 1.0 is one core kept busy
/// all along.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Load {
    /// CPU time of other processes.
    pub others_cores: f64,
    /// CPU time the hypervisor gave to other guests.
    pub stolen_cores: f64,
}

impl Load {
    /// The heavier of two loads (a claim is as trustworthy as its most
    /// loaded case).
    pub fn worst(self, other: Load) -> Load {
        if other.cores() > self.cores() {
            other
        } else {
            self
        }
    }

    /// Others' and stolen time together, to the two decimals printed.
    pub fn cores(self) -> f64 {
        ((self.others_cores + self.stolen_cores) * 100.0).round() / 100.0
    }

    /// Whether the machine was too busy for the numbers to mean much
    /// (compared at the precision printed).
    pub fn busy(self, cores: usize) -> bool {
        self.cores() > BUSY_FRACTION * cores as f64
    }
}

/// Bench peer processes alive now: their CPU time is ours.
static PEERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Counts `pid` (a peer this process started) as ours.
pub fn add_peer(pid: u32) {
    PEERS.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// A point in time: the CPU time of every process that is not ours
/// (utime + stime + what its waited-for children used), ours, and the
/// machine's stolen time, in clock ticks. Per-process times come from the
/// scheduler's exact run time; the machine-wide counters are sampled at
/// each tick and misjudge fast sleep-and-wake patterns such as a pipe
/// ping-pong.
#[derive(Debug)]
struct Snapshot {
    at: Instant,
    stolen: u64,
    /// (pid, ticks) of every other process, by pid.
    others: Vec<(u32, u64)>,
}

/// The kernel counts CPU time in clock ticks (10 ms on most machines), so
/// a load is measured over at least this long: a shorter case is measured
/// together with the time just before it.
pub const MIN_WINDOW: Duration = Duration::from_millis(250);

/// Every snapshot taken, oldest first: a short case's window reaches back
/// into them.
static TIMELINE: Mutex<Vec<Arc<Snapshot>>> = Mutex::new(Vec::new());

fn record(s: Option<Snapshot>) -> Option<Arc<Snapshot>> {
    let s = Arc::new(s?);
    TIMELINE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(s.clone());
    Some(s)
}

/// Measures the load from `start` to `stop`.
#[derive(Debug)]
pub struct Meter {
    start: Option<Arc<Snapshot>>,
    cores: usize,
}

impl Meter {
    pub fn start() -> Meter {
        Meter {
            start: record(snapshot()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The load since `start`, over at least [`MIN_WINDOW`] (zero where
    /// the kernel does not say).
    pub fn stop(&self) -> Load {
        let (Some(start), Some(b)) = (self.start.clone(), record(snapshot())) else {
            return Load::default();
        };
        let a = if b.at.duration_since(start.at) >= MIN_WINDOW {
            start
        } else {
            // The latest snapshot at least MIN_WINDOW old, else the oldest.
            let timeline = TIMELINE.lock().unwrap_or_else(|e| e.into_inner());
            timeline
                .iter()
                .rev()
                .find(|s| b.at.duration_since(s.at) >= MIN_WINDOW)
                .or(timeline.first())
                .cloned()
                .unwrap_or(start)
        };
        between(&a, &b, self.cores)
    }
}

/// The load between two snapshots.
fn between(a: &Snapshot, b: &Snapshot, cores: usize) -> Load {
    let secs = b.at.duration_since(a.at).as_secs_f64();
    if secs <= 0.0 {
        return Load::default();
    }
    let ticks = ticks_per_second();
    let as_cores = |t: u64| t as f64 / ticks / secs;
    // What other processes used since `a`: the difference of the totals.
    // (Per process, a child reaped in between would count whole: in its
    // parent's cutime, and never subtracted.) A process that ended
    // unreaped, or was reaped by one not listed, takes its time with it:
    // the load is then too low, never too high.
    let total = |s: &Snapshot| s.others.iter().map(|&(_, t)| t).sum::<u64>();
    let others = total(b).saturating_sub(total(a));
    Load {
        others_cores: as_cores(others).min(cores as f64),
        stolen_cores: as_cores(b.stolen.saturating_sub(a.stolen)),
    }
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

fn snapshot() -> Option<Snapshot> {
    let at = Instant::now();
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // cpu: user nice system idle iowait irq softirq steal ...
    let stolen = stat
        .lines()
        .find(|l| l.starts_with("cpu "))?
        .split_whitespace()
        .nth(8)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let me = std::process::id();
    // Our peers, while they are still our children (a pid can be reused);
    // once waited for, their time is in our own cutime and cstime.
    let mut peers = PEERS.lock().unwrap_or_else(|e| e.into_inner());
    peers.retain(|&pid| {
        stat_fields(&pid.to_string()).and_then(|f| f.first().copied()) == Some(u64::from(me))
    });
    let mut others: Vec<(u32, u64)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && !peers.contains(pid))
        .filter_map(|pid| Some((pid, process_ticks(&pid.to_string())?)))
        .collect();
    others.sort_unstable();
    Some(Snapshot { at, stolen, others })
}

/// The fields of `/proc/<who>/stat` after the command name.
fn stat_fields(who: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{who}/stat")).ok()?;
    // The command may hold spaces and parentheses: it ends at the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .skip(1) // state
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime + cutime + cstime of a process: its own CPU time and
/// that of the children it has waited for.
fn process_ticks(who: &str) -> Option<u64> {
    // After the state: ppid(0) ... utime(10) stime(11) cutime(12) cstime(13).
    let f = stat_fields(who)?;
    Some(f.get(10)? + f.get(11)? + f.get(12)? + f.get(13)?)
}

/// The machine when the bench starts: the 1-minute load average, the
/// runnable tasks that are not this process's threads, and others' CPU
/// time over the first [`MIN_WINDOW`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Machine {
    pub load_average_1m: f64,
    pub others_runnable: u64,
    pub load: Load,
}

/// Looks at the machine (this takes [`MIN_WINDOW`]).
pub fn machine() -> Machine {
    let meter = Meter::start();
    std::thread::sleep(MIN_WINDOW);
    let load = meter.stop();
    let load_average_1m = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let running: u64 = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("procs_running "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
    // Our own threads that are running now (this one at least).
    let ours = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("stat"))
                        .ok()
                        .and_then(|t| {
                            t.rfind(')')
                                .map(|i| t[i + 1..].trim_start().starts_with('R'))
                        })
                        .unwrap_or(false)
                })
                .count() as u64
        })
        .unwrap_or(1);
    Machine {
        load_average_1m,
        others_runnable: running.saturating_sub(ours),
        load,
    }
}

/// Keeps every core busy from this process (for the "under load" group)
/// until dropped.
pub struct Burners {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Burners {
    /// One spinning thread per core.
    pub fn start() -> Burners {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        Burners { stop, threads }
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_threads_and_peers_are_not_others() {
        let me = std::process::id();
        let Ok(mut child) = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
        else {
            return; // no shell here
        };
        let listed = |s: &Snapshot, pid: u32| s.others.iter().any(|&(p, _)| p == pid);
        // Not yet a peer: another process, like any.
        let before = snapshot().expect("a snapshot");
        assert!(
            listed(&before, child.id()),
            "an unregistered child is another process"
        );
        assert!(!listed(&before, me), "this process is not another process");
        add_peer(child.id());
        let after = snapshot().expect("a snapshot");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!listed(&after, child.id()), "a peer is ours");
        assert!(!listed(&after, me));
    }

    #[test]
    fn others_load_is_seen() {
        // A process that is not ours (not registered as a peer) burning a
        // core is counted.
        let Ok(mut child) = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
        else {
            return; // no shell here
        };
        let meter = Meter::start();
        std::thread::sleep(std::time::Duration::from_millis(600));
        let load = meter.stop();
        let _ = child.kill();
        let _ = child.wait();
        assert!(load.others_cores >= 0.5, "a busy shell not seen: {load:?}");
        assert!(load.busy(2), "{load:?}");
    }

    #[test]
    fn worst_and_busy() {
        let a = Load {
            others_cores: 0.5,
            stolen_cores: 0.0,
        };
        let b = Load {
            others_cores: 0.1,
            stolen_cores: 0.2,
        };
        // The heavier case whole, not a mix of two.
        assert_eq!(a.worst(b), a);
        assert_eq!(b.worst(a), a);
        assert!(!Load::default().busy(2));
        assert!(a.busy(2), "0.5 of 2 cores is more than a tenth");
        // Printed as 0.20: not above 0.20.
        let edge = Load {
            others_cores: 0.2004,
            stolen_cores: 0.0,
        };
        assert!(!edge.busy(2));
        assert!(!b.busy(4), "0.3 of 4 cores is not a tenth");
    }
}
