//! The section object on Linux: a descriptor of the memory, and for a named
//! section the name's entry with this handle's hold on it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::lifetime::{self as names, Content, Entry, OpenError};
use super::record::Record;
use super::{can_shrink, is_memfd, memfd};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::unix::{fstat, open_file, resize};
use crate::sys::Spec;
use crate::types::Namespace;
use crate::types::{Access, Kind, Lifetime};

/// The kernel object(s) behind a `Section`.
#[derive(Debug)]
pub(crate) struct Object {
    /// The memory: a memfd or the backing file; `None` for a named memory
    /// section, whose memory is the entry itself.
    data: Option<OwnedFd>,
    /// For named sections, the name and this handle's hold on it. Dropped
    /// after `data`.
    entry: Option<Entry>,
    /// Whether the memory can be made shorter under a view (decided once:
    /// a seal, once added, is never removed).
    shrinkable: bool,
}

impl Object {
    fn unnamed(fd: OwnedFd) -> Object {
        Object {
            shrinkable: can_shrink(fd.as_fd()),
            data: Some(fd),
            entry: None,
        }
    }

    /// A named section: its entry, and for a file-backed one the file.
    /// Either can be truncated by anyone who may write it.
    fn named(data: Option<OwnedFd>, entry: Entry) -> Object {
        Object {
            data,
            entry: Some(entry),
            shrinkable: true,
        }
    }

    /// The descriptor of the memory.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match (&self.data, &self.entry) {
            (Some(fd), _) => fd.as_fd(),
            (None, Some(entry)) => entry.fd(),
            (None, None) => unreachable!("every section object has a descriptor"),
        }
    }

    /// The path of a named memory section's entry (whose file is the
    /// memory); `None` for other objects.
    pub(crate) fn entry_path(&self) -> Option<&std::path::Path> {
        match (&self.data, &self.entry) {
            (None, Some(entry)) => Some(entry.path()),
            _ => None,
        }
    }

    /// Whether another process (or this one) can shrink the memory under a
    /// view, which then needs the SIGBUS guard.
    pub(crate) fn can_shrink(&self) -> bool {
        self.shrinkable
    }

    /// The current size (growth by any process shows).
    pub(crate) fn size(&self) -> io::Result<u64> {
        Ok(fstat(self.fd())?.size)
    }

    /// Grows to at least `new_size`, never shrinking: the size is re-read
    /// under the name's gate, so concurrent growers cannot undo each other.
    /// With `reserve`, the added bytes get their memory or storage now.
    pub(crate) fn grow(&self, new_size: u64, reserve: bool) -> io::Result<()> {
        let fd = self.fd();
        let grow = || {
            let size = fstat(fd)?.size;
            if size < new_size {
                resize(fd, size, new_size, reserve)?;
            }
            Ok(())
        };
        match &self.entry {
            Some(entry) => entry.with_gate(grow),
            None => grow(),
        }
    }

    /// Maps `len` bytes at `offset`.
    ///
    /// # Safety
    /// As [`crate::sys::unix::map`].
    pub(crate) unsafe fn map(
        &self,
        offset: u64,
        len: usize,
        access: Access,
    ) -> io::Result<*mut u8> {
        // SAFETY: forwarded contract.
        unsafe { crate::sys::unix::map(self.fd(), offset, len, access) }
    }

    /// A descriptor that a child started with `exec` inherits, and the
    /// token that tells the child what it is.
    pub(crate) fn inheritable(&self, access: Access, kind: Kind) -> io::Result<(OwnedFd, String)> {
        crate::sys::unix::inheritable_token(self.fd(), access, kind)
    }

    /// Makes written data durable (`fsync`).
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        crate::sys::unix::fsync(self.fd())
    }

    /// Adopts a descriptor: its access is the descriptor's; a memfd is an
    /// anonymous section, a regular file a file-backed one.
    pub(crate) fn adopt(fd: OwnedFd, op: &'static str) -> Result<(Object, Kind, Access)> {
        let (st, access) = crate::sys::unix::describe_fd(fd.as_fd(), op)?;
        if !st.is_regular {
            return Err(
                Error::new(ErrorKind::WrongKind, op).with_detail("not a regular file or memfd")
            );
        }
        let kind = if is_memfd(fd.as_fd()) {
            Kind::Anonymous
        } else {
            Kind::File
        };
        Ok((Object::unnamed(fd), kind, access))
    }
}

/// An anonymous memory section of `size` bytes (a sealed memfd; memfds
/// are mappable executable, so `_exec` needs nothing here).
pub(crate) fn anonymous(size: u64, _exec: bool, reserve: bool) -> Result<Object> {
    const OP: &str = "create anonymous";
    memfd(size, reserve)
        .map(Object::unnamed)
        .map_err(|e| match e.kind() {
            io::ErrorKind::StorageFull => Error::new(ErrorKind::NoSpace, OP).with_detail(format!(
                "no memory for {size} bytes (the memory cgroup's limit?); nothing was created"
            )),
            _ => Error::os(OP, e),
        })
}

/// Creates and publishes a named section. `init` gets an unnamed object for
/// the same memory before the name appears.
pub(crate) fn create_named(
    ns: &Namespace,
    name: &str,
    spec: &Spec<'_>,
    init: Option<&mut dyn FnMut(Object) -> Result<()>>,
) -> Result<(Object, Kind)> {
    const OP: &str = "create";
    match spec.file {
        None => {
            let size = spec.memory_size(OP, name)?;
            let mut failure = None;
            let mut init = init;
            let published = names::create_named(
                ns.dir(),
                name,
                Content::Memory {
                    size,
                    reserve: spec.reserve,
                },
                spec.mode,
                spec.lifetime,
                &mut |fd| match init.as_mut() {
                    None => Ok(()),
                    Some(init) => {
                        let copy = fd.try_clone_to_owned()?;
                        init(Object::unnamed(copy)).map_err(|e| {
                            failure = Some(e);
                            io::Error::other("initialisation failed")
                        })
                    }
                },
            );
            if let Some(e) = failure {
                return Err(e);
            }
            let entry = published.map_err(|e| create_error(OP, name, ns, e))?;
            Ok((Object::named(None, entry), Kind::Memory))
        }
        Some(path) => {
            let file_err = |e: io::Error| {
                let room = match (e.kind(), path.parent()) {
                    (io::ErrorKind::StorageFull, Some(dir)) => {
                        format!(
                            ": {}",
                            no_room(if dir.as_os_str().is_empty() {
                                std::path::Path::new(".")
                            } else {
                                dir
                            })
                        )
                    }
                    _ => String::new(),
                };
                Error::os(OP, e)
                    .with_name(name)
                    .with_detail(format!("backing file {}{room}", path.display()))
            };
            let data =
                open_file(path, Access::ReadWrite, spec.size, spec.reserve).map_err(file_err)?;
            let st = fstat(data.as_fd()).map_err(file_err)?;
            if st.size == 0 {
                return Err(Error::new(ErrorKind::InvalidSize, OP)
                    .with_name(name)
                    .with_detail(format!(
                        "backing file {} is empty; give a size",
                        path.display()
                    )));
            }
            let record = Record {
                path: std::fs::canonicalize(path).map_err(file_err)?,
                dev: st.dev,
                ino: st.ino,
            };
            let entry = names::create_named(
                ns.dir(),
                name,
                Content::File(&record),
                spec.mode,
                spec.lifetime,
                &mut |_| Ok(()),
            )
            .map_err(|e| create_error(OP, name, ns, e))?;
            Ok((Object::named(Some(data), entry), Kind::NamedFile))
        }
    }
}

/// Free and total bytes of the file system holding `path`.
fn free_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}

/// What a full file system at `dir` has left, for a `NoSpace` message.
fn no_room(dir: &std::path::Path) -> String {
    match free_space(dir) {
        Some((free, total)) => format!(
            "{} has {free} bytes free of {total}; a section's memory is reserved when it is \
             created or grown (a sparse section opts out)",
            dir.display()
        ),
        None => format!("{} is full", dir.display()),
    }
}

/// Opens a named section and, if it is handle-counted, joins its holders.
pub(crate) fn open_named(
    ns: &Namespace,
    name: &str,
    access: Access,
    allow_foreign_owner: bool,
) -> Result<(Object, Kind, Lifetime)> {
    const OP: &str = "open";
    let entry = names::open_named(&ns.dir().join(name), access, allow_foreign_owner)
        .map_err(|e| open_error(OP, name, ns, e))?;
    let marker = entry.marker();
    if !marker.file {
        let object = Object::named(None, entry);
        return Ok((object, Kind::Memory, marker.lifetime));
    }
    let record = entry.read_record().map_err(|e| {
        Error::new(ErrorKind::WrongKind, OP)
            .with_name(name)
            .with_detail(e.to_string())
    })?;
    let gone = |what: &str| {
        Error::new(ErrorKind::Replaced, OP)
            .with_name(name)
            .with_detail(format!(
                "backing file {} {what} since the section was created",
                record.path.display()
            ))
    };
    let data = match open_file(&record.path, access, None, false) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(gone("was removed")),
        Err(e) => {
            return Err(Error::os(OP, e)
                .with_name(name)
                .with_detail(format!("backing file {}", record.path.display())))
        }
    };
    let st = fstat(data.as_fd()).map_err(|e| Error::os(OP, e).with_name(name))?;
    if (st.dev, st.ino) != (record.dev, record.ino) {
        return Err(gone("was replaced"));
    }
    let object = Object::named(Some(data), entry);
    Ok((object, Kind::NamedFile, marker.lifetime))
}

fn create_error(op: &'static str, name: &str, ns: &Namespace, e: io::Error) -> Error {
    let detail = match e.kind() {
        io::ErrorKind::StorageFull => Some(format!("{}; nothing was created", no_room(ns.dir()))),
        io::ErrorKind::AlreadyExists => {
            Some("a live or persistent section has this name".to_owned())
        }
        io::ErrorKind::NotFound => Some(format!(
            "namespace directory {} does not exist",
            ns.dir().display()
        )),
        io::ErrorKind::PermissionDenied => Some(format!(
            "cannot create files in namespace directory {}",
            ns.dir().display()
        )),
        _ => None,
    };
    let err = Error::os(op, e).with_name(name);
    match detail {
        Some(d) => err.with_detail(d),
        None => err,
    }
}

fn open_error(op: &'static str, name: &str, ns: &Namespace, e: OpenError) -> Error {
    match e {
        OpenError::Io(e) if e.kind() == io::ErrorKind::NotFound => {
            Error::new(ErrorKind::NotFound, op)
                .with_name(name)
                .with_detail(format!("no such section in {}", ns.dir().display()))
        }
        OpenError::Io(e) => Error::os(op, e).with_name(name),
        OpenError::NotRegular => Error::new(ErrorKind::WrongKind, op)
            .with_name(name)
            .with_detail("the entry is not a regular file"),
        OpenError::ForeignOwner(uid) => {
            Error::refused_foreign_owner(op, uid, crate::sys::unix::euid()).with_name(name)
        }
        OpenError::HardLinked(links) => Error::new(ErrorKind::PermissionDenied, op)
            .with_name(name)
            .with_detail(format!(
                "the entry has {links} hard links, and a section has exactly one: another \
                 name may have been linked to a file that is not this section (refused)"
            )),
        OpenError::Stale => Error::new(ErrorKind::Stale, op)
            .with_name(name)
            .with_detail("create reclaims the name, gc removes it"),
    }
}

/// Adopts an inherited section from the token [`Object::inheritable`] made.
pub(crate) fn from_inherited(token: &str) -> Result<(Object, Kind, Access)> {
    crate::sys::unix::adopt_token(token, Object::adopt)
}

/// Removes a name under its gate; see [`names::remove_named`].
pub(crate) fn remove(ns: &Namespace, name: &str) -> Result<crate::types::Removed> {
    names::remove_named(&ns.dir().join(name))
        .map(|removed| crate::types::Removed {
            still_held: removed.held,
        })
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => Error::new(ErrorKind::WrongKind, "remove")
                .with_name(name)
                .with_detail(e.to_string()),
            io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, "remove")
                .with_name(name)
                .with_detail(format!("no such section in {}", ns.dir().display())),
            _ => Error::os("remove", e)
                .with_name(name)
                .with_detail(format!("in {}", ns.dir().display())),
        })
}
