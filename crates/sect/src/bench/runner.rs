//! Measuring: warm-up, interleaved runs, min/median/max, faults and system
//! time per case, and a check that every variant computed the same thing.

use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;

use super::cases::CaseId;
use super::load::{Load, Meter};
use crate::Failure;

/// What one timed pass did.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub secs: f64,
    /// Bytes (throughput cases) or operations (latency cases).
    pub work: f64,
    /// A checksum of what was read; variants in one group must agree.
    pub check: u64,
}

impl Sample {
    /// Times `f`, which returns `(work, checksum)`.
    pub fn time(f: impl FnOnce() -> Result<(f64, u64), Failure>) -> Result<Sample, Failure> {
        let start = Instant::now();
        let (work, check) = f()?;
        Ok(Sample {
            secs: start.elapsed().as_secs_f64(),
            work,
            check,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Metric {
    /// Gigabytes per second; higher is better.
    Throughput,
    /// Nanoseconds per operation; lower is better.
    Latency,
    /// A fraction (of a file, resident); lower is better. Measured by the
    /// suite itself, never by `measure`.
    Fraction,
}

impl Metric {
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Throughput => "GB/s",
            Metric::Latency => "ns/op",
            Metric::Fraction => "of file",
        }
    }

    fn value(self, s: &Sample) -> f64 {
        match self {
            Metric::Throughput => s.work / s.secs / 1e9,
            Metric::Latency => s.secs * 1e9 / s.work.max(1.0),
            Metric::Fraction => s.work,
        }
    }
}

/// A variant to measure. Cases in one group run interleaved, and all that
/// share `agree` must return the same checksum.
pub struct Case<'a> {
    pub name: String,
    /// The id claims know this case by, if any refers to it.
    pub id: Option<CaseId>,
    pub metric: Metric,
    pub agree: bool,
    pub run: Box<dyn FnMut() -> Result<Sample, Failure> + 'a>,
}

impl<'a> Case<'a> {
    pub fn new(
        name: impl Into<String>,
        metric: Metric,
        run: impl FnMut() -> Result<Sample, Failure> + 'a,
    ) -> Self {
        Case {
            name: name.into(),
            id: None,
            metric,
            agree: true,
            run: Box::new(run),
        }
    }

    /// Tags the case with the id claims refer to it by.
    pub fn id(mut self, id: impl Into<Option<CaseId>>) -> Self {
        self.id = id.into();
        self
    }

    /// A case whose checksum is not comparable with the others'.
    pub fn alone(mut self) -> Self {
        self.agree = false;
        self
    }
}

/// Evicts the CPU caches (not the page cache) by reading a buffer larger
/// than any last-level cache, so that random-access passes start cold
/// whichever case ran before them.
pub struct CacheFlusher(Vec<u64>);

impl CacheFlusher {
    pub fn new() -> Self {
        CacheFlusher(vec![1; (128 << 20) / 8])
    }

    pub fn flush(&self) {
        let sum = self.0.iter().fold(0u64, |a, &x| a.wrapping_add(x));
        std::hint::black_box(sum);
    }
}

/// min, median and max of a list.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stats {
            min: v.first().copied().unwrap_or(f64::NAN),
            median,
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Everything measured for one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub suite: &'static str,
    pub group: &'static str,
    pub case: String,
    pub id: Option<CaseId>,
    pub metric: Metric,
    pub stats: Stats,
    /// Medians over the runs of the page faults and system time of one pass;
    /// `None` where the case was not measured that way (the ipc suite).
    pub cost: Option<PassCost>,
    /// The load the case ran under (others' CPU time while it ran).
    pub load: Load,
    /// Round trips: the pooled distribution (`stats` is the p50 of each
    /// run).
    pub tail: Option<Tail>,
}

/// Percentiles of every round trip of a case, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tail {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Page faults and system time of one pass of a case.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PassCost {
    pub minor_faults: f64,
    pub major_faults: f64,
    pub sys_ms: f64,
}

/// Process-wide resource use (getrusage).
#[derive(Debug, Clone, Copy)]
struct Usage {
    minor: i64,
    major: i64,
    sys_us: i64,
}

fn usage() -> Usage {
    // SAFETY: `rusage` is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    Usage {
        minor: ru.ru_minflt,
        major: ru.ru_majflt,
        sys_us: ru.ru_stime.tv_sec * 1_000_000 + ru.ru_stime.tv_usec,
    }
}

/// At most this many passes are added up into one sample.
const MAX_REPS: usize = 16;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Measured runs per case, after one warm-up pass.
    pub runs: usize,
    /// How long one sample should take at least: short passes are repeated
    /// (round-robin across the cases) and added up, so that one noisy
    /// moment of a shared machine weighs less.
    pub sample_secs: f64,
}

impl Plan {
    pub fn at_most(self, runs: usize) -> Plan {
        Plan {
            runs: self.runs.min(runs),
            ..self
        }
    }
}

/// Runs every case once to warm up, then `runs` times, rotating the order
/// each run and interleaving repeated passes, so that drift affects every
/// case alike. Cases that must agree are checked on every pass.
pub fn measure(
    suite: &'static str,
    group: &'static str,
    mut cases: Vec<Case<'_>>,
    plan: Plan,
    progress: &ProgressBar,
) -> Result<Vec<CaseResult>, Failure> {
    let n = cases.len();
    let runs = plan.runs;
    let mut samples: Vec<Vec<(Sample, Usage)>> = vec![Vec::new(); n];
    let mut checks: Vec<u64> = vec![0; n];
    let mut reps: Vec<usize> = vec![1; n];
    progress.set_message(format!("{suite}: {group}"));
    for (i, case) in cases.iter_mut().enumerate() {
        let warm = (case.run)()?;
        checks[i] = warm.check;
        reps[i] = ((plan.sample_secs / warm.secs.max(1e-6)).ceil() as usize).clamp(1, MAX_REPS);
        progress.inc(1);
    }
    verify(suite, group, &cases, &checks)?;
    let most = reps.iter().copied().max().unwrap_or(1);
    // The runs are interleaved: one load for the whole group.
    let meter = Meter::start();
    for run in 0..runs {
        let mut acc: Vec<Option<(Sample, Usage)>> = vec![None; n];
        for rep in 0..most {
            for k in 0..n {
                let i = (k + run) % n;
                if rep >= reps[i] {
                    continue;
                }
                let before = usage();
                let sample = (cases[i].run)()?;
                let after = usage();
                if cases[i].agree && sample.check != checks[i] {
                    return Err(Failure::new(format!(
                        "bench {suite}/{group}: '{}' computed a different checksum on run {run}",
                        cases[i].name
                    )));
                }
                let used = Usage {
                    minor: after.minor - before.minor,
                    major: after.major - before.major,
                    sys_us: after.sys_us - before.sys_us,
                };
                acc[i] = Some(match acc[i] {
                    None => (sample, used),
                    Some((s, u)) => (
                        Sample {
                            secs: s.secs + sample.secs,
                            work: s.work + sample.work,
                            check: s.check,
                        },
                        Usage {
                            minor: u.minor + used.minor,
                            major: u.major + used.major,
                            sys_us: u.sys_us + used.sys_us,
                        },
                    ),
                });
            }
        }
        for (i, a) in acc.into_iter().enumerate() {
            let (s, u) = a.expect("every case ran at least once");
            // Faults and system time are reported per pass.
            let r = reps[i] as i64;
            samples[i].push((
                s,
                Usage {
                    minor: u.minor / r,
                    major: u.major / r,
                    sys_us: u.sys_us / r,
                },
            ));
        }
        progress.inc(n as u64);
    }
    let load = meter.stop();
    Ok(cases
        .iter()
        .zip(samples)
        .map(|(case, s)| {
            let values: Vec<f64> = s.iter().map(|(x, _)| case.metric.value(x)).collect();
            let med = |f: &dyn Fn(&Usage) -> f64| {
                Stats::of(&s.iter().map(|(_, u)| f(u)).collect::<Vec<_>>()).median
            };
            CaseResult {
                suite,
                group,
                case: case.name.clone(),
                id: case.id,
                metric: case.metric,
                stats: Stats::of(&values),
                cost: Some(PassCost {
                    minor_faults: med(&|u| u.minor as f64),
                    major_faults: med(&|u| u.major as f64),
                    sys_ms: med(&|u| u.sys_us as f64 / 1000.0),
                }),
                load,
                tail: None,
            }
        })
        .collect())
}

fn verify(suite: &str, group: &str, cases: &[Case<'_>], checks: &[u64]) -> Result<(), Failure> {
    let mut agreed: Option<(usize, u64)> = None;
    for (i, case) in cases.iter().enumerate() {
        if !case.agree {
            continue;
        }
        match agreed {
            None => agreed = Some((i, checks[i])),
            Some((first, want)) if checks[i] != want => {
                return Err(Failure::new(format!(
                    "bench {suite}/{group}: '{}' and '{}' disagree on the checksum ({want:#x} vs {:#x}): one of them does not read the same bytes",
                    cases[first].name, case.name, checks[i]
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The checksum every scan computes: the wrapping sum of the data's
/// little-endian 64-bit words (a final partial word is zero-padded). It
/// reads every byte, composes over chunks whose lengths are multiples of 8,
/// and compiles to the same vector loop whatever the source of the slice.
#[inline(never)]
pub fn checksum(data: &[u8]) -> u64 {
    let words = data.chunks_exact(8);
    let tail = words.remainder();
    let mut sum = words.fold(0u64, |acc, w| {
        acc.wrapping_add(u64::from_le_bytes(w.try_into().expect("chunks of 8")))
    });
    if !tail.is_empty() {
        let mut last = [0u8; 8];
        last[..tail.len()].copy_from_slice(tail);
        sum = sum.wrapping_add(u64::from_le_bytes(last));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_composes_over_chunks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = checksum(&data);
        for chunk in [8, 64, 4096] {
            let parts = data
                .chunks(chunk)
                .fold(0u64, |a, c| a.wrapping_add(checksum(c)));
            assert_eq!(parts, whole, "chunk {chunk}");
        }
        assert_ne!(checksum(&data[1..]), whole);
    }

    #[test]
    fn stats_of_odd_and_even() {
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Stats::of(&[1.0, 2.0, 3.0, 10.0]).median, 2.5);
    }

    #[test]
    fn disagreeing_variants_are_an_error() {
        let progress = ProgressBar::hidden();
        let cases = vec![
            Case::new("a", Metric::Throughput, || Sample::time(|| Ok((1.0, 1)))),
            Case::new("b", Metric::Throughput, || Sample::time(|| Ok((1.0, 2)))),
        ];
        let plan = Plan {
            runs: 1,
            sample_secs: 0.0,
        };
        let err = measure("t", "g", cases, plan, &progress).unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
    }
}
