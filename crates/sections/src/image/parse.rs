//! Reading an image's headers: ELF and PE through the `object` crate, over
//! a bounded reader, and the checks a layout must pass before it is mapped.

use std::cell::Cell;
use std::fs::File;
use std::ops::Range;

use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _, SectionHeader as _, Sym as _};
use object::read::pe::ImageNtHeaders;
use object::read::StringTable;
use object::{elf, pe, Endianness, LittleEndian as LE, ReadCache, ReadRef};

use super::types::{ImageFormat, ImageKind, Protection, Segment, Symbol, SymbolKind};
use super::{MAX_METADATA, MAX_SPAN};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// The most bytes of symbol names an image's symbol list keeps: a hostile
/// table can name every symbol with the same long string, and each name is
/// a `String` of its own.
pub(super) const MAX_NAMES: u64 = 64 << 20;

/// The most symbols an image's symbol list keeps.
pub(super) const MAX_SYMBOLS: usize = 1 << 20;

/// The most loadable segments an image may have (real ones have a handful).
const MAX_SEGMENTS: usize = 1024;

/// A bounded reader for the header parser: reads are served from the file
/// on demand and cached, and all of them together may not exceed
/// [`MAX_METADATA`] bytes (a header claiming more is refused as absurd).
#[derive(Clone, Copy)]
pub(super) struct Bounded<'a> {
    cache: &'a ReadCache<File>,
    /// Bytes this reader may still read.
    left: &'a Cell<u64>,
}

impl<'a> Bounded<'a> {
    pub(super) fn new(cache: &'a ReadCache<File>, left: &'a Cell<u64>) -> Self {
        left.set(MAX_METADATA);
        Bounded { cache, left }
    }

    fn take(self, size: u64) -> std::result::Result<(), ()> {
        let left = self.left.get().checked_sub(size).ok_or(())?;
        self.left.set(left);
        Ok(())
    }
}

impl<'a> ReadRef<'a> for Bounded<'a> {
    fn len(self) -> std::result::Result<u64, ()> {
        self.cache.len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> std::result::Result<&'a [u8], ()> {
        self.take(size)?;
        self.cache.read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(
        self,
        range: Range<u64>,
        delimiter: u8,
    ) -> std::result::Result<&'a [u8], ()> {
        // At most 4 KiB per string (the cache's own limit).
        self.take(4096)?;
        self.cache.read_bytes_at_until(range, delimiter)
    }
}

pub(super) fn bad(detail: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadImage, "open image").with_detail(detail)
}

/// What the parsers find, before the layout is checked.
pub(super) struct Parsed {
    pub(super) format: ImageFormat,
    pub(super) kind: ImageKind,
    pub(super) entry: u64,
    pub(super) segments: Vec<Segment>,
    pub(super) symbols: Vec<Symbol>,
    pub(super) relocations: Vec<String>,
    /// Why this process cannot run the image's code, if it cannot: another
    /// architecture, class or byte order.
    pub(super) foreign: Option<String>,
    /// False when the symbols' names passed [`MAX_NAMES`] and the rest
    /// were not listed.
    pub(super) symbols_complete: bool,
}

/// The ELF machine, class and byte order of this process.
fn native_elf() -> Option<(u16, bool, bool)> {
    let machine = if cfg!(target_arch = "x86_64") {
        elf::EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        elf::EM_AARCH64
    } else if cfg!(target_arch = "x86") {
        elf::EM_386
    } else if cfg!(target_arch = "riscv64") {
        elf::EM_RISCV
    } else {
        return None;
    };
    Some((
        machine.0,
        cfg!(target_pointer_width = "64"),
        cfg!(target_endian = "little"),
    ))
}

fn elf_err(what: &str) -> impl Fn(object::read::Error) -> Error + '_ {
    move |e| bad(format!("{what}: {e}"))
}

pub(super) fn parse_elf<E: FileHeader<Endian = Endianness>>(
    data: Bounded<'_>,
    format: ImageFormat,
) -> Result<Parsed> {
    let header = E::parse(data).map_err(elf_err("ELF header"))?;
    let endian = header.endian().map_err(elf_err("ELF header"))?;
    let kind = match header.e_type(endian) {
        elf::ET_EXEC => ImageKind::Executable,
        elf::ET_DYN => ImageKind::Relocatable,
        other => {
            return Err(bad(format!(
                "ELF type {} is not a loadable image (executables and shared objects are)",
                other.0
            )))
        }
    };
    let entry: u64 = header.e_entry(endian).into();
    let machine = header.e_machine(endian).0;
    let mine = (machine, header.is_class_64(), header.is_little_endian());
    let foreign = match native_elf() {
        Some(native) if native == mine => None,
        Some(_) => Some(format!(
            "the image is for ELF machine {machine} ({}-bit, {} endian), not this process's",
            if mine.1 { 64 } else { 32 },
            if mine.2 { "little" } else { "big" }
        )),
        None => Some("this process's architecture is not one the crate calls into".to_owned()),
    };
    let phdrs = header
        .program_headers(endian, data)
        .map_err(elf_err("program headers"))?;
    let mut segments = Vec::new();
    // What only a loader provides, by kind: relocation bytes summed (a
    // hostile dynamic section can repeat a tag millions of times), the
    // rest once.
    let mut sizes = [0u64; 4];
    let (mut textrel, mut needed, mut tls) = (false, false, false);
    for ph in phdrs {
        let p_type = ph.p_type(endian);
        if p_type == elf::PT_LOAD {
            let flags = ph.p_flags(endian).0;
            segments.push(Segment {
                name: None,
                address: ph.p_vaddr(endian).into(),
                mem_size: ph.p_memsz(endian).into(),
                file_offset: ph.p_offset(endian).into(),
                file_size: ph.p_filesz(endian).into(),
                protection: Protection {
                    read: flags & elf::PF_R.0 != 0,
                    write: flags & elf::PF_W.0 != 0,
                    execute: flags & elf::PF_X.0 != 0,
                },
            });
        } else if p_type == elf::PT_TLS {
            tls = true;
        } else if p_type == elf::PT_DYNAMIC {
            let dynamic = ph
                .dynamic(endian, data)
                .map_err(elf_err("dynamic section"))?
                .unwrap_or(&[]);
            for d in dynamic {
                let tag = d.d_tag(endian);
                let val: u64 = d.d_val(endian).into();
                let mut add = |i: usize| sizes[i] = sizes[i].saturating_add(val);
                match tag {
                    elf::DT_NULL => break,
                    elf::DT_RELASZ => add(0),
                    elf::DT_RELSZ => add(1),
                    elf::DT_PLTRELSZ => add(2),
                    elf::DT_RELRSZ => add(3),
                    elf::DT_TEXTREL => textrel = true,
                    elf::DT_NEEDED => needed = true,
                    _ => {}
                }
            }
        }
    }
    let mut relocations = Vec::new();
    if needed {
        relocations.push("other libraries (DT_NEEDED)".to_owned());
    }
    for (size, what) in sizes
        .iter()
        .zip(["DT_RELA", "DT_REL", "DT_JMPREL", "DT_RELR"])
    {
        if *size > 0 {
            relocations.push(format!("{size} bytes of {what} relocations"));
        }
    }
    if textrel {
        relocations.push("text relocations (DT_TEXTREL)".to_owned());
    }
    // Thread-local variables live where a loader puts them; code reaching
    // them through the thread pointer would use the caller's own.
    if tls {
        relocations.push("thread-local storage (PT_TLS)".to_owned());
    }
    let mut symbols = Vec::new();
    let mut complete = true;
    // Symbols are optional: an image without section headers (or with
    // damaged ones) still maps; only its symbols are unknown.
    if let Ok(sections) = header.sections(endian, data) {
        let mut table = sections.symbols(endian, data, elf::SHT_SYMTAB);
        if table.as_ref().map_or(true, |t| t.symbols().is_empty()) {
            table = sections.symbols(endian, data, elf::SHT_DYNSYM);
        }
        // The string table is read once, whole (names read one by one would
        // each be cached on their own: a hostile table could name every
        // symbol with 4 KiB).
        let strtab = table.as_ref().ok().and_then(|t| {
            let section = sections.section(t.string_section()).ok()?;
            section.data(endian, data).ok()
        });
        let mut loadable: Vec<&Segment> = segments.iter().filter(|s| s.mem_size > 0).collect();
        loadable.sort_by_key(|s| s.address);
        let in_memory = |address: u64| {
            let i = loadable.partition_point(|s| s.address <= address);
            i > 0 && loadable[i - 1].contains(address)
        };
        if let (Ok(table), Some(strtab)) = (table, strtab) {
            let mut names = 0u64;
            let strings = StringTable::new(strtab, 0, strtab.len() as u64);
            for sym in table.symbols() {
                if sym.st_shndx(endian) == elf::SHN_UNDEF {
                    continue;
                }
                let kind = match sym.st_type() {
                    elf::STT_FUNC => SymbolKind::Function,
                    elf::STT_GNU_IFUNC => SymbolKind::IndirectFunction,
                    elf::STT_OBJECT => SymbolKind::Data,
                    elf::STT_NOTYPE => SymbolKind::Other,
                    _ => continue, // sections, files, thread-locals: no address
                };
                let address: u64 = sym.st_value(endian).into();
                if !in_memory(address) {
                    continue;
                }
                let Ok(name) = sym.name(endian, strings) else {
                    continue;
                };
                if name.is_empty() {
                    continue;
                }
                names += name.len() as u64;
                if names > MAX_NAMES || symbols.len() >= MAX_SYMBOLS {
                    complete = false;
                    break;
                }
                symbols.push(Symbol {
                    name: String::from_utf8_lossy(name).into_owned(),
                    address,
                    size: sym.st_size(endian).into(),
                    kind,
                });
            }
        }
    }
    symbols.sort_by(|a, b| (a.address, &a.name).cmp(&(b.address, &b.name)));
    symbols.dedup();
    Ok(Parsed {
        format,
        kind,
        entry,
        segments,
        symbols,
        relocations,
        foreign,
        symbols_complete: complete,
    })
}

pub(super) fn parse_pe<N: ImageNtHeaders>(
    data: Bounded<'_>,
    format: ImageFormat,
) -> Result<Parsed> {
    use object::read::pe::ImageOptionalHeader as _;
    let pe_err = |what: &'static str| move |e: object::read::Error| bad(format!("{what}: {e}"));
    let dos = pe::ImageDosHeader::parse(data).map_err(pe_err("DOS header"))?;
    let mut offset = dos.nt_headers_offset().into();
    let (nt, _dirs) = N::parse(data, &mut offset).map_err(pe_err("NT headers"))?;
    let sections = nt.sections(data, offset).map_err(pe_err("section table"))?;
    let opt = nt.optional_header();
    let mut segments = Vec::new();
    for s in sections.iter() {
        let ch = s.characteristics.get(LE);
        let raw_name = s.raw_name();
        let name = String::from_utf8_lossy(raw_name).into_owned();
        let mem_size = u64::from(s.virtual_size.get(LE)).max(u64::from(s.size_of_raw_data.get(LE)));
        segments.push(Segment {
            name: Some(name),
            address: s.virtual_address.get(LE).into(),
            mem_size,
            file_offset: s.pointer_to_raw_data.get(LE).into(),
            file_size: u64::from(s.size_of_raw_data.get(LE)).min(mem_size),
            protection: Protection {
                read: ch.contains(pe::IMAGE_SCN_MEM_READ),
                write: ch.contains(pe::IMAGE_SCN_MEM_WRITE),
                execute: ch.contains(pe::IMAGE_SCN_MEM_EXECUTE),
            },
        });
    }
    Ok(Parsed {
        format,
        kind: ImageKind::Relocatable,
        entry: opt.address_of_entry_point().into(),
        segments,
        symbols: Vec::new(),
        relocations: Vec::new(),
        foreign: None,
        symbols_complete: true,
    })
}

/// Checks that the segments can be mapped as they say: each within the
/// file and the address space limit, file parts no larger than memory,
/// addresses and offsets agreeing modulo the page size, no two overlapping.
/// Returns the page-rounded low address and span.
pub(super) fn check_layout(parsed: &Parsed, file_len: u64) -> Result<(u64, u64)> {
    let page = sys::page_size() as u64;
    if parsed.segments.len() > MAX_SEGMENTS {
        return Err(bad(format!(
            "the image has {} loadable segments (at most {MAX_SEGMENTS} are accepted)",
            parsed.segments.len()
        )));
    }
    // Every segment, empty or not, must say something possible.
    for (i, s) in parsed.segments.iter().enumerate() {
        let at = format!("segment {i} at {:#x}", s.address);
        s.address
            .checked_add(s.mem_size)
            .ok_or_else(|| bad(format!("{at}: its size {} overflows", s.mem_size)))?;
        if s.file_size > s.mem_size {
            return Err(bad(format!(
                "{at}: holds {} bytes of file in {} bytes of memory",
                s.file_size, s.mem_size
            )));
        }
        let file_end = s.file_offset.checked_add(s.file_size);
        if s.file_offset > file_len || file_end.is_none_or(|e| e > file_len) {
            return Err(bad(format!(
                "{at}: its bytes {}..{} lie past the end of the file ({} bytes)",
                s.file_offset,
                s.file_offset as u128 + s.file_size as u128,
                file_len
            )));
        }
        if parsed.format.is_elf() && s.file_size > 0 && s.address % page != s.file_offset % page {
            return Err(bad(format!(
                "{at}: its address and file offset {:#x} differ modulo the page size",
                s.file_offset
            )));
        }
    }
    let mut segs: Vec<&Segment> = parsed.segments.iter().filter(|s| s.mem_size > 0).collect();
    if segs.is_empty() {
        return Err(bad("the image has no loadable segments"));
    }
    segs.sort_by_key(|s| s.address);
    for pair in segs.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let end = a.address + a.mem_size;
        if end > b.address {
            return Err(bad(format!(
                "the segment at {:#x} overlaps the segment at {:#x}",
                a.address, b.address
            )));
        }
        // Pages are mapped whole: a page both would map would hold one
        // segment's bytes with the other's protection (ELF; the system
        // lays PE images out itself).
        if parsed.format.is_elf() && (end - 1) / page == b.address / page {
            return Err(bad(format!(
                "the segments at {:#x} and {:#x} share a page",
                a.address, b.address
            )));
        }
    }
    let low = segs[0].address / page * page;
    let high = segs
        .iter()
        .map(|s| s.address + s.mem_size)
        .max()
        .expect("at least one");
    // A segment ending within a page of the top of the address space
    // rounds past it: that is a span no image has.
    let span = (high - low).div_ceil(page).saturating_mul(page);
    if span > MAX_SPAN {
        return Err(bad(format!(
            "the segments span {span} bytes of memory (at most {MAX_SPAN} are accepted)"
        )));
    }
    Ok((low, span))
}
