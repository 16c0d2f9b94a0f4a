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
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;

use rustix::mm::{self, MapFlags, ProtFlags};

use crate::sys::{ImageMapping, LoadSegment};

/// Opens an image file for reading (and mapping). Non-blocking, so that a
/// FIFO put where an image was expected is refused (not a regular file)
/// instead of waiting for a writer; reads of regular files ignore the flag.
pub(crate) fn open_image_file(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
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
    // SAFETY: the reservation just made, owned by nothing else; every
    // segment is mapped inside it, so unmapping it removes them all.
    let mapping = unsafe {
        ImageMapping::new(
            NonNull::new(base.cast()).expect("mmap never returns null on success"),
            span,
        )
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
            // Pages wholly of the file are mapped from it; a last page that
            // is partly memory (the segment goes on as zeros, `.bss`) is
            // this mapping's own: zero pages with the file's bytes copied
            // in with `pread` (never a store through the file's mapping,
            // which would fault if the file shrank meanwhile).
            let whole_end = if seg.mem_size > seg.file_size {
                file_end / page * page
            } else {
                file_end.div_ceil(page) * page
            };
            let offset = seg.offset - (seg.vaddr - start);
            if whole_end > start {
                // SAFETY: `start..whole_end` lies inside our own reservation
                // (checked by the caller against `span`), so MAP_FIXED
                // replaces only pages this mapping owns.
                unsafe {
                    mm::mmap(
                        (base + start as usize) as *mut c_void,
                        (whole_end - start) as usize,
                        prot,
                        MapFlags::PRIVATE | MapFlags::FIXED,
                        file.as_fd(),
                        offset,
                    )?;
                }
            }
            zero_from = whole_end.max(start);
            if file_end > zero_from {
                let at = (base + zero_from as usize) as *mut c_void;
                // SAFETY: one page inside our reservation, made writable
                // (not executable) for the copy, its protection set below.
                unsafe {
                    mm::mmap_anonymous(
                        at,
                        page as usize,
                        ProtFlags::READ | ProtFlags::WRITE,
                        MapFlags::PRIVATE | MapFlags::FIXED,
                    )?;
                }
                let want = (file_end - zero_from) as usize;
                // The page's file offset (the page may start before the
                // segment: the loader maps those bytes from the file too).
                let from = (seg.offset + zero_from) - seg.vaddr;
                // SAFETY: `at..at+want` is inside the page just mapped,
                // writable, and nothing else refers to it yet.
                let buf = unsafe { std::slice::from_raw_parts_mut(at.cast::<u8>(), want) };
                read_fully_at(file, buf, from)?;
                // SAFETY: the same page; its final protection (W^X kept).
                unsafe { mm::mprotect(at, page as usize, mprotect_flags(prot))? };
                zero_from += page;
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

/// Reads what the file holds at `offset` into `buf`; a file that ends
/// early leaves the rest zero.
fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
/// when the kernel does not tell this process. Since Linux 5.2 `mincore`
/// reports page-cache residency of a file only to processes that own it
/// (or have CAP_FOWNER in its user namespace) or may write it; to others it
/// answers "resident" for every page. Rather than guess that rule (user
/// namespaces, capabilities, a path renamed since it was opened), the
/// mapping asked about reaches one page past the end of the file, a page
/// the page cache can never hold: "resident" there means the kernel is not
/// telling. Nothing is read or faulted in.
/// Files longer than `max_len` (measured once, here) are refused with
/// `InvalidInput`: one flag per page is kept.
pub(crate) fn page_cache(file: &File, max_len: u64) -> io::Result<Option<Vec<bool>>> {
    let len = file.metadata()?.len();
    if len > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the file has {len} bytes; residency is reported for files of at most {max_len}"
            ),
        ));
    }
    let page = super::page_size() as u64;
    // A page past the end, beyond any large folio that can hold the last
    // one (the largest are a PMD: 512 MiB with 64 KiB pages).
    const FOLIO: u64 = 1 << 30;
    let probe = len.div_ceil(FOLIO) * FOLIO;
    let map_len = usize::try_from(probe + page)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: a fresh read-only shared mapping of our file (partly past its
    // end), never touched: mincore faults nothing in. Unmapped below.
    let ptr = unsafe {
        mm::mmap(
            std::ptr::null_mut(),
            map_len,
            ProtFlags::READ,
            MapFlags::SHARED,
            file.as_fd(),
            0,
        )?
    };
    let result = (|| {
        let mut one = [0u8; 1];
        // SAFETY: the last page of the mapping.
        let at = unsafe { ptr.cast::<u8>().add(probe as usize) };
        // SAFETY: one page of the mapping, one byte of answer.
        if unsafe { libc::mincore(at.cast(), page as usize, one.as_mut_ptr().cast()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if one[0] & 1 == 1 {
            return Ok(None);
        }
        let pages = len.div_ceil(page) as usize;
        let mut out = Vec::with_capacity(pages);
        let chunk = 1usize << 16; // pages asked at once
        let mut vec = vec![0u8; chunk.min(pages)];
        let mut first = 0usize;
        while first < pages {
            let n = chunk.min(pages - first);
            // SAFETY: `n` pages from page `first`, inside the mapping;
            // `vec` has at least one byte per page asked about.
            let rc = unsafe {
                libc::mincore(
                    ptr.cast::<u8>().add(first * page as usize).cast(),
                    n * page as usize,
                    vec.as_mut_ptr().cast(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            out.extend(vec[..n].iter().map(|b| b & 1 == 1));
            first += n;
        }
        Ok(Some(out))
    })();
    // SAFETY: the mapping made above, used by nothing else.
    let _ = unsafe { mm::munmap(ptr, map_len) };
    result
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
