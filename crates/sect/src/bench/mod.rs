//! `sect bench`: the claims sections rest on, measured on this machine
//! against the alternative in the same run, and reported as ratios.

mod aio;
mod cases;
mod env;
#[cfg(feature = "peers")]
mod iceoryx;
mod image;
mod ipc;
mod latency;
mod load;
mod mmap;
mod plot;
mod runner;
mod shared;

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use cases::CaseId;
use load::Load;
use runner::{CaseResult, Metric, PassCost, Tail};

use crate::report::table;
use crate::units::human;
use crate::Failure;

pub use crate::cli::Suite;
pub use ipc::peer;
pub use latency::PEER;

#[derive(Debug)]
pub struct Options {
    pub suites: Vec<Suite>,
    pub quick: bool,
    pub size: u64,
    pub runs: usize,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
}

/// What a suite works with.
pub struct Config {
    pub size: u64,
    pub runs: usize,
    pub quick: bool,
    /// A private temporary directory, removed afterwards.
    pub dir: PathBuf,
}

impl Config {
    pub fn plan(&self) -> runner::Plan {
        runner::Plan {
            runs: self.runs,
            sample_secs: if self.quick { 0.08 } else { 0.15 },
        }
    }
}

/// The smallest data size the suites can work with.
pub const MIN_SIZE: u64 = 1 << 20;

#[derive(Debug, Serialize)]
struct ResultRow<'a> {
    suite: &'static str,
    group: &'static str,
    case: &'a str,
    metric: &'static str,
    unit: &'static str,
    min: f64,
    median: f64,
    max: f64,
    #[serde(flatten)]
    cost: Option<PassCost>,
    load: Load,
    /// Round trips: percentiles of every sample (min/median/max are of
    /// each run's p50).
    tail: Option<Tail>,
}

/// What a claim's ratio must be.
#[derive(Debug, Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
    Within(f64, f64),
}

impl Goal {
    /// Whether `ratio`, at the precision it is printed with, meets it.
    fn met(self, ratio: f64) -> bool {
        let shown = round2(ratio);
        match self {
            Goal::AtLeast(g) => shown >= g,
            Goal::AtMost(g) => shown <= g,
            Goal::Within(lo, hi) => (lo..=hi).contains(&shown),
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {g:.2}"),
            Goal::AtMost(g) => format!("<= {g:.2}"),
            Goal::Within(lo, hi) => format!("{lo:.2}..{hi:.2}"),
        }
    }
}

/// Ratios are printed, and compared with their goals, to two decimals.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[derive(Debug, Serialize)]
struct Claim {
    id: &'static str,
    /// To two decimals, as printed and compared.
    ratio: Option<f64>,
    goal: String,
    /// "holds", "missed", "busy" (its cases ran while others used the
    /// CPUs: no verdict) or "not run".
    verdict: &'static str,
    holds: bool,
    /// The heaviest load any of its cases ran under.
    load: Option<Load>,
    #[serde(skip)]
    meaning: &'static str,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    env: env::Env,
    machine: load::Machine,
    busy_fraction: f64,
    results: Vec<ResultRow<'a>>,
    claims: Vec<Claim>,
    notes: &'a [String],
}

pub fn run(opts: Options) -> Result<(), Failure> {
    if opts.size < MIN_SIZE {
        return Err(Failure::new(format!(
            "bench: --size {} is too small; use at least {}",
            opts.size,
            human(MIN_SIZE)
        )));
    }
    let size = opts.size / 4096 * 4096;
    let suites = if opts.suites.is_empty() {
        vec![
            Suite::Mmap,
            Suite::Shared,
            Suite::Ipc,
            Suite::Image,
            Suite::Async,
        ]
    } else {
        opts.suites.clone()
    };
    let dir = tempfile::Builder::new()
        .prefix("sect-bench-")
        .tempdir()
        .map_err(|e| Failure::new(format!("bench: cannot make a temporary directory: {e}")))?;
    let cfg = Config {
        size,
        runs: opts.runs.max(1),
        quick: opts.quick,
        dir: dir.path().to_owned(),
    };
    let environment = env::collect(dir.path(), size, cfg.runs);
    let machine = load::machine();
    let progress = ProgressBar::new(steps(&suites, cfg.runs));
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("a valid template"),
    );
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for suite in &suites {
        match suite {
            Suite::Mmap => results.extend(mmap::run(&cfg, &progress, &mut notes)?),
            Suite::Shared => results.extend(shared::run(&cfg, &progress, &mut notes)?),
            Suite::Ipc => results.extend(ipc::run(&cfg, &progress, &mut notes)?),
            Suite::Image => results.extend(image::run(&cfg, &progress, &mut notes)?),
            Suite::Async => results.extend(aio::run(&cfg, &progress, &mut notes)?),
        }
    }
    progress.finish_and_clear();
    let claims = claims(&results, environment.cores);
    notes.extend(seq_ceiling(&results));
    print_summary(&environment, machine, &results, &claims, &notes)
        .map_err(|e| Failure::new(format!("writing output: {e}")))?;

    if let Some(path) = &opts.json {
        let report = Report {
            env: environment,
            machine,
            busy_fraction: load::BUSY_FRACTION,
            results: results
                .iter()
                .map(|r| ResultRow {
                    suite: r.suite,
                    group: r.group,
                    case: &r.case,
                    metric: match r.metric {
                        Metric::Throughput => "throughput",
                        Metric::Latency => "latency",
                        Metric::Fraction => "fraction",
                    },
                    unit: r.metric.unit(),
                    min: r.stats.min,
                    median: r.stats.median,
                    max: r.stats.max,
                    cost: r.cost,
                    load: r.load,
                    tail: r.tail,
                })
                .collect(),
            claims,
            notes: &notes,
        };
        let text = serde_json::to_string_pretty(&report).expect("plain data serialises");
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::new(format!("bench: writing {}: {e}", path.display())))?;
    }
    if let Some(dir) = &opts.plot {
        plots(dir, &results)?;
    }
    Ok(())
}

/// Progress steps: one per measured pass (warm-up included).
fn steps(suites: &[Suite], runs: usize) -> u64 {
    let per_group = |cases: usize, runs: usize| (cases * (runs + 1)) as u64;
    suites
        .iter()
        .map(|s| match s {
            Suite::Mmap => {
                per_group(8, runs)
                    + per_group(2, runs)
                    + 2 * per_group(2, runs)
                    + per_group(2, runs)
                    + 2 * per_group(2, runs)
                    + per_group(3, runs.min(3))
            }
            Suite::Shared => 4 * per_group(shared::Kind::ALL.len(), runs),
            // floor, 2 × 4 channel sizes, 2 × 4 pipe/socket sizes, 3 × 2
            // streams; under load 3 round trips and 2 streams
            Suite::Ipc => 1 + 8 + 8 + 6 + 3 + 2,
            // five "ready" cases, two residency cases of `runs` passes
            Suite::Image => per_group(5, runs) + 2 * runs as u64,
            // three cold scans and two channel runs per run
            Suite::Async => 5 * runs as u64,
        })
        .sum()
}

/// The result the case `id` tagged.
fn find(results: &[CaseResult], id: CaseId) -> Option<&CaseResult> {
    results.iter().find(|r| r.id == Some(id))
}

fn median(results: &[CaseResult], id: CaseId) -> Option<f64> {
    find(results, id).map(|r| r.stats.median)
}

/// The best `read()` scan (highest median throughput), warm.
fn best_read(results: &[CaseResult]) -> Option<&CaseResult> {
    CaseId::READ_SCANS
        .iter()
        .filter_map(|&id| find(results, id))
        .max_by(|a, b| a.stats.median.total_cmp(&b.stats.median))
}

/// The claims, each from the ratio of two medians and the load its cases
/// ran under.
fn claims(results: &[CaseResult], cores: usize) -> Vec<Claim> {
    use CaseId::*;
    use Goal::*;
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let m = |id| median(results, id);
    let best = best_read(results);
    let claim = |id, ratio: Option<f64>, goal: Goal, cases: &[CaseId], meaning| {
        let load = cases
            .iter()
            .filter_map(|&c| find(results, c))
            .map(|r| r.load)
            .reduce(Load::worst);
        let holds = ratio.is_some_and(|r| goal.met(r));
        let verdict = match (ratio, load) {
            (None, _) => "not run",
            (Some(_), Some(l)) if l.busy(cores) => "busy",
            (Some(_), _) if holds => "holds",
            (Some(_), _) => "missed",
        };
        Claim {
            id,
            ratio: ratio.map(round2),
            goal: goal.text(),
            verdict,
            holds,
            load,
            meaning,
        }
    };
    let scans = [ViewReused, ReadScan4K, ReadScan64K, ReadScan1M];
    let mut claims = vec![
        claim(
            "channel_rtt_vs_floor",
            ratio(m(FloorRtt8), m(ChannelSpinRtt8)),
            AtLeast(0.67),
            &[FloorRtt8, ChannelSpinRtt8],
            "the channel's busy-spin round trip against a bare cache line bounced between processes",
        ),
        claim(
            "pipe_rtt_vs_channel",
            ratio(m(PipeRtt8), m(ChannelSpinRtt8)),
            AtLeast(50.0),
            &[PipeRtt8, ChannelSpinRtt8],
            "a pipe round trip takes this many times the channel's",
        ),
        claim(
            "uds_rtt_vs_channel",
            ratio(m(UdsRtt8), m(ChannelSpinRtt8)),
            AtLeast(50.0),
            &[UdsRtt8, ChannelSpinRtt8],
            "a Unix-socket round trip takes this many times the channel's",
        ),
        claim(
            "channel_stream64k_vs_uds",
            ratio(m(ChannelStream64K), m(UdsStream64K)),
            AtLeast(4.0),
            &[ChannelStream64K, UdsStream64K],
            "streaming 64 KiB messages: channel GB/s over Unix-socket GB/s",
        ),
        claim(
            "zerocopy_4m_vs_8b",
            ratio(m(ChannelSpinRtt8), m(ChannelSpinRtt4M)),
            AtLeast(0.5),
            &[ChannelSpinRtt8, ChannelSpinRtt4M],
            "a loaned 4 MiB message's round trip against an 8-byte one",
        ),
        claim(
            "channel_loaded_rtt_vs_pipe",
            ratio(m(PipeLoadedRtt8), m(ChannelLoadedRtt8)),
            AtLeast(1.0),
            &[PipeLoadedRtt8, ChannelLoadedRtt8],
            "with every core kept busy, a pipe round trip takes this many times the channel's (default wait)",
        ),
        claim(
            "channel_loaded_stream_vs_uds",
            ratio(m(ChannelLoadedStream64K), m(UdsLoadedStream64K)),
            AtLeast(2.0),
            &[ChannelLoadedStream64K, UdsLoadedStream64K],
            "with every core kept busy, streaming 64 KiB: channel GB/s over Unix-socket GB/s",
        ),
        claim(
            "mmap_seq_vs_read",
            ratio(m(ViewReused), best.map(|r| r.stats.median)),
            AtLeast(1.8),
            &scans,
            "a reused view scans a warm file this many times faster than the best read()",
        ),
        claim(
            "mmap_rand8_vs_pread",
            ratio(m(Pread8), m(ViewLoad8)),
            AtLeast(10.0),
            &[Pread8, ViewLoad8],
            "a random 8-byte load from a view is this many times faster than pread()",
        ),
        claim(
            "mmap_scan_vs_memory",
            ratio(m(ViewReused), m(PrivateResident)),
            AtLeast(0.9),
            &[ViewReused, PrivateResident],
            "a reused view scans at this fraction of a resident private buffer (the limit)",
        ),
        claim(
            "shared_vs_private_seq",
            ratio(m(SeqReadNamed), m(SeqReadPrivate4K)),
            Within(0.95, 1.05),
            &[SeqReadNamed, SeqReadPrivate4K],
            "a named section reads sequentially at this fraction of private memory (4 KiB pages both)",
        ),
        claim(
            "shared_vs_private_rand",
            ratio(m(Random8Private4K), m(Random8Named)),
            Within(0.95, 1.05),
            &[Random8Private4K, Random8Named],
            "a named section serves random 8-byte reads at this fraction of private memory's speed",
        ),
    ];
    claims.push(claim(
        "image_map_vs_read_ready",
        ratio(m(ImageReadCold), m(ImageMapCold)),
        AtLeast(20.0),
        &[ImageReadCold, ImageMapCold],
        "from a cold cache, reading a 64 MiB image whole takes this many times as long as mapping it as an image",
    ));
    claims.push(claim(
        "image_resident_after_one_call",
        m(ImageResidentRandom),
        AtMost(0.02),
        &[ImageResidentRandom],
        "fraction of a 64 MiB image in memory after one function call from a cold cache, read-ahead off",
    ));
    claims.push(claim(
        "async_view_stall_p99_vs_plain",
        ratio(m(AsyncStallPlain), m(AsyncStallView)),
        AtLeast(3.0),
        &[AsyncStallPlain, AsyncStallView],
        "scanning a cold file on one tokio thread, the p99 stall through a plain view over the view populated ahead with aio::populate",
    ));
    claims.push(claim(
        "async_view_vs_tokio_fs",
        ratio(m(AsyncScanView), m(AsyncScanFs)),
        AtLeast(0.9),
        &[AsyncScanView, AsyncScanFs],
        "a cold scan through a view populated ahead, in GB/s, over tokio::fs reads of 1 MiB",
    ));
    claims.push(claim(
        "async_channel_rtt_vs_uds",
        ratio(m(AsyncUdsRtt8), m(AsyncChannelRtt8)),
        AtLeast(1.5),
        &[AsyncUdsRtt8, AsyncChannelRtt8],
        "an 8-byte round trip, both sides awaiting: tokio UnixStream over the aio channel",
    ));
    claims.push(claim(
        "async_channel_stream64k_vs_uds",
        ratio(m(AsyncChannelStream64K), m(AsyncUdsStream64K)),
        AtLeast(4.0),
        &[AsyncChannelStream64K, AsyncUdsStream64K],
        "streaming 64 KiB blocks, each produced and summed, both sides awaiting: aio channel (in place) GB/s over tokio UnixStream GB/s",
    ));
    // Only in a build with the other middleware (`--features peers`).
    if cfg!(feature = "peers") {
        claims.push(claim(
            "channel_rtt_vs_iceoryx2",
            ratio(m(Iceoryx2Rtt8), m(ChannelSpinRtt8)),
            AtLeast(1.0),
            &[Iceoryx2Rtt8, ChannelSpinRtt8],
            "an iceoryx2 publish-subscribe round trip takes this many times the channel's",
        ));
    }
    claims
}

/// How far `mmap_seq_vs_read` can go on this machine: a `read()` pass
/// copies every byte and then checksums the copy in cache; a view pass
/// only checksums. Both read memory at the same rate, so the best ratio is
/// `view rate × (1/copy rate + 1/in-cache checksum rate)`.
fn seq_ceiling(results: &[CaseResult]) -> Option<String> {
    let view = median(results, CaseId::ViewReused)?;
    let copy = median(results, CaseId::Memcpy1M)?;
    let sum = median(results, CaseId::ChecksumInCache)?;
    let ceiling = view * (1.0 / copy + 1.0 / sum);
    Some(format!(
        "mmap_seq_vs_read ceiling here: read() must copy every byte ({copy:.1} GB/s) and checksum it in cache ({sum:.1} GB/s); a view only checksums ({view:.1} GB/s), so read() can be at most {ceiling:.2}x slower"
    ))
}

/// The case each group is compared with, and whether higher is better.
fn reference<'a>(results: &'a [CaseResult], r: &CaseResult) -> Option<&'a CaseResult> {
    match (r.suite, r.group) {
        ("mmap", "scan") => best_read(results),
        ("ipc", _) => None,
        // Fractions of a file: nothing to be faster than.
        ("image", "resident after one call") => None,
        // Each group's first case is the one the others are compared with.
        ("async", _) => results
            .iter()
            .find(|x| x.suite == r.suite && x.group == r.group),
        ("shared", _) => results
            .iter()
            .find(|x| x.group == r.group && x.case.ends_with("private, 4 KiB pages")),
        _ => results
            .iter()
            .find(|x| x.suite == r.suite && x.group == r.group),
    }
}

/// How many times better than the reference (> 1: better).
fn speedup(r: &CaseResult, reference: &CaseResult) -> f64 {
    match r.metric {
        Metric::Throughput => r.stats.median / reference.stats.median,
        Metric::Latency | Metric::Fraction => reference.stats.median / r.stats.median,
    }
}

/// A measured value as it reads best: whole nanoseconds from 100 ns up,
/// otherwise enough digits to tell values apart.
fn value(v: f64) -> String {
    if !v.is_finite() {
        "-".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Others' CPU time during a case, and a mark when it was too much.
fn load_cell(load: Load, cores: usize) -> String {
    let mark = if load.busy(cores) { " BUSY" } else { "" };
    format!("{:.2}{mark}", load.cores())
}

fn print_summary(
    env: &env::Env,
    machine: load::Machine,
    results: &[CaseResult],
    claims: &[Claim],
    notes: &[String],
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "sect bench: {} ({} cores), {}, page {} B, THP enabled={} shmem={}, data {} on {}, {} runs per case",
        env.cpu,
        env.cores,
        env.kernel,
        env.page_size,
        env.thp_enabled,
        env.thp_shmem_enabled,
        human(env.data_size),
        env.data_file_system,
        env.runs
    )?;
    writeln!(
        out,
        "load at start: others used {:.2} cores, 1-minute load average {:.2}, {} runnable tasks \
         not ours. LOAD columns: CPU time others used (plus stolen) while a case ran (at least the \
         last {} ms), in cores; above {:.2} cores ({:.0}% of the machine) a case is BUSY and its \
         claims get no verdict",
        machine.load.cores(),
        machine.load_average_1m,
        machine.others_runnable,
        load::MIN_WINDOW.as_millis(),
        load::BUSY_FRACTION * env.cores as f64,
        load::BUSY_FRACTION * 100.0
    )?;
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in results {
        if !groups.contains(&(r.suite, r.group)) {
            groups.push((r.suite, r.group));
        }
    }
    for (suite, group) in groups {
        let members: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.suite == suite && r.group == group)
            .collect();
        if members.iter().all(|r| r.tail.is_some()) {
            print_latencies(&mut out, suite, group, &members, env.cores)?;
            continue;
        }
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|r| {
                let vs = reference(results, r)
                    .map_or(String::new(), |base| format!("{:.2}x", speedup(r, base)));
                let mut row = vec![
                    r.case.clone(),
                    value(r.stats.median),
                    value(r.stats.min),
                    value(r.stats.max),
                    r.metric.unit().to_owned(),
                    vs,
                ];
                match r.cost {
                    Some(c) => row.extend([
                        format!("{:.0}", c.minor_faults),
                        format!("{:.0}", c.major_faults),
                        format!("{:.1}", c.sys_ms),
                    ]),
                    None => row.extend(["-".to_owned(), "-".to_owned(), "-".to_owned()]),
                }
                row.push(load_cell(r.load, env.cores));
                row
            })
            .collect();
        let base = match (suite, group) {
            ("mmap", "scan") => "best read()".to_owned(),
            _ => members
                .first()
                .and_then(|r| reference(results, r))
                .map_or(String::new(), |b| b.case.clone()),
        };
        if base.is_empty() {
            writeln!(
                out,
                "\n{suite} / {group} (median, min and max over the runs)"
            )?;
        } else {
            writeln!(
                out,
                "\n{suite} / {group} (median, min and max over the runs; speed-up vs {base}; faults and system time per pass)"
            )?;
        }
        write!(
            out,
            "{}",
            table(
                &[
                    "CASE", "MEDIAN", "MIN", "MAX", "UNIT", "VS", "MINFLT", "MAJFLT", "SYS ms",
                    "LOAD"
                ],
                &rows
            )
        )?;
    }
    if !notes.is_empty() {
        writeln!(out)?;
        for n in notes {
            writeln!(out, "note: {n}")?;
        }
    }
    writeln!(
        out,
        "\nclaims (ratios of medians measured in this run, compared at the precision shown):"
    )?;
    for c in claims {
        match c.ratio {
            Some(r) => writeln!(
                out,
                "  {:<7} {:<28} {r:>7.2}  goal {:<10} load {:<5} {}",
                c.verdict.to_uppercase(),
                c.id,
                c.goal,
                c.load
                    .map_or("-".to_owned(), |l| format!("{:.2}", l.cores())),
                c.meaning
            )?,
            None => writeln!(out, "  {:<7} {:<28} {:>7}  (suite not run)", "-", c.id, "-")?,
        }
    }
    if claims.iter().any(|c| c.verdict == "busy") {
        writeln!(
            out,
            "BUSY: other programs used the CPUs while these claims' cases ran; run again on a quiet machine for a verdict"
        )?;
    }
    Ok(())
}

/// A round-trip group: one row per case, percentiles as columns.
fn print_latencies(
    out: &mut impl Write,
    suite: &str,
    group: &str,
    members: &[&CaseResult],
    cores: usize,
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = members
        .iter()
        .filter_map(|r| {
            let t = r.tail?;
            let spread = if r.stats.min < r.stats.max {
                format!("{:.0}-{:.0}", r.stats.min, r.stats.max)
            } else {
                "-".to_owned()
            };
            Some(vec![
                r.case.clone(),
                format!("{:.0}", r.stats.median),
                spread,
                t.p99.to_string(),
                t.p999.to_string(),
                t.max.to_string(),
                load_cell(r.load, cores),
            ])
        })
        .collect();
    writeln!(
        out,
        "\n{suite} / {group} (ns; p50 is the median of the runs' medians, with their range; the tail pools every run)"
    )?;
    write!(
        out,
        "{}",
        table(
            &["CASE", "p50", "p50 RUNS", "p99", "p99.9", "MAX", "LOAD"],
            &rows
        )
    )
}

fn plots(dir: &Path, results: &[CaseResult]) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(format!("plot: {}: {e}", dir.display())))?;
    let pick = |suite: &str, group: &str| -> Vec<(String, f64)> {
        results
            .iter()
            .filter(|r| r.suite == suite && r.group == group)
            .map(|r| (r.case.clone(), r.stats.median))
            .collect()
    };
    let scan: Vec<_> = pick("mmap", "scan")
        .into_iter()
        .filter(|(c, _)| c != "private buffer (resident)")
        .collect();
    plot::bars(
        &dir.join("mmap-scan.svg"),
        "Sequential scan of a warm file (median)",
        "GB/s",
        &scan,
        median(results, CaseId::PrivateResident).map(|v| ("resident private buffer (limit)", v)),
    )?;
    let mut random = pick("mmap", "random 8 B");
    random.extend(pick("mmap", "random 4 KiB"));
    plot::bars(
        &dir.join("mmap-random.svg"),
        "Random reads (median)",
        "ns per read",
        &random,
        None,
    )?;
    let shared: Vec<_> = pick("shared", "sequential read")
        .into_iter()
        .filter(|(c, _)| !c.ends_with("private, 4 KiB pages"))
        .collect();
    plot::bars(
        &dir.join("shared-seq.svg"),
        "Sequential read: shared vs private memory (median)",
        "GB/s",
        &shared,
        median(results, CaseId::SeqReadPrivate4K).map(|v| ("private, 4 KiB pages", v)),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_are_met_at_the_precision_shown() {
        // 0.8951 prints as 0.90: it meets ">= 0.90".
        assert!(Goal::AtLeast(0.9).met(0.8951));
        assert!(!Goal::AtLeast(0.9).met(0.8949));
        assert!(Goal::AtLeast(0.67).met(0.6650));
        assert_eq!(Goal::AtLeast(0.9).text(), ">= 0.90");
        assert_eq!(Goal::Within(0.95, 1.05).text(), "0.95..1.05");
        assert!(Goal::Within(0.95, 1.05).met(1.0549));
        assert!(!Goal::Within(0.95, 1.05).met(1.0551));
    }

    #[test]
    fn values_read_as_they_should() {
        assert_eq!(value(62655.4), "62655");
        assert_eq!(value(120.0), "120");
        assert_eq!(value(17.54), "17.5");
        assert_eq!(value(3.216), "3.22");
    }
}
