//! The machine the numbers came from.

use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Env {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub page_size: usize,
    pub thp_enabled: String,
    pub thp_shmem_enabled: String,
    pub data_file_system: String,
    pub data_size: u64,
    pub runs: usize,
    pub date_unix: u64,
}

/// The selected value of a sysfs choice like `always [madvise] never`.
fn selected(path: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("unknown")
        .to_owned()
}

pub fn thp_enabled() -> String {
    selected("/sys/kernel/mm/transparent_hugepage/enabled")
}

pub fn thp_shmem_enabled() -> String {
    selected("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
}

/// The file-system type of the mount that holds `path` (from mountinfo:
/// the longest mount point that is a prefix of it).
pub fn file_system_of(path: &Path) -> String {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return "unknown".to_owned();
    };
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount), Some(fstype)) = (fields.get(4), fields.get(sep + 1)) else {
            continue;
        };
        if path.starts_with(mount) && best.as_ref().is_none_or(|(len, _)| mount.len() >= *len) {
            best = Some((mount.len(), (*fstype).to_owned()));
        }
    }
    best.map_or_else(|| "unknown".to_owned(), |(_, fs)| fs)
}

pub fn collect(data_dir: &Path, data_size: u64, runs: usize) -> Env {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let uname = rustix::system::uname();
    Env {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: format!(
            "{} {}",
            uname.sysname().to_string_lossy(),
            uname.release().to_string_lossy()
        ),
        page_size: sections::granularity(),
        thp_enabled: thp_enabled(),
        thp_shmem_enabled: thp_shmem_enabled(),
        data_file_system: file_system_of(data_dir),
        data_size,
        runs,
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// Bytes of the mapping containing `addr` backed by transparent huge
/// pages (`AnonHugePages` + `ShmemPmdMapped` + `FilePmdMapped` in smaps).
pub fn huge_page_bytes(addr: usize) -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut inside = false;
    let mut total = 0;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = (a..b).contains(&addr);
                    continue;
                }
            }
        }
        if !inside {
            continue;
        }
        for key in ["AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:"] {
            if let Some(rest) = line.strip_prefix(key) {
                let kb: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                total += kb * 1024;
            }
        }
    }
    total
}
