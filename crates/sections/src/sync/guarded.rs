//! Guarded values: a `T` in shared memory, reachable only through its
//! robust mutex.

use std::marker::PhantomData;
use std::time::Duration;

use super::{imp, Locked, Mutex, MutexGuard, Pod};
use crate::error::Result;

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
        let guard = GuardedRef {
            ptr: self.data.ptr().cast(),
            guard: locked.into_guard(),
            _type: PhantomData,
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
#[derive(Debug)]
pub struct GuardedRef<'a, T: Pod> {
    ptr: *mut T,
    guard: MutexGuard<'a>,
    _type: PhantomData<&'a mut T>,
}

impl<T: Pod> GuardedRef<'_, T> {
    /// See [`MutexGuard::mark_consistent`].
    pub fn mark_consistent(&mut self) -> Result<()> {
        self.guard.mark_consistent()
    }
}

impl<T: Pod> std::ops::Deref for GuardedRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer is aligned and in bounds of the value's live
        // mapping (checked when it was made), every bit pattern is a valid
        // `T` (`Pod`), and the mutex excludes every other process and
        // thread that reaches the value through this API.
        unsafe { &*self.ptr }
    }
}

impl<T: Pod> std::ops::DerefMut for GuardedRef<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique here.
        unsafe { &mut *self.ptr }
    }
}
