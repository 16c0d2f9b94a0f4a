//! Operations on a mapped view: unmap, flush, prefetch, residency, lock.

use std::io;

use windows_sys::Win32::System::Memory::{
    FlushViewOfFile, PrefetchVirtualMemory, UnmapViewOfFile, VirtualLock, VirtualUnlock,
    MEMORY_MAPPED_VIEW_ADDRESS, WIN32_MEMORY_RANGE_ENTRY,
};
use windows_sys::Win32::System::ProcessStatus::{
    K32QueryWorkingSetEx, PSAPI_WORKING_SET_EX_INFORMATION,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use super::{last_error, page_size};
use crate::types::Advice;

/// # Safety
/// `ptr` must be a view made by [`Object::map`] that nothing uses any more.
pub(crate) unsafe fn unmap(ptr: *mut u8, _len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    match unsafe { UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: ptr.cast() }) } {
        0 => Err(last_error()),
        _ => Ok(()),
    }
}

/// Writes dirty pages of a range back to the file (`FlushViewOfFile`).
///
/// # Safety
/// The range must lie within a live view.
pub(crate) unsafe fn flush(ptr: *mut u8, len: usize, _wait: bool) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    match unsafe { FlushViewOfFile(ptr.cast_const().cast(), len) } {
        0 => Err(last_error()),
        _ => Ok(()),
    }
}

fn prefetch_range(ptr: *mut u8, len: usize) -> io::Result<()> {
    let entry = WIN32_MEMORY_RANGE_ENTRY {
        VirtualAddress: ptr.cast(),
        NumberOfBytes: len,
    };
    // SAFETY: one valid range entry for the current process.
    match unsafe { PrefetchVirtualMemory(GetCurrentProcess(), 1, &entry, 0) } {
        0 => Err(last_error()),
        _ => Ok(()),
    }
}

/// Windows has no access-pattern hints for views; `WillNeed` starts
/// reading the range in, the others leave the defaults.
///
/// # Safety
/// The range must lie within a live view.
pub(crate) unsafe fn advise(ptr: *mut u8, len: usize, advice: Advice) -> io::Result<()> {
    match advice {
        Advice::WillNeed => prefetch_range(ptr, len),
        _ => Ok(()),
    }
}

/// Makes a range resident: asks for it (`PrefetchVirtualMemory`) and then
/// touches every page. Windows does not let a mapped file shrink, so the
/// touch cannot fault past its end.
///
/// # Safety
/// The range must lie within a live view.
pub(crate) unsafe fn prefetch(ptr: *mut u8, len: usize, _write: bool) -> io::Result<bool> {
    let _ = prefetch_range(ptr, len);
    let page = page_size();
    let mut off = 0;
    while off < len {
        // SAFETY: inside the live view per the contract.
        unsafe { std::ptr::read_volatile(ptr.add(off)) };
        off += page;
    }
    Ok(true)
}

/// How many pages of a range are in the working set (`QueryWorkingSetEx`).
///
/// # Safety
/// The range must lie within a live view.
pub(crate) unsafe fn resident_pages(ptr: *mut u8, len: usize) -> io::Result<usize> {
    Ok(working_set(ptr, len)?.into_iter().filter(|&p| p).count())
}

/// Which pages of a range are in the working set, one flag per page.
/// Asking about an address is harmless whatever lies there.
pub(crate) fn working_set(ptr: *const u8, len: usize) -> io::Result<Vec<bool>> {
    let page = page_size();
    let mut entries: Vec<PSAPI_WORKING_SET_EX_INFORMATION> = (0..len.div_ceil(page))
        .map(|i| PSAPI_WORKING_SET_EX_INFORMATION {
            VirtualAddress: ptr.wrapping_add(i * page) as *mut _,
            ..Default::default()
        })
        .collect();
    let bytes = std::mem::size_of_val(entries.as_slice()) as u32;
    // SAFETY: a valid array of entries of the size passed.
    if unsafe { K32QueryWorkingSetEx(GetCurrentProcess(), entries.as_mut_ptr().cast(), bytes) } == 0
    {
        return Err(last_error());
    }
    // SAFETY: reading the `Flags` view of a plain-data union; bit 0 is Valid.
    Ok(entries
        .iter()
        .map(|e| unsafe { e.VirtualAttributes.Flags } & 1 == 1)
        .collect())
}

/// # Safety
/// The range must lie within a live view.
pub(crate) unsafe fn lock(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    match unsafe { VirtualLock(ptr.cast(), len) } {
        0 => Err(last_error()),
        _ => Ok(()),
    }
}

/// # Safety
/// The range must lie within a live view.
pub(crate) unsafe fn unlock(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    match unsafe { VirtualUnlock(ptr.cast(), len) } {
        0 => Err(last_error()),
        _ => Ok(()),
    }
}

/// What limits locking, for the error message.
pub(crate) fn lock_limit_hint() -> String {
    "the process's minimum working set limits locked pages: raise it with SetProcessWorkingSetSize"
        .to_owned()
}

/// Windows does not let a mapped file shrink, so views need no SIGBUS
/// guard; this one records nothing.
#[derive(Debug)]
pub(crate) struct Guard;

impl Guard {
    pub(crate) fn none() -> Guard {
        Guard
    }

    pub(crate) fn register(_start: *mut u8, _len: usize) -> io::Result<Guard> {
        Ok(Guard)
    }

    #[inline]
    pub(crate) fn first_bad(&self) -> usize {
        usize::MAX
    }

    pub(crate) fn release(&mut self) {}
}
