//! `Section` and `View`: sections by name, anonymous or file-backed, and
//! views that export their mapped bytes through the buffer protocol.

use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::{access_name, closed, IntoPy};

/// Fills a buffer request over `len` bytes at `ptr`, owned by `owner`
/// (which the buffer keeps alive), and counts the export.
///
/// # Safety
/// `view` is the request CPython passed to `__getbuffer__`; `len` bytes
/// at `ptr` stay mapped (and writable unless `readonly`) until
/// `__releasebuffer__` brings `exports` back down.
pub(crate) unsafe fn fill(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    owner: &Bound<'_, PyAny>,
    ptr: *const u8,
    len: usize,
    readonly: bool,
    exports: &AtomicUsize,
) -> PyResult<()> {
    let len = isize::try_from(len).map_err(|_| PyBufferError::new_err("buffer too large"))?;
    // SAFETY: the caller's contract: `view` is CPython's request and the
    // memory stays valid while exported. PyBuffer_FillInfo takes a new
    // reference to `owner` (released with the buffer) and refuses a
    // writable request on read-only memory with BufferError.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast_mut().cast(),
            len,
            c_int::from(readonly),
            flags,
        )
    };
    if rc != 0 {
        return Err(PyErr::fetch(owner.py()));
    }
    exports.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// A section: a kernel memory object, named or anonymous, backed by
/// memory or by a file. Named sections live while any process (Python or
/// Rust) holds a handle or a view; when the last goes, even by kill -9,
/// so does the name.
#[pyclass(module = "sections")]
pub struct Section {
    inner: Option<sections::Section>,
}

impl Section {
    fn get(&self) -> PyResult<&sections::Section> {
        self.inner.as_ref().ok_or_else(|| closed("section"))
    }
}

#[pymethods]
impl Section {
    /// Creates a named section of `size` bytes (zero-filled); fails with
    /// ExistsError if the name is taken.
    #[classmethod]
    #[pyo3(signature = (name, size, *, namespace=None, mode=0o600, lifetime="counted", file=None, allow_foreign_owner=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        _cls: &Bound<'_, PyType>,
        name: &str,
        size: u64,
        namespace: Option<PathBuf>,
        mode: u32,
        lifetime: &str,
        file: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Section> {
        let mut opts = sections::Section::options();
        opts.size(size)
            .mode(mode)
            .lifetime(crate::lifetime(lifetime)?)
            .namespace(&crate::namespace(namespace))
            .allow_foreign_owner(allow_foreign_owner);
        if let Some(file) = file {
            opts.file(file);
        }
        Ok(Section {
            inner: Some(opts.create(name).py()?),
        })
    }

    /// Opens an existing named section with `access` ("read" or
    /// "readwrite").
    #[classmethod]
    #[pyo3(signature = (name, access="readwrite", *, namespace=None, allow_foreign_owner=false))]
    fn open(
        _cls: &Bound<'_, PyType>,
        name: &str,
        access: &str,
        namespace: Option<PathBuf>,
        allow_foreign_owner: bool,
    ) -> PyResult<Section> {
        let mut opts = sections::Section::options();
        opts.access(crate::access(access)?)
            .namespace(&crate::namespace(namespace))
            .allow_foreign_owner(allow_foreign_owner);
        Ok(Section {
            inner: Some(opts.open(name).py()?),
        })
    }

    /// An anonymous section of `size` bytes: no name, gone with its last
    /// handle and view.
    #[classmethod]
    fn anonymous(_cls: &Bound<'_, PyType>, size: u64) -> PyResult<Section> {
        Ok(Section {
            inner: Some(sections::Section::anonymous(size).py()?),
        })
    }

    /// A section over an existing file, opened with `access`.
    #[classmethod]
    #[pyo3(signature = (path, access="readwrite"))]
    fn from_path(_cls: &Bound<'_, PyType>, path: PathBuf, access: &str) -> PyResult<Section> {
        Ok(Section {
            inner: Some(sections::Section::from_path(path, crate::access(access)?).py()?),
        })
    }

    /// Maps `length` bytes (default: to the end) at `offset` (a multiple of
    /// `sections.granularity()`) with `access` (default: the section's).
    #[pyo3(signature = (offset=0, length=None, access=None))]
    fn map(&self, offset: u64, length: Option<usize>, access: Option<&str>) -> PyResult<View> {
        let section = self.get()?;
        let access = access.map_or(Ok(section.access()), crate::access)?;
        let view = match length {
            Some(len) => section.map(offset, len, access),
            None if offset == 0 => section.map_all(access),
            None => section.size().and_then(|size| {
                let len = size.saturating_sub(offset);
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                section.map(offset, len, access)
            }),
        };
        Ok(View {
            inner: Some(view.py()?),
            exports: AtomicUsize::new(0),
        })
    }

    /// The size in bytes.
    #[getter]
    fn size(&self) -> PyResult<u64> {
        self.get()?.size().py()
    }

    /// The name, or None for an anonymous section.
    #[getter]
    fn name(&self) -> PyResult<Option<String>> {
        Ok(self.get()?.name().map(str::to_owned))
    }

    /// The access of this handle: "read" or "readwrite".
    #[getter]
    fn access(&self) -> PyResult<&'static str> {
        Ok(access_name(self.get()?.access()))
    }

    /// "anonymous", "memory", "file" or "named-file".
    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(match self.get()?.kind() {
            sections::Kind::Anonymous => "anonymous",
            sections::Kind::Memory => "memory",
            sections::Kind::File => "file",
            _ => "named-file",
        })
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Closes this handle (views made from it keep the section alive).
    fn close(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            None => "<sections.Section closed>".into(),
            Some(s) => format!(
                "<sections.Section name={:?} size={} access={}>",
                s.name().unwrap_or("<anonymous>"),
                s.size().unwrap_or(0),
                access_name(s.access())
            ),
        }
    }
}

/// A mapped range of a section. Exports its bytes through the buffer
/// protocol: `memoryview(view)` and `numpy.frombuffer(view, ...)` see the
/// section's memory itself, with no copy (read-only for a read-only view).
/// It cannot be closed while such a buffer lives (BufferError).
#[pyclass(module = "sections")]
pub struct View {
    inner: Option<sections::View>,
    exports: AtomicUsize,
}

impl View {
    fn get(&self) -> PyResult<&sections::View> {
        self.inner.as_ref().ok_or_else(|| closed("view"))
    }
}

#[pymethods]
impl View {
    /// # Safety
    /// Called by CPython with its buffer request.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.try_borrow()?;
        let mapped = this.get()?;
        // Copy-on-write views are writable too (privately).
        let readonly = !mapped.access().writes();
        // SAFETY: the view stays mapped while exported: `close` refuses
        // while `exports` is non-zero, and the buffer holds a reference to
        // this object, so it is not dropped either.
        unsafe {
            fill(
                view,
                flags,
                slf.as_any(),
                mapped.as_ptr(),
                mapped.len(),
                readonly,
                &this.exports,
            )
        }
    }

    /// # Safety
    /// Called by CPython when a buffer of ours is released.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.get()?.len())
    }

    /// The view's length in bytes.
    #[getter]
    fn length(&self) -> PyResult<usize> {
        Ok(self.get()?.len())
    }

    /// Where the view starts in the section.
    #[getter]
    fn offset(&self) -> PyResult<u64> {
        Ok(self.get()?.offset())
    }

    /// "read", "readwrite" or "copyonwrite".
    #[getter]
    fn access(&self) -> PyResult<&'static str> {
        Ok(access_name(self.get()?.access()))
    }

    /// The address of the first byte in this process (for checking where
    /// an array's data lies).
    #[getter]
    fn address(&self) -> PyResult<usize> {
        Ok(self.get()?.as_ptr() as usize)
    }

    /// How many buffers (memoryviews, arrays) of this view are alive.
    #[getter]
    fn exports(&self) -> usize {
        self.exports.load(Ordering::Acquire)
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// Writes the view's changes to its file (file-backed sections).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let view = self.get()?;
        py.detach(|| view.flush()).py()
    }

    /// Unmaps the view; BufferError while a memoryview or array of it
    /// lives (release or delete those first).
    fn close(&mut self) -> PyResult<()> {
        let live = self.exports.load(Ordering::Acquire);
        if live > 0 && self.inner.is_some() {
            return Err(PyBufferError::new_err(format!(
                "cannot close a view while {live} buffer(s) of it (memoryview, NumPy array) \
                 are alive: release or delete them first"
            )));
        }
        self.inner = None;
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        self.close()
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            None => "<sections.View closed>".into(),
            Some(v) => format!(
                "<sections.View offset={} length={} access={}>",
                v.offset(),
                v.len(),
                access_name(v.access())
            ),
        }
    }
}
