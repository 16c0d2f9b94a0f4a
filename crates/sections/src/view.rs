//! [`View`]: one mapping of a range of a section, and the verbs of
//! [`Section`] that make one.
//!
//! Floor 2: uses `section`, `sys` (its `Mapping`), `types` and `error`.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::section::Section;
use crate::sys;
use crate::types::Access;
use crate::types::{Advice, Residency};

/// A mapping of `len` bytes of a section at `offset`, with one [`Access`].
///
/// A view keeps its section alive. Another process (or another view) can
/// write the same bytes at any moment, so the safe accessors copy
/// ([`read_at`](Self::read_at), [`write_at`](Self::write_at)) or hand out
/// atomics ([`atomic_u32`](Self::atomic_u32)); Rust references to the bytes
/// are `unsafe` ([`as_slice`](Self::as_slice)) and state what they need.
///
/// # Examples
///
/// Views of one section see each other's writes; a copy-on-write view
/// keeps its own:
///
/// ```
/// use sections::{Access, Section};
/// let section = Section::anonymous(4096)?;
/// let (shared, other) = (section.map_all(Access::ReadWrite)?, section.map_all(Access::Read)?);
/// let private = section.map_all(Access::CopyOnWrite)?;
/// shared.write_at(0, b"seen by all")?;
/// private.write_at(0, b"mine")?;
/// let (mut a, mut b) = ([0u8; 11], [0u8; 11]);
/// other.read_at(0, &mut a)?;
/// private.read_at(0, &mut b)?;
/// assert_eq!((&a, &b), (b"seen by all", b"mine by all"));
/// # Ok::<(), sections::Error>(())
/// ```
#[derive(Debug)]
pub struct View {
    mapping: sys::Mapping,
    offset: u64,
    access: Access,
    section: Section,
}

// A view is `Send` and `Sync` through its mapping: its safe accessors
// either copy with atomic operations or return atomics, so concurrent use
// through `&View` from several threads is not a data race; the unsafe
// accessors put the burden of exclusion on their callers.

impl View {
    pub(crate) fn new(section: Section, offset: u64, len: usize, access: Access) -> Result<View> {
        // The caller checked that `offset` is granularity-aligned and the
        // range inside the section.
        let mapping = sys::Mapping::new(section.object(), offset, len, access).map_err(|e| {
            let hint = if access.executes() && e.kind() == std::io::ErrorKind::PermissionDenied {
                " (is the namespace or file system mounted noexec?)"
            } else {
                ""
            };
            section.err_os("map", e).with_detail(format!(
                "{len} bytes at offset {offset} as {access:?}{hint}"
            ))
        })?;
        Ok(View {
            mapping,
            offset,
            access,
            section,
        })
    }

    /// The length of the view in bytes.
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Always false: views are never empty.
    pub fn is_empty(&self) -> bool {
        self.mapping.len() == 0
    }

    /// Where in the section the view starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The view's access.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The section this view maps.
    pub fn section(&self) -> &Section {
        &self.section
    }

    /// The first byte of the view. Dereferencing it is `unsafe`: other
    /// processes may write the memory concurrently.
    pub fn as_ptr(&self) -> *const u8 {
        self.mapping.ptr()
    }

    /// The first byte of the view, for writing. Writing through it is only
    /// allowed when [`Access::writes`] is true for the view's access, and
    /// is subject to the same concurrency caveats as [`as_mut_slice`](Self::as_mut_slice).
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.mapping.ptr()
    }

    #[inline]
    fn check(&self, op: &'static str, offset: usize, len: usize) -> Result<()> {
        if offset
            .checked_add(len)
            .is_none_or(|end| end > self.mapping.len())
        {
            return Err(self
                .section
                .err(ErrorKind::InvalidRange, op)
                .with_detail(format!(
                    "{len} bytes at offset {offset} go past the end of the view ({} bytes)",
                    self.mapping.len()
                )));
        }
        Ok(())
    }

    #[inline]
    fn check_writable(&self, op: &'static str) -> Result<()> {
        if !self.access.writes() {
            return Err(self
                .section
                .err(ErrorKind::PermissionDenied, op)
                .with_detail(format!("the view is {:?}", self.access)));
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes at `offset` in the view into `buf`.
    ///
    /// The copy is made with atomic loads (words where aligned, bytes
    /// elsewhere), so a concurrent writer in another process is no data
    /// race; bytes it writes during the copy may be seen half old, half
    /// new. Within this process, Rust's memory model does not define an
    /// atomic access racing one of another size on the same bytes (such as
    /// this copy against [`atomic_u32`](Self::atomic_u32) in another
    /// thread): harmless on x86-64 and ARM64, but do not rely on it.
    ///
    /// # Errors
    /// `InvalidRange` past the end of the view; `Truncated` if the range
    /// reaches a page the section's file no longer provides (another
    /// process shrank it, or a sparse section's file system had no room):
    /// from then on that part of the view reads zeros and every copy that
    /// reaches it fails the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Section};
    /// let view = Section::anonymous(4096)?.map_all(Access::ReadWrite)?;
    /// view.write_at(100, b"abc")?;
    /// let mut buf = [0u8; 3];
    /// view.read_at(100, &mut buf)?;
    /// assert_eq!(&buf, b"abc");
    /// assert_eq!(view.read_at(4095, &mut buf).unwrap_err().kind(), ErrorKind::InvalidRange);
    /// # Ok::<(), sections::Error>(())
    /// ```
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check("read", offset, buf.len())?;
        // SAFETY: the range was bounds-checked against the live mapping, and
        // `buf` is a distinct private buffer. A page past the end of a file
        // someone shrank reads as zeros (see `sys::Guard`).
        unsafe { load_bytes(self.mapping.ptr().add(offset), buf.as_mut_ptr(), buf.len()) };
        self.check_truncation("read", offset, buf.len())
    }

    /// An error if `offset..offset+len` reaches a page the guard patched
    /// (during this copy or before it): that part of the view is no longer
    /// the section.
    #[inline]
    fn check_truncation(&self, op: &'static str, offset: usize, len: usize) -> Result<()> {
        // The copy's accesses happen before `first_bad` is read: a store
        // that landed on a zero page another thread's fault just mapped
        // finds `first_bad` lowered (the handler lowers it first). Loads
        // keep their order with an acquire fence; stores need a full one.
        if op == "write" {
            fence(Ordering::SeqCst);
        } else {
            fence(Ordering::Acquire);
        }
        let first_bad = self.mapping.first_bad();
        if first_bad == usize::MAX {
            return Ok(());
        }
        let end = self.mapping.ptr() as usize + offset + len;
        if end <= first_bad {
            return Ok(());
        }
        Err(self.truncated(op, first_bad - self.mapping.ptr() as usize))
    }

    /// Says why the page at `at` (in the view) could not be provided.
    #[cold]
    fn truncated(&self, op: &'static str, at: usize) -> Error {
        let at_section = self.offset + at as u64;
        let why = match self.section.size() {
            Ok(size) if size <= at_section => format!(
                "another process shrank the section's file to {size} bytes, below byte \
                 {at_section} of this view's range"
            ),
            Ok(size) => format!(
                "the page at byte {at_section} could not be provided: the section's file \
                 was shrunk below it (it is {size} bytes now), or its file system had no \
                 room for the page (a sparse section)"
            ),
            Err(_) => format!("the page at byte {at_section} could not be provided"),
        };
        self.section
            .err(ErrorKind::Truncated, op)
            .with_detail(format!(
                "{why}; from byte {at_section} on, this view reads zeros and takes no writes"
            ))
    }

    /// Copies `data` into the view at `offset`, with atomic stores (see
    /// [`read_at`](Self::read_at)). Fails on a read-only view.
    ///
    /// # Errors
    /// `PermissionDenied` on a read-only view; otherwise as
    /// [`read_at`](Self::read_at): a write that reached a page the file no
    /// longer provides went nowhere and is reported `Truncated`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Section};
    /// let section = Section::anonymous(4096)?;
    /// section.map_all(Access::ReadWrite)?.write_at(0, b"header")?;
    /// let refused = section.map_all(Access::Read)?.write_at(0, b"x").unwrap_err();
    /// assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    /// # Ok::<(), sections::Error>(())
    /// ```
    #[inline]
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write")?;
        self.check("write", offset, data.len())?;
        // SAFETY: bounds-checked against a writable live mapping; `data` is
        // a distinct buffer.
        unsafe { store_bytes(data.as_ptr(), self.mapping.ptr().add(offset), data.len()) };
        self.check_truncation("write", offset, data.len())
    }

    fn atomic_ptr<T>(&self, op: &'static str, offset: usize) -> Result<*mut T> {
        let size = std::mem::size_of::<T>();
        self.check_writable(op)?;
        self.check(op, offset, size)?;
        let ptr = self.mapping.ptr().wrapping_add(offset);
        if (ptr as usize) % std::mem::align_of::<T>() != 0 {
            return Err(self
                .section
                .err(ErrorKind::InvalidRange, op)
                .with_detail(format!(
                    "offset {offset} is not aligned to {} bytes",
                    std::mem::align_of::<T>()
                )));
        }
        Ok(ptr.cast())
    }

    /// An atomic 32-bit integer at `offset` (4-byte aligned), shared with
    /// every process that maps the same bytes. Needs a writable view, since
    /// an atomic can be stored to.
    ///
    /// # Errors
    ///
    /// `InvalidRange` when `offset` is not 4-byte aligned or the integer
    /// would end past the view; `PermissionDenied` on a read-only view.
    ///
    /// # Examples
    ///
    /// A flag that publishes data written before it (the other view is
    /// usually in another process):
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use sections::{Access, Section};
    /// let section = Section::anonymous(4096)?;
    /// let producer = section.map_all(Access::ReadWrite)?;
    /// let consumer = section.map_all(Access::ReadWrite)?;
    /// producer.write_at(8, b"payload")?;
    /// producer.atomic_u32(0)?.store(1, Ordering::Release);
    /// if consumer.atomic_u32(0)?.load(Ordering::Acquire) == 1 {
    ///     let mut buf = [0u8; 7];
    ///     consumer.read_at(8, &mut buf)?;
    ///     assert_eq!(&buf, b"payload");
    /// }
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        let ptr = self.atomic_ptr::<u32>("atomic_u32", offset)?;
        // SAFETY: the pointer is aligned, in bounds and writable, and lives
        // as long as `&self` (the mapping is only removed on drop). All
        // access to the bytes through this crate's safe API is atomic.
        Ok(unsafe { AtomicU32::from_ptr(ptr) })
    }

    /// An atomic 64-bit integer at `offset` (8-byte aligned). See
    /// [`atomic_u32`](Self::atomic_u32).
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        let ptr = self.atomic_ptr::<u64>("atomic_u64", offset)?;
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { AtomicU64::from_ptr(ptr) })
    }

    /// The whole view as a byte slice.
    ///
    /// # Safety
    /// While the returned borrow lives, no process and no thread may write
    /// the view's bytes (through any view, file write or handle), for
    /// example because the section is read-only to everyone or a lock held
    /// by the caller excludes writers.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, Section};
    /// let view = Section::anonymous(4096)?.map_all(Access::ReadWrite)?;
    /// view.write_at(0, b"one two three")?;
    /// // SAFETY: the section is anonymous and this example's alone: no other
    /// // process, thread or view writes it while the slice lives.
    /// let words = unsafe { view.as_slice() }[..13].split(|&b| b == b' ').count();
    /// assert_eq!(words, 3);
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is valid for `len` bytes while `self` lives;
        // the absence of writers is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.mapping.ptr(), self.mapping.len()) }
    }

    /// The whole view as a mutable byte slice; fails on a read-only view.
    ///
    /// # Safety
    /// While the returned borrow lives, no other process, thread or view may
    /// read or write the view's bytes.
    pub unsafe fn as_mut_slice(&mut self) -> Result<&mut [u8]> {
        self.check_writable("as_mut_slice")?;
        // SAFETY: the mapping is valid and writable for `len` bytes while
        // `self` lives; exclusivity is the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.mapping.ptr(), self.mapping.len()) })
    }

    /// Copies `len` bytes from `src` to `dst` within the view (the ranges
    /// may overlap), as one `memmove`: no system call, no buffer in between.
    ///
    /// # Safety
    /// While the copy runs, no other process, thread or view may write
    /// either range or read the destination range.
    pub unsafe fn copy_within(&self, src: usize, dst: usize, len: usize) -> Result<()> {
        self.check_writable("copy")?;
        self.check("copy", src, len)?;
        self.check("copy", dst, len)?;
        // SAFETY: both ranges are in bounds of a writable live mapping;
        // exclusion of concurrent access is the caller's contract.
        unsafe {
            std::ptr::copy(
                self.mapping.ptr().add(src),
                self.mapping.ptr().add(dst),
                len,
            )
        };
        Ok(())
    }

    /// A page-aligned `(pointer, length)` covering `offset..offset+len`.
    fn pages(&self, op: &'static str, offset: usize, len: usize) -> Result<(*mut u8, usize)> {
        self.check(op, offset, len)?;
        let page = sys::page_size();
        let start = offset / page * page;
        Ok((
            self.mapping.ptr().wrapping_add(start),
            len + (offset - start),
        ))
    }

    /// Writes modified pages of the whole view back to the section's file
    /// and waits (`msync(MS_SYNC)`). For memory-backed sections it is
    /// cheap and changes nothing visible.
    pub fn flush(&self) -> Result<()> {
        self.flush_range(0, self.mapping.len())
    }

    /// [`flush`](Self::flush) for a range of the view.
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        let (ptr, len) = self.pages("flush", offset, len)?;
        // SAFETY: the range lies within the live mapping.
        unsafe { sys::flush(ptr, len, true) }.map_err(|e| self.section.err_os("flush", e))
    }

    /// Starts writing modified pages back and returns at once.
    pub fn flush_async(&self) -> Result<()> {
        let (ptr, len) = self.pages("flush", 0, self.mapping.len())?;
        // SAFETY: the range lies within the live mapping.
        unsafe { sys::flush(ptr, len, false) }.map_err(|e| self.section.err_os("flush", e))
    }

    /// Flushes the view and the file: when it returns, the data is on disk
    /// (`msync` + `fsync`). For memory-backed sections this is [`flush`](Self::flush).
    pub fn flush_durable(&self) -> Result<()> {
        self.flush()?;
        if self.section.kind().is_file() {
            self.section
                .object()
                .sync_data()
                .map_err(|e| self.section.err_os("flush", e))?;
        }
        Ok(())
    }

    /// Tells the kernel how the view will be used.
    pub fn advise(&self, advice: Advice) -> Result<()> {
        // SAFETY: the whole view is a live mapping; no hint discards data.
        unsafe { sys::advise(self.mapping.ptr(), self.mapping.len(), advice) }.map_err(|e| {
            self.section
                .err_os("advise", e)
                .with_detail(format!("{advice:?}"))
        })
    }

    /// Makes `offset..offset+len` resident now, so later accesses do not
    /// fault. Returns an error, never a crash, when pages cannot be read
    /// in (for example a backing file truncated by someone else).
    /// Returns `false` when the kernel could only be asked to read ahead
    /// (kernels before 5.14), `true` when the pages are resident.
    pub fn prefetch(&self, offset: usize, len: usize) -> Result<bool> {
        let (ptr, len) = self.pages("prefetch", offset, len)?;
        let write = self.access.writes() && !self.access.is_private();
        // SAFETY: the range lies within the live mapping.
        unsafe { sys::prefetch(ptr, len, write) }.map_err(|e| self.section.err_os("prefetch", e))
    }

    /// How many pages of `offset..offset+len` are resident (`mincore`).
    pub fn residency(&self, offset: usize, len: usize) -> Result<Residency> {
        let (ptr, len) = self.pages("residency", offset, len)?;
        // SAFETY: the range lies within the live mapping.
        let resident = unsafe { sys::resident_pages(ptr, len) }
            .map_err(|e| self.section.err_os("residency", e))?;
        let page_size = sys::page_size();
        Ok(Residency {
            resident_pages: resident,
            total_pages: len.div_ceil(page_size),
            page_size,
        })
    }

    /// Locks `offset..offset+len` in memory (`mlock`). A refusal names the
    /// `RLIMIT_MEMLOCK` limit that caused it.
    pub fn lock(&self, offset: usize, len: usize) -> Result<()> {
        let (ptr, len) = self.pages("lock", offset, len)?;
        // SAFETY: the range lies within the live mapping.
        unsafe { sys::lock(ptr, len) }.map_err(|e| {
            self.section
                .err(ErrorKind::PermissionDenied, "lock")
                .with_detail(format!(
                    "locking {len} bytes refused ({e}); {}",
                    sys::lock_limit_hint()
                ))
        })
    }

    /// Unlocks a range locked with [`lock`](Self::lock).
    pub fn unlock(&self, offset: usize, len: usize) -> Result<()> {
        let (ptr, len) = self.pages("unlock", offset, len)?;
        // SAFETY: the range lies within the live mapping.
        unsafe { sys::unlock(ptr, len) }.map_err(|e| self.section.err_os("unlock", e))
    }
}

/// Making views: the verbs of [`Section`] that map it.
impl Section {
    /// Maps `len` bytes at `offset` with `access`.
    ///
    /// `offset` must be a multiple of [`granularity`](crate::granularity),
    /// the range must lie within the section's current size, and `access`
    /// may not exceed the handle's.
    ///
    /// # Errors
    ///
    /// `InvalidRange` when `offset` is not a multiple of the granularity,
    /// `len` is 0 or the range goes past the section's end;
    /// `PermissionDenied` when `access` needs more than the handle has.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Section};
    /// let gran = sections::granularity(); // 4 KiB on Linux, 64 KiB on Windows
    /// let section = Section::anonymous(4 * gran as u64)?;
    /// let third = section.map(2 * gran as u64, gran, Access::ReadWrite)?; // the third granule
    /// assert_eq!((third.offset(), third.len()), (2 * gran as u64, gran));
    /// let unaligned = section.map(100, 16, Access::Read).unwrap_err();
    /// assert_eq!(unaligned.kind(), ErrorKind::InvalidRange);
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub fn map(&self, offset: u64, len: usize, access: Access) -> Result<View> {
        self.map_within(offset, len, access, self.size()?)
    }

    fn map_within(&self, offset: u64, len: usize, access: Access, size: u64) -> Result<View> {
        const OP: &str = "map";
        if !self.access().allows(access) {
            return Err(self
                .err(ErrorKind::PermissionDenied, OP)
                .with_detail(format!(
                    "a {:?} view needs more access than this {:?} handle has",
                    access,
                    self.access()
                )));
        }
        let gran = sys::granularity() as u64;
        if offset % gran != 0 {
            return Err(self.err(ErrorKind::InvalidRange, OP).with_detail(format!(
                "offset {offset} is not a multiple of the granularity {gran}"
            )));
        }
        if len == 0 {
            return Err(self
                .err(ErrorKind::InvalidRange, OP)
                .with_detail("a view cannot be empty"));
        }
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > size) {
            return Err(self.err(ErrorKind::InvalidRange, OP).with_detail(format!(
                "{len} bytes at offset {offset} go past the end of the section ({size} bytes)"
            )));
        }
        View::new(self.clone(), offset, len, access)
    }

    /// Maps the whole section (at its current size) with `access`; errors
    /// as [`map`](Self::map).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{Access, ErrorKind, Section};
    /// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
    /// let _owner = Section::options().size(4096).namespace(&ns).create("status")?;
    /// let reader = Section::options().access(Access::Read).namespace(&ns).open("status")?;
    /// assert_eq!(reader.map_all(Access::Read)?.len(), 4096);
    /// let refused = reader.map_all(Access::ReadWrite).unwrap_err(); // a read-only handle
    /// assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub fn map_all(&self, access: Access) -> Result<View> {
        let size = self.size()?;
        let len = usize::try_from(size).map_err(|_| {
            self.err(ErrorKind::InvalidSize, "map")
                .with_detail(format!("{size} bytes do not fit in this address space"))
        })?;
        self.map_within(0, len, access, size)
    }
}

const WORD: usize = std::mem::size_of::<usize>();

/// Copies `len` bytes from shared memory at `src` to private memory at `dst`
/// with relaxed atomic loads (word-sized where `src` is aligned).
///
/// # Safety
/// `src..src+len` must be readable mapped memory and `dst..dst+len` a
/// private buffer that nothing else accesses during the call.
#[inline]
pub(crate) unsafe fn load_bytes(src: *const u8, dst: *mut u8, len: usize) {
    let mut i = 0;
    let head = src.align_offset(WORD).min(len);
    while i < head {
        // SAFETY: in bounds per the contract; a byte is always aligned.
        unsafe { *dst.add(i) = AtomicU8::from_ptr(src.add(i).cast_mut()).load(Ordering::Relaxed) };
        i += 1;
    }
    // Eight words (a cache line) per turn: independent loads the CPU can
    // overlap.
    while i + 8 * WORD <= len {
        // SAFETY: `src + i` is word-aligned (after `head`) and the eight
        // words are in bounds; `dst` may be unaligned.
        unsafe {
            let at = |k: usize| {
                AtomicUsize::from_ptr(src.add(i + k * WORD).cast_mut().cast())
                    .load(Ordering::Relaxed)
            };
            let words = [at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7)];
            dst.add(i).cast::<[usize; 8]>().write_unaligned(words);
        }
        i += 8 * WORD;
    }
    while i + WORD <= len {
        // SAFETY: `src + i` is word-aligned (after `head`) and in bounds;
        // `dst` may be unaligned, hence write_unaligned.
        unsafe {
            let w = AtomicUsize::from_ptr(src.add(i).cast_mut().cast()).load(Ordering::Relaxed);
            dst.add(i).cast::<usize>().write_unaligned(w);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: as in the head loop.
        unsafe { *dst.add(i) = AtomicU8::from_ptr(src.add(i).cast_mut()).load(Ordering::Relaxed) };
        i += 1;
    }
}

/// Copies `len` bytes from private memory at `src` into shared memory at
/// `dst` with relaxed atomic stores.
///
/// # Safety
/// `dst..dst+len` must be writable mapped memory and `src..src+len` a
/// readable buffer that does not overlap it.
#[inline]
pub(crate) unsafe fn store_bytes(src: *const u8, dst: *mut u8, len: usize) {
    let mut i = 0;
    let head = dst.align_offset(WORD).min(len);
    while i < head {
        // SAFETY: in bounds per the contract.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(*src.add(i), Ordering::Relaxed) };
        i += 1;
    }
    // Eight words per turn, as in `load_bytes`.
    while i + 8 * WORD <= len {
        // SAFETY: `dst + i` is word-aligned and the eight words are in
        // bounds; `src` may be unaligned.
        unsafe {
            let words = src.add(i).cast::<[usize; 8]>().read_unaligned();
            for (k, w) in words.into_iter().enumerate() {
                AtomicUsize::from_ptr(dst.add(i + k * WORD).cast()).store(w, Ordering::Relaxed);
            }
        }
        i += 8 * WORD;
    }
    while i + WORD <= len {
        // SAFETY: `dst + i` is word-aligned and in bounds; `src` may be
        // unaligned, hence read_unaligned.
        unsafe {
            let w = src.add(i).cast::<usize>().read_unaligned();
            AtomicUsize::from_ptr(dst.add(i).cast()).store(w, Ordering::Relaxed);
        }
        i += WORD;
    }
    while i < len {
        // SAFETY: as in the head loop.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(*src.add(i), Ordering::Relaxed) };
        i += 1;
    }
}

#[cfg(test)]
mod copy_tests {
    use crate::Section;

    /// Every offset and length around the word and line boundaries copies
    /// exactly, in both directions, and touches nothing else.
    #[test]
    fn word_copies_are_exact() {
        let v = Section::anonymous(4096)
            .unwrap()
            .map_all(crate::Access::ReadWrite)
            .unwrap();
        let pattern: Vec<u8> = (0..400u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..17 {
            for len in (0..150).chain([255, 256, 257, 399]) {
                v.write_at(0, &[0xee; 600]).unwrap();
                v.write_at(offset, &pattern[..len]).unwrap();
                let mut all = vec![0u8; 600];
                v.read_at(0, &mut all).unwrap();
                assert!(all[..offset].iter().all(|&b| b == 0xee));
                assert_eq!(&all[offset..offset + len], &pattern[..len]);
                assert!(all[offset + len..].iter().all(|&b| b == 0xee));
                // And out again from an odd place into an odd buffer.
                let mut out = vec![0u8; len + 1];
                v.read_at(offset, &mut out[1..]).unwrap();
                assert_eq!(&out[1..], &pattern[..len]);
            }
        }
    }
}
