//! [`Mapping`]: one mapping of a range of a section object, owned (unmapped
//! on drop) and guarded against truncation when its memory can shrink.
//! Platform-neutral: built on the contract's `Object::map`, `unmap` and
//! `Guard`. `View` is a mapping with a section and an access; the sync
//! objects this layer provides map their words with it too.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use super::{unmap, Guard, Object};
use crate::types::Access;

/// An owned mapping of `len` bytes of an object.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Catches accesses past the end of a file another process shrank.
    guard: Guard,
}

// SAFETY: a mapping is process-wide memory, valid from any thread; what
// may be done with its bytes is decided by the types built on it.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` (non-zero) bytes of `object` at `offset`, a multiple of
    /// the granularity that the caller checked, with `access`. Memory that
    /// can shrink under the mapping (a file, a named section, a memfd
    /// without the shrink seal) is registered with the SIGBUS guard.
    pub(crate) fn new(
        object: &Object,
        offset: u64,
        len: usize,
        access: Access,
    ) -> io::Result<Mapping> {
        // SAFETY: the caller checked the offset's alignment; the mapping
        // is owned by the returned value and unmapped once, in `drop`.
        let ptr = unsafe { object.map(offset, len, access) }?;
        let ptr = NonNull::new(ptr).expect("mmap never returns null on success");
        let guard = if object.can_shrink() {
            Guard::register(ptr.as_ptr(), len)
        } else {
            Ok(Guard::none())
        };
        match guard {
            Ok(guard) => Ok(Mapping { ptr, len, guard }),
            Err(e) => {
                // SAFETY: the mapping made above, not yet shared with anyone.
                let _ = unsafe { unmap(ptr.as_ptr(), len) };
                Err(e)
            }
        }
    }

    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The lowest address of the mapping that the guard patched (its page
    /// is no longer the object's); `usize::MAX` when none was.
    #[inline]
    pub(crate) fn first_bad(&self) -> usize {
        self.guard.first_bad()
    }

    /// The 32-bit word at `at`, which must be 4-byte aligned and inside the
    /// mapping (callers pass offsets of a layout they checked).
    ///
    /// # Panics
    /// If `at` is misaligned or out of bounds: a bug in the caller.
    #[cfg_attr(target_os = "macos", allow(dead_code))]
    pub(crate) fn u32_at(&self, at: usize) -> &AtomicU32 {
        assert!(at % 4 == 0 && at + 4 <= self.len, "word {at}");
        // SAFETY: in bounds and aligned (mappings start on a page); the
        // memory lives as long as `&self`, and every access to shared
        // words through this crate is atomic.
        unsafe { AtomicU32::from_ptr(self.ptr().add(at).cast()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unguard first: once unmapped, the addresses may be reused by a
        // mapping that is not ours.
        self.guard.release();
        // SAFETY: the mapping was made in `new` and is unmapped only here;
        // no borrow of it can outlive `self`.
        let _ = unsafe { unmap(self.ptr.as_ptr(), self.len) };
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::sys::unix::guard::{guarded, TABLE_TESTS};

    /// A view of memory sealed against shrinking takes no guard slot (so
    /// it can never free someone else's); a view of a file anyone can
    /// truncate, here one on tmpfs, takes one.
    #[test]
    fn only_memory_that_can_shrink_is_guarded() {
        let _one = TABLE_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let sealed = crate::sys::anonymous(8192, false, true).unwrap();
        let a = Mapping::new(&sealed, 0, 8192, Access::ReadWrite).unwrap();
        assert!(!guarded(a.ptr()));
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, [0u8; 8192]).unwrap();
        let (file, _, _) = crate::sys::open_path(&path, Access::Read).unwrap();
        let f = Mapping::new(&file, 0, 8192, Access::Read).unwrap();
        assert!(guarded(f.ptr().wrapping_add(4096)));
        drop(a);
        let ptr = f.ptr();
        drop(f);
        assert!(!guarded(ptr));
    }
}

/// An image mapped into this process (`map_elf`, `map_pe`): its whole
/// range, unmapped on drop with the same `unmap` as a view's mapping (one
/// `munmap` of the reserved range removes every segment in it; on Windows
/// the image section's view is unmapped like any view).
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
    /// # Safety
    /// `ptr..ptr+len` is an image's mapping that nothing else owns; the
    /// value unmaps it once, when dropped.
    #[cfg_attr(target_os = "macos", allow(dead_code))] // macOS maps no images
    pub(crate) unsafe fn new(ptr: NonNull<u8>, len: usize) -> ImageMapping {
        ImageMapping { ptr, len }
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for ImageMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns (see `new`).
        let _ = unsafe { unmap(self.ptr.as_ptr(), self.len) };
    }
}
