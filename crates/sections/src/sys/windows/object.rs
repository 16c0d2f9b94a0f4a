//! The section object on Windows: a file-mapping object (page-file or file
//! backed), its size, growth, views and handles for other processes.

use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::windows::io::{
    AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, OwnedHandle, RawHandle,
};
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use windows_sys::Win32::Foundation::{
    DuplicateHandle, GetLastError, DUPLICATE_SAME_ACCESS, ERROR_ALREADY_EXISTS, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FlushFileBuffers, GetFileSizeEx, SetEndOfFile, SetFilePointerEx, FILE_BEGIN,
    FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    OPEN_ALWAYS, OPEN_EXISTING,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, FILE_MAP_COPY, FILE_MAP_EXECUTE,
    FILE_MAP_READ, FILE_MAP_WRITE, PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE, PAGE_READONLY,
    PAGE_READWRITE, SECTION_QUERY,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::Spec;

use crate::types::Namespace;
use crate::types::{Access, Kind, Lifetime};

use super::{
    last_error, object_name, owned, raw, wide, wide_path, GENERIC_READ, GENERIC_WRITE, SEC_FILE,
};

#[repr(C)]
struct SectionBasicInformation {
    base_address: *mut c_void,
    allocation_attributes: u32,
    maximum_size: i64,
}

#[link(name = "ntdll")]
extern "system" {
    /// `NtQuerySection(SectionBasicInformation)`: the only way to learn the
    /// size of a section opened by name.
    fn NtQuerySection(
        section: HANDLE,
        class: u32,
        info: *mut c_void,
        length: usize,
        result_length: *mut usize,
    ) -> i32;
}

/// The kernel object(s) behind a `Section`.
#[derive(Debug)]
pub(crate) struct Object {
    /// The mapping new views are made from, and its maximum size. Growing
    /// a file-backed section replaces it; existing views keep the old one
    /// alive (a view references its section).
    current: RwLock<Current>,
    /// The backing file, for file-backed sections this handle opened.
    file: Option<Backing>,
}

#[derive(Debug)]
struct Current {
    mapping: OwnedHandle,
    size: u64,
}

#[derive(Debug)]
struct Backing {
    handle: OwnedHandle,
    writable: bool,
    exec: bool,
}

impl Object {
    fn new(mapping: OwnedHandle, size: u64, file: Option<Backing>) -> Object {
        Object {
            current: RwLock::new(Current { mapping, size }),
            file,
        }
    }

    fn query(mapping: OwnedHandle) -> io::Result<Object> {
        let (size, _) = query_section(raw(&mapping))?;
        Ok(Object::new(mapping, size, None))
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Windows refuses to shrink a file that has a mapping, and a
    /// page-file section has a fixed size: no view can lose its memory.
    pub(crate) fn can_shrink(&self) -> bool {
        false
    }

    pub(crate) fn size(&self) -> io::Result<u64> {
        Ok(self.current().size)
    }

    /// Grows a file-backed section: extends the file and makes a larger
    /// mapping for new views. A memory-backed section has a fixed size.
    /// Windows commits a page-file section's memory when it is created and
    /// allocates the bytes a file is extended by, so `_reserve` needs
    /// nothing more.
    pub(crate) fn grow(&self, new_size: u64, _reserve: bool) -> io::Result<()> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if new_size <= current.size {
            return Ok(());
        }
        let Some(file) = &self.file else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Windows memory-backed section has a fixed maximum size (and a section opened \
                 by name cannot reach its file); create a larger section",
            ));
        };
        if file_size(&file.handle)? < new_size {
            set_file_size(&file.handle, new_size)?;
        }
        // SAFETY: a valid file handle; size 0 means "the file's size".
        let handle = unsafe {
            CreateFileMappingW(
                raw(&file.handle),
                std::ptr::null(),
                protection(file.exec, file.writable),
                0,
                0,
                std::ptr::null(),
            )
        };
        *current = Current {
            mapping: owned(handle)?,
            size: new_size,
        };
        Ok(())
    }

    /// # Safety
    /// The caller owns the returned view and unmaps it once with [`unmap`].
    pub(crate) unsafe fn map(
        &self,
        offset: u64,
        len: usize,
        access: Access,
    ) -> io::Result<*mut u8> {
        let mut flags = if access.is_private() {
            FILE_MAP_COPY
        } else if access.writes() {
            FILE_MAP_WRITE
        } else {
            FILE_MAP_READ
        };
        if access.executes() {
            flags |= FILE_MAP_EXECUTE;
        }
        // SAFETY: a valid section handle; the kernel picks the address.
        let view = unsafe {
            MapViewOfFile(
                raw(&self.current().mapping),
                flags,
                (offset >> 32) as u32,
                offset as u32,
                len,
            )
        };
        if view.Value.is_null() {
            return Err(last_error());
        }
        Ok(view.Value.cast())
    }

    pub(crate) fn sync_data(&self) -> io::Result<()> {
        match &self.file {
            // SAFETY: a valid file handle.
            Some(file) => match unsafe { FlushFileBuffers(raw(&file.handle)) } {
                0 => Err(last_error()),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// A handle to this section that a child process inherits, and the
    /// token that tells the child what it is.
    pub(crate) fn inheritable(
        &self,
        access: Access,
        kind: Kind,
    ) -> io::Result<(OwnedHandle, String)> {
        let mut dup: HANDLE = std::ptr::null_mut();
        // SAFETY: duplicating our own valid handle within this process.
        let ok = unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                raw(&self.current().mapping),
                GetCurrentProcess(),
                &mut dup,
                0,
                1,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        let handle = owned(dup)?;
        let token = format!(
            "handle:{}:{}:{}",
            raw(&handle) as usize,
            access.tag(),
            u8::from(kind.is_file())
        );
        Ok((handle, token))
    }

    /// Duplicates the section handle into `process` and returns its value
    /// there (the Windows counterpart of sending a descriptor).
    pub(crate) fn duplicate_into(&self, process: BorrowedHandle<'_>) -> io::Result<usize> {
        let mut target: HANDLE = std::ptr::null_mut();
        // SAFETY: valid source handle and process handle owned by the caller.
        let ok = unsafe {
            DuplicateHandle(
                GetCurrentProcess(),
                raw(&self.current().mapping),
                process.as_raw_handle() as HANDLE,
                &mut target,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        Ok(target as usize)
    }
}

/// Size and whether the section is file-backed.
fn query_section(mapping: HANDLE) -> io::Result<(u64, bool)> {
    let mut info = SectionBasicInformation {
        base_address: std::ptr::null_mut(),
        allocation_attributes: 0,
        maximum_size: 0,
    };
    // SAFETY: a valid buffer of the size passed.
    let status = unsafe {
        NtQuerySection(
            mapping,
            0,
            (&mut info as *mut SectionBasicInformation).cast(),
            std::mem::size_of::<SectionBasicInformation>(),
            std::ptr::null_mut(),
        )
    };
    if status < 0 {
        return Err(io::Error::other(format!(
            "NtQuerySection failed with status {status:#x}"
        )));
    }
    Ok((
        info.maximum_size as u64,
        info.allocation_attributes & SEC_FILE != 0,
    ))
}

fn protection(exec: bool, writable: bool) -> u32 {
    match (exec, writable) {
        (false, true) => PAGE_READWRITE,
        (true, true) => PAGE_EXECUTE_READWRITE,
        (false, false) => PAGE_READONLY,
        (true, false) => PAGE_EXECUTE_READ,
    }
}

/// An anonymous (pagefile-backed, unnamed) section.
pub(crate) fn anonymous(size: u64, exec: bool, _reserve: bool) -> Result<Object> {
    const OP: &str = "create anonymous";
    // SAFETY: plain call; a null name makes an unnamed section.
    let handle = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            std::ptr::null(),
            protection(exec, true),
            (size >> 32) as u32,
            size as u32,
            std::ptr::null(),
        )
    };
    let mapping = owned(handle).map_err(|e| Error::os(OP, e))?;
    Ok(Object::new(mapping, size, None))
}

fn open_file_handle(path: &Path, writable: bool, create: bool) -> io::Result<OwnedHandle> {
    let access = GENERIC_READ | if writable { GENERIC_WRITE } else { 0 };
    let wide = wide_path(path);
    // SAFETY: a valid NUL-terminated path; reparse points (symbolic links)
    // are opened as themselves, never followed.
    let handle = unsafe {
        CreateFileW(
            wide.as_ptr(),
            access,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            std::ptr::null(),
            if create { OPEN_ALWAYS } else { OPEN_EXISTING },
            FILE_FLAG_OPEN_REPARSE_POINT,
            std::ptr::null_mut(),
        )
    };
    owned(handle)
}

fn file_size(file: &OwnedHandle) -> io::Result<u64> {
    let mut size = 0i64;
    // SAFETY: a valid file handle and out pointer.
    match unsafe { GetFileSizeEx(raw(file), &mut size) } {
        0 => Err(last_error()),
        _ => Ok(size as u64),
    }
}

fn set_file_size(file: &OwnedHandle, size: u64) -> io::Result<()> {
    // SAFETY: a valid file handle opened for writing.
    unsafe {
        if SetFilePointerEx(raw(file), size as i64, std::ptr::null_mut(), FILE_BEGIN) == 0
            || SetEndOfFile(raw(file)) == 0
        {
            return Err(last_error());
        }
    }
    Ok(())
}

/// A section over a file handle; `name` publishes it.
fn map_file(
    file: OwnedHandle,
    writable: bool,
    exec: bool,
    name: Option<&[u16]>,
) -> io::Result<Object> {
    let size = file_size(&file)?;
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file is empty, and an empty file cannot be mapped",
        ));
    }
    // SAFETY: valid file handle; size 0 means "the file's size".
    let handle = unsafe {
        CreateFileMappingW(
            raw(&file),
            std::ptr::null(),
            protection(exec, writable),
            0,
            0,
            name.map_or(std::ptr::null(), <[u16]>::as_ptr),
        )
    };
    // SAFETY: reads the calling thread's last error right after the call.
    let existed = !handle.is_null() && unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
    let mapping = owned(handle)?;
    if existed {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    let file = Backing {
        handle: file,
        writable,
        exec,
    };
    Ok(Object::new(mapping, size, Some(file)))
}

pub(crate) fn open_path(path: &Path, access: Access) -> Result<(Object, Kind, Access)> {
    const OP: &str = "open file";
    let err = |e: io::Error| Error::os(OP, e).with_detail(format!("file {}", path.display()));
    let writable = access.needs_writable_handle();
    let file = open_file_handle(path, writable, false).map_err(err)?;
    let object = map_file(file, writable, access.executes(), None).map_err(err)?;
    Ok((object, Kind::File, access))
}

pub(crate) fn from_file(file: &File) -> Result<(Object, Kind, Access)> {
    const OP: &str = "open file";
    let handle = file
        .as_handle()
        .try_clone_to_owned()
        .map_err(|e| Error::os(OP, e))?;
    // Windows does not say how a handle was opened; try read-write first.
    match map_file(handle, true, false, None) {
        Ok(object) => Ok((object, Kind::File, Access::ReadWrite)),
        Err(_) => {
            let handle = file
                .as_handle()
                .try_clone_to_owned()
                .map_err(|e| Error::os(OP, e))?;
            let object = map_file(handle, false, false, None).map_err(|e| Error::os(OP, e))?;
            Ok((object, Kind::File, Access::Read))
        }
    }
}

pub(crate) fn create_named(
    ns: &Namespace,
    name: &str,
    spec: &Spec<'_>,
    init: Option<&mut dyn FnMut(Object) -> Result<()>>,
) -> Result<(Object, Kind)> {
    const OP: &str = "create";
    if spec.lifetime == Lifetime::Persistent {
        return Err(Error::new(ErrorKind::Unsupported, OP)
            .with_name(name)
            .with_detail(
                "Windows removes a named section with its last handle; keep a process holding it, \
             or back it by a file, which outlives the section",
            ));
    }
    if init.is_some() {
        return Err(Error::new(ErrorKind::Unsupported, OP)
            .with_name(name)
            .with_detail(
                "Windows publishes a named section the moment it is created, so it cannot be \
             initialised unseen; create it, initialise it, then signal readers",
            ));
    }
    let wide = wide(&object_name(ns, name));
    let already = |e: io::Error| {
        let err = Error::os(OP, e).with_name(name);
        if err.kind() == ErrorKind::AlreadyExists {
            err.with_detail("a live section has this name")
        } else {
            err
        }
    };
    match spec.file {
        None => {
            let size = spec.memory_size(OP, name)?;
            // SAFETY: a valid NUL-terminated name.
            let handle = unsafe {
                CreateFileMappingW(
                    INVALID_HANDLE_VALUE,
                    std::ptr::null(),
                    protection(spec.exec, true),
                    (size >> 32) as u32,
                    size as u32,
                    wide.as_ptr(),
                )
            };
            // SAFETY: the calling thread's last error, right after the call.
            let existed = !handle.is_null() && unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
            let mapping = owned(handle).map_err(|e| {
                let err = Error::os(OP, e).with_name(name);
                if err.kind() == ErrorKind::Os {
                    Error::new(ErrorKind::InvalidSize, OP)
                        .with_name(name)
                        .with_detail(format!(
                            "{size} bytes cannot be backed by the page file: {err}"
                        ))
                } else {
                    err
                }
            })?;
            if existed {
                return Err(already(io::ErrorKind::AlreadyExists.into()));
            }
            Ok((Object::new(mapping, size, None), Kind::Memory))
        }
        Some(path) => {
            let file_err = |e: io::Error| {
                Error::os(OP, e)
                    .with_name(name)
                    .with_detail(format!("backing file {}", path.display()))
            };
            let file = open_file_handle(path, true, true).map_err(file_err)?;
            if let Some(size) = spec.size {
                if file_size(&file).map_err(file_err)? < size {
                    set_file_size(&file, size).map_err(file_err)?;
                }
            }
            let object = map_file(file, true, spec.exec, Some(&wide)).map_err(already)?;
            Ok((object, Kind::NamedFile))
        }
    }
}

pub(crate) fn open_named(
    ns: &Namespace,
    name: &str,
    access: Access,
    _allow_foreign_owner: bool,
) -> Result<(Object, Kind, Lifetime)> {
    const OP: &str = "open";
    let mut desired = FILE_MAP_READ | SECTION_QUERY;
    if access.needs_writable_handle() {
        desired |= FILE_MAP_WRITE;
    }
    if access.executes() {
        desired |= FILE_MAP_EXECUTE;
    }
    let object_name = object_name(ns, name);
    let wide = wide(&object_name);
    // SAFETY: a valid NUL-terminated name; the handle is not inheritable.
    let handle = unsafe { OpenFileMappingW(desired, 0, wide.as_ptr()) };
    let mapping = owned(handle).map_err(|e| {
        let err = Error::os(OP, e).with_name(name);
        if err.kind() == ErrorKind::NotFound {
            err.with_detail(format!("no section named {object_name}"))
        } else {
            err
        }
    })?;
    let (_, is_file) =
        query_section(raw(&mapping)).map_err(|e| Error::os(OP, e).with_name(name))?;
    let object = Object::query(mapping).map_err(|e| Error::os(OP, e).with_name(name))?;
    let kind = if is_file {
        Kind::NamedFile
    } else {
        Kind::Memory
    };
    Ok((object, kind, Lifetime::Counted))
}

/// Adopts an inherited section from the token [`Object::inheritable`] made.
pub(crate) fn from_inherited(token: &str) -> Result<(Object, Kind, Access)> {
    const OP: &str = "adopt inherited section";
    let bad = || {
        Error::new(ErrorKind::InvalidName, OP)
            .with_detail(format!("'{token}' is not a section token"))
    };
    let mut parts = token.split(':');
    if parts.next() != Some("handle") {
        return Err(bad());
    }
    let value: usize = parts.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let access = parts
        .next()
        .and_then(|v| v.parse().ok())
        .and_then(Access::from_tag)
        .ok_or_else(bad)?;
    let is_file = parts.next() == Some("1");
    // The value came in a string: the handle is not ours to close (it may
    // be another part of this process's, or the `Inheritable` of this very
    // process). Adopt a duplicate; the inherited handle stays as it is.
    let mut dup: HANDLE = std::ptr::null_mut();
    // SAFETY: DuplicateHandle on any value is harmless: it fails for a
    // value that is not a handle of this process, and otherwise writes a
    // new handle, which nothing else owns, to `dup`.
    let ok = unsafe {
        DuplicateHandle(
            GetCurrentProcess(),
            value as HANDLE,
            GetCurrentProcess(),
            &mut dup,
            0,
            0,
            DUPLICATE_SAME_ACCESS,
        )
    };
    if ok == 0 || dup.is_null() {
        return Err(
            Error::os(OP, io::Error::last_os_error()).with_detail(format!("handle {value}"))
        );
    }
    // SAFETY: `dup` was just made by DuplicateHandle for this call alone.
    let mapping = unsafe { OwnedHandle::from_raw_handle(dup as RawHandle) };
    let object = Object::query(mapping).map_err(|e| Error::os(OP, e))?;
    Ok((
        object,
        if is_file { Kind::File } else { Kind::Anonymous },
        access,
    ))
}
