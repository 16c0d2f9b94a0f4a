//! Round trips between this process and a peer process (this program
//! started again with `SECT_BENCH_PEER` set): spawning the peer, timing
//! round trips into a histogram, and the result rows they make. Used by
//! the `ipc` suite and its iceoryx2 peer.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::cases::CaseId;
use super::load::{add_peer, Load, Meter};
use super::runner::{CaseResult, Metric, Stats, Tail};
pub(super) use crate::Failure;

/// The suite these results belong to.
pub(super) const SUITE: &str = "ipc";
/// The group of round trips on an idle machine.
pub(super) const ROUND_TRIP: &str = "round trip";
/// The group measured while this process keeps every core busy.
pub(super) const UNDER_LOAD: &str = "under load";
/// Tells a re-executed `sect` which peer to be.
pub const PEER: &str = "SECT_BENCH_PEER";

pub(super) fn fail(what: impl std::fmt::Display) -> Failure {
    Failure::new(format!("bench {SUITE}: {what}"))
}

pub(super) fn spawn(
    role: &str,
    arg: &str,
    setup: impl FnOnce(&mut Command),
) -> Result<Child, Failure> {
    let mut cmd = Command::new(std::env::current_exe().map_err(fail)?);
    cmd.env(PEER, role).arg(arg).stderr(Stdio::inherit());
    setup(&mut cmd);
    let child = cmd.spawn().map_err(fail)?;
    // Its CPU time is ours, not another program's load.
    add_peer(child.id());
    Ok(child)
}

/// Round trips timed one by one: every sample pooled (for the tail), and
/// the median of each run (for the spread between runs).
pub(super) struct RoundTrips {
    pub pooled: Histogram<u64>,
    pub run_medians: Vec<f64>,
    pub load: Load,
}

/// `count` round trips after a warm-up, in `runs` runs of equal size.
pub(super) fn round_trips(
    count: usize,
    runs: usize,
    mut round_trip: impl FnMut() -> Result<(), Failure>,
) -> Result<RoundTrips, Failure> {
    let new = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(fail);
    let mut pooled = new()?;
    for _ in 0..count / 10 + 10 {
        round_trip()?;
    }
    let runs = runs.clamp(1, count.max(1));
    let mut run_medians = Vec::with_capacity(runs);
    let meter = Meter::start();
    for _ in 0..runs {
        let mut h = new()?;
        for _ in 0..count / runs {
            let start = Instant::now();
            round_trip()?;
            h.saturating_record(start.elapsed().as_nanos() as u64);
        }
        run_medians.push(h.value_at_quantile(0.5) as f64);
        pooled.add(&h).map_err(fail)?;
    }
    Ok(RoundTrips {
        pooled,
        run_medians,
        load: meter.stop(),
    })
}

/// The row of one round-trip case: its p50 across runs (median, min, max;
/// tagged `id`, for claims) and the pooled tail.
pub(super) fn rtt_result(
    group: &'static str,
    case: &str,
    id: Option<CaseId>,
    r: &RoundTrips,
) -> CaseResult {
    let q = |p: f64| r.pooled.value_at_quantile(p);
    CaseResult {
        suite: SUITE,
        group,
        case: case.to_owned(),
        id,
        metric: Metric::Latency,
        stats: Stats::of(&r.run_medians),
        cost: None,
        load: r.load,
        tail: Some(Tail {
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: r.pooled.max(),
        }),
    }
}
