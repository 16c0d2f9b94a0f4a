//! Windows: the kernel's own named mutexes, events and semaphores. Their
//! names share the object namespace with sections (`Local\NAME`), so a
//! name is one object of one kind; opening it as another kind is
//! `WrongKind`. The kernel counts handles, so lifetime is native. A
//! guarded value lives in a section of its own, `NAME.value`.

mod raw;

use std::os::windows::io::OwnedHandle;
use std::time::Instant;

use raw::{Object, Wait};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::windows::{create_named, object_name, open_named};
use crate::sys::{Mapping, Spec, SyncSpec};
use crate::types::{validate_name, Access, Lifetime, ObjectState};

/// `ERROR_INVALID_HANDLE`: the name belongs to an object of another type.
const ERROR_INVALID_HANDLE: i32 = 6;
/// `ERROR_TOO_MANY_POSTS`: a semaphore release past its maximum.
const ERROR_TOO_MANY_POSTS: i32 = 298;
/// Where a guarded value starts in its data section (after its length).
const VALUE: usize = 64;

fn error(op: &'static str, name: &str, e: std::io::Error) -> Error {
    let wrong = e.raw_os_error() == Some(ERROR_INVALID_HANDLE);
    let err = Error::os(op, e).with_name(name);
    if wrong {
        Error::new(ErrorKind::WrongKind, op)
            .with_name(name)
            .with_detail("the name belongs to another kind of object")
    } else {
        err
    }
}

fn check_options(op: &'static str, spec: &SyncSpec<'_>, name: &str) -> Result<String> {
    validate_name(name).map_err(|e| e.with_op(op))?;
    if spec.lifetime == Lifetime::Persistent {
        return Err(Error::new(ErrorKind::Unsupported, op)
            .with_name(name)
            .with_detail(
                "Windows removes a named object with its last handle; keep a process holding it",
            ));
    }
    Ok(object_name(spec.namespace, name))
}

fn create(spec: &SyncSpec<'_>, name: &str, kind: Object) -> Result<OwnedHandle> {
    let object = check_options("create", spec, name)?;
    raw::create(&object, kind).map_err(|e| error("create", name, e))
}

fn open(spec: &SyncSpec<'_>, name: &str, kind: Object) -> Result<OwnedHandle> {
    validate_name(name).map_err(|e| e.with_op("open"))?;
    let object = object_name(spec.namespace, name);
    raw::open(&object, kind).map_err(|e| error("open", name, e))
}

/// The bytes of a guarded value: a section named `NAME.value`, holding the
/// value's length and then the value.
#[derive(Debug)]
pub(crate) struct Data {
    /// The value's section, mapped whole (the object keeps it open).
    map: Option<(Mapping, crate::sys::Object)>,
}

// SAFETY: the mapping is process-wide memory; the value is only reached
// while its mutex is held.
unsafe impl Send for Data {}
// SAFETY: see `Send`.
unsafe impl Sync for Data {}

impl Data {
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.map
            .as_ref()
            .map_or(std::ptr::null_mut(), |(m, _)| m.ptr().wrapping_add(VALUE))
    }
}

fn value_error<'a>(op: &'static str, name: &'a str) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| Error::os(op, e).with_name(name)
}

#[derive(Debug)]
pub(crate) struct Mutex {
    handle: OwnedHandle,
    name: String,
}

impl Mutex {
    /// Creates the value section (written before the mutex exists, so an
    /// opener, which opens the mutex first, always finds it complete) and
    /// then the mutex.
    pub(crate) fn create(spec: &SyncSpec<'_>, name: &str, payload: &[u8]) -> Result<(Mutex, Data)> {
        let map = if payload.is_empty() {
            None
        } else {
            check_options("create", spec, name)?;
            let size = VALUE + payload.len();
            let section = Spec {
                size: Some(size as u64),
                mode: 0o600,
                lifetime: Lifetime::Counted,
                file: None,
                exec: false,
                reserve: true,
            };
            let (object, _) =
                create_named(spec.namespace, &format!("{name}.value"), &section, None)?;
            let map = Mapping::new(&object, 0, size, Access::ReadWrite)
                .map_err(value_error("create", name))?;
            // SAFETY: nobody can open the value before the mutex exists
            // (openers open the mutex first), so nothing else uses these
            // bytes yet; both ranges are inside the mapping.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    (payload.len() as u64).to_le_bytes().as_ptr(),
                    map.ptr(),
                    8,
                );
                std::ptr::copy_nonoverlapping(
                    payload.as_ptr(),
                    map.ptr().add(VALUE),
                    payload.len(),
                );
            }
            Some((map, object))
        };
        let handle = create(spec, name, Object::Mutex)?;
        Ok((
            Mutex {
                handle,
                name: name.to_owned(),
            },
            Data { map },
        ))
    }

    pub(crate) fn open(spec: &SyncSpec<'_>, name: &str, payload: usize) -> Result<(Mutex, Data)> {
        let handle = open(spec, name, Object::Mutex)?;
        let map = if payload == 0 {
            None
        } else {
            let (object, _, _) = open_named(
                spec.namespace,
                &format!("{name}.value"),
                Access::ReadWrite,
                spec.allow_foreign_owner,
            )?;
            let size = object.size().map_err(value_error("open", name))?;
            let len = usize::try_from(size).unwrap_or(0);
            if len < VALUE {
                return Err(Error::new(ErrorKind::WrongKind, "open")
                    .with_name(name)
                    .with_detail("its value section is too small"));
            }
            let map = Mapping::new(&object, 0, len, Access::ReadWrite)
                .map_err(value_error("open", name))?;
            let lo = map.u32_at(0).load(std::sync::atomic::Ordering::Acquire);
            let hi = map.u32_at(4).load(std::sync::atomic::Ordering::Acquire);
            let stored = u64::from(lo) | u64::from(hi) << 32;
            if stored != payload as u64 || len < VALUE + payload {
                return Err(Error::new(ErrorKind::WrongKind, "open")
                    .with_name(name)
                    .with_detail(format!(
                        "it guards {stored} bytes, not {payload} (a different type?)"
                    )));
            }
            Some((map, object))
        };
        Ok((
            Mutex {
                handle,
                name: name.to_owned(),
            },
            Data { map },
        ))
    }

    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        match raw::wait(&self.handle, deadline).map_err(|e| error("lock", &self.name, e))? {
            Wait::Signaled => Ok(Some(false)),
            Wait::Abandoned => Ok(Some(true)),
            Wait::TimedOut => Ok(None),
        }
    }

    pub(crate) fn unlock(&self) -> Result<()> {
        raw::release_mutex(&self.handle).map_err(|e| error("unlock", &self.name, e))
    }

    /// Windows keeps an abandoned mutex usable; there is nothing to record.
    pub(crate) fn mark_consistent(&self) -> Result<()> {
        Ok(())
    }

    /// Windows does not say which process owns a mutex.
    pub(crate) fn holder(&self) -> Option<crate::types::PeerProcess> {
        None
    }
}

#[derive(Debug)]
pub(crate) struct Event {
    handle: OwnedHandle,
    name: String,
}

impl Event {
    pub(crate) fn create(
        spec: &SyncSpec<'_>,
        name: &str,
        manual: bool,
        set: bool,
    ) -> Result<Event> {
        let kind = Object::Event { manual, set };
        Ok(Event {
            handle: create(spec, name, kind)?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn open(spec: &SyncSpec<'_>, name: &str) -> Result<Event> {
        let kind = Object::Event {
            manual: false,
            set: false,
        };
        Ok(Event {
            handle: open(spec, name, kind)?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn set(&self) -> Result<()> {
        raw::set_event(&self.handle).map_err(|e| error("set", &self.name, e))
    }

    /// A second handle to this event (for a waiter of its own).
    pub(crate) fn duplicate(&self) -> Result<OwnedHandle> {
        self.handle
            .try_clone()
            .map_err(|e| error("duplicate", &self.name, e))
    }

    pub(crate) fn reset(&self) -> Result<()> {
        raw::reset_event(&self.handle).map_err(|e| error("reset", &self.name, e))
    }

    /// Takes the event if it is set; nothing to announce (the object's
    /// own handle is the readiness).
    pub(crate) fn poll_wait(&self) -> Result<bool> {
        self.wait(Some(Instant::now()))
    }

    pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
        Ok(crate::sys::Watch::of(Ok(self.duplicate()?)))
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<bool> {
        match raw::wait(&self.handle, deadline).map_err(|e| error("wait", &self.name, e))? {
            Wait::Signaled | Wait::Abandoned => Ok(true),
            Wait::TimedOut => Ok(false),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Semaphore {
    handle: OwnedHandle,
    name: String,
}

impl Semaphore {
    pub(crate) fn create(
        spec: &SyncSpec<'_>,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Semaphore> {
        if max == 0 || initial > max || max > i32::MAX as u32 {
            return Err(Error::new(ErrorKind::InvalidRange, "create")
                .with_name(name)
                .with_detail(format!("initial count {initial} with maximum {max}")));
        }
        Ok(Semaphore {
            handle: create(spec, name, Object::Semaphore { initial, max })?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn open(spec: &SyncSpec<'_>, name: &str) -> Result<Semaphore> {
        Ok(Semaphore {
            handle: open(spec, name, Object::Semaphore { initial: 0, max: 1 })?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Result<bool> {
        match raw::wait(&self.handle, deadline).map_err(|e| error("acquire", &self.name, e))? {
            Wait::Signaled | Wait::Abandoned => Ok(true),
            Wait::TimedOut => Ok(false),
        }
    }

    pub(crate) fn poll_acquire(&self) -> Result<bool> {
        self.acquire(Some(Instant::now()))
    }

    pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
        let handle = self
            .handle
            .try_clone()
            .map_err(|e| error("duplicate", &self.name, e))?;
        Ok(crate::sys::Watch::of(Ok(handle)))
    }

    pub(crate) fn release(&self, n: u32) -> Result<()> {
        raw::release_semaphore(&self.handle, n).map_err(|e| {
            if e.raw_os_error() == Some(ERROR_TOO_MANY_POSTS) {
                Error::new(ErrorKind::InvalidRange, "release")
                    .with_name(&self.name)
                    .with_detail(format!("releasing {n} would pass the maximum"))
            } else {
                error("release", &self.name, e)
            }
        })
    }
}

/// Windows sync objects are not in a namespace anyone can list.
pub(crate) fn describe(_head: &[u8]) -> Option<ObjectState> {
    None
}
