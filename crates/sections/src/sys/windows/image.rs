//! Image sections on Windows: the system's own `SEC_IMAGE` section, which
//! maps a PE file by its sections with their protections (code shared
//! between processes, data copy-on-write), and the residency of its pages
//! in this process's working set.

use std::fs::File;
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::ptr::NonNull;

use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, VirtualQuery, FILE_MAP_READ, MEMORY_BASIC_INFORMATION,
    PAGE_READONLY,
};

use super::{last_error, owned, raw, GENERIC_READ};
use crate::sys::{ImageMapping, LoadSegment};

const GENERIC_EXECUTE: u32 = 0x2000_0000;
const SEC_IMAGE: u32 = 0x0100_0000;

/// Opens an image file for reading and executing (an image section needs
/// both rights on the file).
pub(crate) fn open_image_file(path: &std::path::Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .access_mode(GENERIC_READ | GENERIC_EXECUTE)
        .open(path)
}

/// A handle to read an image's headers through.
pub(crate) fn header_reader(file: &File) -> io::Result<File> {
    file.try_clone()
}

/// ELF images are mapped on Linux only.
pub(crate) fn map_elf(
    _file: &File,
    _span: u64,
    _segments: &[LoadSegment],
) -> io::Result<ImageMapping> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "ELF images are mapped on Linux only",
    ))
}

/// Maps a PE file as the system's image section: the system reads the
/// headers again, lays the sections out and protects each one.
pub(crate) fn map_pe(file: &File) -> io::Result<ImageMapping> {
    // SAFETY: a valid file handle; an unnamed section of the whole file.
    let section = owned(unsafe {
        CreateFileMappingW(
            file.as_raw_handle(),
            std::ptr::null(),
            PAGE_READONLY | SEC_IMAGE,
            0,
            0,
            std::ptr::null(),
        )
    })?;
    // SAFETY: maps a view of the section just made; the view keeps the
    // section alive after its handle closes.
    let view = unsafe { MapViewOfFile(raw(&section), FILE_MAP_READ, 0, 0, 0) };
    let ptr = NonNull::new(view.Value.cast::<u8>()).ok_or_else(last_error)?;
    // The view's size: the allocation's regions, from its base on.
    let mut len = 0usize;
    loop {
        // SAFETY: zeroed is a valid MEMORY_BASIC_INFORMATION.
        let mut info: MEMORY_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
        // SAFETY: queries our own address space; `info` is large enough.
        let n = unsafe {
            VirtualQuery(
                ptr.as_ptr().add(len).cast(),
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        if n == 0 || info.AllocationBase != ptr.as_ptr().cast() || info.RegionSize == 0 {
            break;
        }
        len += info.RegionSize;
    }
    // SAFETY: the view mapped above, owned by nothing else.
    Ok(unsafe { ImageMapping::new(ptr, len) })
}

/// Windows does not say which pages of a file its cache holds.
pub(crate) fn page_cache(_file: &File, _max_len: u64) -> io::Result<Option<Vec<bool>>> {
    Ok(None)
}

/// Which pages of `ptr..ptr+len` are in this process's working set.
pub(crate) fn present_pages(ptr: *const u8, len: usize) -> io::Result<Vec<bool>> {
    super::view::working_set(ptr, len)
}
