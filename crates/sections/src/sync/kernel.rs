//! Windows: the kernel's own named mutexes, events and semaphores. Their
//! names share the object namespace with sections (`Local\NAME`), so a
//! name is one object of one kind; opening it as another kind is
//! `WrongKind`. The kernel counts handles, so lifetime is native.

use std::os::windows::io::OwnedHandle;
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::name::validate_name;
use crate::section::{Access, Lifetime, Section};
use crate::sync::{Reset, SyncOptions};
use crate::sys;
use crate::sys::sync::{self as raw, Object, Wait};
use crate::view::View;

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

fn check_options(op: &'static str, opts: &SyncOptions, name: &str) -> Result<String> {
    validate_name(name).map_err(|e| e.with_op(op))?;
    if opts.lifetime == Lifetime::Persistent {
        return Err(Error::new(ErrorKind::Unsupported, op)
            .with_name(name)
            .with_detail(
                "Windows removes a named object with its last handle; keep a process holding it",
            ));
    }
    Ok(sys::object_name(&opts.namespace, name))
}

fn create(opts: &SyncOptions, name: &str, kind: Object) -> Result<OwnedHandle> {
    let object = check_options("create", opts, name)?;
    raw::create(&object, kind).map_err(|e| error("create", name, e))
}

fn open(opts: &SyncOptions, name: &str, kind: Object) -> Result<OwnedHandle> {
    validate_name(name).map_err(|e| e.with_op("open"))?;
    let object = sys::object_name(&opts.namespace, name);
    raw::open(&object, kind).map_err(|e| error("open", name, e))
}

/// The bytes of a guarded value: a section named `NAME.value`, holding the
/// value's length and then the value.
#[derive(Debug)]
pub(crate) struct Data {
    view: Option<View>,
}

impl Data {
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.view
            .as_ref()
            .map_or(std::ptr::null_mut(), |v| v.as_mut_ptr().wrapping_add(VALUE))
    }
}

fn data_options(opts: &SyncOptions, len: usize) -> crate::SectionOptions {
    let mut o = Section::options();
    o.namespace(&opts.namespace)
        .allow_foreign_owner(opts.allow_foreign_owner)
        .size((VALUE + len) as u64);
    o
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
    pub(crate) fn create(opts: &SyncOptions, name: &str, payload: &[u8]) -> Result<(Mutex, Data)> {
        let view = if payload.is_empty() {
            None
        } else {
            check_options("create", opts, name)?;
            let section = data_options(opts, payload.len()).create(&format!("{name}.value"))?;
            let view = section.map_all(Access::ReadWrite)?;
            view.write_at(0, &(payload.len() as u64).to_le_bytes())?;
            view.write_at(VALUE, payload)?;
            Some(view)
        };
        let handle = create(opts, name, Object::Mutex)?;
        Ok((
            Mutex {
                handle,
                name: name.to_owned(),
            },
            Data { view },
        ))
    }

    pub(crate) fn open(opts: &SyncOptions, name: &str, payload: usize) -> Result<(Mutex, Data)> {
        let handle = open(opts, name, Object::Mutex)?;
        let view = if payload == 0 {
            None
        } else {
            let section = data_options(opts, 0)
                .access(Access::ReadWrite)
                .open(&format!("{name}.value"))?;
            let view = section.map_all(Access::ReadWrite)?;
            let mut len = [0u8; 8];
            view.read_at(0, &mut len)?;
            let stored = u64::from_le_bytes(len);
            if stored != payload as u64 || view.len() < VALUE + payload {
                return Err(Error::new(ErrorKind::WrongKind, "open")
                    .with_name(name)
                    .with_detail(format!(
                        "it guards {stored} bytes, not {payload} (a different type?)"
                    )));
            }
            Some(view)
        };
        Ok((
            Mutex {
                handle,
                name: name.to_owned(),
            },
            Data { view },
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
    pub(crate) fn holder(&self) -> Option<u32> {
        None
    }
}

#[derive(Debug)]
pub(crate) struct Event {
    handle: OwnedHandle,
    name: String,
}

impl Event {
    pub(crate) fn create(opts: &SyncOptions, name: &str, reset: Reset, set: bool) -> Result<Event> {
        let kind = Object::Event {
            manual: reset == Reset::Manual,
            set,
        };
        Ok(Event {
            handle: create(opts, name, kind)?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn open(opts: &SyncOptions, name: &str) -> Result<Event> {
        let kind = Object::Event {
            manual: false,
            set: false,
        };
        Ok(Event {
            handle: open(opts, name, kind)?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn set(&self) -> Result<()> {
        raw::set_event(&self.handle).map_err(|e| error("set", &self.name, e))
    }

    pub(crate) fn reset(&self) -> Result<()> {
        raw::reset_event(&self.handle).map_err(|e| error("reset", &self.name, e))
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
        opts: &SyncOptions,
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
            handle: create(opts, name, Object::Semaphore { initial, max })?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn open(opts: &SyncOptions, name: &str) -> Result<Semaphore> {
        Ok(Semaphore {
            handle: open(opts, name, Object::Semaphore { initial: 0, max: 1 })?,
            name: name.to_owned(),
        })
    }

    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Result<bool> {
        match raw::wait(&self.handle, deadline).map_err(|e| error("acquire", &self.name, e))? {
            Wait::Signaled | Wait::Abandoned => Ok(true),
            Wait::TimedOut => Ok(false),
        }
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
