//! Channels: `Channel`, `Sender`, `Loan`, `Receiver`, `Message`.
//!
//! A Python message or loan cannot borrow its endpoint, so it owns it (the
//! library's `OwnedMessage`/`OwnedLoan`) inside a state the endpoint's
//! Python object shares: `Ready` (the endpoint is free), `Held` (a message
//! or loan has it), `Busy` (a thread is waiting in it, the GIL released)
//! or `Closed`. The bytes a message or loan exports stay mapped while the
//! state holds it, and it leaves that state only when no buffer of it is
//! alive (the export count is zero), so no memoryview or array outlives
//! the memory under it.

use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use sections::channel::{self as ch, ChannelOptions, OwnedLoan, OwnedMessage, Returned};
use sections::ErrorKind;

use crate::section::fill;
use crate::{busy, closed, deadline, py_err, slice, IntoPy};

/// What an endpoint's Python object and its message or loan share.
enum State<E, H> {
    /// The endpoint, free.
    Ready(E),
    /// A message or loan owns the endpoint.
    Held {
        held: H,
        id: u64,
        exports: Arc<AtomicUsize>,
    },
    /// A thread waits in the endpoint, the GIL released.
    Busy,
    Closed,
}

type Shared<E, H> = Arc<StdMutex<State<E, H>>>;

fn lock<E, H>(shared: &Shared<E, H>) -> MutexGuard<'_, State<E, H>> {
    // A panic while the lock was held left a consistent state: every
    // transition is one assignment.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ids of messages and loans, so that a released one's object knows it.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn wait_strategy(text: &str) -> PyResult<ch::WaitStrategy> {
    match text {
        "spin" => Ok(ch::WaitStrategy::Spin),
        "spin-then-park" => Ok(ch::WaitStrategy::SpinThenPark),
        "park" => Ok(ch::WaitStrategy::Park),
        _ => Err(PyValueError::new_err(format!(
            "wait {text:?}: expected \"spin\", \"spin-then-park\" or \"park\""
        ))),
    }
}

fn options(
    namespace: Option<PathBuf>,
    wait: &str,
    allow_foreign_owner: bool,
) -> PyResult<ChannelOptions> {
    let mut opts = ChannelOptions::new();
    opts.namespace(&crate::namespace(namespace))
        .wait(wait_strategy(wait)?)
        .allow_foreign_owner(allow_foreign_owner);
    Ok(opts)
}

/// Waits for `attempt` to succeed, the GIL released, in slices, checking
/// for signals between them; `retry` says which errors mean "not yet".
/// The first attempt does not wait (nor release the GIL). The endpoint is
/// in `Busy` meanwhile and put back (Ready) on every error.
fn wait_loop<E: Send, T: Send>(
    py: Python<'_>,
    shared: &Shared<E, impl Sized>,
    mut endpoint: E,
    timeout: Option<f64>,
    retry: ErrorKind,
    attempt: impl Fn(E, Option<Duration>) -> Result<T, Returned<E>> + Sync,
) -> PyResult<T> {
    let deadline = match deadline(timeout) {
        Ok(d) => d,
        Err(e) => {
            *lock(shared) = State::Ready(endpoint);
            return Err(e);
        }
    };
    let mut wait = Duration::ZERO;
    loop {
        let result = if wait.is_zero() {
            attempt(endpoint, Some(Duration::ZERO))
        } else {
            py.detach(|| attempt(endpoint, Some(wait)))
        };
        match result {
            Ok(done) => return Ok(done),
            Err(returned) if returned.kind() == retry || returned.kind() == ErrorKind::TimedOut => {
                endpoint = returned.into_inner();
                let Some(next) = slice(deadline) else {
                    *lock(shared) = State::Ready(endpoint);
                    return Err(crate::timed_out());
                };
                if let Err(signal) = py.check_signals() {
                    *lock(shared) = State::Ready(endpoint);
                    return Err(signal);
                }
                wait = next;
            }
            Err(returned) => {
                let (error, endpoint) = returned.into_parts();
                *lock(shared) = State::Ready(endpoint);
                return Err(py_err(error));
            }
        }
    }
}

/// Takes the endpoint for a call: from Ready to Busy. A held message is
/// released first if nothing exports it (`release_held`); a held loan is
/// an error (it is not ours to send or cancel).
fn take<E, H>(shared: &Shared<E, H>, what: &str, release_held: Option<fn(H) -> E>) -> PyResult<E> {
    let mut state = lock(shared);
    match std::mem::replace(&mut *state, State::Busy) {
        State::Ready(endpoint) => Ok(endpoint),
        State::Held { held, id, exports } => match release_held {
            Some(release) if exports.load(Ordering::Acquire) == 0 => Ok(release(held)),
            Some(_) => {
                *state = State::Held { held, id, exports };
                Err(PyBufferError::new_err(
                    "the previous message is still in use by a buffer (a memoryview or \
                     NumPy array made from it): delete or release it, or copy the data, \
                     before receiving the next",
                ))
            }
            None => {
                *state = State::Held { held, id, exports };
                Err(PyRuntimeError::new_err(format!(
                    "the {what} has a pending loan: send or cancel it first"
                )))
            }
        },
        State::Busy => {
            *state = State::Busy;
            Err(busy(what))
        }
        State::Closed => {
            *state = State::Closed;
            Err(closed(what))
        }
    }
}

/// Ends a held message or loan `id`: gives its endpoint back (`finish`).
/// Refused while a buffer of it lives.
fn finish<E, H>(
    shared: &Shared<E, H>,
    id: u64,
    exports: &AtomicUsize,
    what: &str,
    finish: impl FnOnce(H) -> E,
) -> PyResult<()> {
    let live = exports.load(Ordering::Acquire);
    if live > 0 {
        return Err(PyBufferError::new_err(format!(
            "the {what} is still in use by {live} buffer(s) (memoryview, NumPy array): \
             delete or release them first"
        )));
    }
    let mut state = lock(shared);
    match std::mem::replace(&mut *state, State::Busy) {
        State::Held { held, id: now, .. } if now == id => {
            *state = State::Ready(finish(held));
            Ok(())
        }
        other => {
            *state = other;
            Err(PyValueError::new_err(format!(
                "the {what} was already released"
            )))
        }
    }
}

/// Whether the held message or loan is still `id`, with its pointer.
fn live<E, H>(shared: &Shared<E, H>, id: u64, what: &str) -> PyResult<()> {
    match &*lock(shared) {
        State::Held { id: now, .. } if *now == id => Ok(()),
        _ => Err(PyBufferError::new_err(format!(
            "the {what} was released: its bytes are no longer yours"
        ))),
    }
}

/// A channel: a bounded ring of variable-length byte messages in one
/// section, named or anonymous.
#[pyclass(module = "sections")]
pub struct Channel {
    inner: Option<ch::Channel>,
    wait: ch::WaitStrategy,
}

impl Channel {
    fn get(&self) -> PyResult<&ch::Channel> {
        self.inner.as_ref().ok_or_else(|| closed("channel"))
    }
}

#[pymethods]
impl Channel {
    /// Creates a named channel with `capacity` bytes of ring.
    #[classmethod]
    #[pyo3(signature = (name, capacity=1048576, *, senders=1, namespace=None, lifetime="counted", mode=0o600, wait="spin-then-park", allow_foreign_owner=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        capacity: u32,
        senders: u32,
        namespace: Option<PathBuf>,
        lifetime: &str,
        mode: u32,
        wait: &str,
        allow_foreign_owner: bool,
    ) -> PyResult<Channel> {
        let mut opts = options(namespace, wait, allow_foreign_owner)?;
        opts.capacity(capacity)
            .senders(senders)
            .lifetime(crate::lifetime(lifetime)?)
            .mode(mode);
        Ok(Channel {
            inner: Some(opts.create(name).py()?),
            wait: wait_strategy(wait)?,
        })
    }

    /// An anonymous channel: hand it to a child with `share()`.
    #[classmethod]
    #[pyo3(signature = (capacity=1048576, *, senders=1, wait="spin-then-park"))]
    fn anonymous(
        _cls: &Bound<'_, PyType>,
        capacity: u32,
        senders: u32,
        wait: &str,
    ) -> PyResult<Channel> {
        let mut opts = options(None, wait, false)?;
        opts.capacity(capacity).senders(senders);
        Ok(Channel {
            inner: Some(opts.anonymous().py()?),
            wait: wait_strategy(wait)?,
        })
    }

    /// Connects a sender to the named channel.
    #[classmethod]
    #[pyo3(signature = (name, *, namespace=None, wait="spin-then-park", allow_foreign_owner=false))]
    fn open_sender(
        _cls: &Bound<'_, PyType>,
        name: &str,
        namespace: Option<PathBuf>,
        wait: &str,
        allow_foreign_owner: bool,
    ) -> PyResult<Sender> {
        let opts = options(namespace, wait, allow_foreign_owner)?;
        Ok(Sender::new(opts.open_sender(name).py()?))
    }

    /// Connects the receiver to the named channel.
    #[classmethod]
    #[pyo3(signature = (name, *, namespace=None, wait="spin-then-park", allow_foreign_owner=false))]
    fn open_receiver(
        _cls: &Bound<'_, PyType>,
        name: &str,
        namespace: Option<PathBuf>,
        wait: &str,
        allow_foreign_owner: bool,
    ) -> PyResult<Receiver> {
        let opts = options(namespace, wait, allow_foreign_owner)?;
        Ok(Receiver::new(opts.open_receiver(name).py()?))
    }

    /// Connects a sender with a token from `share()` (in a child process).
    #[classmethod]
    #[pyo3(signature = (token, *, wait="spin-then-park"))]
    fn sender_from_token(_cls: &Bound<'_, PyType>, token: &str, wait: &str) -> PyResult<Sender> {
        let opts = options(None, wait, false)?;
        Ok(Sender::new(opts.sender_from_token(token).py()?))
    }

    /// Connects the receiver with a token from `share()`.
    #[classmethod]
    #[pyo3(signature = (token, *, wait="spin-then-park"))]
    fn receiver_from_token(
        _cls: &Bound<'_, PyType>,
        token: &str,
        wait: &str,
    ) -> PyResult<Receiver> {
        let opts = options(None, wait, false)?;
        Ok(Receiver::new(opts.receiver_from_token(token).py()?))
    }

    /// A sender of this channel.
    fn sender(&self) -> PyResult<Sender> {
        let _ = self.wait;
        Ok(Sender::new(self.get()?.sender().py()?))
    }

    /// The receiver of this channel (one at a time).
    fn receiver(&self) -> PyResult<Receiver> {
        Ok(Receiver::new(self.get()?.receiver().py()?))
    }

    /// A token a child process connects with (`Channel.sender_from_token`):
    /// keep the returned object until the child has started.
    fn share(&self) -> PyResult<Inheritable> {
        Ok(Inheritable {
            inner: Some(self.get()?.inheritable().py()?),
        })
    }

    /// The ring's capacity in bytes.
    #[getter]
    fn capacity(&self) -> PyResult<u64> {
        Ok(self.get()?.capacity())
    }

    /// Bytes taken in the ring now.
    #[getter]
    fn fill(&self) -> PyResult<u64> {
        Ok(self.get()?.fill())
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Closes this handle (connected endpoints keep the channel alive).
    fn close(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }
}

/// What a child needs to connect to an anonymous channel: `token` (pass it
/// in an argument or the environment) and, on Unix, the descriptors `fds`
/// it names (for `subprocess`'s `pass_fds`). Keep it until the child has
/// started.
#[pyclass(module = "sections")]
pub struct Inheritable {
    inner: Option<ch::InheritableChannel>,
}

#[pymethods]
impl Inheritable {
    /// The token.
    #[getter]
    fn token(&self) -> PyResult<String> {
        Ok(self
            .inner
            .as_ref()
            .ok_or_else(|| closed("token"))?
            .token()
            .to_owned())
    }

    /// The inherited descriptors the token names (Unix: the channel's
    /// memory and, for its bell, a bell file), for `subprocess`'s
    /// `pass_fds`; empty elsewhere.
    #[getter]
    fn fds(&self) -> PyResult<Vec<i32>> {
        let token = self.token()?;
        // `channel:bell,B,BASE:fd:S:...`: the bell file's B, the section's S.
        let mut fds = Vec::new();
        if let Some(bell) = token
            .split(':')
            .nth(1)
            .and_then(|w| w.strip_prefix("bell,"))
        {
            fds.extend(bell.split(',').next().and_then(|n| n.parse::<i32>().ok()));
        }
        if let Some((_, rest)) = token.split_once(":fd:") {
            fds.extend(rest.split(':').next().and_then(|n| n.parse::<i32>().ok()));
        }
        Ok(fds)
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Closes this process's inheritable copy.
    fn close(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, PyTuple>) {
        self.close();
    }
}

type TxShared = Shared<ch::Sender, OwnedLoan>;

/// A sender. `send(buffer)` copies any contiguous buffer (bytes,
/// bytearray, memoryview, NumPy array) into the ring; `loan(n)` gives a
/// writable buffer in the ring itself, sent when the `with` block ends.
#[pyclass(module = "sections")]
pub struct Sender {
    shared: TxShared,
}

impl Sender {
    fn new(sender: ch::Sender) -> Sender {
        Sender {
            shared: Arc::new(StdMutex::new(State::Ready(sender))),
        }
    }

    /// Waits for a loan of `len` bytes (`Busy` meanwhile).
    fn wait_loan(&self, py: Python<'_>, len: usize, timeout: Option<f64>) -> PyResult<OwnedLoan> {
        let tx = take(&self.shared, "sender", None)?;
        wait_loop(
            py,
            &self.shared,
            tx,
            timeout,
            ErrorKind::Full,
            |tx, wait| tx.loan_owned(len, wait),
        )
    }
}

/// The bytes of a contiguous Python buffer, with the buffer held.
fn contiguous(data: &Bound<'_, PyAny>) -> PyResult<PyUntypedBuffer> {
    let buf = match PyUntypedBuffer::get(data) {
        Ok(buf) => buf,
        // A buffer without a shape (a 0-d NumPy array, say): its bytes, as
        // a flat memoryview of them (no copy).
        Err(e) if e.is_instance_of::<PyBufferError>(data.py()) => {
            let flat = pyo3::types::PyMemoryView::from(data)?.call_method1("cast", ("B",))?;
            PyUntypedBuffer::get(&flat)?
        }
        Err(e) => return Err(e),
    };
    if !buf.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "the buffer is not contiguous: send a contiguous copy (numpy.ascontiguousarray)",
        ));
    }
    Ok(buf)
}

/// Copies a held contiguous buffer into a loan, with the GIL held (so no
/// Python thread changes it meanwhile).
fn copy_into(loan: &mut OwnedLoan, buf: &PyUntypedBuffer) -> PyResult<()> {
    let len = buf.len_bytes();
    if len == 0 {
        return Ok(());
    }
    // SAFETY: the buffer is held (exported to us) and C-contiguous, so
    // `len` bytes at its pointer are readable until it is released; the
    // GIL keeps Python code from writing them during the copy.
    let bytes = unsafe { std::slice::from_raw_parts(buf.buf_ptr().cast::<u8>(), len) };
    loan.write_at(0, bytes).py()
}

#[pymethods]
impl Sender {
    /// Sends a copy of `data` (any contiguous buffer), waiting for room at
    /// most `timeout` seconds (None: as long as it takes).
    #[pyo3(signature = (data, timeout=None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let buf = contiguous(data)?;
        let mut loan = self.wait_loan(py, buf.len_bytes(), timeout)?;
        let copied = copy_into(&mut loan, &buf);
        let tx = if copied.is_ok() {
            loan.send()
        } else {
            loan.cancel()
        };
        *lock(&self.shared) = State::Ready(tx);
        copied
    }

    /// Sends if there is room now; FullError otherwise.
    fn try_send(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let buf = contiguous(data)?;
        let tx = take(&self.shared, "sender", None)?;
        match tx.loan_owned(buf.len_bytes(), Some(Duration::ZERO)) {
            Ok(mut loan) => {
                let copied = copy_into(&mut loan, &buf);
                let tx = if copied.is_ok() {
                    loan.send()
                } else {
                    loan.cancel()
                };
                *lock(&self.shared) = State::Ready(tx);
                copied
            }
            Err(returned) => {
                let (error, tx) = returned.into_parts();
                *lock(&self.shared) = State::Ready(tx);
                Err(py_err(error))
            }
        }
    }

    /// A writable buffer of `n` bytes in the ring: fill it in place, then
    /// `send()` (or leave a `with` block: sent on a clean exit, cancelled
    /// on an exception).
    #[pyo3(signature = (n, timeout=None))]
    fn loan(&self, py: Python<'_>, n: usize, timeout: Option<f64>) -> PyResult<Loan> {
        let mut owned = self.wait_loan(py, n, timeout)?;
        let ptr = owned.as_mut_ptr();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let exports = Arc::new(AtomicUsize::new(0));
        *lock(&self.shared) = State::Held {
            held: owned,
            id,
            exports: exports.clone(),
        };
        Ok(Loan {
            shared: self.shared.clone(),
            id,
            exports,
            ptr: ptr as usize,
            len: n,
            entered: StdMutex::new(None),
        })
    }

    /// Disconnects this sender (after the receiver got what it sent, it
    /// sees DisconnectedError once every sender is gone).
    fn close(&self) -> PyResult<()> {
        let mut state = lock(&self.shared);
        if let State::Held { exports, .. } = &*state {
            if exports.load(Ordering::Acquire) > 0 {
                return Err(PyBufferError::new_err(
                    "a buffer of this sender's pending loan is alive: delete it first",
                ));
            }
        }
        if matches!(*state, State::Busy) {
            return Err(busy("sender"));
        }
        *state = State::Closed;
        Ok(())
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        matches!(*lock(&self.shared), State::Closed)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close()
    }
}

/// A message being written in place in the ring (`Sender.loan`): a
/// writable buffer until sent or cancelled.
#[pyclass(module = "sections")]
pub struct Loan {
    shared: TxShared,
    id: u64,
    exports: Arc<AtomicUsize>,
    /// The first byte (an address: valid while the state holds this loan).
    ptr: usize,
    len: usize,
    /// The memoryview `__enter__` handed out, released by `__exit__`.
    entered: StdMutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl Loan {
    /// # Safety
    /// Called by CPython with its buffer request.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.try_borrow()?;
        live(&this.shared, this.id, "loan")?;
        // SAFETY: the state holds this loan (checked above) and does not
        // let it go while `exports` is non-zero, so its bytes stay mapped
        // and its own; the buffer keeps this object alive.
        unsafe {
            fill(
                view,
                flags,
                slf.as_any(),
                this.ptr as *const u8,
                this.len,
                false,
                &this.exports,
            )
        }
    }

    /// # Safety
    /// Called by CPython when a buffer of ours is released.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// The memoryview `__enter__` made refers back to this loan: a loan
    /// entered and never exited is a cycle the collector must see, so that
    /// it is cancelled when collected.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(entered) = self.entered.try_lock() {
            if let Some(view) = entered.as_ref() {
                visit.call(view)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let entered = self
            .entered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(entered);
    }

    /// Publishes the message.
    fn send(&self) -> PyResult<()> {
        finish(
            &self.shared,
            self.id,
            &self.exports,
            "loan",
            OwnedLoan::send,
        )
    }

    /// Cancels the message: nothing is sent.
    fn cancel(&self) -> PyResult<()> {
        finish(
            &self.shared,
            self.id,
            &self.exports,
            "loan",
            OwnedLoan::cancel,
        )
    }

    /// A writable memoryview of the loan.
    fn __enter__(slf: PyRef<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let me = slf.as_ptr();
        // SAFETY: `me` is this live object; PyMemoryView_FromObject takes
        // its own reference through the buffer it requests.
        let view = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromObject(me))? };
        let view = view.unbind();
        let earlier = slf
            .entered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(view.clone_ref(py));
        if let Some(earlier) = earlier {
            earlier.bind(py).call_method0("release")?;
        }
        Ok(view)
    }

    /// Sends on a clean exit, cancels on an exception. BufferError if a
    /// buffer made from the memoryview still lives (the loan then stays
    /// pending, and is cancelled when this object goes).
    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        slf: PyRef<'_, Self>,
        exc_type: Option<Bound<'_, PyType>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let entered = slf.entered.lock().unwrap_or_else(|p| p.into_inner()).take();
        if crate::failed(exc_type.as_ref()) {
            // The block's own exception goes on: if a buffer made from the
            // memoryview still lives, the loan stays pending and is
            // cancelled when this object goes.
            if let Some(view) = entered {
                let _ = view.bind(py).call_method0("release");
            }
            let _ = slf.cancel();
            return Ok(());
        }
        if let Some(view) = entered {
            view.bind(py).call_method0("release")?;
        }
        slf.send()
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        // No buffer lives (each holds a reference to this object): a loan
        // neither sent nor cancelled is cancelled.
        let _ = finish(
            &self.shared,
            self.id,
            &self.exports,
            "loan",
            OwnedLoan::cancel,
        );
    }
}

type RxShared = Shared<ch::Receiver, OwnedMessage>;

/// The receiver. `recv()` returns the next message in place (a read-only
/// buffer until released); `recv_bytes()` a copy.
#[pyclass(module = "sections")]
pub struct Receiver {
    shared: RxShared,
}

impl Receiver {
    fn new(receiver: ch::Receiver) -> Receiver {
        Receiver {
            shared: Arc::new(StdMutex::new(State::Ready(receiver))),
        }
    }

    fn wait_message(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<OwnedMessage> {
        let rx = take(&self.shared, "receiver", Some(OwnedMessage::release))?;
        wait_loop(
            py,
            &self.shared,
            rx,
            timeout,
            ErrorKind::Empty,
            |rx, wait| rx.recv_owned(wait),
        )
    }

    fn hold(&self, message: OwnedMessage) -> Message {
        let ptr = message.as_ptr() as usize;
        let len = message.len();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let exports = Arc::new(AtomicUsize::new(0));
        *lock(&self.shared) = State::Held {
            held: message,
            id,
            exports: exports.clone(),
        };
        Message {
            shared: self.shared.clone(),
            id,
            exports,
            ptr,
            len,
        }
    }
}

#[pymethods]
impl Receiver {
    /// The next message, in place, waiting at most `timeout` seconds (None:
    /// as long as it takes). Receiving releases the previous message,
    /// unless a buffer of it still lives (BufferError).
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Message> {
        let message = self.wait_message(py, timeout)?;
        Ok(self.hold(message))
    }

    /// The next message if there is one now; EmptyError otherwise.
    fn try_recv(&self) -> PyResult<Message> {
        let rx = take(&self.shared, "receiver", Some(OwnedMessage::release))?;
        match rx.recv_owned(Some(Duration::ZERO)) {
            Ok(message) => Ok(self.hold(message)),
            Err(returned) => {
                let (error, rx) = returned.into_parts();
                *lock(&self.shared) = State::Ready(rx);
                Err(py_err(error))
            }
        }
    }

    /// The next message as bytes (a copy; the message is released).
    #[pyo3(signature = (timeout=None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let message = self.wait_message(py, timeout)?;
        let copied = PyBytes::new_with(py, message.len(), |buf| message.copy_to(buf).py());
        *lock(&self.shared) = State::Ready(message.release());
        copied
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Iterating gives messages until every sender is gone.
    fn __next__(&self, py: Python<'_>) -> PyResult<Message> {
        match self.wait_message(py, None) {
            Ok(message) => Ok(self.hold(message)),
            Err(e)
                if e.value(py)
                    .getattr("kind")
                    .is_ok_and(|k| k.extract::<String>().is_ok_and(|k| k == "Disconnected")) =>
            {
                Err(PyStopIteration::new_err(()))
            }
            Err(e) => Err(e),
        }
    }

    /// Disconnects the receiver (releasing a held message).
    fn close(&self) -> PyResult<()> {
        let mut state = lock(&self.shared);
        match &*state {
            State::Held { exports, .. } if exports.load(Ordering::Acquire) > 0 => {
                Err(PyBufferError::new_err(
                    "a buffer of this receiver's message is alive: delete it first",
                ))
            }
            State::Busy => Err(busy("receiver")),
            _ => {
                *state = State::Closed;
                Ok(())
            }
        }
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        matches!(*lock(&self.shared), State::Closed)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close()
    }
}

/// A received message, in place in the ring: a read-only buffer
/// (`memoryview(msg)`, `numpy.frombuffer(msg, ...)`) until released.
#[pyclass(module = "sections")]
pub struct Message {
    shared: RxShared,
    id: u64,
    exports: Arc<AtomicUsize>,
    ptr: usize,
    len: usize,
}

#[pymethods]
impl Message {
    /// # Safety
    /// Called by CPython with its buffer request.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.try_borrow()?;
        live(&this.shared, this.id, "message")?;
        // SAFETY: the state holds this message (checked above) and does
        // not let it go while `exports` is non-zero, so its bytes stay
        // mapped; the buffer is read-only and keeps this object alive.
        unsafe {
            fill(
                view,
                flags,
                slf.as_any(),
                this.ptr as *const u8,
                this.len,
                true,
                &this.exports,
            )
        }
    }

    /// # Safety
    /// Called by CPython when a buffer of ours is released.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// A copy of the message.
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let state = lock(&self.shared);
        match &*state {
            State::Held { held, id, .. } if *id == self.id => {
                PyBytes::new_with(py, self.len, |buf| held.copy_to(buf).py())
            }
            _ => Err(PyValueError::new_err("the message was already released")),
        }
    }

    /// The address of the first byte (for checking where an array's data
    /// lies).
    #[getter]
    fn address(&self) -> usize {
        self.ptr
    }

    /// Frees the message's room in the ring; BufferError while a buffer
    /// of it lives.
    fn release(&self) -> PyResult<()> {
        finish(
            &self.shared,
            self.id,
            &self.exports,
            "message",
            OwnedMessage::release,
        )
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        match self.release() {
            // Released already (by a later recv): nothing to do.
            Err(e) if Python::attach(|py| e.is_instance_of::<PyValueError>(py)) => Ok(()),
            other => other,
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        let _ = finish(
            &self.shared,
            self.id,
            &self.exports,
            "message",
            OwnedMessage::release,
        );
    }
}
