//! The `image` suite: an image section against reading the file. The bench
//! builds a shared object of 64 MiB with the system C compiler (one tiny
//! function and 64 MiB of initialised read-only data, file-backed, not
//! `.bss`; the function reads one byte in the middle of the data), then
//! measures
//! - how long it takes to make it ready: open, parse and map it as an
//!   image, against reading the whole file into memory, both from a cold
//!   page cache (and warm, for scale);
//! - how much of it is in memory after one function is called: the image
//!   is mapped, its file evicted, the function called, and the page cache
//!   asked (`mincore`); with the kernel's default read-ahead and with
//!   read-ahead off for the view (`MADV_RANDOM`);
//! - that two processes mapping it share its pages (`/proc/PID/smaps`).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::ProgressBar;
use sections::{Advice, Image, MappedImage};

use super::cases::CaseId;
use super::latency::spawn;
use super::load::Meter;
use super::runner::{measure, Case, CaseResult, Metric, Sample, Stats};
use super::Config;
use crate::units::human;
use crate::Failure;

const SUITE: &str = "image";
/// The read-only data of the generated image.
pub const BLOB: u64 = 64 << 20;
/// How much of the data both processes read in the sharing check.
const SHARED_READ: u64 = 4 << 20;

const SOURCE: &str = r#"
#define BLOB (64ul << 20)
const unsigned char blob[BLOB] = {1};
unsigned long answer(void) { return 42 + *(volatile const unsigned char *)&blob[BLOB / 2]; }
"#;

fn fail(what: impl std::fmt::Display) -> Failure {
    Failure::new(format!("bench {SUITE}: {what}"))
}

/// Builds the image in `dir`; `None` (with the reason) if there is no C
/// compiler.
fn generate(dir: &Path) -> Result<Result<PathBuf, String>, Failure> {
    let c = dir.join("image.c");
    std::fs::write(&c, SOURCE).map_err(fail)?;
    let out = dir.join("image.so");
    let result = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-nostdlib",
            "-fvisibility=hidden",
            "-O2",
        ])
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .stderr(Stdio::piped())
        .output();
    match result {
        Ok(o) if o.status.success() => Ok(Ok(out)),
        Ok(o) => Ok(Err(format!(
            "the C compiler failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Ok(Err(format!("no C compiler (cc: {e})"))),
    }
}

fn evict(file: &File) -> Result<(), Failure> {
    file.sync_all().map_err(fail)?;
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| fail(format!("posix_fadvise(DONTNEED): {e}")))
}

fn open_and_map(path: &Path) -> Result<MappedImage, Failure> {
    Ok(Image::open(path)?.map()?)
}

fn call_answer(mapped: &MappedImage) -> Result<u64, Failure> {
    // SAFETY: `answer` is `unsigned long answer(void)` in SOURCE, and the
    // image needs no relocation (`function` checks).
    let answer: extern "C" fn() -> u64 = unsafe { mapped.function("answer") }?;
    Ok(answer())
}

/// Reads one byte per page of the first `len` bytes of `blob`.
fn touch_blob(mapped: &MappedImage, len: u64) -> Result<u64, Failure> {
    let at = mapped.symbol_address("blob")?;
    let mut sum = 0u64;
    for off in (0..len.min(BLOB)).step_by(sections::granularity()) {
        // SAFETY: inside `blob`, a read-only segment of the live mapping
        // whose file (ours, in our private directory) nobody truncates.
        sum += u64::from(unsafe { std::ptr::read_volatile(at.add(off as usize)) });
    }
    Ok(sum)
}

/// The peer of the sharing check: maps the image, calls the function,
/// reads the same data, says "ready" and waits for its stdin to close.
pub fn peer(path: &str) -> Result<(), Failure> {
    let mapped = open_and_map(Path::new(path))?;
    call_answer(&mapped)?;
    touch_blob(&mapped, SHARED_READ)?;
    println!("ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}

/// (Rss, shared) kB of the mapping holding `addr` in `/proc/self/smaps`;
/// shared is Shared_Clean + Shared_Dirty: pages another process maps too.
fn smaps_kb(addr: usize) -> Result<(u64, u64), Failure> {
    let text = std::fs::read_to_string("/proc/self/smaps").map_err(fail)?;
    let mut inside = false;
    let (mut rss, mut shared) = (0, 0);
    for line in text.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    if inside {
                        break;
                    }
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
        }
        if inside {
            let kb = |v: &str| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0)
            };
            if let Some(v) = line.strip_prefix("Rss:") {
                rss = kb(v);
            } else if let Some(v) = line.strip_prefix("Shared_Clean:") {
                shared += kb(v);
            } else if let Some(v) = line.strip_prefix("Shared_Dirty:") {
                shared += kb(v);
            }
        }
    }
    Ok((rss, shared))
}

pub fn run(
    cfg: &Config,
    progress: &ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseResult>, Failure> {
    progress.set_message(format!("{SUITE}: building a {} image", human(BLOB)));
    let path = match generate(&cfg.dir)? {
        Ok(p) => p,
        Err(why) => {
            notes.push(format!("image: skipped: {why}"));
            return Ok(Vec::new());
        }
    };
    let file = File::open(&path).map_err(fail)?;
    let file_len = file.metadata().map_err(fail)?.len();
    let page = sections::granularity() as u64;
    let mut results = Vec::new();
    // Cold cases are cold only where eviction works (not on tmpfs).
    evict(&file)?;
    let left = Image::open(&path)?
        .page_cache()?
        .ok_or_else(|| fail("the page cache does not report our own file"))?
        .total();
    let evicts = left.resident_pages * 10 <= left.total_pages;
    if !evicts {
        notes.push(format!(
            "image: eviction did not work ({} of {} pages stayed cached after posix_fadvise(DONTNEED); is the temporary directory on tmpfs?): the cold cases are warm, and the residency claim is not given",
            left.resident_pages, left.total_pages
        ));
    }

    // Ready to use: mapped as an image against read whole.
    {
        let p = &path;
        let f = &file;
        let cases = vec![
            Case::new(
                "image: open + map, cold cache",
                Metric::Latency,
                move || {
                    evict(f)?;
                    Sample::time(|| {
                        let m = open_and_map(p)?;
                        Ok((1.0, m.len() as u64))
                    })
                },
            )
            .id(evicts.then_some(CaseId::ImageMapCold))
            .alone(),
            // What mapping defers: every page read once, by touching it.
            Case::new(
                "image: open + map + touch every page, cold cache",
                Metric::Latency,
                move || {
                    evict(f)?;
                    Sample::time(|| {
                        let m = open_and_map(p)?;
                        let sum = touch_blob(&m, BLOB)?;
                        Ok((1.0, sum))
                    })
                },
            )
            .alone(),
            Case::new("read whole file, cold cache", Metric::Latency, move || {
                evict(f)?;
                Sample::time(|| {
                    let v = std::fs::read(p).map_err(fail)?;
                    Ok((1.0, v.len() as u64))
                })
            })
            .id(evicts.then_some(CaseId::ImageReadCold))
            .alone(),
            Case::new(
                "image: open + map, warm cache",
                Metric::Latency,
                move || {
                    Sample::time(|| {
                        let m = open_and_map(p)?;
                        Ok((1.0, m.len() as u64))
                    })
                },
            )
            .alone(),
            Case::new("read whole file, warm cache", Metric::Latency, move || {
                Sample::time(|| {
                    let v = std::fs::read(p).map_err(fail)?;
                    Ok((1.0, v.len() as u64))
                })
            })
            .alone(),
        ];
        results.extend(measure(SUITE, "ready", cases, cfg.plan(), progress)?);
    }

    // Resident after one call, cold cache, read-ahead on and off.
    progress.set_message(format!("{SUITE}: residency after one call"));
    let mut touched_pages = Vec::new();
    let mut cached_pages = Vec::new();
    for (label, random, id) in [
        ("resident after one call, default read-ahead", false, None),
        (
            "resident after one call, read-ahead off (MADV_RANDOM)",
            true,
            Some(CaseId::ImageResidentRandom),
        ),
    ] {
        let meter = Meter::start();
        let mut fractions = Vec::new();
        for _ in 0..cfg.runs.max(1) {
            let image = Image::open(&path)?;
            let mapped = image.map()?;
            if random {
                mapped.advise(Advice::Random)?;
            }
            evict(&file)?;
            if call_answer(&mapped)? != 42 {
                return Err(fail("the image's function returned a wrong answer"));
            }
            let after = image
                .page_cache()?
                .ok_or_else(|| fail("the page cache does not report our own file"))?
                .total();
            fractions.push(after.resident_pages as f64 / after.total_pages.max(1) as f64);
            cached_pages.push((random, after.resident_pages));
            touched_pages.push((random, mapped.touched()?.total().resident_pages));
            progress.inc(1);
        }
        results.push(CaseResult {
            suite: SUITE,
            group: "resident after one call",
            case: label.to_owned(),
            id: id.filter(|_| evicts),
            metric: Metric::Fraction,
            stats: Stats::of(&fractions),
            cost: None,
            load: meter.stop(),
            tail: None,
        });
    }
    let most = |random: bool| {
        touched_pages
            .iter()
            .filter(|t| t.0 == random)
            .map(|t| t.1)
            .max()
            .unwrap_or(0)
    };
    let cached = |random: bool| {
        let mut v: Vec<usize> = cached_pages
            .iter()
            .filter(|t: &&(bool, usize)| t.0 == random)
            .map(|t| t.1)
            .collect();
        v.sort_unstable();
        v.get(v.len() / 2).map_or(0, |&n| n as u64 * page)
    };
    notes.push(format!(
        "image: after one call (median) {} of the file was cached with default read-ahead, {} with it off; the process had mapped at most {} pages with default read-ahead, {} with it off; the file is {} ({} pages)",
        human(cached(false)),
        human(cached(true)),
        most(false),
        most(true),
        human(file_len),
        file_len.div_ceil(page)
    ));

    // Two processes share the image's pages.
    progress.set_message(format!("{SUITE}: sharing between processes"));
    let mapped = open_and_map(&path)?;
    call_answer(&mapped)?;
    touch_blob(&mapped, SHARED_READ)?;
    let path_text = path
        .to_str()
        .ok_or_else(|| fail("temporary path is not UTF-8"))?;
    let mut child = spawn(SUITE, path_text, |c| {
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
    })?;
    let mut out = BufReader::new(child.stdout.take().ok_or_else(|| fail("no stdout"))?);
    let mut line = String::new();
    out.read_line(&mut line).map_err(fail)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        return Err(fail("the peer did not map the image"));
    }
    let code = smaps_kb(mapped.symbol_address("answer")? as usize)?;
    let data = smaps_kb(mapped.symbol_address("blob")? as usize)?;
    drop(child.stdin.take());
    child.wait().map_err(fail)?;
    notes.push(format!(
        "image: two processes mapping it share its pages (/proc/self/smaps while both ran): code {} of {} KiB resident shared, read-only data {} of {} KiB",
        code.1, code.0, data.1, data.0
    ));
    Ok(results)
}
