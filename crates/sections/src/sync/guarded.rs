//! Guarded values: a `T` in shared memory, reachable only through its
//! robust mutex.

use std::marker::PhantomData;
use std::mem::size_of;
use std::time::Duration;

use super::{imp, Locked, Mutex, MutexGuard, Pod};
use crate::error::Result;
use crate::view::{load_bytes, store_bytes};

/// A value of type `T` in shared memory, reachable only through its robust
/// mutex, so no one writes offsets by hand.
///
/// `T` is any [`Pod`] type: numbers, arrays of them, or a `#[repr(C)]`
/// struct that implements it (bytemuck's derive macros do; this crate's
/// `derive` feature turns them on).
///
/// # Examples
///
/// ```
/// use sections::sync::{Locked, SyncOptions};
/// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
/// let mut opts = SyncOptions::new();
/// opts.namespace(&ns);
/// let jobs_done = opts.create_guarded("jobs-done", 0u64)?;
///
/// // Any process that opens the name updates the same value.
/// *opts.open_guarded::<u64>("jobs-done")?.lock()?.into_guard() += 1;
///
/// let mut value = match jobs_done.lock()? {
///     Locked::Acquired(value) => value,
///     Locked::Abandoned(mut value) => {
///         value.mark_consistent()?; // a holder died mid-update: repair first
///         value
///     }
/// };
/// *value += 1;
/// assert_eq!(*value, 2);
/// # Ok::<(), sections::Error>(())
/// ```
#[derive(Debug)]
pub struct Guarded<T: Pod> {
    mutex: Mutex,
    data: imp::Data,
    _type: PhantomData<T>,
}

impl<T: Pod> Guarded<T> {
    pub(super) fn from_parts(mutex: imp::Mutex, data: imp::Data) -> Self {
        Guarded {
            mutex: Mutex::from_imp(mutex),
            data,
            _type: PhantomData,
        }
    }

    fn wrap<'a>(&'a self, locked: Locked<MutexGuard<'a>>) -> Locked<GuardedRef<'a, T>> {
        let abandoned = locked.is_abandoned();
        let ptr: *mut T = self.data.ptr().cast();
        let mut value: T = bytemuck::Zeroable::zeroed();
        // SAFETY: the value's bytes are in bounds of the live mapping and
        // aligned for `T` (checked when it was made); `value` is a private
        // copy nothing else reaches. Relaxed atomic loads: a process that
        // ignores the mutex can tear the copy but never cause a data race
        // here. Every bit pattern is a valid `T` (`Pod`).
        unsafe {
            load_bytes(
                ptr.cast::<u8>(),
                (&raw mut value).cast::<u8>(),
                size_of::<T>(),
            )
        };
        let guard = GuardedRef {
            ptr,
            value,
            dirty: false,
            guard: locked.into_guard(),
        };
        if abandoned {
            Locked::Abandoned(guard)
        } else {
            Locked::Acquired(guard)
        }
    }

    /// Locks and gives access to the value.
    pub fn lock(&self) -> Result<Locked<GuardedRef<'_, T>>> {
        Ok(self.wrap(self.mutex.lock()?))
    }

    /// Like [`lock`](Self::lock), waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<Locked<GuardedRef<'_, T>>>> {
        Ok(self.mutex.lock_timeout(timeout)?.map(|l| self.wrap(l)))
    }
}

/// Access to a [`Guarded`] value while its mutex is held.
///
/// The value is copied out of shared memory when the lock is taken, and
/// written back (if it was borrowed mutably) when this is dropped, before
/// the mutex is released. No Rust reference into shared memory ever exists,
/// so a process that writes the bytes without taking the mutex (a buggy or
/// hostile peer, or a [`View`](crate::View) of the same bytes in this
/// process) can at worst change what is written back, never cause
/// undefined behaviour here. The copy costs `size_of::<T>()` bytes of stack
/// and two copies per lock: keep guarded values small (a header, counters,
/// a slot table), and put bulk data in a section of its own.
#[derive(Debug)]
pub struct GuardedRef<'a, T: Pod> {
    ptr: *mut T,
    value: T,
    dirty: bool,
    guard: MutexGuard<'a>,
}

impl<T: Pod> GuardedRef<'_, T> {
    /// See [`MutexGuard::mark_consistent`]. Writes the value back first,
    /// so that what the next holder finds is the repaired value.
    pub fn mark_consistent(&mut self) -> Result<()> {
        self.write_back();
        self.guard.mark_consistent()
    }

    fn write_back(&mut self) {
        if self.dirty {
            // SAFETY: as in `Guarded::wrap`; relaxed atomic stores into the
            // live mapping from the private copy, which does not overlap it.
            unsafe {
                store_bytes(
                    (&raw const self.value).cast::<u8>(),
                    self.ptr.cast::<u8>(),
                    size_of::<T>(),
                )
            };
            self.dirty = false;
        }
    }
}

impl<T: Pod> std::ops::Deref for GuardedRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Pod> std::ops::DerefMut for GuardedRef<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.dirty = true;
        &mut self.value
    }
}

impl<T: Pod> Drop for GuardedRef<'_, T> {
    fn drop(&mut self) {
        // Before the guard (a field, dropped after this) unlocks.
        self.write_back();
    }
}
