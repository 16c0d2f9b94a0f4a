//! Round trips between this process and a peer process (this program
//! started again with `SECT_BENCH_PEER` set): spawning the peer, timing
//! round trips into a histogram, and the result rows they make. Used by
//! the `ipc` suite and its iceoryx2 peer.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::cases::CaseId;
use super::runner::{CaseResult, Metric, Stats};
pub(super) use crate::Failure;

/// The suite these results belong to.
pub(super) const SUITE: &str = "ipc";
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
    cmd.spawn().map_err(fail)
}

/// Round trips of `size`-byte requests, `count` times after a warm-up.
pub(super) fn histogram(
    count: usize,
    mut round_trip: impl FnMut() -> Result<(), Failure>,
) -> Result<Histogram<u64>, Failure> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(fail)?;
    for _ in 0..count / 10 + 10 {
        round_trip()?;
    }
    for _ in 0..count {
        let start = Instant::now();
        round_trip()?;
        h.saturating_record(start.elapsed().as_nanos() as u64);
    }
    Ok(h)
}

/// The rows of one round-trip case: p50 (tagged `id`, for claims), p99,
/// p99.9.
pub(super) fn rtt_results(case: &str, id: Option<CaseId>, h: &Histogram<u64>) -> Vec<CaseResult> {
    let q = |p: f64| h.value_at_quantile(p) as f64;
    let result = |name: String, id, min: f64, median: f64, max: f64| CaseResult {
        suite: SUITE,
        group: "round trip",
        case: name,
        id,
        metric: Metric::Latency,
        stats: Stats { min, median, max },
        cost: None,
    };
    vec![
        result(
            format!("{case} p50"),
            id,
            h.min() as f64,
            q(0.5),
            h.max() as f64,
        ),
        result(format!("{case} p99"), None, q(0.99), q(0.99), q(0.99)),
        result(format!("{case} p99.9"), None, q(0.999), q(0.999), q(0.999)),
    ]
}
