//! Reading an image's headers: ELF and PE through the `object` crate, over
//! a bounded reader, and the checks a layout must pass before it is mapped.

use std::fs::File;
use std::ops::Range;

use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _, Sym as _};
use object::read::pe::ImageNtHeaders;
use object::{elf, pe, Endianness, LittleEndian as LE, ReadCache, ReadRef};

use super::types::{ImageFormat, ImageKind, Protection, Segment, Symbol, SymbolKind};
use super::{MAX_METADATA, MAX_SPAN};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// A bounded reader for the header parser: reads are served from the file
/// on demand and cached, and no single read may exceed [`MAX_METADATA`].
#[derive(Clone, Copy)]
pub(super) struct Bounded<'a>(pub(super) &'a ReadCache<File>);

impl<'a> ReadRef<'a> for Bounded<'a> {
    fn len(self) -> std::result::Result<u64, ()> {
        self.0.len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> std::result::Result<&'a [u8], ()> {
        if size > MAX_METADATA {
            return Err(());
        }
        self.0.read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(
        self,
        range: Range<u64>,
        delimiter: u8,
    ) -> std::result::Result<&'a [u8], ()> {
        self.0.read_bytes_at_until(range, delimiter)
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
    let phdrs = header
        .program_headers(endian, data)
        .map_err(elf_err("program headers"))?;
    let mut segments = Vec::new();
    let mut relocations = Vec::new();
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
        } else if p_type == elf::PT_DYNAMIC {
            let dynamic = ph
                .dynamic(endian, data)
                .map_err(elf_err("dynamic section"))?
                .unwrap_or(&[]);
            for d in dynamic {
                let tag = d.d_tag(endian);
                let val: u64 = d.d_val(endian).into();
                let mut named = |what: &str| {
                    relocations.push(format!("{val} bytes of {what} relocations"));
                };
                match tag {
                    elf::DT_NULL => break,
                    elf::DT_RELASZ if val > 0 => named("DT_RELA"),
                    elf::DT_RELSZ if val > 0 => named("DT_REL"),
                    elf::DT_PLTRELSZ if val > 0 => named("DT_JMPREL"),
                    elf::DT_RELRSZ if val > 0 => named("DT_RELR"),
                    elf::DT_TEXTREL => relocations.push("text relocations (DT_TEXTREL)".into()),
                    elf::DT_NEEDED => relocations.push("other libraries (DT_NEEDED)".into()),
                    _ => {}
                }
            }
        }
    }
    relocations.dedup();
    let mut symbols = Vec::new();
    // Symbols are optional: an image without section headers (or with
    // damaged ones) still maps; only its symbols are unknown.
    if let Ok(sections) = header.sections(endian, data) {
        let mut table = sections.symbols(endian, data, elf::SHT_SYMTAB);
        if table.as_ref().map_or(true, |t| t.symbols().is_empty()) {
            table = sections.symbols(endian, data, elf::SHT_DYNSYM);
        }
        if let Ok(table) = table {
            let strings = table.strings();
            for sym in table.symbols() {
                if sym.st_shndx(endian) == elf::SHN_UNDEF {
                    continue;
                }
                let kind = match sym.st_type() {
                    elf::STT_FUNC | elf::STT_GNU_IFUNC => SymbolKind::Function,
                    elf::STT_OBJECT => SymbolKind::Data,
                    elf::STT_NOTYPE => SymbolKind::Other,
                    _ => continue, // sections, files, thread-locals: no address
                };
                let address: u64 = sym.st_value(endian).into();
                if !segments.iter().any(|s: &Segment| s.contains(address)) {
                    continue;
                }
                let Ok(name) = sym.name(endian, strings) else {
                    continue;
                };
                if name.is_empty() {
                    continue;
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
    })
}

/// Checks that the segments can be mapped as they say: each within the
/// file and the address space limit, file parts no larger than memory,
/// addresses and offsets agreeing modulo the page size, no two overlapping.
/// Returns the page-rounded low address and span.
pub(super) fn check_layout(parsed: &Parsed, file_len: u64) -> Result<(u64, u64)> {
    let page = sys::page_size() as u64;
    let mut segs: Vec<&Segment> = parsed.segments.iter().filter(|s| s.mem_size > 0).collect();
    if segs.is_empty() {
        return Err(bad("the image has no loadable segments"));
    }
    segs.sort_by_key(|s| s.address);
    for (i, s) in segs.iter().enumerate() {
        let at = format!("segment {i} at {:#x}", s.address);
        let end = s
            .address
            .checked_add(s.mem_size)
            .ok_or_else(|| bad(format!("{at}: its size {} overflows", s.mem_size)))?;
        if s.file_size > s.mem_size {
            return Err(bad(format!(
                "{at}: holds {} bytes of file in {} bytes of memory",
                s.file_size, s.mem_size
            )));
        }
        let file_end = s.file_offset.checked_add(s.file_size);
        if s.file_size > 0 && file_end.is_none_or(|e| e > file_len) {
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
        if let Some(next) = segs.get(i + 1) {
            if end > next.address {
                return Err(bad(format!(
                    "{at} overlaps the segment at {:#x}",
                    next.address
                )));
            }
        }
    }
    let low = segs[0].address / page * page;
    let high = segs
        .iter()
        .map(|s| s.address + s.mem_size)
        .max()
        .expect("at least one");
    let span = (high - low).div_ceil(page) * page;
    if span > MAX_SPAN {
        return Err(bad(format!(
            "the segments span {span} bytes of memory (at most {MAX_SPAN} are accepted)"
        )));
    }
    Ok((low, span))
}
