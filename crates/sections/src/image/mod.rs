//! Image sections: an executable or shared library mapped the way the
//! system's loader maps it, by its segments, each with its own protection,
//! and asked which of its pages are really in memory.
//!
//! Floor 2: uses `sys`, `types` and `error`.
//!
//! What is mapped, and how, is documented on [`Image`].

mod parse;
mod types;

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{elf, pe, Endianness, FileKind, ReadCache};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::{self, LoadSegment};
use crate::types::{Advice, Residency};
use parse::{bad, check_layout, parse_elf, parse_pe, Bounded};
pub use types::{ImageFormat, ImageKind, PageSet, Protection, Segment, Symbol, SymbolKind};

/// The most bytes of metadata (headers, symbol and string tables) read from
/// an image at once: larger claims in a header are refused as absurd.
pub const MAX_METADATA: u64 = 256 << 20;

/// The largest address range an image may span (256 GiB): beyond it a
/// header is refused as absurd.
pub const MAX_SPAN: u64 = 256 << 30;

/// A parsed image: an executable or shared library, its loadable segments
/// and symbols.
///
/// Segments and symbols are read from the file's headers with the `object`
/// crate, through a bounded reader (no header can make this crate read or
/// allocate more than [`MAX_METADATA`] bytes at once) with read-ahead off,
/// and every segment is checked against the file before anything is
/// mapped. [`Image::map`] gives a [`MappedImage`]:
///
/// - **Linux (ELF)**: the whole address range the segments span is reserved
///   (inaccessible), then each loadable segment is mapped from the file at
///   its offset with its protection. Every segment is mapped private:
///   segments that cannot be written keep the page cache's own pages, which
///   every process mapping the file shares; a writable segment's pages are
///   copied on first write. The zero-filled tail of a data segment (`.bss`)
///   is anonymous zero pages, and the rest of the last file page of such a
///   segment is zeroed, as the kernel's loader does.
/// - **Windows (PE)**: the system's own image section (`SEC_IMAGE`) maps
///   the file; the system lays out and protects the sections.
///
/// **Relocations are not applied.** Code that refers to addresses only
/// relative to itself (position-independent code that needs no relocation:
/// no `DT_RELA`, `DT_REL`, `DT_JMPREL` or `DT_RELR` entries, no other
/// library) can run where it is mapped; anything else is for inspection.
/// [`MappedImage::function`] refuses symbols of an image that needs
/// relocations ([`ErrorKind::NeedsRelocation`]).
///
/// **W^X.** No page is ever writable and executable at once: a segment that
/// asks for both is mapped writable and not executable, and its symbols
/// are not callable.
///
/// **Truncation.** As with the system loader, the image's file must not be
/// shrunk while it is mapped: touching a page past the new end raises
/// SIGBUS. Views of sections carry this crate's SIGBUS guard; mapped images
/// do not (their code would run on zero pages, which is no better).
///
/// # Examples
///
/// ```no_run
/// use sections::Image;
///
/// # fn main() -> sections::Result<()> {
/// let image = Image::open("/usr/bin/true")?;
/// for s in image.segments() {
///     println!("{:#x} {} bytes {}", s.address, s.mem_size, s.protection);
/// }
/// let mapped = image.map()?;
/// println!("mapped {} bytes at {:p}", mapped.len(), mapped.base());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Image {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: File,
    file_len: u64,
    format: ImageFormat,
    kind: ImageKind,
    entry: u64,
    segments: Vec<Segment>,
    /// Sorted by address.
    symbols: Vec<Symbol>,
    /// Why the image cannot run unrelocated (empty: it can).
    relocations: Vec<String>,
    /// Why this process cannot run its code at all (another architecture).
    foreign: Option<String>,
    symbols_complete: bool,
    /// Indices of the segments with memory, in address order (they do not
    /// overlap: `check_layout`).
    by_address: Vec<usize>,
    /// Lowest segment address rounded down to a page.
    low: u64,
    /// Bytes from `low` to the end of the highest segment, page-rounded.
    span: u64,
}

impl Image {
    /// Opens and parses the image at `path` (ELF or PE, on any platform;
    /// mapping it needs the platform's own format).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] and [`ErrorKind::PermissionDenied`] from
    /// opening the file; [`ErrorKind::BadImage`] for a file that is not an
    /// image or whose headers are damaged or hostile (truncated, segments
    /// overlapping or past the end of the file, absurd sizes), with what is
    /// wrong in the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{ErrorKind, Image};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "not an image").unwrap();
    /// let err = Image::open(&path).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::BadImage);
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Image> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let named = |e: Error| e.with_image(&shown);
        let file = sys::open_image_file(path).map_err(|e| named(Error::os("open image", e)))?;
        let meta = file
            .metadata()
            .map_err(|e| named(Error::os("open image", e)))?;
        if !meta.is_file() {
            return Err(named(bad("not a regular file")));
        }
        let file_len = meta.len();
        if file_len == 0 {
            return Err(named(bad("the file is empty")));
        }
        let reader = sys::header_reader(&file).map_err(|e| named(Error::os("open image", e)))?;
        let cache = ReadCache::new(reader);
        let budget = std::cell::Cell::new(0);
        let data = Bounded::new(&cache, &budget);
        let parsed = match FileKind::parse(data) {
            Ok(FileKind::Elf32) => {
                parse_elf::<elf::FileHeader32<Endianness>>(data, ImageFormat::Elf32)
            }
            Ok(FileKind::Elf64) => {
                parse_elf::<elf::FileHeader64<Endianness>>(data, ImageFormat::Elf64)
            }
            Ok(FileKind::Pe32) => parse_pe::<pe::ImageNtHeaders32>(data, ImageFormat::Pe32),
            Ok(FileKind::Pe64) => parse_pe::<pe::ImageNtHeaders64>(data, ImageFormat::Pe64),
            Ok(other) => Err(bad(format!(
                "{other:?} files are not images this crate maps (ELF and PE are)"
            ))),
            Err(_) => Err(bad("not an ELF or PE image")),
        }
        .map_err(named)?;
        let (low, span) = check_layout(&parsed, file_len).map_err(named)?;
        let mut by_address: Vec<usize> = (0..parsed.segments.len())
            .filter(|&i| parsed.segments[i].mem_size > 0)
            .collect();
        by_address.sort_by_key(|&i| parsed.segments[i].address);
        Ok(Image {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                file,
                file_len,
                format: parsed.format,
                kind: parsed.kind,
                entry: parsed.entry,
                segments: parsed.segments,
                symbols: parsed.symbols,
                relocations: parsed.relocations,
                foreign: parsed.foreign,
                symbols_complete: parsed.symbols_complete,
                by_address,
                low,
                span,
            }),
        })
    }

    /// The path the image was opened from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The file's size in bytes.
    pub fn file_len(&self) -> u64 {
        self.inner.file_len
    }

    /// The file format.
    pub fn format(&self) -> ImageFormat {
        self.inner.format
    }

    /// Whether the image is linked for fixed addresses or can be placed
    /// anywhere.
    pub fn kind(&self) -> ImageKind {
        self.inner.kind
    }

    /// The entry point's address as linked (0 if none).
    pub fn entry(&self) -> u64 {
        self.inner.entry
    }

    /// The loadable segments, in address order.
    pub fn segments(&self) -> &[Segment] {
        &self.inner.segments
    }

    /// Symbols with an address in a loadable segment, in address order:
    /// the full symbol table (`.symtab`) where the file still has one,
    /// otherwise the dynamic symbols; PE images list none.
    pub fn symbols(&self) -> &[Symbol] {
        &self.inner.symbols
    }

    /// Whether [`symbols`](Image::symbols) lists every symbol: false when
    /// there were more than 1,048,576 or their names together passed
    /// 64 MiB (a hostile table can give every symbol a 4 KiB name), and the
    /// rest were left out.
    pub fn symbols_complete(&self) -> bool {
        self.inner.symbols_complete
    }

    /// The symbol called `name`, if any.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.inner.symbols.iter().find(|s| s.name == name)
    }

    /// Why the image cannot run unrelocated, one reason per entry (for
    /// example "24 bytes of DT_RELA relocations"); empty if it can.
    pub fn relocations(&self) -> &[String] {
        &self.inner.relocations
    }

    /// Bytes of address space the image spans when mapped.
    pub fn span(&self) -> u64 {
        self.inner.span
    }

    /// The file range that holds the bytes of `address..address+len`, as
    /// far as the file holds them (`None` for addresses only memory has,
    /// like `.bss`).
    pub fn file_range_of(&self, address: u64, len: u64) -> Option<Range<u64>> {
        let seg = self.inner.segment_at(address)?;
        let rel = address - seg.address;
        if rel >= seg.file_size {
            return None;
        }
        let len = len.min(seg.file_size - rel);
        Some(seg.file_offset + rel..seg.file_offset + rel + len)
    }

    /// Which pages of the image's file the page cache holds now, or `None`
    /// where this process cannot know: Linux reports a file's page-cache
    /// residency (`mincore`) only to its owner and to processes that may
    /// write it, and Windows not at all. Nothing is read or faulted in to
    /// answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sections::Image;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let image = Image::open("/usr/lib/x86_64-linux-gnu/libc.so.6")?;
    /// match image.page_cache()? {
    ///     Some(cache) => println!("{} pages cached", cache.total().resident_pages),
    ///     None => println!("residency of this file is not observable here"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn page_cache(&self) -> Result<Option<PageSet>> {
        let shown = self.inner.path.display().to_string();
        let pages = sys::page_cache(&self.inner.file, MAX_SPAN).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidInput {
                // Too large: the file's length now, checked once.
                Error::new(ErrorKind::InvalidSize, "page-cache residency")
                    .with_image(&shown)
                    .with_detail(e.to_string())
            } else {
                Error::os("page-cache residency", e).with_image(&shown)
            }
        })?;
        Ok(pages.map(|pages| PageSet::new(0, sys::page_size(), pages)))
    }

    /// Maps the image: on Linux an ELF image by its segments, on Windows a
    /// PE image as the system's image section (see the module docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] for a format this platform does not map
    /// (ELF on Windows, PE on Linux, anything on macOS);
    /// [`ErrorKind::Truncated`] if the file shrank since it was opened; an
    /// OS error if a mapping fails.
    pub fn map(&self) -> Result<MappedImage> {
        let inner = &self.inner;
        let shown = inner.path.display().to_string();
        // The segments were checked against the file's length when it was
        // opened: a file shrunk since then is not mapped.
        let now = inner
            .file
            .metadata()
            .map_err(|e| Error::os("map image", e).with_image(&shown))?
            .len();
        if now < inner.file_len {
            return Err(Error::new(ErrorKind::Truncated, "map image")
                .with_image(&shown)
                .with_detail(format!(
                    "the file shrank from {} to {now} bytes since it was opened",
                    inner.file_len
                )));
        }
        let mapping = if inner.format.is_elf() {
            let segments: Vec<LoadSegment> = inner
                .segments
                .iter()
                .filter(|s| s.mem_size > 0)
                .map(|s| LoadSegment {
                    vaddr: s.address - inner.low,
                    mem_size: s.mem_size,
                    offset: s.file_offset,
                    file_size: s.file_size,
                    read: s.protection.read,
                    write: s.protection.write,
                    exec: s.protection.execute,
                })
                .collect();
            sys::map_elf(&inner.file, inner.span, &segments)
        } else {
            sys::map_pe(&inner.file)
        }
        .map_err(|e| Error::os("map image", e).with_image(&shown))?;
        Ok(MappedImage {
            image: self.clone(),
            mapping,
        })
    }
}

impl Inner {
    /// The segment whose memory holds `address`.
    fn segment_at(&self, address: u64) -> Option<&Segment> {
        let i = self
            .by_address
            .partition_point(|&i| self.segments[i].address <= address);
        let seg = &self.segments[*self.by_address.get(i.checked_sub(1)?)?];
        seg.contains(address).then_some(seg)
    }
}

/// An image mapped into this process; unmapped when dropped.
///
/// Its memory is only reachable through raw pointers ([`base`], [`address`])
/// and [`function`](MappedImage::function), all of which need `unsafe` to
/// use: the file behind it may change under a private mapping's unwritten
/// pages, and its code is whatever the file says.
///
/// [`base`]: MappedImage::base
/// [`address`]: MappedImage::address
#[derive(Debug)]
pub struct MappedImage {
    image: Image,
    mapping: sys::ImageMapping,
}

impl MappedImage {
    /// The image this maps.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The first byte of the mapped range.
    pub fn base(&self) -> *const u8 {
        self.mapping.ptr()
    }

    /// Bytes of the mapped range.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Always false: an image maps at least one page.
    pub fn is_empty(&self) -> bool {
        self.mapping.len() == 0
    }

    /// The image address (as linked) that the first mapped byte stands for.
    fn low(&self) -> u64 {
        if self.image.inner.format.is_elf() {
            self.image.inner.low
        } else {
            0
        }
    }

    /// Where the image's `address` (as linked) is in this process, if the
    /// image's memory holds it.
    pub fn address(&self, address: u64) -> Option<*const u8> {
        let rel = address.checked_sub(self.low())?;
        if rel >= self.mapping.len() as u64 {
            return None;
        }
        self.image.inner.segment_at(address)?;
        Some(self.mapping.ptr().wrapping_add(rel as usize).cast_const())
    }

    /// Where the symbol `name` is in this process.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] if the image has no such symbol or its
    /// address lies outside the image's memory.
    pub fn symbol_address(&self, name: &str) -> Result<*const u8> {
        let sym = self.image.symbol(name).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "find symbol")
                .with_detail(format!("no symbol {name:?} in the image"))
        })?;
        self.address(sym.address).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, "find symbol")
                .with_detail(format!("symbol {name:?} lies outside the image's memory"))
        })
    }

    /// The function `name` of the image as a callable `F` (a function
    /// pointer type such as `extern "C" fn(u64) -> u64`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NeedsRelocation`] if the image needs relocations or
    /// other libraries, or is linked for fixed addresses: its code would
    /// run with wrong addresses. [`ErrorKind::NotFound`] if there is no
    /// such function; [`ErrorKind::PermissionDenied`] if its segment is not
    /// executable (or asked to be writable too, and was mapped without
    /// execute); [`ErrorKind::InvalidSize`] if `F` is not pointer-sized;
    /// [`ErrorKind::Unsupported`] for an image of another architecture,
    /// class or byte order than this process, and for PE images (the
    /// system maps them; use its loader to call into them). Indirect
    /// functions (`STT_GNU_IFUNC`) are never handed out: their address is a
    /// resolver only a dynamic loader runs.
    ///
    /// # Safety
    ///
    /// `F` must be the function's true type (signature and ABI), and the
    /// code must be sound to call: the file's contents decide what runs.
    /// The returned value must not be called after this `MappedImage` is
    /// dropped.
    pub unsafe fn function<F: Copy>(&self, name: &str) -> Result<F> {
        let op = "find function";
        let inner = &self.image.inner;
        if !inner.format.is_elf() {
            return Err(Error::new(ErrorKind::Unsupported, op)
                .with_detail("functions of PE images are called through the system's loader"));
        }
        if std::mem::size_of::<F>() != std::mem::size_of::<*const u8>() {
            return Err(Error::new(ErrorKind::InvalidSize, op)
                .with_detail("the function type must be a function pointer"));
        }
        if let Some(why) = &inner.foreign {
            return Err(Error::new(ErrorKind::Unsupported, op).with_detail(why.clone()));
        }
        if inner.kind == ImageKind::Executable {
            return Err(Error::new(ErrorKind::NeedsRelocation, op).with_detail(
                "the image is linked to run at fixed addresses (ET_EXEC); it was mapped elsewhere",
            ));
        }
        if !inner.relocations.is_empty() {
            return Err(
                Error::new(ErrorKind::NeedsRelocation, op).with_detail(format!(
                    "the image needs what only a dynamic loader does: {}",
                    inner.relocations.join(", ")
                )),
            );
        }
        if inner
            .symbols
            .iter()
            .any(|s| s.name == name && s.kind == SymbolKind::IndirectFunction)
        {
            return Err(Error::new(ErrorKind::Unsupported, op).with_detail(format!(
                "{name:?} is an indirect function (STT_GNU_IFUNC): its address is a resolver \
                 that only a dynamic loader runs"
            )));
        }
        let sym = inner
            .symbols
            .iter()
            .find(|s| s.name == name && s.kind == SymbolKind::Function)
            .ok_or_else(|| {
                Error::new(ErrorKind::NotFound, op)
                    .with_detail(format!("no function {name:?} in the image"))
            })?;
        let seg = inner.segment_at(sym.address).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, op)
                .with_detail(format!("function {name:?} lies outside the image's memory"))
        })?;
        if !seg.protection.execute || seg.protection.write {
            return Err(
                Error::new(ErrorKind::PermissionDenied, op).with_detail(format!(
                    "function {name:?} lies in a {} segment, which is not mapped executable",
                    seg.protection
                )),
            );
        }
        let ptr = self.address(sym.address).expect("inside a segment");
        // SAFETY: `F` is pointer-sized (checked); the caller promises it is
        // the function's type and that calling it is sound.
        Ok(unsafe { std::mem::transmute_copy::<*const u8, F>(&ptr) })
    }

    /// Which pages of the image's memory have a page mapped in this
    /// process now (touched since it was mapped, or shared in by the
    /// system): on Linux from `/proc/self/pagemap`, on Windows from the
    /// working set. The set is indexed by image address (as linked), so
    /// [`PageSet::count`] takes a segment's or a symbol's address and size.
    pub fn touched(&self) -> Result<PageSet> {
        let pages = sys::present_pages(self.mapping.ptr(), self.mapping.len())
            .map_err(|e| Error::os("image residency", e))?;
        Ok(PageSet::new(self.low(), sys::page_size(), pages))
    }

    /// Per segment, how many of its pages are mapped in this process now.
    pub fn residency(&self) -> Result<Vec<Residency>> {
        let touched = self.touched()?;
        Ok(self
            .image
            .segments()
            .iter()
            .map(|s| touched.count(s.address, s.mem_size))
            .collect())
    }

    /// Advice for the whole image ([`Advice::Random`] turns read-ahead off:
    /// a fault then brings in only its own page).
    pub fn advise(&self, advice: Advice) -> Result<()> {
        // SAFETY: the whole range this value mapped and owns.
        unsafe { sys::advise(self.mapping.ptr(), self.mapping.len(), advice) }
            .map_err(|e| Error::os("advise", e))
    }
}
