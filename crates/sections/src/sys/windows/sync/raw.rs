//! Windows kernel sync objects: named mutexes, events and semaphores.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::time::Instant;

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ALREADY_EXISTS, HANDLE, WAIT_ABANDONED, WAIT_OBJECT_0, WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateMutexW, CreateSemaphoreW, OpenEventW, OpenMutexW, OpenSemaphoreW,
    ReleaseMutex, ReleaseSemaphore, ResetEvent, SetEvent, WaitForSingleObject, EVENT_MODIFY_STATE,
    INFINITE, MUTEX_MODIFY_STATE, SEMAPHORE_MODIFY_STATE, SYNCHRONIZATION_SYNCHRONIZE,
};

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Signaled,
    /// A mutex whose owner ended without releasing it (`WAIT_ABANDONED`).
    Abandoned,
    TimedOut,
}

/// Which kind of object a name is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Mutex,
    Event { manual: bool, set: bool },
    Semaphore { initial: u32, max: u32 },
}

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() {
        return Err(last_error());
    }
    // SAFETY: a fresh handle nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) })
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// Creates a named object; `AlreadyExists` if the name exists (as this kind;
/// another kind of object under the name fails with `ERROR_INVALID_HANDLE`).
pub(crate) fn create(name: &str, kind: Object) -> io::Result<OwnedHandle> {
    let name = wide(name);
    // SAFETY: plain calls with a valid NUL-terminated name and default
    // security; the handle is not inheritable.
    let handle = unsafe {
        match kind {
            Object::Mutex => CreateMutexW(std::ptr::null(), 0, name.as_ptr()),
            Object::Event { manual, set } => CreateEventW(
                std::ptr::null(),
                i32::from(manual),
                i32::from(set),
                name.as_ptr(),
            ),
            Object::Semaphore { initial, max } => {
                CreateSemaphoreW(std::ptr::null(), initial as i32, max as i32, name.as_ptr())
            }
        }
    };
    // SAFETY: the calling thread's last error, right after the call.
    let existed = !handle.is_null() && unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
    let handle = owned(handle)?;
    if existed {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    Ok(handle)
}

/// Opens a named object of `kind` with the rights to wait on and change it.
pub(crate) fn open(name: &str, kind: Object) -> io::Result<OwnedHandle> {
    let name = wide(name);
    let sync = SYNCHRONIZATION_SYNCHRONIZE;
    // SAFETY: plain calls with a valid NUL-terminated name.
    let handle = unsafe {
        match kind {
            Object::Mutex => OpenMutexW(sync | MUTEX_MODIFY_STATE, 0, name.as_ptr()),
            Object::Event { .. } => OpenEventW(sync | EVENT_MODIFY_STATE, 0, name.as_ptr()),
            Object::Semaphore { .. } => {
                OpenSemaphoreW(sync | SEMAPHORE_MODIFY_STATE, 0, name.as_ptr())
            }
        }
    };
    owned(handle)
}

/// Waits on any waitable object until `deadline` (or for ever).
pub(crate) fn wait(handle: &OwnedHandle, deadline: Option<Instant>) -> io::Result<Wait> {
    let ms = match deadline {
        None => INFINITE,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            // Round up, so that a wait never ends early.
            u32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(INFINITE - 1)
        }
    };
    // SAFETY: a valid waitable handle.
    match unsafe { WaitForSingleObject(raw(handle), ms) } {
        WAIT_OBJECT_0 => Ok(Wait::Signaled),
        WAIT_ABANDONED => Ok(Wait::Abandoned),
        WAIT_TIMEOUT => Ok(Wait::TimedOut),
        _ => Err(last_error()),
    }
}

fn check(ok: i32) -> io::Result<()> {
    if ok == 0 {
        Err(last_error())
    } else {
        Ok(())
    }
}

pub(crate) fn release_mutex(handle: &OwnedHandle) -> io::Result<()> {
    // SAFETY: a valid mutex handle.
    check(unsafe { ReleaseMutex(raw(handle)) })
}

pub(crate) fn set_event(handle: &OwnedHandle) -> io::Result<()> {
    // SAFETY: a valid event handle.
    check(unsafe { SetEvent(raw(handle)) })
}

pub(crate) fn reset_event(handle: &OwnedHandle) -> io::Result<()> {
    // SAFETY: a valid event handle.
    check(unsafe { ResetEvent(raw(handle)) })
}

/// Adds `n` counts; the kernel refuses (`ERROR_TOO_MANY_POSTS`) to pass
/// the maximum and then releases nothing.
pub(crate) fn release_semaphore(handle: &OwnedHandle, n: u32) -> io::Result<()> {
    let n = i32::try_from(n).map_err(|_| io::Error::from_raw_os_error(298))?;
    // SAFETY: a valid semaphore handle; the previous count is not wanted.
    check(unsafe { ReleaseSemaphore(raw(handle), n, std::ptr::null_mut()) })
}
