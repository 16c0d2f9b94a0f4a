//! `sect bench`: the claims sections rest on, measured on this machine
//! against the alternative in the same run, and reported as ratios.

mod cases;
mod env;
#[cfg(feature = "peers")]
mod iceoryx;
mod ipc;
mod latency;
mod mmap;
mod plot;
mod runner;
mod shared;

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use cases::CaseId;
use runner::{CaseResult, Metric, PassCost};

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
}

#[derive(Debug, Serialize)]
struct Claim {
    id: &'static str,
    ratio: Option<f64>,
    goal: &'static str,
    holds: bool,
    #[serde(skip)]
    meaning: &'static str,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    env: env::Env,
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
        vec![Suite::Mmap, Suite::Shared, Suite::Ipc]
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
        }
    }
    progress.finish_and_clear();
    let claims = claims(&results);
    notes.extend(seq_ceiling(&results));
    print_summary(&environment, &results, &claims, &notes)
        .map_err(|e| Failure::new(format!("writing output: {e}")))?;

    if let Some(path) = &opts.json {
        let report = Report {
            env: environment,
            results: results
                .iter()
                .map(|r| ResultRow {
                    suite: r.suite,
                    group: r.group,
                    case: &r.case,
                    metric: match r.metric {
                        Metric::Throughput => "throughput",
                        Metric::Latency => "latency",
                    },
                    unit: r.metric.unit(),
                    min: r.stats.min,
                    median: r.stats.median,
                    max: r.stats.max,
                    cost: r.cost,
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
            // floor, 2 × 4 channel sizes, 2 × 4 pipe/socket sizes, 3 × 2 streams
            Suite::Ipc => 1 + 8 + 8 + 6,
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

fn claims(results: &[CaseResult]) -> Vec<Claim> {
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let at_least = |r: Option<f64>, goal: f64| r.is_some_and(|r| r >= goal);
    let within = |r: Option<f64>| r.is_some_and(|r| (0.95..=1.05).contains(&r));
    let seq = ratio(
        median(results, CaseId::ViewReused),
        best_read(results).map(|r| r.stats.median),
    );
    let rand8 = ratio(
        median(results, CaseId::Pread8),
        median(results, CaseId::ViewLoad8),
    );
    let limit = ratio(
        median(results, CaseId::ViewReused),
        median(results, CaseId::PrivateResident),
    );
    let shared_seq = ratio(
        median(results, CaseId::SeqReadNamed),
        median(results, CaseId::SeqReadPrivate4K),
    );
    let shared_rand = ratio(
        median(results, CaseId::Random8Private4K),
        median(results, CaseId::Random8Named),
    );
    let floor = median(results, CaseId::FloorRtt8);
    let chan8 = median(results, CaseId::ChannelSpinRtt8);
    let chan4m = median(results, CaseId::ChannelSpinRtt4M);
    let pipe8 = median(results, CaseId::PipeRtt8);
    let uds8 = median(results, CaseId::UdsRtt8);
    let chan64k = median(results, CaseId::ChannelStream64K);
    let uds64k = median(results, CaseId::UdsStream64K);
    let rtt_floor = ratio(floor, chan8);
    let rtt_pipe = ratio(pipe8, chan8);
    let rtt_uds = ratio(uds8, chan8);
    let stream = ratio(chan64k, uds64k);
    let zerocopy = ratio(chan8, chan4m);

    let mut claims = vec![
        Claim {
            id: "channel_rtt_vs_floor",
            ratio: rtt_floor,
            goal: ">= 0.67",
            holds: at_least(rtt_floor, 0.67),
            meaning: "the channel's busy-spin round trip against a bare cache line bounced between processes",
        },
        Claim {
            id: "pipe_rtt_vs_channel",
            ratio: rtt_pipe,
            goal: ">= 50",
            holds: at_least(rtt_pipe, 50.0),
            meaning: "a pipe round trip takes this many times the channel's",
        },
        Claim {
            id: "uds_rtt_vs_channel",
            ratio: rtt_uds,
            goal: ">= 50",
            holds: at_least(rtt_uds, 50.0),
            meaning: "a Unix-socket round trip takes this many times the channel's",
        },
        Claim {
            id: "channel_stream64k_vs_uds",
            ratio: stream,
            goal: ">= 4",
            holds: at_least(stream, 4.0),
            meaning: "streaming 64 KiB messages: channel GB/s over Unix-socket GB/s",
        },
        Claim {
            id: "zerocopy_4m_vs_8b",
            ratio: zerocopy,
            goal: ">= 0.5",
            holds: at_least(zerocopy, 0.5),
            meaning: "a loaned 4 MiB message's round trip against an 8-byte one",
        },
        Claim {
            id: "mmap_seq_vs_read",
            ratio: seq,
            goal: ">= 1.8",
            holds: at_least(seq, 1.8),
            meaning: "a reused view scans a warm file this many times faster than the best read()",
        },
        Claim {
            id: "mmap_rand8_vs_pread",
            ratio: rand8,
            goal: ">= 10",
            holds: at_least(rand8, 10.0),
            meaning: "a random 8-byte load from a view is this many times faster than pread()",
        },
        Claim {
            id: "mmap_scan_vs_memory",
            ratio: limit,
            goal: ">= 0.9",
            holds: at_least(limit, 0.9),
            meaning: "a reused view scans at this fraction of a resident private buffer (the limit)",
        },
        Claim {
            id: "shared_vs_private_seq",
            ratio: shared_seq,
            goal: "0.95..1.05",
            holds: within(shared_seq),
            meaning: "a named section reads sequentially at this fraction of private memory (4 KiB pages both)",
        },
        Claim {
            id: "shared_vs_private_rand",
            ratio: shared_rand,
            goal: "0.95..1.05",
            holds: within(shared_rand),
            meaning: "a named section serves random 8-byte reads at this fraction of private memory's speed",
        },
    ];
    // Only in a build with the other middleware (`--features peers`).
    if cfg!(feature = "peers") {
        let iox = ratio(median(results, CaseId::Iceoryx2Rtt8), chan8);
        claims.push(Claim {
            id: "channel_rtt_vs_iceoryx2",
            ratio: iox,
            goal: ">= 1.0",
            holds: at_least(iox, 1.0),
            meaning: "an iceoryx2 publish-subscribe round trip takes this many times the channel's",
        });
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
        Metric::Latency => reference.stats.median / r.stats.median,
    }
}

fn print_summary(
    env: &env::Env,
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
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in results {
        if !groups.contains(&(r.suite, r.group)) {
            groups.push((r.suite, r.group));
        }
    }
    for (suite, group) in groups {
        let rows: Vec<Vec<String>> = results
            .iter()
            .filter(|r| r.suite == suite && r.group == group)
            .map(|r| {
                let vs = reference(results, r)
                    .map_or(String::new(), |base| format!("{:.2}x", speedup(r, base)));
                let mut row = vec![
                    r.case.clone(),
                    format!("{:.3}", r.stats.median),
                    format!("{:.3}", r.stats.min),
                    format!("{:.3}", r.stats.max),
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
                row
            })
            .collect();
        let base = match (suite, group) {
            ("mmap", "scan") => "best read()".to_owned(),
            _ => results
                .iter()
                .find(|r| r.suite == suite && r.group == group)
                .and_then(|r| reference(results, r))
                .map_or(String::new(), |b| b.case.clone()),
        };
        if base.is_empty() {
            writeln!(out, "\n{suite} / {group}")?;
        } else {
            writeln!(
                out,
                "\n{suite} / {group} (speed-up vs {base}; faults and system time per pass)"
            )?;
        }
        write!(
            out,
            "{}",
            table(
                &["CASE", "MEDIAN", "MIN", "MAX", "UNIT", "VS", "MINFLT", "MAJFLT", "SYS ms"],
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
    writeln!(out, "\nclaims (ratios of medians measured in this run):")?;
    for c in claims {
        match c.ratio {
            Some(r) => writeln!(
                out,
                "  {:<6} {:<24} {r:>7.2}  goal {:<10} {}",
                if c.holds { "holds" } else { "MISSED" },
                c.id,
                c.goal,
                c.meaning
            )?,
            None => writeln!(out, "  {:<6} {:<24} {:>7}  (suite not run)", "-", c.id, "-")?,
        }
    }
    Ok(())
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
