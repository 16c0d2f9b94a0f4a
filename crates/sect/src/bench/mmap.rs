//! Suite `mmap`: reading a file through a view against `read()`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use sections::{Access, Advice, Section};

use super::cases::CaseId;
use super::runner::{checksum, measure, CacheFlusher, Case, CaseResult, Metric, Sample};
use super::Config;
use crate::units::human;
use crate::Failure;

const SUITE: &str = "mmap";

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Failure {
    move |e| Failure::new(format!("bench {SUITE}: {what}: {e}"))
}

/// Writes `size` bytes of pseudo-random data to `path`.
pub fn generate(path: &Path, size: u64, seed: u64) -> Result<(), Failure> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut file = File::create(path).map_err(io_err(path.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = chunk.len().min(left as usize);
        rng.fill(&mut chunk[..n]);
        file.write_all(&chunk[..n])
            .map_err(io_err(path.display()))?;
        left -= n as u64;
    }
    file.sync_all().map_err(io_err(path.display()))
}

/// Fills `buf` from `file` unless the file ends first; returns the count.
fn read_full(mut file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// One sequential pass with `read()` into `buf`, checksumming each chunk.
fn read_scan(mut file: &File, buf: &mut [u8], limit: usize) -> Result<(f64, u64), Failure> {
    file.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
    let (mut total, mut sum) = (0usize, 0u64);
    while total < limit {
        let want = buf.len().min(limit - total);
        let n = read_full(file, &mut buf[..want]).map_err(io_err("read"))?;
        sum = sum.wrapping_add(checksum(&buf[..n]));
        total += n;
        if n < want {
            break;
        }
    }
    Ok((total as f64, sum))
}

/// Checksums a view's bytes in place.
fn scan_view(view: &sections::View) -> (f64, u64) {
    // SAFETY: the bench's data file lives in its private temporary
    // directory and nothing writes it while the suite runs.
    let bytes = unsafe { view.as_slice() };
    (bytes.len() as f64, checksum(bytes))
}

fn evict(file: &File) -> Result<(), Failure> {
    file.sync_all().map_err(io_err("sync"))?;
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| io_err("posix_fadvise(DONTNEED)")(e.into()))
}

pub fn run(
    cfg: &Config,
    progress: &ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseResult>, Failure> {
    let path = cfg.dir.join("data.bin");
    generate(&path, cfg.size, 1)?;
    let len = cfg.size as usize;
    let file = File::open(&path).map_err(io_err(path.display()))?;
    let section = Section::from_path(&path, Access::Read)?;
    let mut results = Vec::new();
    {
        let reused = section.map_all(Access::Read)?;
        reused.prefetch(0, len)?;
        let private = std::fs::read(&path).map_err(io_err(path.display()))?;

        // Sequential scans, warm page cache.
        let mut cases = Vec::new();
        for (size, id) in [4usize << 10, 64 << 10, 1 << 20]
            .into_iter()
            .zip(CaseId::READ_SCANS)
        {
            let mut buf = vec![0u8; size];
            let file = &file;
            cases.push(
                Case::new(
                    format!("read() {}", human(size as u64)),
                    Metric::Throughput,
                    move || Sample::time(|| read_scan(file, &mut buf, len)),
                )
                .id(id),
            );
        }
        let s = &section;
        cases.push(Case::new(
            "view, mapped per pass",
            Metric::Throughput,
            move || Sample::time(|| Ok(scan_view(&s.map_all(Access::Read)?))),
        ));
        let r = &reused;
        cases.push(
            Case::new("view, reused", Metric::Throughput, move || {
                Sample::time(|| Ok(scan_view(r)))
            })
            .id(CaseId::ViewReused),
        );
        cases.push(Case::new(
            "view + prefetch",
            Metric::Throughput,
            move || {
                Sample::time(|| {
                    let v = s.map_all(Access::Read)?;
                    v.prefetch(0, len)?;
                    Ok(scan_view(&v))
                })
            },
        ));
        cases.push(Case::new(
            "view + sequential advice",
            Metric::Throughput,
            move || {
                Sample::time(|| {
                    let v = s.map_all(Access::Read)?;
                    v.advise(Advice::Sequential)?;
                    Ok(scan_view(&v))
                })
            },
        ));
        let p = &private;
        cases.push(
            Case::new("private buffer (resident)", Metric::Throughput, move || {
                Sample::time(|| Ok((p.len() as f64, checksum(p))))
            })
            .id(CaseId::PrivateResident),
        );
        results.extend(measure(SUITE, "scan", cases, cfg.plan(), progress)?);
        results.extend(limits(cfg, &private, progress)?);

        // Random point reads.
        // SAFETY: as in `scan_view`: nothing writes the data file.
        let bytes = unsafe { reused.as_slice() };
        results.extend(random_reads(cfg, &file, bytes, progress)?);
    }
    results.extend(copy_region(cfg, progress)?);
    results.extend(small_files(cfg, progress)?);
    results.extend(cold(cfg, &file, &section, progress, notes)?);
    Ok(results)
}

/// What a `read()` pass costs beyond a view pass: the copy of every byte
/// (memory to a cache-sized buffer, as the kernel's copy does) and the
/// checksum of the copy, now in cache.
fn limits(
    cfg: &Config,
    private: &[u8],
    progress: &ProgressBar,
) -> Result<Vec<CaseResult>, Failure> {
    let len = private.len();
    let mut small = vec![0u8; 64 << 10];
    fastrand::Rng::with_seed(7).fill(&mut small);
    let mut buf = vec![0u8; 1 << 20];
    let cases = vec![
        Case::new(
            "checksum in cache (64 KiB buffer)",
            Metric::Throughput,
            move || {
                Sample::time(|| {
                    let mut sum = 0u64;
                    for _ in 0..len / small.len() {
                        sum = sum.wrapping_add(checksum(std::hint::black_box(&small)));
                    }
                    Ok((len as f64, sum))
                })
            },
        )
        .id(CaseId::ChecksumInCache)
        .alone(),
        Case::new("memcpy to a 1 MiB buffer", Metric::Throughput, move || {
            Sample::time(|| {
                for chunk in private.chunks(buf.len()) {
                    buf[..chunk.len()].copy_from_slice(chunk);
                    std::hint::black_box(&buf);
                }
                Ok((len as f64, 0))
            })
        })
        .id(CaseId::Memcpy1M)
        .alone(),
    ];
    measure(SUITE, "limits", cases, cfg.plan(), progress)
}

fn offsets(count: usize, len: usize, align: usize, seed: u64) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let slots = (len - align) / align + 1;
    (0..count).map(|_| rng.usize(0..slots) * align).collect()
}

fn random_reads(
    cfg: &Config,
    file: &File,
    bytes: &[u8],
    progress: &ProgressBar,
) -> Result<Vec<CaseResult>, Failure> {
    let len = bytes.len();
    let ops = if cfg.quick { 100_000 } else { 300_000 };
    let at8 = offsets(ops, len, 8, 2);
    let at8 = &at8;
    let flusher = CacheFlusher::new();
    let flusher = &flusher;
    // Every pass starts with cold CPU caches, so that neither side reads
    // lines the other just brought in.
    let cold_cpu = move |f: &mut dyn FnMut() -> Result<(f64, u64), Failure>| {
        flusher.flush();
        Sample::time(f)
    };
    let cases = vec![
        Case::new("pread 8 B", Metric::Latency, move || {
            cold_cpu(&mut || {
                let mut sum = 0u64;
                let mut word = [0u8; 8];
                for &o in at8 {
                    file.read_exact_at(&mut word, o as u64)
                        .map_err(io_err("pread"))?;
                    sum = sum.wrapping_add(u64::from_le_bytes(word));
                }
                Ok((at8.len() as f64, sum))
            })
        })
        .id(CaseId::Pread8),
        Case::new("view load 8 B", Metric::Latency, move || {
            cold_cpu(&mut || {
                let sum = at8.iter().fold(0u64, |sum, &o| {
                    let word: [u8; 8] = bytes[o..o + 8].try_into().expect("8 bytes");
                    sum.wrapping_add(u64::from_le_bytes(word))
                });
                Ok((at8.len() as f64, sum))
            })
        })
        .id(CaseId::ViewLoad8),
    ];
    let mut results = measure(SUITE, "random 8 B", cases, cfg.plan(), progress)?;

    const PAGE: usize = 4096;
    let pages = if cfg.quick { 20_000 } else { 50_000 };
    let at4k = offsets(pages, len, PAGE, 3);
    let at4k = &at4k;
    let mut buf_a = vec![0u8; PAGE];
    let mut buf_b = vec![0u8; PAGE];
    let cases = vec![
        Case::new("pread 4 KiB", Metric::Latency, move || {
            cold_cpu(&mut || {
                let mut sum = 0u64;
                for &o in at4k {
                    file.read_exact_at(&mut buf_a, o as u64)
                        .map_err(io_err("pread"))?;
                    sum = sum.wrapping_add(checksum(&buf_a));
                }
                Ok((at4k.len() as f64, sum))
            })
        }),
        Case::new("view copy 4 KiB", Metric::Latency, move || {
            cold_cpu(&mut || {
                let mut sum = 0u64;
                for &o in at4k {
                    buf_b.copy_from_slice(&bytes[o..o + PAGE]);
                    sum = sum.wrapping_add(checksum(&buf_b));
                }
                Ok((at4k.len() as f64, sum))
            })
        }),
    ];
    results.extend(measure(SUITE, "random 4 KiB", cases, cfg.plan(), progress)?);
    Ok(results)
}

/// The article's memcpy example: copy a region to another place in the
/// same file.
fn copy_region(cfg: &Config, progress: &ProgressBar) -> Result<Vec<CaseResult>, Failure> {
    let half = (cfg.size.min(128 << 20) / 2) as usize / 4096 * 4096;
    let path: PathBuf = cfg.dir.join("copy.bin");
    generate(&path, 2 * half as u64, 4)?;
    let file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(path.display()))?;
    let section = Section::from_file(&file)?;
    let view = section.map_all(Access::ReadWrite)?;
    view.prefetch(0, 2 * half)?;
    let view = &view;
    let dst_sum = move || {
        // SAFETY: the copy file is private to the bench and not being
        // written while it is summed.
        checksum(&unsafe { view.as_slice() }[half..])
    };
    let mut buf = vec![0u8; 1 << 20];
    let file = &file;
    let cases = vec![
        Case::new("read()+write() 1 MiB", Metric::Throughput, move || {
            let start = Instant::now();
            let mut off = 0;
            while off < half {
                let n = buf.len().min(half - off);
                file.read_exact_at(&mut buf[..n], off as u64)
                    .map_err(io_err("pread"))?;
                file.write_all_at(&buf[..n], (half + off) as u64)
                    .map_err(io_err("pwrite"))?;
                off += n;
            }
            let secs = start.elapsed().as_secs_f64();
            Ok(Sample {
                secs,
                work: half as f64,
                check: dst_sum(),
            })
        }),
        Case::new("view copy_within", Metric::Throughput, move || {
            let start = Instant::now();
            // SAFETY: single-threaded; no other view or process touches the
            // bench's private copy file during the copy.
            unsafe { view.copy_within(0, half, half)? };
            let secs = start.elapsed().as_secs_f64();
            Ok(Sample {
                secs,
                work: half as f64,
                check: dst_sum(),
            })
        }),
    ];
    measure(SUITE, "copy in file", cases, cfg.plan(), progress)
}

/// Many small files: where `read()` wins.
fn small_files(cfg: &Config, progress: &ProgressBar) -> Result<Vec<CaseResult>, Failure> {
    let mut results = Vec::new();
    let classes: [(usize, usize, &'static str); 2] = if cfg.quick {
        [
            (4 << 10, 1000, "small files 4 KiB"),
            (64 << 10, 200, "small files 64 KiB"),
        ]
    } else {
        [
            (4 << 10, 2000, "small files 4 KiB"),
            (64 << 10, 500, "small files 64 KiB"),
        ]
    };
    for (size, count, group) in classes {
        let dir = cfg.dir.join(format!("small-{size}"));
        std::fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let paths: Vec<PathBuf> = (0..count)
            .map(|i| {
                let p = dir.join(format!("{i}.bin"));
                generate(&p, size as u64, 100 + i as u64).map(|()| p)
            })
            .collect::<Result<_, _>>()?;
        let paths = &paths;
        let mut buf = vec![0u8; size];
        let cases = vec![
            Case::new(
                format!("open+read ({})", human(size as u64)),
                Metric::Latency,
                move || {
                    Sample::time(|| {
                        let mut sum = 0u64;
                        for p in paths {
                            let f = File::open(p).map_err(io_err(p.display()))?;
                            let n = read_full(&f, &mut buf).map_err(io_err(p.display()))?;
                            sum = sum.wrapping_add(checksum(&buf[..n]));
                        }
                        Ok((paths.len() as f64, sum))
                    })
                },
            ),
            Case::new(
                format!("open+map ({})", human(size as u64)),
                Metric::Latency,
                move || {
                    Sample::time(|| {
                        let mut sum = 0u64;
                        for p in paths {
                            let v = Section::from_path(p, Access::Read)?.map_all(Access::Read)?;
                            sum = sum.wrapping_add(scan_view(&v).1);
                        }
                        Ok((paths.len() as f64, sum))
                    })
                },
            ),
        ];
        results.extend(measure(SUITE, group, cases, cfg.plan(), progress)?);
    }
    Ok(results)
}

/// Cold page cache: the file is evicted before every pass.
fn cold(
    cfg: &Config,
    file: &File,
    section: &Section,
    progress: &ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseResult>, Failure> {
    let len = (cfg.size.min(256 << 20)) as usize;
    evict(file)?;
    let probe = section.map(0, len, Access::Read)?.residency(0, len)?;
    let resident = probe.resident_pages as f64 / probe.total_pages.max(1) as f64;
    if resident > 0.1 {
        notes.push(format!(
            "cold cache: eviction did not work ({:.0}% of the file stayed resident after posix_fadvise(DONTNEED)); the cold numbers are warm",
            resident * 100.0
        ));
    } else {
        notes.push(format!(
            "cold cache: posix_fadvise(DONTNEED) evicted the file ({:.0}% resident afterwards); cold passes read the first {}",
            resident * 100.0,
            human(len as u64)
        ));
    }
    let mut buf = vec![0u8; 1 << 20];
    let cold = |f: &mut dyn FnMut() -> Result<(f64, u64), Failure>| -> Result<Sample, Failure> {
        evict(file)?;
        Sample::time(f)
    };
    let cases = vec![
        Case::new("read() 1 MiB, cold", Metric::Throughput, move || {
            cold(&mut || read_scan(file, &mut buf, len))
        }),
        Case::new(
            "view, mapped per pass, cold",
            Metric::Throughput,
            move || cold(&mut || Ok(scan_view(&section.map(0, len, Access::Read)?))),
        ),
        Case::new("view + prefetch, cold", Metric::Throughput, move || {
            cold(&mut || {
                let v = section.map(0, len, Access::Read)?;
                v.prefetch(0, len)?;
                Ok(scan_view(&v))
            })
        }),
    ];
    measure(
        SUITE,
        "scan, cold cache",
        cases,
        cfg.plan().at_most(3),
        progress,
    )
}
