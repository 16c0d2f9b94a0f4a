//! Image sections on Linux: an ELF file mapped by its loadable segments the
//! way the kernel's loader maps a program (reserve the whole range, map each
//! segment from the file with its protection, zero pages for the tail of a
//! data segment), and the residency questions an image is asked: which of
//! its file's pages the page cache holds (`mincore`), which pages this
//! process has mapped (`/proc/self/pagemap`).

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::ptr::NonNull;

use rustix::fs::{Access as FsAccess, AtFlags, CWD};
use rustix::mm::{self, MapFlags, ProtFlags};

use crate::sys::LoadSegment;

/// An image mapped into this process: the whole reserved range, unmapped
/// on drop.
#[derive(Debug)]
pub(crate) struct ImageMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: process-wide memory, valid from any thread; `MappedImage` decides
// what may be done with it.
unsafe impl Send for ImageMapping {}
// SAFETY: see `Send`.
unsafe impl Sync for ImageMapping {}

impl ImageMapping {
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for ImageMapping {
    fn drop(&mut self) {
        // SAFETY: the range reserved by `map_elf`, owned by this value; every
        // segment mapping lies inside it, so one munmap removes them all.
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Opens an image file for reading (and mapping).
pub(crate) fn open_image_file(path: &std::path::Path) -> io::Result<File> {
    File::open(path)
}

/// A descriptor to read an image's headers through, advised for random
/// access so that reading the headers reads only their pages: read-ahead
/// would bring the rest of the file into the page cache and spoil the
/// residency the image is asked about. The same file opened again (an open
/// file description of its own, so that the advice stays off the
/// mapping's), or, without `/proc`, a duplicate.
pub(crate) fn header_reader(file: &File) -> io::Result<File> {
    let reader = match super::reopen_read_only(file.as_fd()) {
        Ok(fd) => File::from(fd),
        Err(_) => file.try_clone()?,
    };
    let _ = rustix::fs::fadvise(&reader, 0, None, rustix::fs::Advice::Random);
    Ok(reader)
}

/// Maps an ELF file's loadable segments into a fresh reservation of `span`
/// bytes. The caller checked every segment (`Image::open`): they lie in
/// `0..span`, do not overlap, their file parts lie inside the file, and each
/// address agrees with its file offset modulo the page size.
///
/// Protections follow the segments, except that a segment asking to be
/// both writable and executable is mapped without execute (W^X). Every
/// segment is mapped private: pages that cannot be written stay the page
/// cache's own pages (shared with every process that maps the file), a
/// writable segment's pages are copied on first write.
pub(crate) fn map_elf(
    file: &File,
    span: u64,
    segments: &[LoadSegment],
) -> io::Result<ImageMapping> {
    let page = super::page_size() as u64;
    let span = usize::try_from(span.div_ceil(page) * page)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "image too large to map"))?;
    // SAFETY: a fresh reservation (PROT_NONE, nothing committed) chosen by
    // the kernel; it aliases nothing and is owned by the value returned
    // (or unmapped by its drop on an error below).
    let base = unsafe {
        mm::mmap_anonymous(
            std::ptr::null_mut(),
            span,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )?
    };
    let mapping = ImageMapping {
        ptr: NonNull::new(base.cast()).expect("mmap never returns null on success"),
        len: span,
    };
    let base = base as usize;
    for seg in segments {
        if seg.mem_size == 0 {
            continue;
        }
        let mut prot = ProtFlags::empty();
        if seg.read {
            prot |= ProtFlags::READ;
        }
        if seg.write {
            prot |= ProtFlags::WRITE;
        }
        if seg.exec && !seg.write {
            prot |= ProtFlags::EXEC;
        }
        let start = seg.vaddr / page * page;
        let file_end = seg.vaddr + seg.file_size; // where the file's bytes stop
        let mem_end = (seg.vaddr + seg.mem_size).div_ceil(page) * page;
        let mut zero_from = start; // first page not mapped from the file
        if seg.file_size > 0 {
            let map_end = file_end.div_ceil(page) * page;
            let offset = seg.offset - (seg.vaddr - start);
            // SAFETY: `start..map_end` lies inside our own reservation
            // (checked by the caller against `span`), so MAP_FIXED replaces
            // only pages this mapping owns; the file range is readable.
            unsafe {
                mm::mmap(
                    (base + start as usize) as *mut c_void,
                    (map_end - start) as usize,
                    prot,
                    MapFlags::PRIVATE | MapFlags::FIXED,
                    file.as_fd(),
                    offset,
                )?;
            }
            zero_from = map_end;
            // The rest of the last file page belongs to memory, not to the
            // file: zero it as the loader does (a copy of that one page).
            let tail = (map_end - file_end) as usize;
            if seg.mem_size > seg.file_size && tail > 0 {
                let at = (base + file_end as usize) as *mut u8;
                let last = (base + (map_end - page) as usize) as *mut c_void;
                if !seg.write {
                    // SAFETY: one page of our own mapping, made writable
                    // (never writable and executable at once) for the
                    // zeroing and given its protection back below.
                    unsafe {
                        mm::mprotect(
                            last,
                            page as usize,
                            mm::MprotectFlags::READ | mm::MprotectFlags::WRITE,
                        )?
                    };
                }
                // SAFETY: `at..at+tail` is the end of the page just mapped
                // (private, writable now); nothing else refers to it yet.
                unsafe { std::ptr::write_bytes(at, 0, tail) };
                if !seg.write {
                    // SAFETY: as above.
                    unsafe { mm::mprotect(last, page as usize, mprotect_flags(prot))? };
                }
            }
        }
        if mem_end > zero_from {
            // SAFETY: inside our reservation, as above; anonymous zero pages
            // for the part of the segment the file does not hold (bss).
            unsafe {
                mm::mmap_anonymous(
                    (base + zero_from as usize) as *mut c_void,
                    (mem_end - zero_from) as usize,
                    prot,
                    MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
                )?;
            }
        }
    }
    Ok(mapping)
}

fn mprotect_flags(prot: ProtFlags) -> mm::MprotectFlags {
    let mut out = mm::MprotectFlags::empty();
    if prot.contains(ProtFlags::READ) {
        out |= mm::MprotectFlags::READ;
    }
    if prot.contains(ProtFlags::WRITE) {
        out |= mm::MprotectFlags::WRITE;
    }
    if prot.contains(ProtFlags::EXEC) {
        out |= mm::MprotectFlags::EXEC;
    }
    out
}

/// PE images are Windows's; Linux maps ELF only.
pub(crate) fn map_pe(_file: &File) -> io::Result<ImageMapping> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "PE images are mapped on Windows only",
    ))
}

/// Which pages of `file` the page cache holds, one flag per page, or `None`
/// when the kernel does not tell this process: since Linux 5.2 `mincore`
/// reports page-cache residency of a file only to processes that own the
/// file or may write it; for others it reports only the pages the process
/// itself has mapped, which would read as "not cached".
pub(crate) fn page_cache(file: &File, path: &std::path::Path) -> io::Result<Option<Vec<bool>>> {
    let meta = file.metadata()?;
    if !residency_observable(&meta, path) {
        return Ok(None);
    }
    let len = usize::try_from(meta.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    if len == 0 {
        return Ok(Some(Vec::new()));
    }
    // SAFETY: a fresh read-only shared mapping of our file, never touched
    // (mincore faults nothing in) and unmapped below.
    let ptr = unsafe {
        mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::SHARED,
            file.as_fd(),
            0,
        )?
    };
    let page = super::page_size();
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `vec` has one byte per page of the mapping, as mincore needs.
    let rc = unsafe { libc::mincore(ptr, len, vec.as_mut_ptr().cast()) };
    let err = io::Error::last_os_error();
    // SAFETY: the mapping made above, used by nothing else.
    let _ = unsafe { mm::munmap(ptr, len) };
    if rc != 0 {
        return Err(err);
    }
    Ok(Some(vec.iter().map(|b| b & 1 == 1).collect()))
}

/// The kernel's rule for `mincore` on a file mapping (`can_do_mincore`): the
/// caller owns the file (or has CAP_FOWNER, approximated by being root), or
/// may open it for writing.
fn residency_observable(meta: &std::fs::Metadata, path: &std::path::Path) -> bool {
    let euid = crate::sys::unix::euid();
    euid == 0
        || meta.uid() == euid
        || rustix::fs::accessat(CWD, path, FsAccess::WRITE_OK, AtFlags::EACCESS).is_ok()
}

/// Which pages of `ptr..ptr+len` (page-aligned, inside a live mapping of
/// this process) have a page mapped in this process, from
/// `/proc/self/pagemap` (bit 63: present; bit 62: swapped out). Unlike
/// `mincore` this answers for any file, and it answers "did this process
/// touch the page", not "does the page cache hold it".
pub(crate) fn present_pages(ptr: *const u8, len: usize) -> io::Result<Vec<bool>> {
    let page = super::page_size();
    let first = ptr as usize / page;
    let count = len.div_ceil(page);
    let pagemap = File::open("/proc/self/pagemap")?;
    let mut raw = vec![0u8; count * 8];
    pagemap.read_exact_at(&mut raw, first as u64 * 8)?;
    Ok(raw
        .chunks_exact(8)
        .map(|e| {
            let word = u64::from_le_bytes(e.try_into().expect("8 bytes"));
            word & (3 << 62) != 0
        })
        .collect())
}
