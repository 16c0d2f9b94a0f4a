//! Inter-process sync objects: a robust mutex, an event and a semaphore,
//! named in the same namespace as sections and with the same lifetime
//! rules, plus [`Guarded`], a value in shared memory reachable only through
//! the mutex.
//!
//! ```
//! use sections::sync::{Locked, Mutex, SyncOptions};
//!
//! # fn main() -> sections::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let ns = sections::Namespace::at(dir.path());
//! let mut opts = SyncOptions::new();
//! opts.namespace(&ns);
//! let mutex = opts.create_mutex("jobs-lock")?;
//! match mutex.lock()? {
//!     Locked::Acquired(_guard) => { /* the state is as the last holder left it */ }
//!     Locked::Abandoned(mut guard) => {
//!         // The previous holder died holding the lock: repair, then say so.
//!         guard.mark_consistent()?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Abandonment
//!
//! When a process dies holding a [`Mutex`], the next `lock` in any process
//! returns [`Locked::Abandoned`] with the guard: it owns the mutex and is
//! told, once. This follows Windows (`WAIT_ABANDONED`), deliberately: the
//! mutex stays usable afterwards whether or not the new holder calls
//! [`MutexGuard::mark_consistent`]; later lockers get
//! [`Locked::Acquired`]. POSIX instead makes a robust mutex unusable for
//! ever when its repairer does not mark it consistent; one crash would then
//! stop every process that shares the lock. Call `mark_consistent` after
//! repairing the protected state; it is how a reader of the code sees that
//! the case was handled.
//!
//! # Platforms
//!
//! Linux: the objects live in a small named section (a process-shared
//! robust pthread mutex, shared futex words), so they share the sections'
//! handle-counted lifetime, stale detection and `gc`. Windows: named kernel
//! mutexes, events and semaphores, whose lifetime the kernel counts. Both
//! are the platform layer's (`sys::sync`); this module is the same on both.
//!
//! Floor 3: uses the floors below (`sys`, `named`, `types`, `error`).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::named::deadline;
use crate::sys::sync as imp;
use crate::sys::SyncSpec;
use crate::types::Lifetime;
use crate::types::Namespace;

pub use bytemuck::Pod;
pub use guarded::{Guarded, GuardedRef};

// Guarded values: a `T` behind a robust mutex.
mod guarded;
// Events and semaphores in event loops: readiness and polls.
mod ready;

pub use crate::sys::Readiness;

/// Options shared by every sync object: namespace, lifetime, owner check,
/// permission bits.
///
/// The setters take and return `&mut Self` so that one options value can
/// be configured once and then make and open several objects without being
/// moved; chain them straight into a verb, or configure a variable first.
///
/// # Examples
///
/// ```
/// use sections::sync::{Reset, SyncOptions};
/// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
/// let mut opts = SyncOptions::new();
/// opts.namespace(&ns);
/// let lock = opts.create_mutex("db-lock")?;
/// let ready = opts.create_event("db-ready", Reset::Manual, false)?;
/// let slots = opts.create_semaphore("db-slots", 4, 4)?;
/// // Or one statement that ends in the verb (another process, say):
/// let other = SyncOptions::new().namespace(&ns).open_mutex("db-lock")?;
/// # drop((lock, ready, slots, other));
/// # Ok::<(), sections::Error>(())
/// ```
///
/// Binding the chain itself keeps a reference to a temporary that is gone
/// at the end of the statement (E0716):
///
/// ```compile_fail,E0716
/// # use sections::sync::SyncOptions; let ns = sections::Namespace::default();
/// let opts = SyncOptions::new().namespace(&ns); // error: temporary dropped while borrowed
/// let lock = opts.create_mutex("db-lock");
/// ```
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub(crate) namespace: Namespace,
    pub(crate) lifetime: Lifetime,
    pub(crate) allow_foreign_owner: bool,
    pub(crate) mode: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            namespace: Namespace::default(),
            lifetime: Lifetime::default(),
            allow_foreign_owner: false,
            mode: 0o600,
        }
    }
}

/// Whether `create_or_open` made the object or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A new object was created.
    Created,
    /// An existing object was opened (its settings are its own).
    Opened,
}

/// How an [`Event`] behaves once set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// Stays set, releasing every waiter, until `reset`.
    Manual,
    /// Releases exactly one waiter per `set`, then resets itself.
    Auto,
}

impl SyncOptions {
    fn spec(&self) -> SyncSpec<'_> {
        SyncSpec {
            namespace: &self.namespace,
            lifetime: self.lifetime,
            allow_foreign_owner: self.allow_foreign_owner,
            mode: self.mode,
        }
    }

    /// The defaults: the default namespace, handle-counted, own objects only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The namespace of the names.
    pub fn namespace(&mut self, namespace: &Namespace) -> &mut Self {
        self.namespace = namespace.clone();
        self
    }

    /// Handle-counted (default) or persistent.
    pub fn lifetime(&mut self, lifetime: Lifetime) -> &mut Self {
        self.lifetime = lifetime;
        self
    }

    /// Allow opening objects owned by another user (as processes of
    /// another user, or in a container with other uids, must).
    pub fn allow_foreign_owner(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// Permission bits of a new object's section on Linux (default
    /// `0o600`: its owner only; `0o666` lets any user that can reach the
    /// namespace use it, `0o660` the owner's group). Only read and write
    /// bits count. Windows gives a named kernel object its default security.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o666;
        self
    }

    /// Creates a named mutex; fails if the name exists.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`](crate::ErrorKind::AlreadyExists) when
    /// the name is taken (by any kind of object);
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) on macOS,
    /// and for a persistent lifetime on Windows.
    pub fn create_mutex(&self, name: &str) -> Result<Mutex> {
        Ok(Mutex::from_imp(
            imp::Mutex::create(&self.spec(), name, &[])?.0,
        ))
    }

    /// Opens a named mutex; `WrongKind` if the name is another object.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) when nothing
    /// has the name; [`ErrorKind::WrongKind`](crate::ErrorKind::WrongKind)
    /// when another kind of object has it;
    /// [`ErrorKind::PermissionDenied`](crate::ErrorKind::PermissionDenied)
    /// when it belongs to another user and
    /// [`allow_foreign_owner`](Self::allow_foreign_owner) was not set. The
    /// other `open_*` verbs fail alike.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::{sync::{Origin, SyncOptions}, ErrorKind};
    /// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
    /// let mut opts = SyncOptions::new();
    /// opts.namespace(&ns);
    /// assert_eq!(opts.open_mutex("cache-lock").unwrap_err().kind(), ErrorKind::NotFound);
    /// // Every process runs the same line; the first one creates it.
    /// let (first, origin) = opts.create_or_open_mutex("cache-lock")?;
    /// assert_eq!(origin, Origin::Created);
    /// let opened = opts.open_mutex("cache-lock")?;
    /// # drop((first, opened));
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub fn open_mutex(&self, name: &str) -> Result<Mutex> {
        Ok(Mutex::from_imp(imp::Mutex::open(&self.spec(), name, 0)?.0))
    }

    /// Opens the named mutex, creating it if it does not exist.
    pub fn create_or_open_mutex(&self, name: &str) -> Result<(Mutex, Origin)> {
        create_or_open(name, || self.create_mutex(name), || self.open_mutex(name))
    }

    /// Creates a named event.
    pub fn create_event(&self, name: &str, reset: Reset, initially_set: bool) -> Result<Event> {
        imp::Event::create(&self.spec(), name, reset == Reset::Manual, initially_set)
            .map(Event::new)
    }

    /// Opens a named event.
    pub fn open_event(&self, name: &str) -> Result<Event> {
        imp::Event::open(&self.spec(), name).map(Event::new)
    }

    /// Opens the named event, creating it (with `reset`, unset) if needed.
    pub fn create_or_open_event(&self, name: &str, reset: Reset) -> Result<(Event, Origin)> {
        create_or_open(
            name,
            || self.create_event(name, reset, false),
            || self.open_event(name),
        )
    }

    /// Creates a named semaphore with `initial` of at most `max` counts;
    /// [`ErrorKind::InvalidRange`](crate::ErrorKind::InvalidRange) if
    /// `initial` is more than `max` or `max` is 0.
    pub fn create_semaphore(&self, name: &str, initial: u32, max: u32) -> Result<Semaphore> {
        imp::Semaphore::create(&self.spec(), name, initial, max).map(Semaphore::new)
    }

    /// Opens a named semaphore.
    pub fn open_semaphore(&self, name: &str) -> Result<Semaphore> {
        imp::Semaphore::open(&self.spec(), name).map(Semaphore::new)
    }

    /// Opens the named semaphore, creating it if needed.
    pub fn create_or_open_semaphore(
        &self,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<(Semaphore, Origin)> {
        create_or_open(
            name,
            || self.create_semaphore(name, initial, max),
            || self.open_semaphore(name),
        )
    }

    /// Creates a named value of type `T` guarded by a robust mutex.
    pub fn create_guarded<T: Pod>(&self, name: &str, value: T) -> Result<Guarded<T>> {
        check_alignment::<T>("create", name)?;
        // The value is in place before anyone can open the name.
        let (mutex, data) = imp::Mutex::create(&self.spec(), name, bytemuck::bytes_of(&value))?;
        Ok(Guarded::from_parts(mutex, data))
    }

    /// Opens a named guarded value; `WrongKind` if its size is not `T`'s.
    /// See [`Guarded`] for an example.
    pub fn open_guarded<T: Pod>(&self, name: &str) -> Result<Guarded<T>> {
        check_alignment::<T>("open", name)?;
        let (mutex, data) = imp::Mutex::open(&self.spec(), name, std::mem::size_of::<T>())?;
        Ok(Guarded::from_parts(mutex, data))
    }
}

/// Guarded values start 64-byte aligned, and have bytes (a zero-sized
/// value has no memory behind it on every platform).
fn check_alignment<T>(op: &'static str, name: &str) -> Result<()> {
    if std::mem::size_of::<T>() == 0 {
        return Err(crate::Error::new(crate::ErrorKind::InvalidSize, op)
            .with_name(name)
            .with_detail("a guarded value's type must have a size (use a Mutex for none)"));
    }
    if std::mem::align_of::<T>() > 64 {
        return Err(crate::Error::new(crate::ErrorKind::InvalidRange, op)
            .with_name(name)
            .with_detail("a guarded value's type may need at most 64-byte alignment"));
    }
    Ok(())
}

fn create_or_open<T>(
    name: &str,
    create: impl Fn() -> Result<T>,
    open: impl Fn() -> Result<T>,
) -> Result<(T, Origin)> {
    let (object, created) = crate::named::create_or_open(name, create, open)?;
    Ok((
        object,
        if created {
            Origin::Created
        } else {
            Origin::Opened
        },
    ))
}

/// The outcome of taking a [`Mutex`].
#[derive(Debug)]
#[must_use = "the guard holds the lock"]
pub enum Locked<G> {
    /// Taken normally.
    Acquired(G),
    /// Taken, but the previous holder died holding it: the protected state
    /// may be half-updated. See the module docs.
    Abandoned(G),
}

impl<G> Locked<G> {
    /// The guard, however it was taken.
    pub fn into_guard(self) -> G {
        match self {
            Locked::Acquired(g) | Locked::Abandoned(g) => g,
        }
    }

    /// Whether the previous holder died holding the lock.
    pub fn is_abandoned(&self) -> bool {
        matches!(self, Locked::Abandoned(_))
    }
}

/// A robust inter-process mutex. See the module docs for abandonment.
///
/// A guard forgotten with `mem::forget` leaves the lock held by its thread
/// (and abandoned when that thread ends); a `Mutex` dropped while such a
/// guard is out keeps its mapping, one page, for the life of the process:
/// the holder thread's robust list (C library and kernel) points into it.
///
/// # Examples
///
/// A holder that ends without unlocking (here a thread that forgets its
/// guard; usually a process that crashed or was killed, as in
/// `examples/robust_mutex.rs`) leaves the mutex abandoned, and the next
/// locker is told, once:
///
/// ```
/// use sections::sync::{Locked, SyncOptions};
/// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
/// let mutex = SyncOptions::new().namespace(&ns).create_mutex("ledger-lock")?;
/// std::thread::scope(|s| s.spawn(|| mutex.lock().map(std::mem::forget)).join().unwrap())?;
///
/// match mutex.lock()? {
///     Locked::Abandoned(mut guard) => {
///         // Repair what the dead holder may have left half done, then:
///         guard.mark_consistent()?;
///     }
///     Locked::Acquired(_) => unreachable!("its holder ended holding it"),
/// }
/// assert!(!mutex.lock()?.is_abandoned());
/// // While one thread (or process) holds it, `try_lock` elsewhere says `None`.
/// let _held = mutex.lock()?.into_guard();
/// let free = std::thread::scope(|s| {
///     s.spawn(|| mutex.try_lock().map(|l| l.is_some())).join().unwrap()
/// })?;
/// assert!(!free);
/// # Ok::<(), sections::Error>(())
/// ```
#[derive(Debug)]
pub struct Mutex {
    /// Unmapped on drop unless a guard was forgotten (see `Drop`).
    imp: std::mem::ManuallyDrop<imp::Mutex>,
    /// Guards given out and not dropped (nor unlocked by `force_unlock`).
    held: std::sync::atomic::AtomicUsize,
}

impl Drop for Mutex {
    fn drop(&mut self) {
        if self.held.load(std::sync::atomic::Ordering::Acquire) != 0 {
            // A guard was forgotten: the lock word is on its thread's
            // robust list, which the C library and the kernel walk through
            // the mapping itself. Unmapping it would let them write into
            // whatever is mapped there next; the mapping is kept (leaked)
            // instead, and the holder's exit leaves the mutex abandoned.
            return;
        }
        // SAFETY: dropped once, here; `imp` is not used again.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.imp) };
    }
}

impl Mutex {
    fn from_imp(imp: imp::Mutex) -> Mutex {
        Mutex {
            imp: std::mem::ManuallyDrop::new(imp),
            held: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Creates a named mutex in the default namespace.
    pub fn create(name: &str) -> Result<Mutex> {
        SyncOptions::new().create_mutex(name)
    }

    /// Opens a named mutex in the default namespace.
    pub fn open(name: &str) -> Result<Mutex> {
        SyncOptions::new().open_mutex(name)
    }

    fn guard(&self, abandoned: bool) -> Locked<MutexGuard<'_>> {
        self.held.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let guard = MutexGuard {
            mutex: self,
            repair_pending: abandoned,
            _not_send: PhantomData,
        };
        if abandoned {
            Locked::Abandoned(guard)
        } else {
            Locked::Acquired(guard)
        }
    }

    /// Waits for the mutex.
    pub fn lock(&self) -> Result<Locked<MutexGuard<'_>>> {
        let abandoned = self
            .imp
            .lock(None)?
            .expect("an untimed lock does not time out");
        Ok(self.guard(abandoned))
    }

    /// Takes the mutex if it is free; `None` if another holder has it.
    pub fn try_lock(&self) -> Result<Option<Locked<MutexGuard<'_>>>> {
        Ok(self.imp.lock(Some(Instant::now()))?.map(|a| self.guard(a)))
    }

    /// Waits at most `timeout` (measured on a monotonic clock); `None` if
    /// it timed out.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<Option<Locked<MutexGuard<'_>>>> {
        Ok(self
            .imp
            .lock(Some(deadline(timeout)))?
            .map(|a| self.guard(a)))
    }

    /// Unlocks a mutex whose guard this thread forgot (`mem::forget`), for
    /// holders that cannot keep a guard, such as another language's lock
    /// object released by a later call on the same thread.
    ///
    /// # Safety
    /// The calling thread holds the lock: it took it and forgot the guard,
    /// and has not unlocked it since. (After an abandoned lock, call
    /// [`MutexGuard::mark_consistent`] before forgetting the guard, as its
    /// drop would have.)
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::sync::SyncOptions;
    /// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
    /// # let mut opts = SyncOptions::new(); opts.namespace(&ns);
    /// let mutex = opts.create_mutex("forgotten")?;
    /// std::mem::forget(mutex.lock()?.into_guard());
    /// // SAFETY: this thread took the lock above and forgot its guard.
    /// unsafe { mutex.force_unlock()? };
    /// assert!(mutex.try_lock()?.is_some());
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub unsafe fn force_unlock(&self) -> Result<()> {
        self.imp.unlock()?;
        // The forgotten guard is accounted for: the mutex may be unmapped.
        let _ = self.held.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |n| n.checked_sub(1),
        );
        Ok(())
    }

    /// The process holding the mutex, where the OS tells (Linux), for
    /// people to read; `None` when it is free, its holder is gone, or the OS
    /// does not say. A holder in another PID namespace is marked so: its
    /// pid names another process, or none, here.
    pub fn holder(&self) -> Option<crate::types::PeerProcess> {
        self.imp.holder()
    }
}

/// Holds a [`Mutex`] until dropped. Not `Send`: a mutex is released by the
/// thread that took it.
#[derive(Debug)]
pub struct MutexGuard<'a> {
    mutex: &'a Mutex,
    repair_pending: bool,
    _not_send: PhantomData<*const ()>,
}

impl MutexGuard<'_> {
    /// Records that the state left by a dead holder has been repaired.
    pub fn mark_consistent(&mut self) -> Result<()> {
        if self.repair_pending {
            self.mutex.imp.mark_consistent()?;
            self.repair_pending = false;
        }
        Ok(())
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        // Windows semantics (module docs): the mutex stays usable even if
        // the repair was not acknowledged.
        if self.repair_pending {
            let _ = self.mutex.imp.mark_consistent();
        }
        let _ = self.mutex.imp.unlock();
        self.mutex
            .held
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A named event: manual-reset or auto-reset.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sections::sync::{Reset, SyncOptions};
/// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
/// let mut opts = SyncOptions::new();
/// opts.namespace(&ns);
/// let go = opts.create_event("go", Reset::Manual, false)?;
/// std::thread::scope(|s| {
///     // Other threads (or processes) open it by name and wait.
///     let waiters: Vec<_> = (0..3).map(|_| s.spawn(|| opts.open_event("go")?.wait())).collect();
///     go.set()?; // a manual-reset event releases them all
///     waiters.into_iter().try_for_each(|w| w.join().unwrap())
/// })?;
///
/// // An auto-reset event hands each `set` to one waiter.
/// let work = opts.create_event("work", Reset::Auto, false)?;
/// work.set()?;
/// assert!(work.wait_timeout(Duration::from_secs(1))?);
/// assert!(!work.wait_timeout(Duration::from_millis(10))?); // nothing left
/// # Ok::<(), sections::Error>(())
/// ```
#[derive(Debug)]
pub struct Event {
    imp: imp::Event,
    /// Which event this is in this process (for `Select`).
    id: u64,
}

impl Event {
    fn new(imp: imp::Event) -> Event {
        Event {
            imp,
            id: crate::types::unique_id(),
        }
    }

    /// Sets the event: releases every waiter (manual) or one (auto).
    pub fn set(&self) -> Result<()> {
        self.imp.set()
    }

    /// Clears the event.
    pub fn reset(&self) -> Result<()> {
        self.imp.reset()
    }

    /// Waits until the event is set (consuming it, if auto-reset).
    pub fn wait(&self) -> Result<()> {
        self.imp.wait(None).map(drop)
    }

    /// Waits at most `timeout`; `false` if it timed out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.imp.wait(Some(deadline(timeout)))
    }
}

/// A named counting semaphore with a maximum.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sections::{sync::SyncOptions, ErrorKind};
/// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
/// // At most two processes at a time in the GPU queue.
/// let gpu = SyncOptions::new().namespace(&ns).create_semaphore("gpu", 2, 2)?;
/// gpu.acquire()?;
/// assert!(gpu.try_acquire()?);
/// assert!(!gpu.acquire_timeout(Duration::from_millis(10))?); // none left
/// gpu.release(2)?;
/// assert_eq!(gpu.release(1).unwrap_err().kind(), ErrorKind::InvalidRange); // past the maximum
/// # Ok::<(), sections::Error>(())
/// ```
#[derive(Debug)]
pub struct Semaphore {
    imp: imp::Semaphore,
    /// Which semaphore this is in this process (for `Select`).
    id: u64,
}

impl Semaphore {
    fn new(imp: imp::Semaphore) -> Semaphore {
        Semaphore {
            imp,
            id: crate::types::unique_id(),
        }
    }

    /// Takes one count, waiting for it.
    pub fn acquire(&self) -> Result<()> {
        self.imp.acquire(None).map(drop)
    }

    /// Takes one count if there is one.
    pub fn try_acquire(&self) -> Result<bool> {
        self.imp.acquire(Some(Instant::now()))
    }

    /// Takes one count, waiting at most `timeout`; `false` if it timed out.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
        self.imp.acquire(Some(deadline(timeout)))
    }

    /// Returns `n` counts; refused (`InvalidRange`) if that would pass the
    /// maximum, in which case nothing is released.
    pub fn release(&self, n: u32) -> Result<()> {
        self.imp.release(n)
    }
}

/// What the first bytes of a namespace entry say, if it is a sync object
/// (for listings; the bytes are untrusted and only reported).
pub(crate) fn describe(head: &[u8]) -> Option<crate::types::ObjectState> {
    imp::describe(head)
}
