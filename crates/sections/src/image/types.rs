//! The vocabulary of images: formats, segments, protections, symbols and
//! page sets.

use std::fmt;
use std::ops::Range;

use crate::types::Residency;

/// The file format of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageFormat {
    /// 32-bit ELF.
    Elf32,
    /// 64-bit ELF.
    Elf64,
    /// 32-bit PE (PE32).
    Pe32,
    /// 64-bit PE (PE32+).
    Pe64,
}

impl ImageFormat {
    /// Whether the format is ELF.
    pub fn is_elf(self) -> bool {
        matches!(self, ImageFormat::Elf32 | ImageFormat::Elf64)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFormat::Elf32 => "ELF32",
            ImageFormat::Elf64 => "ELF64",
            ImageFormat::Pe32 => "PE32",
            ImageFormat::Pe64 => "PE32+",
        })
    }
}

/// What kind of image a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageKind {
    /// A program linked to run at fixed addresses (ELF `ET_EXEC`).
    Executable,
    /// A position-independent image: a shared library, a PIE program
    /// (ELF `ET_DYN`) or a PE file.
    Relocatable,
}

/// A segment's protection: what its pages allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Protection {
    /// Pages can be read.
    pub read: bool,
    /// Pages can be written (copy-on-write: the file never changes).
    pub write: bool,
    /// Pages can be executed.
    pub execute: bool,
}

impl fmt::Display for Protection {
    /// `r-x`, `rw-`, as `readelf` and `/proc/PID/maps` write them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |on: bool, ch: char| if on { ch } else { '-' };
        write!(
            f,
            "{}{}{}",
            c(self.read, 'r'),
            c(self.write, 'w'),
            c(self.execute, 'x')
        )
    }
}

/// One loadable segment of an image (an ELF `PT_LOAD` program header, a PE
/// section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The section's name (PE); ELF segments have none.
    pub name: Option<String>,
    /// Its address as linked (ELF `p_vaddr`; PE: relative to the image
    /// base).
    pub address: u64,
    /// Bytes it occupies in memory.
    pub mem_size: u64,
    /// Where its bytes start in the file.
    pub file_offset: u64,
    /// Bytes of it the file holds (the rest of `mem_size` is zeros).
    pub file_size: u64,
    /// What its pages allow.
    pub protection: Protection,
}

impl Segment {
    /// The file range the segment's bytes come from.
    pub fn file_range(&self) -> Range<u64> {
        self.file_offset..self.file_offset + self.file_size
    }

    /// Whether `address` lies in the segment's memory.
    pub fn contains(&self, address: u64) -> bool {
        address >= self.address && address - self.address < self.mem_size
    }
}

/// What a symbol names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SymbolKind {
    /// Code.
    Function,
    /// An indirect function (ELF `STT_GNU_IFUNC`): its address is a
    /// resolver that a dynamic loader calls to choose the function; never
    /// handed out as callable.
    IndirectFunction,
    /// Data.
    Data,
    /// Anything else with an address (no type given).
    Other,
}

/// A symbol of an image: a name for a range of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The symbol's name.
    pub name: String,
    /// Its address as linked.
    pub address: u64,
    /// Its size in bytes (0 if the image does not say).
    pub size: u64,
    /// What it names.
    pub kind: SymbolKind,
}

/// Pages of a range, each resident or not: the answer of
/// [`Image::page_cache`](crate::Image::page_cache) (pages of the file) and of
/// [`MappedImage::touched`](crate::MappedImage::touched) (pages of the image's addresses).
#[derive(Debug, Clone)]
pub struct PageSet {
    start: u64,
    page_size: usize,
    pages: Vec<bool>,
    /// Resident pages before each page, built on the first count of a
    /// long range: then every count takes constant time, however many
    /// symbols span however many pages.
    before: std::sync::OnceLock<Vec<u32>>,
}

impl PartialEq for PageSet {
    fn eq(&self, other: &Self) -> bool {
        (self.start, self.page_size, &self.pages) == (other.start, other.page_size, &other.pages)
    }
}

impl Eq for PageSet {}

impl PageSet {
    pub(super) fn new(start: u64, page_size: usize, pages: Vec<bool>) -> PageSet {
        PageSet {
            start,
            page_size,
            pages,
            before: std::sync::OnceLock::new(),
        }
    }

    /// The first byte the set covers (a file offset or an image address).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// One flag per page from [`start`](PageSet::start) on.
    pub fn pages(&self) -> &[bool] {
        &self.pages
    }

    /// The residency of the pages that `start..start+len` touches, as far as
    /// the set covers them. An empty range spans no page.
    pub fn count(&self, start: u64, len: u64) -> Residency {
        let page = self.page_size as u64;
        let mut out = Residency {
            resident_pages: 0,
            total_pages: 0,
            page_size: self.page_size,
        };
        if len == 0 || start.saturating_add(len) <= self.start {
            return out;
        }
        let from = start.max(self.start) - self.start;
        let to = (start.saturating_add(len) - self.start).div_ceil(page);
        let from = (from / page) as usize;
        let to = (to as usize).min(self.pages.len());
        if from < to {
            out.total_pages = to - from;
            out.resident_pages = if to - from <= 64 {
                self.pages[from..to].iter().filter(|&&p| p).count()
            } else {
                let before = self.before.get_or_init(|| {
                    let mut sum = 0u32;
                    let mut v = Vec::with_capacity(self.pages.len() + 1);
                    v.push(0);
                    for &p in &self.pages {
                        sum += u32::from(p);
                        v.push(sum);
                    }
                    v
                });
                (before[to] - before[from]) as usize
            };
        }
        out
    }

    /// The residency of every page of the set.
    pub fn total(&self) -> Residency {
        Residency {
            resident_pages: self.pages.iter().filter(|&&p| p).count(),
            total_pages: self.pages.len(),
            page_size: self.page_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_long_and_short_ranges_agree_with_counting_one_by_one() {
        let pages: Vec<bool> = (0..5000).map(|_| fastrand::bool()).collect();
        let set = PageSet::new(0x10_000, 4096, pages.clone());
        for _ in 0..2000 {
            let start = fastrand::u64(0..0x10_000 + 5200 * 4096);
            let len = fastrand::u64(0..300 * 4096);
            let got = set.count(start, len);
            let (mut resident, mut total) = (0, 0);
            if len > 0 {
                for (i, &p) in pages.iter().enumerate() {
                    let (a, b) = (0x10_000 + i as u64 * 4096, 0x10_000 + (i as u64 + 1) * 4096);
                    if a < start + len && b > start {
                        total += 1;
                        resident += usize::from(p);
                    }
                }
            }
            assert_eq!(
                (got.resident_pages, got.total_pages),
                (resident, total),
                "{start:#x}+{len:#x}"
            );
        }
    }
}
