//! `sect image`: an executable's or shared library's loadable segments and
//! symbols, and how many of their pages the page cache holds.
//!
//! The image is only parsed (`Image::open`) and asked about the page cache
//! (`Image::page_cache`): nothing of it is mapped to run. The parser reads
//! the headers and symbol tables with read-ahead off, so a file read cold
//! shows those pages (and no others) as resident.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use sections::{Image, ImageFormat, ImageKind, PageSet, SymbolKind};

use crate::report::{shown, table};
use crate::units::{exact, exact_with_bytes};
use crate::{Failure, Outcome};

type Result<T = ()> = std::result::Result<T, Outcome>;

/// Why the page cache's residency is not shown: the rule of the system the
/// tool runs on.
#[cfg(target_os = "linux")]
const NOT_OBSERVABLE: &str = "not observable for this file by this user: Linux reports \
     page-cache residency only to the file's owner or to users who may write it; \
     run as the owner or root";
#[cfg(not(target_os = "linux"))]
const NOT_OBSERVABLE: &str = "not observable: this system does not report a file's \
     page-cache residency";

/// What `sect image --json` prints. Residency fields are `null` when the
/// system does not report the file's page-cache residency to this user
/// (`residency_observable` is then false).
#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub path: String,
    /// "ELF32", "ELF64", "PE32" or "PE32+".
    pub format: String,
    /// "executable" (linked for fixed addresses) or "relocatable"
    /// (position-independent: a shared library, a PIE program, a PE file).
    pub kind: &'static str,
    pub file_size: u64,
    pub entry: u64,
    /// Bytes of address space the segments span (page-rounded).
    pub span: u64,
    /// Whether its code could run where it is mapped, without a loader:
    /// an ELF image, position-independent, that needs no relocation.
    pub runs_unrelocated: bool,
    /// Why it cannot (the library's reasons; empty if none are listed).
    pub relocations: Vec<String>,
    pub residency_observable: bool,
    pub page_size: Option<usize>,
    /// Pages of the whole file in the page cache, and pages of the file.
    pub resident_pages: Option<usize>,
    pub total_pages: Option<usize>,
    /// Symbols with an address in a loadable segment.
    pub symbol_count: usize,
    /// False when the image names more symbols than the library lists
    /// (names over 64 MiB in all).
    pub symbols_complete: bool,
    pub segments: Vec<SegmentReport>,
    /// With `--symbols` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbols: Option<SymbolsReport>,
}

/// One loadable segment (an ELF `PT_LOAD`, a PE section).
#[derive(Debug, Serialize)]
pub struct SegmentReport {
    pub index: usize,
    /// The section's name (PE); `null` for ELF segments.
    pub name: Option<String>,
    pub address: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    /// "r-x", "rw-", as readelf and /proc/PID/maps write them.
    pub protection: String,
    /// Pages of its file range in the page cache, of `total_pages` (0 of 0
    /// for a segment with no bytes in the file, such as `.bss`).
    pub resident_pages: Option<usize>,
    pub total_pages: Option<usize>,
}

/// `--symbols`: counts, and the symbols with the most pages in the page
/// cache and the most pages not in it.
#[derive(Debug, Serialize)]
pub struct SymbolsReport {
    pub count: usize,
    pub functions: usize,
    pub data: usize,
    /// Functions and data with a size and bytes in the file: the ones
    /// ranked (aliases of one address and size counted once).
    pub ranked: usize,
    /// Most resident pages first (`null` when not observable).
    pub hottest: Option<Vec<SymbolReport>>,
    /// Most pages not resident first (`null` when not observable).
    pub coldest: Option<Vec<SymbolReport>>,
}

/// One ranked symbol; other names of the same address and size (such as
/// `strxfrm_l` and `__strxfrm_l`) are its `aliases`.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolReport {
    pub name: String,
    pub aliases: Vec<String>,
    /// "function" or "data".
    pub kind: &'static str,
    pub address: u64,
    pub size: u64,
    pub resident_pages: usize,
    pub total_pages: usize,
}

pub fn run(path: &Path, symbols: bool, top: usize, json: bool) -> Result {
    refuse_special_files(path)?;
    let image = Image::open(path)?;
    let cache = match image.page_cache() {
        Ok(cache) => cache,
        // A file too large to keep a flag per page for: the segments are
        // still worth showing.
        Err(e) if e.kind() == sections::ErrorKind::InvalidSize => {
            eprintln!("sect: {e}; residency is not shown");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let report = build(&image, cache.as_ref(), symbols.then_some(top));
    let mut out = io::BufWriter::new(io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &image, &report)?;
    }
    out.flush()?;
    Ok(())
}

/// Files that are not regular files are refused before they are opened:
/// opening a FIFO would wait for a writer, a device may do anything.
fn refuse_special_files(path: &Path) -> std::result::Result<(), Failure> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // opening says what is wrong
    };
    let ft = meta.file_type();
    let what = if ft.is_file() {
        return Ok(());
    } else if ft.is_dir() {
        "a directory"
    } else {
        special_kind(&ft)
    };
    Err(Failure::new(format!(
        "image '{}': open image: not a valid image (not a regular file: {what})",
        shown(&path.display().to_string())
    )))
}

#[cfg(unix)]
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_ft: &std::fs::FileType) -> &'static str {
    "a special file"
}

fn build(image: &Image, cache: Option<&PageSet>, top: Option<usize>) -> ImageReport {
    let count = |start: u64, len: u64| cache.map(|c| c.count(start, len));
    let total = cache.map(PageSet::total);
    let segments = image
        .segments()
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let r = count(s.file_offset, s.file_size);
            SegmentReport {
                index,
                name: s.name.clone(),
                address: s.address,
                mem_size: s.mem_size,
                file_offset: s.file_offset,
                file_size: s.file_size,
                protection: s.protection.to_string(),
                resident_pages: r.map(|r| r.resident_pages),
                total_pages: r.map(|r| r.total_pages),
            }
        })
        .collect();
    ImageReport {
        path: image.path().display().to_string(),
        format: image.format().to_string(),
        kind: match image.kind() {
            ImageKind::Executable => "executable",
            _ => "relocatable",
        },
        file_size: image.file_len(),
        entry: image.entry(),
        span: image.span(),
        runs_unrelocated: image.format().is_elf()
            && image.kind() != ImageKind::Executable
            && image.relocations().is_empty(),
        relocations: image.relocations().to_vec(),
        residency_observable: cache.is_some(),
        page_size: cache.map(PageSet::page_size),
        resident_pages: total.map(|t| t.resident_pages),
        total_pages: total.map(|t| t.total_pages),
        symbol_count: image.symbols().len(),
        symbols_complete: image.symbols_complete(),
        segments,
        symbols: top.map(|top| symbols(image, cache, top)),
    }
}

fn symbols(image: &Image, cache: Option<&PageSet>, top: usize) -> SymbolsReport {
    let all = image.symbols();
    let of_kind = |k: SymbolKind| all.iter().filter(|s| s.kind == k).count();
    // Functions and data with a size and bytes in the file, one entry per
    // address and size (the library sorts by address, then name).
    let mut ranked: Vec<(Vec<&sections::Symbol>, std::ops::Range<u64>)> = Vec::new();
    // Aliases: one address, size and kind.
    let mut seen: std::collections::HashMap<(u64, u64, bool), usize> =
        std::collections::HashMap::new();
    for s in all
        .iter()
        .filter(|s| s.size > 0 && s.kind != SymbolKind::Other)
    {
        let key = (s.address, s.size, s.kind == SymbolKind::Data);
        match seen.get(&key) {
            Some(&i) => ranked[i].0.push(s),
            None => {
                if let Some(range) = image.file_range_of(s.address, s.size) {
                    seen.insert(key, ranked.len());
                    ranked.push((vec![s], range));
                }
            }
        }
    }
    let lists = cache.map(|cache| {
        let measured: Vec<SymbolReport> = ranked
            .iter()
            .map(|(group, range)| {
                let r = cache.count(range.start, range.end - range.start);
                // The public name first: the fewest leading underscores.
                let mut names: Vec<&str> = group.iter().map(|s| s.name.as_str()).collect();
                names.sort_by_key(|n| (n.len() - n.trim_start_matches('_').len(), n.len(), *n));
                let s = group[0];
                SymbolReport {
                    name: names[0].to_owned(),
                    aliases: names[1..].iter().map(|n| (*n).to_owned()).collect(),
                    kind: if s.kind == SymbolKind::Data {
                        "data"
                    } else {
                        "function"
                    },
                    address: s.address,
                    size: s.size,
                    resident_pages: r.resident_pages,
                    total_pages: r.total_pages,
                }
            })
            .collect();
        let missing = |r: &SymbolReport| r.total_pages - r.resident_pages;
        let mut hot: Vec<&SymbolReport> =
            measured.iter().filter(|r| r.resident_pages > 0).collect();
        hot.sort_by_key(|r| (std::cmp::Reverse(r.resident_pages), missing(r), r.address));
        let mut cold: Vec<&SymbolReport> = measured.iter().filter(|r| missing(r) > 0).collect();
        cold.sort_by_key(|r| (std::cmp::Reverse(missing(r)), r.resident_pages, r.address));
        let first = |list: Vec<&SymbolReport>| -> Vec<SymbolReport> {
            list.into_iter().take(top).cloned().collect()
        };
        (first(hot), first(cold))
    });
    let (hottest, coldest) = lists.unzip();
    SymbolsReport {
        count: all.len(),
        functions: of_kind(SymbolKind::Function) + of_kind(SymbolKind::IndirectFunction),
        data: of_kind(SymbolKind::Data),
        ranked: ranked.len(),
        hottest,
        coldest,
    }
}

/// `resident/total (percent)`, or `-` where there is nothing to count or
/// nothing is known.
fn residency_cell(resident: Option<usize>, total: Option<usize>) -> String {
    match (resident, total) {
        (Some(r), Some(t)) if t > 0 => format!("{r}/{t}{}", percent(r, t)),
        _ => "-".to_owned(),
    }
}

/// ` (P%)`, rounded down (100% only when every page is resident); nothing
/// for no pages.
fn percent(resident: usize, total: usize) -> String {
    (resident * 100)
        .checked_div(total)
        .map_or(String::new(), |p| format!(" ({p}%)"))
}

fn write_text(out: &mut impl Write, image: &Image, r: &ImageReport) -> io::Result<()> {
    let line = |out: &mut dyn Write, key: &str, value: &str| {
        writeln!(out, "{:<13}{value}", format!("{key}:"))
    };
    line(out, "image", &shown(&r.path))?;
    let kind = match (image.kind(), image.format()) {
        (ImageKind::Executable, _) => "executable, linked to run at fixed addresses",
        (_, ImageFormat::Pe32 | ImageFormat::Pe64) => "relocatable (the loader places it)",
        _ => "relocatable (position-independent: a shared library or a PIE program)",
    };
    line(out, "format", &format!("{}, {kind}", r.format))?;
    line(out, "file size", &exact_with_bytes(r.file_size))?;
    line(out, "entry", &format!("{:#x}", r.entry))?;
    line(out, "span", &format!("{} of address space", exact(r.span)))?;
    let reasons: Vec<String> = r.relocations.iter().map(|s| shown(s)).collect();
    let relocations = if !image.format().is_elf() {
        "not examined (PE images are placed and relocated by the system's loader)".to_owned()
    } else if r.runs_unrelocated {
        "none: its code can run where it is mapped, without a loader".to_owned()
    } else if image.kind() == ImageKind::Executable {
        let mut text = "linked to run at fixed addresses (ET_EXEC)".to_owned();
        if !reasons.is_empty() {
            text += &format!("; needs a loader for {}", reasons.join(", "));
        }
        text
    } else {
        format!("needs a loader for {}", reasons.join(", "))
    };
    line(out, "relocations", &relocations)?;
    let symbols = if r.symbol_count == 0 {
        no_symbols(image).to_owned()
    } else {
        let all = image.symbols();
        let functions = all
            .iter()
            .filter(|s| matches!(s.kind, SymbolKind::Function | SymbolKind::IndirectFunction))
            .count();
        let data = all.iter().filter(|s| s.kind == SymbolKind::Data).count();
        format!(
            "{} ({functions} function{}, {data} data, {} other){}",
            r.symbol_count,
            if functions == 1 { "" } else { "s" },
            r.symbol_count - functions - data,
            if r.symbols_complete {
                ""
            } else {
                "; more not listed: over 1,048,576 symbols or 64 MiB of names"
            }
        )
    };
    line(out, "symbols", &symbols)?;
    let cache = match (r.resident_pages, r.total_pages, r.page_size) {
        (Some(resident), Some(total), Some(page)) => format!(
            "{resident} of {total} pages of the file resident{}, {} pages",
            percent(resident, total),
            exact(page as u64)
        ),
        _ => NOT_OBSERVABLE.to_owned(),
    };
    line(out, "page cache", &cache)?;

    writeln!(out)?;
    let rows: Vec<Vec<String>> = r
        .segments
        .iter()
        .map(|s| {
            vec![
                s.name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map_or_else(|| s.index.to_string(), shown),
                format!("{:#x}", s.address),
                exact(s.mem_size),
                format!("{:#x}", s.file_offset),
                exact(s.file_size),
                s.protection.clone(),
                residency_cell(s.resident_pages, s.total_pages),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table(
            &[
                "SEGMENT",
                "ADDRESS",
                "MEM SIZE",
                "FILE OFFSET",
                "FILE SIZE",
                "PROT",
                "RESIDENT"
            ],
            &rows
        )
    )?;

    if let Some(s) = &r.symbols {
        writeln!(out)?;
        if s.count == 0 {
            writeln!(out, "{}", no_symbols(image))?;
            return Ok(());
        }
        if s.ranked == 0 {
            writeln!(
                out,
                "no symbol to rank: of {} {}, none is a function or data with a size and bytes \
                 in the file",
                s.count,
                if s.count == 1 { "symbol" } else { "symbols" }
            )?;
            return Ok(());
        }
        let (Some(hottest), Some(coldest)) = (&s.hottest, &s.coldest) else {
            writeln!(
                out,
                "symbols to rank: {} (functions and data with a size and bytes in the \
                 file, aliases counted once); their page-cache residency is {NOT_OBSERVABLE}",
                s.ranked
            )?;
            return Ok(());
        };
        writeln!(
            out,
            "symbols to rank: {} (functions and data with a size and bytes in the file, \
             aliases counted once), by the pages of their file range in the page cache",
            s.ranked
        )?;
        let list = |out: &mut dyn Write, title: &str, list: &[SymbolReport], none: &str| {
            writeln!(out)?;
            if list.is_empty() {
                return writeln!(out, "{title}: {none}");
            }
            writeln!(out, "{title}:")?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        format!("{:#x}", s.address),
                        exact(s.size),
                        s.kind.to_owned(),
                        residency_cell(Some(s.resident_pages), Some(s.total_pages)),
                        if s.aliases.is_empty() {
                            shown(&s.name)
                        } else {
                            let aliases: Vec<String> = s.aliases.iter().map(|a| shown(a)).collect();
                            format!("{} (also {})", shown(&s.name), aliases.join(", "))
                        },
                    ]
                })
                .collect();
            write!(
                out,
                "{}",
                table(&["ADDRESS", "SIZE", "KIND", "RESIDENT", "NAME"], &rows)
            )
        };
        list(
            out,
            "hottest (most pages in the page cache)",
            hottest,
            "none has a page in the page cache",
        )?;
        list(
            out,
            "coldest (most pages not in the page cache)",
            coldest,
            "every one is wholly in the page cache",
        )?;
    }
    Ok(())
}

fn no_symbols(image: &Image) -> &'static str {
    if image.format().is_elf() {
        "no symbol table (no defined symbols in .symtab or .dynsym)"
    } else {
        "no symbol table (PE images list none)"
    }
}
