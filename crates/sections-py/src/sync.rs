//! `Mutex`, `Event`, `Semaphore`: the library's robust named objects.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use sections::sync::{Reset, SyncOptions};

use crate::{deadline, slice, IntoPy};

fn options(namespace: Option<PathBuf>, allow_foreign_owner: bool) -> SyncOptions {
    let mut opts = SyncOptions::new();
    opts.namespace(&crate::namespace(namespace))
        .allow_foreign_owner(allow_foreign_owner);
    opts
}

/// Waits until `attempt` (a timed wait of at most one slice) says done,
/// the GIL released, checking for signals between slices; `false` when
/// `timeout` passed first.
fn wait_until(
    py: Python<'_>,
    timeout: Option<f64>,
    attempt: impl Fn(Duration) -> sections::Result<bool> + Sync,
) -> PyResult<bool> {
    let deadline = deadline(timeout)?;
    if attempt(Duration::ZERO).py()? {
        return Ok(true);
    }
    loop {
        let Some(wait) = slice(deadline) else {
            return Ok(false);
        };
        if py.detach(|| attempt(wait)).py()? {
            return Ok(true);
        }
        py.check_signals()?;
    }
}

/// This thread, as a number (the mutex is held by a thread).
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    ID.with(|id| *id)
}

/// A robust inter-process mutex. If its holder dies holding it, the next
/// `acquire` still succeeds and sets `abandoned` (True until that holder
/// releases): the protected state may be half-updated, repair it.
/// Released by the thread that acquired it.
#[pyclass(module = "sections")]
pub struct Mutex {
    /// Held through a forgotten guard (released by `force_unlock`); the
    /// library keeps the mapping of a mutex dropped while held.
    inner: sections::sync::Mutex,
    /// The thread holding it through this object (0: none).
    holder: AtomicU64,
    abandoned: AtomicBool,
}

#[pymethods]
impl Mutex {
    /// Creates a named mutex (unlocked).
    #[classmethod]
    #[pyo3(signature = (name, *, namespace=None, allow_foreign_owner=false))]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Mutex> {
        let inner = options(namespace, allow_foreign_owner)
            .create_mutex(name)
            .py()?;
        Ok(Mutex::new(inner))
    }

    /// Opens a named mutex.
    #[classmethod]
    #[pyo3(signature = (name, *, namespace=None, allow_foreign_owner=false))]
    fn open(
        _cls: &Bound<'_, PyType>,
        name: &str,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Mutex> {
        let inner = options(namespace, allow_foreign_owner)
            .open_mutex(name)
            .py()?;
        Ok(Mutex::new(inner))
    }

    /// Takes the mutex, waiting at most `timeout` seconds (None: as long as
    /// it takes); False if the timeout passed.
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let me = thread_id();
        if self.holder.load(Ordering::Acquire) == me {
            return Err(PyRuntimeError::new_err(
                "this thread already holds the mutex (it is not recursive)",
            ));
        }
        let abandoned = AtomicBool::new(false);
        let taken = wait_until(py, timeout, |wait| {
            let Some(locked) = self.inner.lock_timeout(wait)? else {
                return Ok(false);
            };
            let was_abandoned = locked.is_abandoned();
            let mut guard = locked.into_guard();
            if was_abandoned {
                // What the guard's drop would do on release (the library's
                // Windows semantics): the mutex stays usable.
                guard.mark_consistent()?;
                abandoned.store(true, Ordering::Relaxed);
            }
            // Held until `release` on this thread (`force_unlock`).
            std::mem::forget(guard);
            Ok(true)
        })?;
        if taken {
            self.holder.store(me, Ordering::Release);
            self.abandoned
                .store(abandoned.load(Ordering::Relaxed), Ordering::Release);
        }
        Ok(taken)
    }

    /// Releases the mutex (from the thread that acquired it).
    fn release(&self) -> PyResult<()> {
        if self.holder.load(Ordering::Acquire) != thread_id() {
            return Err(PyRuntimeError::new_err(
                "release of a mutex this thread does not hold",
            ));
        }
        self.holder.store(0, Ordering::Release);
        self.abandoned.store(false, Ordering::Release);
        // SAFETY: this thread took the lock in `acquire` and forgot its
        // guard (the holder check above), and has not unlocked it since.
        unsafe { self.inner.force_unlock() }.py()
    }

    /// Whether this acquisition found the previous holder dead.
    #[getter]
    fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Whether a thread of this process holds it through this object.
    fn locked(&self) -> bool {
        self.holder.load(Ordering::Acquire) != 0
    }

    fn __enter__<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<PyRef<'py, Self>> {
        slf.acquire(py, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }
}

impl Mutex {
    fn new(inner: sections::sync::Mutex) -> Mutex {
        Mutex {
            inner,
            holder: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
        }
    }
}

impl Drop for Mutex {
    fn drop(&mut self) {
        if self.holder.load(Ordering::Acquire) == thread_id() {
            // SAFETY: this thread holds it (forgotten guard) and has not
            // unlocked it.
            let _ = unsafe { self.inner.force_unlock() };
        }
        // Held by another thread: dropping `inner` keeps its mapping (the
        // library's rule for a mutex dropped with a forgotten guard), and
        // that thread's robust list stays valid.
    }
}

/// A named event: manual reset (stays set until `reset`) or auto reset
/// (releases one waiter per `set`).
#[pyclass(module = "sections")]
pub struct Event {
    inner: sections::sync::Event,
}

#[pymethods]
impl Event {
    /// Creates a named event.
    #[classmethod]
    #[pyo3(signature = (name, *, manual_reset=false, initially_set=false, namespace=None, allow_foreign_owner=false))]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        manual_reset: bool,
        initially_set: bool,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Event> {
        let reset = if manual_reset {
            Reset::Manual
        } else {
            Reset::Auto
        };
        let inner = options(namespace, allow_foreign_owner)
            .create_event(name, reset, initially_set)
            .py()?;
        Ok(Event { inner })
    }

    /// Opens a named event.
    #[classmethod]
    #[pyo3(signature = (name, *, namespace=None, allow_foreign_owner=false))]
    fn open(
        _cls: &Bound<'_, PyType>,
        name: &str,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Event> {
        let inner = options(namespace, allow_foreign_owner)
            .open_event(name)
            .py()?;
        Ok(Event { inner })
    }

    /// Sets the event.
    fn set(&self) -> PyResult<()> {
        self.inner.set().py()
    }

    /// Resets the event.
    fn reset(&self) -> PyResult<()> {
        self.inner.reset().py()
    }

    /// Waits until set, at most `timeout` seconds; False if it passed.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        wait_until(py, timeout, |wait| self.inner.wait_timeout(wait))
    }
}

/// A named counting semaphore.
#[pyclass(module = "sections")]
pub struct Semaphore {
    inner: sections::sync::Semaphore,
}

#[pymethods]
impl Semaphore {
    /// Creates a named semaphore with `initial` permits, at most `maximum`.
    #[classmethod]
    #[pyo3(signature = (name, initial, maximum, *, namespace=None, allow_foreign_owner=false))]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        initial: u32,
        maximum: u32,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Semaphore> {
        let inner = options(namespace, allow_foreign_owner)
            .create_semaphore(name, initial, maximum)
            .py()?;
        Ok(Semaphore { inner })
    }

    /// Opens a named semaphore.
    #[classmethod]
    #[pyo3(signature = (name, *, namespace=None, allow_foreign_owner=false))]
    fn open(
        _cls: &Bound<'_, PyType>,
        name: &str,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Semaphore> {
        let inner = options(namespace, allow_foreign_owner)
            .open_semaphore(name)
            .py()?;
        Ok(Semaphore { inner })
    }

    /// Takes a permit, waiting at most `timeout` seconds; False if it
    /// passed.
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        wait_until(py, timeout, |wait| self.inner.acquire_timeout(wait))
    }

    /// Returns `n` permits.
    #[pyo3(signature = (n=1))]
    fn release(&self, n: u32) -> PyResult<()> {
        self.inner.release(n).py()
    }

    fn __enter__<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<PyRef<'py, Self>> {
        slf.acquire(py, None)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release(1)
    }
}
