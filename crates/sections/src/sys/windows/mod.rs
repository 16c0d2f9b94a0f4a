//! Windows: sections are the kernel's own file-mapping objects.
//!
//! Lifetime is native: a named section exists while any process holds a
//! handle or a view, and the kernel closes the handles of a killed process,
//! so nothing is ever stale. What Windows cannot do is a typed
//! `Unsupported` error that says what to use instead.

mod image;
mod object;
mod peers;
pub(crate) mod sync;
mod view;
mod waker;

pub(crate) use object::{
    anonymous, create_named, from_file, from_inherited, open_named, open_path, Object,
};

pub(crate) use crate::sys::unlisted::{
    entry_type, list_entry, list_namespace, peer_held_at, reclaim_stale, remove_abandoned_build,
    resident_bytes, users_of,
};
pub(crate) use image::{
    header_reader, map_elf, map_pe, open_image_file, page_cache, present_pages,
};
pub(crate) use peers::{peer_held, PeerLock};
pub(crate) use view::{
    advise, flush, lock, lock_limit_hint, prefetch, resident_pages, unlock, unmap, Guard,
};
pub use waker::Readiness;
pub(crate) use waker::{ready_for, wait_any, Waker, WakerShare, Watch};

use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use crate::error::{Error, ErrorKind, Result};
use crate::types::Namespace;

pub(super) const GENERIC_READ: u32 = 0x8000_0000;
pub(super) const GENERIC_WRITE: u32 = 0x4000_0000;
/// `SEC_FILE` in `SECTION_BASIC_INFORMATION::AllocationAttributes`.
pub(super) const SEC_FILE: u32 = 0x0080_0000;

fn system_info() -> SYSTEM_INFO {
    // SAFETY: SYSTEM_INFO is plain data that GetSystemInfo fills.
    unsafe {
        let mut info: SYSTEM_INFO = std::mem::zeroed();
        GetSystemInfo(&mut info);
        info
    }
}

/// The alignment of view offsets: the allocation granularity (64 KiB).
pub(crate) fn granularity() -> usize {
    system_info().dwAllocationGranularity as usize
}

/// The page size, the unit of flushing, residency and locking.
pub(crate) fn page_size() -> usize {
    system_info().dwPageSize as usize
}

pub(super) fn last_error() -> io::Error {
    io::Error::last_os_error()
}

pub(super) fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

pub(super) fn wide_path(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

/// Takes ownership of a handle a Win32 call returned, or its error.
pub(super) fn owned(handle: HANDLE) -> io::Result<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Err(last_error());
    }
    // SAFETY: a fresh handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) })
}

pub(super) fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle() as HANDLE
}

/// The kernel object name of `name` in `ns`: `Local\NAME` in the default
/// namespace (a name already starting with `Local\` or `Global\` is used as
/// it is); another namespace is a prefix derived from its path, so that
/// names of different namespaces never meet.
pub(crate) fn object_name(ns: &Namespace, name: &str) -> String {
    if name.starts_with("Local\\") || name.starts_with("Global\\") {
        return name.to_owned();
    }
    if *ns == Namespace::default() {
        return format!("Local\\{name}");
    }
    // FNV-1a of the namespace's path: stable across processes and runs.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ns.dir().to_string_lossy().bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("Local\\sections-{hash:016x}-{name}")
}

/// Windows removes a name with its last handle; there is nothing to remove.
pub(crate) fn remove(ns: &Namespace, name: &str) -> Result<crate::types::Removed> {
    Err(Error::new(ErrorKind::Unsupported, "remove")
        .with_name(name)
        .with_detail(format!(
            "a Windows section ({}) goes with its last handle; close every handle instead",
            object_name(ns, name)
        )))
}

/// Windows publishes a named section the moment it is created.
pub(crate) const PUBLISHES_INITIALISED: bool = false;

pub(crate) const LISTING_UNSUPPORTED: &str =
    "Windows offers no API to list the named sections of a session, and a name never outlives its last handle";

/// Identifies this process for liveness checks by other processes: its
/// id and (the low bits of) its creation time.
pub(crate) fn process_token() -> u64 {
    // SAFETY: plain call.
    let pid = unsafe { windows_sys::Win32::System::Threading::GetCurrentProcessId() };
    token_of(pid).ok().flatten().unwrap_or(u64::from(pid) << 32)
}

/// The process a token names (Windows has no PID namespaces).
pub(crate) fn process_of(token: u64) -> Option<crate::types::PeerProcess> {
    let pid = (token >> 32) as u32;
    (pid != 0).then_some(crate::types::PeerProcess {
        pid,
        pid_namespace: crate::types::PidNamespace::Ours,
    })
}

/// Whether the process `token` names still runs. When Windows will not say
/// (a process of another user, say), it counts as running: a peer is never
/// declared dead on a refusal.
pub(crate) fn process_alive(token: u64) -> bool {
    match token_of((token >> 32) as u32) {
        Ok(Some(now)) => now == token,
        Ok(None) => false,
        Err(()) => true,
    }
}

/// The token of process `pid`: `Ok(None)` if there is no such running
/// process, `Err` if Windows does not say.
fn token_of(pid: u32) -> Result<Option<u64>, ()> {
    use windows_sys::Win32::Foundation::{ERROR_INVALID_PARAMETER, FILETIME};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    const STILL_ACTIVE: u32 = 259;
    // SAFETY: plain calls on a handle we own and close (OwnedHandle).
    unsafe {
        let process = match owned(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid)) {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(ERROR_INVALID_PARAMETER as i32) => return Ok(None),
            Err(_) => return Err(()),
        };
        let mut code = 0u32;
        if GetExitCodeProcess(raw(&process), &mut code) == 0 {
            return Err(());
        }
        if code != STILL_ACTIVE {
            return Ok(None);
        }
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        if GetProcessTimes(
            raw(&process),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        ) == 0
        {
            return Err(());
        }
        Ok(Some(
            u64::from(pid) << 32 | u64::from(created.dwLowDateTime),
        ))
    }
}
