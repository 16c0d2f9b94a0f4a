//! Python bindings of `sections`: the native module `sections._sections`,
//! re-exported by the pure-Python package `sections` (python/sections).
//!
//! The bindings add no protocol of their own: every object is the Rust
//! library's, so Python and Rust processes share sections, channels and
//! locks by name. What they add is what Python needs:
//!
//! - Buffers: views, messages and loans export the buffer protocol over
//!   the mapped bytes (no copy), count their exports, and refuse to be
//!   closed or released while one lives (`BufferError`), so no memoryview
//!   or NumPy array ever points at unmapped memory.
//! - Ownership: a Python object cannot hold a borrow, so a message owns
//!   its receiver and a loan its sender (the library's `OwnedMessage` and
//!   `OwnedLoan`) and give them back when released, in a state both share.
//! - Blocking: every wait releases the GIL and waits in slices of
//!   [`SLICE`], checking for signals between them, so Ctrl-C raises
//!   `KeyboardInterrupt` promptly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyType};

mod channel;
mod section;
mod sync;

/// The longest a blocking call waits without looking for signals.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The module `sections._errors`, where the exception classes live (in
/// Python, so that each can also derive from the built-in exception that
/// fits, e.g. `sections.NotFoundError` from `FileNotFoundError`).
static ERRORS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The exception class for a library error kind.
fn class_of(kind: sections::ErrorKind) -> &'static str {
    use sections::ErrorKind as K;
    match kind {
        K::NotFound => "NotFoundError",
        K::AlreadyExists => "ExistsError",
        K::PermissionDenied => "PermissionDeniedError",
        K::InvalidName => "InvalidNameError",
        K::InvalidRange => "InvalidRangeError",
        K::InvalidSize => "InvalidSizeError",
        K::Stale => "StaleError",
        K::Replaced => "ReplacedError",
        K::Truncated => "TruncatedError",
        K::Full => "FullError",
        K::Empty => "EmptyError",
        K::TimedOut => "TimeoutError",
        K::Disconnected => "DisconnectedError",
        K::Corrupted => "CorruptedError",
        K::WrongKind => "WrongKindError",
        K::WrongVersion => "WrongVersionError",
        K::Unsupported => "UnsupportedError",
        K::NoSpace => "NoSpaceError",
        _ => "Error",
    }
}

/// A library error as the Python exception of its kind, with the same
/// message and the parts as attributes (`kind`, `operation`, `name`).
pub(crate) fn py_err(e: sections::Error) -> PyErr {
    let errno = e.os_error().and_then(std::io::Error::raw_os_error);
    raise(e.kind(), &e.to_string(), errno, e.operation(), e.name())
}

/// A timeout of a wait the bindings count themselves.
pub(crate) fn timed_out() -> PyErr {
    raise(
        sections::ErrorKind::TimedOut,
        "timed out: the timeout passed",
        None,
        "wait",
        None,
    )
}

fn raise(
    kind: sections::ErrorKind,
    message: &str,
    errno: Option<i32>,
    operation: &str,
    name: Option<&str>,
) -> PyErr {
    Python::attach(|py| {
        let build = || -> PyResult<PyErr> {
            let module = ERRORS.get_or_try_init(py, || {
                py.import("sections._errors").map(|m| m.into_any().unbind())
            })?;
            let class = module.bind(py).getattr(class_of(kind))?;
            let instance = match errno {
                // OSError subclasses keep errno and strerror.
                Some(errno) => class.call1((errno, message))?,
                None => class.call1((message,))?,
            };
            instance.setattr("kind", format!("{kind:?}"))?;
            instance.setattr("operation", operation)?;
            instance.setattr("name", name)?;
            Ok(PyErr::from_value(instance))
        };
        build().unwrap_or_else(|failed| failed)
    })
}

/// `Result<T, sections::Error>` into a Python result.
pub(crate) trait IntoPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for sections::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

/// The namespace argument: a directory (on Windows, a prefix), or the
/// platform's default.
pub(crate) fn namespace(dir: Option<PathBuf>) -> sections::Namespace {
    dir.map_or_else(sections::Namespace::default, sections::Namespace::at)
}

/// An access argument: "read" ("r"), "readwrite" ("rw"), "copyonwrite"
/// ("cow").
pub(crate) fn access(text: &str) -> PyResult<sections::Access> {
    match text
        .to_ascii_lowercase()
        .replace(['-', '_', ' '], "")
        .as_str()
    {
        "r" | "read" | "readonly" => Ok(sections::Access::Read),
        "rw" | "readwrite" | "write" => Ok(sections::Access::ReadWrite),
        "cow" | "copyonwrite" => Ok(sections::Access::CopyOnWrite),
        _ => Err(PyValueError::new_err(format!(
            "access {text:?}: expected \"read\", \"readwrite\" or \"copyonwrite\""
        ))),
    }
}

pub(crate) fn access_name(access: sections::Access) -> &'static str {
    match access {
        sections::Access::Read => "read",
        sections::Access::ReadWrite => "readwrite",
        sections::Access::CopyOnWrite => "copyonwrite",
        sections::Access::ReadExecute => "readexecute",
        sections::Access::ReadWriteExecute => "readwriteexecute",
        sections::Access::CopyOnWriteExecute => "copyonwriteexecute",
    }
}

/// A lifetime argument: "counted" (the name goes with its last holder)
/// or "persistent" (until removed).
pub(crate) fn lifetime(text: &str) -> PyResult<sections::Lifetime> {
    match text {
        "counted" => Ok(sections::Lifetime::Counted),
        "persistent" => Ok(sections::Lifetime::Persistent),
        _ => Err(PyValueError::new_err(format!(
            "lifetime {text:?}: expected \"counted\" or \"persistent\""
        ))),
    }
}

/// A timeout argument in seconds (`None`: no limit) as a deadline.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(secs) = timeout else {
        return Ok(None);
    };
    let wait = Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "timeout {secs}: expected a number of seconds, 0 or more, or None"
        ))
    })?;
    // Far enough to mean "never" where the clock cannot add it.
    Ok(Some(Instant::now().checked_add(wait).unwrap_or_else(
        || Instant::now() + Duration::from_secs(86_400 * 365),
    )))
}

/// The next slice of a wait until `deadline`; `None` once it passed.
pub(crate) fn slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// "closed" for an object used after `close()`.
pub(crate) fn closed(what: &str) -> PyErr {
    PyValueError::new_err(format!("I/O operation on a closed {what}"))
}

/// "in use" for an endpoint another thread is waiting on.
pub(crate) fn busy(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!(
        "the {what} is in use by another thread (a {what} is used by one thread at a time)"
    ))
}

/// Every entry of the namespace, as dictionaries.
#[pyfunction]
#[pyo3(signature = (namespace=None))]
fn list(py: Python<'_>, namespace: Option<PathBuf>) -> PyResult<Bound<'_, PyList>> {
    let entries = sections::list(&crate::namespace(namespace)).py()?;
    let out = PyList::empty(py);
    for e in entries {
        let d = PyDict::new(py);
        d.set_item("name", &e.name)?;
        d.set_item(
            "kind",
            match e.kind {
                sections::EntryKind::File => "file",
                _ => "memory",
            },
        )?;
        d.set_item("size", e.size)?;
        d.set_item("owner_uid", e.owner_uid)?;
        d.set_item("mode", e.mode)?;
        d.set_item(
            "lifetime",
            match e.lifetime {
                sections::Lifetime::Persistent => "persistent",
                _ => "counted",
            },
        )?;
        d.set_item("held", e.held)?;
        d.set_item("stale", e.stale)?;
        d.set_item("file", e.file)?;
        d.set_item("object", e.object.map(|o| format!("{o:?}")))?;
        out.append(d)?;
    }
    Ok(out)
}

/// Removes the names left by holders that died; returns them.
#[pyfunction]
#[pyo3(signature = (namespace=None))]
fn gc(namespace: Option<PathBuf>) -> PyResult<Vec<String>> {
    sections::gc(&crate::namespace(namespace)).py()
}

/// Removes a name (processes that hold it keep their mappings).
#[pyfunction]
#[pyo3(signature = (name, namespace=None))]
fn remove(name: &str, namespace: Option<PathBuf>) -> PyResult<()> {
    sections::remove(&crate::namespace(namespace), name)
        .py()
        .map(drop)
}

/// The alignment of view offsets (the page size on Linux).
#[pyfunction]
fn granularity() -> usize {
    sections::granularity()
}

/// The `__exit__` arguments' exception type: `None` for a clean exit.
pub(crate) fn failed(exc_type: Option<&Bound<'_, PyType>>) -> bool {
    exc_type.is_some()
}

#[pymodule]
fn _sections(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(list, m)?)?;
    m.add_function(wrap_pyfunction!(gc, m)?)?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(granularity, m)?)?;
    m.add_class::<section::Section>()?;
    m.add_class::<section::View>()?;
    m.add_class::<channel::Channel>()?;
    m.add_class::<channel::Inheritable>()?;
    m.add_class::<channel::Sender>()?;
    m.add_class::<channel::Loan>()?;
    m.add_class::<channel::Receiver>()?;
    m.add_class::<channel::Message>()?;
    m.add_class::<sync::Mutex>()?;
    m.add_class::<sync::Event>()?;
    m.add_class::<sync::Semaphore>()?;
    Ok(())
}
