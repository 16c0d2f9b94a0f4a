//! Suite `shared`: shared memory against private memory.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use rustix::mm::{MapFlags, ProtFlags};
use sections::{Access, Section, View};

use super::cases::CaseId;
use super::env::huge_page_bytes;
use super::runner::{checksum, measure, CacheFlusher, Case, CaseResult, Metric, Sample};
use super::Config;
use crate::units::human;
use crate::Failure;

const SUITE: &str = "shared";

/// The kinds of memory compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Private anonymous memory with huge pages refused (4 KiB pages, as
    /// shared memory gets).
    Private4K,
    /// Private anonymous memory as the system gives it.
    PrivateAsIs,
    /// Private anonymous memory with huge pages asked for (MADV_HUGEPAGE).
    PrivateHuge,
    AnonymousSection,
    NamedSection,
    FileSection,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Private4K,
        Kind::PrivateAsIs,
        Kind::PrivateHuge,
        Kind::AnonymousSection,
        Kind::NamedSection,
        Kind::FileSection,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Private4K => "private, 4 KiB pages",
            Kind::PrivateAsIs => "private, as-is",
            Kind::PrivateHuge => "private, huge pages asked",
            Kind::AnonymousSection => "anonymous section",
            Kind::NamedSection => "named section",
            Kind::FileSection => "file-backed section",
        }
    }

    /// The ids of this kind's sequential and random read cases, for the
    /// kinds the claims compare.
    fn ids(self) -> (Option<CaseId>, Option<CaseId>) {
        match self {
            Kind::Private4K => (
                Some(CaseId::SeqReadPrivate4K),
                Some(CaseId::Random8Private4K),
            ),
            Kind::NamedSection => (Some(CaseId::SeqReadNamed), Some(CaseId::Random8Named)),
            _ => (None, None),
        }
    }
}

/// A region of memory of one kind, mapped read-write.
enum Region {
    Private { ptr: *mut u8, len: usize },
    Section { view: View, file: Option<PathBuf> },
}

impl Region {
    fn new(kind: Kind, len: usize, cfg: &Config, serial: usize) -> Result<Region, Failure> {
        let private = |hint: Option<rustix::mm::Advice>| -> Result<Region, Failure> {
            // SAFETY: a fresh anonymous private mapping owned by the region
            // and unmapped in its drop.
            let ptr = unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE,
                )
            }
            .map_err(|e| Failure::new(format!("bench {SUITE}: mmap of {len} bytes: {e}")))?;
            if let Some(advice) = hint {
                // SAFETY: advice on the mapping just made; neither value
                // discards data.
                let _ = unsafe { rustix::mm::madvise(ptr, len, advice) };
            }
            Ok(Region::Private {
                ptr: ptr.cast(),
                len,
            })
        };
        let section = |s: Section, file| -> Result<Region, Failure> {
            Ok(Region::Section {
                view: s.map_all(Access::ReadWrite)?,
                file,
            })
        };
        match kind {
            Kind::Private4K => private(Some(rustix::mm::Advice::LinuxNoHugepage)),
            Kind::PrivateAsIs => private(None),
            Kind::PrivateHuge => private(Some(rustix::mm::Advice::LinuxHugepage)),
            // Sparse, like private memory and the file: "first touch"
            // measures providing a page when it is first touched, which a
            // reserved section (the default) pays when it is created.
            Kind::AnonymousSection => section(
                Section::options()
                    .size(len as u64)
                    .sparse(true)
                    .anonymous()?,
                None,
            ),
            Kind::NamedSection => {
                let name = format!("sect-bench-{}-{serial}", std::process::id());
                section(
                    Section::options()
                        .size(len as u64)
                        .sparse(true)
                        .create(&name)?,
                    None,
                )
            }
            Kind::FileSection => {
                let path = cfg.dir.join(format!("shared-{serial}.bin"));
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .and_then(|f| f.set_len(len as u64).map(|()| f))
                    .map_err(|e| Failure::new(format!("bench {SUITE}: {}: {e}", path.display())))?;
                section(Section::from_file(&file)?, Some(path))
            }
        }
    }

    fn ptr(&self) -> *mut u8 {
        match self {
            Region::Private { ptr, .. } => *ptr,
            Region::Section { view, .. } => view.as_mut_ptr(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Region::Private { len, .. } => *len,
            Region::Section { view, .. } => view.len(),
        }
    }

    /// The region's bytes.
    ///
    /// # Safety
    /// No one else may write the region while the slice lives (the bench's
    /// regions are private to this single-threaded process).
    unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: the region is mapped for `len` bytes while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len()) }
    }

    /// # Safety
    /// As [`bytes`](Self::bytes), and no other borrow of the bytes exists.
    #[allow(clippy::mut_from_ref)]
    unsafe fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: mapped read-write for `len` bytes; exclusivity is the
        // caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len()) }
    }

    /// Writes one byte in every page: the first touch of each.
    fn touch(&self) -> usize {
        let page = sections::granularity();
        let mut pages = 0;
        for off in (0..self.len()).step_by(page) {
            // SAFETY: in bounds of the read-write mapping; volatile so the
            // store is really made.
            unsafe { self.ptr().add(off).write_volatile(1) };
            pages += 1;
        }
        pages
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        match self {
            Region::Private { ptr, len } => {
                // SAFETY: the mapping made in `new`, no longer borrowed.
                let _ = unsafe { rustix::mm::munmap(ptr.cast(), *len) };
            }
            Region::Section { file, .. } => {
                if let Some(path) = file {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

pub fn run(
    cfg: &Config,
    progress: &ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<CaseResult>, Failure> {
    let len = cfg.size as usize;
    let mut pattern = vec![0u8; 1 << 20];
    fastrand::Rng::with_seed(5).fill(&mut pattern);
    let regions: Vec<(Kind, Region)> = Kind::ALL
        .iter()
        .enumerate()
        .map(|(i, &k)| Ok((k, Region::new(k, len, cfg, i)?)))
        .collect::<Result<_, Failure>>()?;
    // Fill (and so fault in) the regions chunk by chunk in turn, so that
    // each kind gets physical pages from the same allocator state: the one
    // filled first would otherwise get the most fragmented memory.
    for start in (0..len).step_by(pattern.len()) {
        let end = (start + pattern.len()).min(len);
        for (_, r) in &regions {
            // SAFETY: the regions were just made and nothing else uses them.
            let bytes = unsafe { r.bytes_mut() };
            bytes[start..end].copy_from_slice(&pattern[..end - start]);
        }
    }
    for (k, r) in &regions {
        if matches!(k, Kind::PrivateAsIs | Kind::PrivateHuge) {
            notes.push(format!(
                "{}: {} of {} backed by transparent huge pages",
                k.label(),
                human(huge_page_bytes(r.ptr() as usize)),
                human(len as u64)
            ));
        }
    }

    let cases = regions
        .iter()
        .map(|(k, r)| {
            Case::new(
                format!("seq read: {}", k.label()),
                Metric::Throughput,
                move || {
                    // SAFETY: single-threaded; the region is only read here.
                    Sample::time(|| Ok((len as f64, checksum(unsafe { r.bytes() }))))
                },
            )
            .id(k.ids().0)
        })
        .collect();
    let mut results = measure(SUITE, "sequential read", cases, cfg.plan(), progress)?;

    let ops = if cfg.quick { 200_000 } else { 1_000_000 };
    let mut rng = fastrand::Rng::with_seed(6);
    let at: Vec<usize> = (0..ops).map(|_| rng.usize(0..len / 8) * 8).collect();
    let at = &at;
    let flusher = CacheFlusher::new();
    let flusher = &flusher;
    let cases = regions
        .iter()
        .map(|(k, r)| {
            Case::new(
                format!("random 8 B: {}", k.label()),
                Metric::Latency,
                move || {
                    flusher.flush();
                    Sample::time(|| {
                        // SAFETY: single-threaded; the region is only read here.
                        let bytes = unsafe { r.bytes() };
                        let sum = at.iter().fold(0u64, |s, &o| {
                            let w: [u8; 8] = bytes[o..o + 8].try_into().expect("8 bytes");
                            s.wrapping_add(u64::from_le_bytes(w))
                        });
                        Ok((at.len() as f64, sum))
                    })
                },
            )
            .id(k.ids().1)
        })
        .collect();
    results.extend(measure(SUITE, "random 8 B", cases, cfg.plan(), progress)?);

    let cases = regions
        .iter()
        .map(|(k, r)| {
            Case::new(
                format!("seq write: {}", k.label()),
                Metric::Throughput,
                move || {
                    Sample::time(|| {
                        // SAFETY: single-threaded; no other borrow of the region.
                        unsafe { r.bytes_mut() }.fill(0x5a);
                        Ok((len as f64, 0))
                    })
                },
            )
            .alone()
        })
        .collect();
    results.extend(measure(
        SUITE,
        "sequential write",
        cases,
        cfg.plan(),
        progress,
    )?);
    drop(regions);

    // First touch: a fresh region every pass.
    let touch_len = len.min(256 << 20);
    let serial = std::cell::Cell::new(100);
    let serial = &serial;
    let cases = Kind::ALL
        .iter()
        .map(|&k| {
            Case::new(
                format!("first touch: {}", k.label()),
                Metric::Latency,
                move || {
                    serial.set(serial.get() + 1);
                    let region = Region::new(k, touch_len, cfg, serial.get())?;
                    let start = Instant::now();
                    let pages = region.touch();
                    let secs = start.elapsed().as_secs_f64();
                    Ok(Sample {
                        secs,
                        work: pages as f64,
                        check: 0,
                    })
                },
            )
            .alone()
        })
        .collect();
    results.extend(measure(
        SUITE,
        "first touch per page",
        cases,
        cfg.plan(),
        progress,
    )?);
    Ok(results)
}
