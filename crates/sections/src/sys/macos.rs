//! macOS: POSIX shared memory (`shm_open`), no memfd, and regular files.
//!
//! macOS keeps shared-memory objects in one flat kernel namespace without
//! a file system behind it: names are at most 30 bytes (PSHMNAMLEN, 31 with
//! the leading `/`), an object's size can be set only once, and there is no
//! lock on such an object that the handle-counted protocol could rest on.
//! So named sections here are persistent (POSIX lifetime); asking for more
//! is a typed `Unsupported` error that says what to use.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::Mode;
use rustix::shm;

pub(crate) use crate::sys::unix::{
    advise, flush, from_file, granularity, lock, lock_limit_hint, open_path, page_size, prefetch,
    resident_pages, unlock, unmap, Guard,
};
pub(crate) use crate::sys::unlisted::{
    entry_type, list_entry, list_namespace, peer_held_at, reclaim_stale, remove_abandoned_build,
    resident_bytes, users_of,
};

use crate::error::{Error, ErrorKind, Result};
use crate::sys::unix::{fstat, set_len};
use crate::sys::Spec;
use crate::types::Namespace;
use crate::types::{Access, Kind, Lifetime, Removed};

/// The longest name macOS accepts after the leading `/`.
const MAX_SHM_NAME: usize = 30;

/// `shm_open` names an object the moment it is created.
pub(crate) const PUBLISHES_INITIALISED: bool = false;

pub(crate) const LISTING_UNSUPPORTED: &str =
    "macOS offers no way to list POSIX shared-memory objects";

/// The kernel object behind a `Section`.
#[derive(Debug)]
pub(crate) struct Object {
    fd: OwnedFd,
}

impl Object {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Files can be truncated; macOS sets a shared-memory object's size
    /// once.
    pub(crate) fn can_shrink(&self) -> bool {
        fstat(self.fd()).map_or(true, |st| st.is_regular)
    }

    pub(crate) fn size(&self) -> io::Result<u64> {
        Ok(fstat(self.fd())?.size)
    }

    /// Files grow; a shared-memory object's size is set once on macOS.
    pub(crate) fn grow(&self, new_size: u64, _reserve: bool) -> io::Result<()> {
        let st = fstat(self.fd())?;
        if st.size >= new_size {
            return Ok(());
        }
        if !st.is_regular {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "macOS sets a shared-memory object's size once; create a larger section",
            ));
        }
        set_len(self.fd(), new_size)
    }

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

    pub(crate) fn sync_data(&self) -> io::Result<()> {
        crate::sys::unix::fsync(self.fd())
    }

    pub(crate) fn inheritable(&self, access: Access, kind: Kind) -> io::Result<(OwnedFd, String)> {
        crate::sys::unix::inheritable_token(self.fd(), access, kind)
    }

    /// Adopts a descriptor with the access it was opened with.
    pub(crate) fn adopt(fd: OwnedFd, op: &'static str) -> Result<(Object, Kind, Access)> {
        let (st, access) = crate::sys::unix::describe_fd(fd.as_fd(), op)?;
        // A shared-memory object is not a regular file on macOS.
        let kind = if st.is_regular {
            Kind::File
        } else {
            Kind::Anonymous
        };
        Ok((Object { fd }, kind, access))
    }
}

fn shm_name(op: &'static str, ns: &Namespace, name: &str) -> Result<String> {
    if *ns != Namespace::default() {
        return Err(Error::new(ErrorKind::Unsupported, op)
            .with_name(name)
            .with_detail("macOS has one flat shared-memory namespace; use the default namespace"));
    }
    if name.len() > MAX_SHM_NAME {
        return Err(Error::new(ErrorKind::InvalidName, op)
            .with_name(name)
            .with_detail(format!(
                "macOS allows at most {MAX_SHM_NAME} bytes, this name has {}",
                name.len()
            )));
    }
    Ok(format!("/{name}"))
}

fn shm_flags(access: Access) -> shm::OFlags {
    if access.needs_writable_handle() {
        shm::OFlags::RDWR
    } else {
        shm::OFlags::RDONLY
    }
}

/// An anonymous section: a shared-memory object unlinked at once, so only
/// descriptors (inherited or passed) reach it.
pub(crate) fn anonymous(size: u64, _exec: bool, _reserve: bool) -> Result<Object> {
    const OP: &str = "create anonymous";
    for attempt in 0..16u32 {
        let name = format!("/sect.{}.{attempt}", std::process::id());
        let fd = match shm::open(
            name.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(Error::os(OP, e.into())),
        };
        let _ = shm::unlink(name.as_str());
        set_len(fd.as_fd(), size).map_err(|e| Error::os(OP, e))?;
        return Ok(Object { fd });
    }
    Err(Error::new(ErrorKind::AlreadyExists, OP).with_detail("no free temporary name"))
}

pub(crate) fn create_named(
    ns: &Namespace,
    name: &str,
    spec: &Spec<'_>,
    init: Option<&mut dyn FnMut(Object) -> Result<()>>,
) -> Result<(Object, Kind)> {
    const OP: &str = "create";
    let unsupported = |why: &str| {
        Error::new(ErrorKind::Unsupported, OP)
            .with_name(name)
            .with_detail(why.to_owned())
    };
    if spec.lifetime == Lifetime::Counted {
        return Err(unsupported(
            "handle-counted lifetime needs a lock macOS shared memory does not have; \
             use a persistent section and remove it explicitly",
        ));
    }
    if spec.file.is_some() {
        return Err(unsupported(
            "named file-backed sections need a directory namespace; map the file by its path",
        ));
    }
    if init.is_some() {
        return Err(unsupported(
            "macOS cannot build a shared-memory object unseen and publish it; create it, initialise it, then signal readers",
        ));
    }
    let size = spec.memory_size(OP, name)?;
    let path = shm_name(OP, ns, name)?;
    let fd = shm::open(
        path.as_str(),
        shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
        Mode::from_raw_mode((spec.mode & 0o666) as _),
    )
    .map_err(|e| Error::os(OP, e.into()).with_name(name))?;
    if let Err(e) = set_len(fd.as_fd(), size) {
        let _ = shm::unlink(path.as_str());
        return Err(Error::os(OP, e).with_name(name));
    }
    Ok((Object { fd }, Kind::Memory))
}

pub(crate) fn open_named(
    ns: &Namespace,
    name: &str,
    access: Access,
    allow_foreign_owner: bool,
) -> Result<(Object, Kind, Lifetime)> {
    const OP: &str = "open";
    let path = shm_name(OP, ns, name)?;
    let fd = shm::open(path.as_str(), shm_flags(access), Mode::empty())
        .map_err(|e| Error::os(OP, e.into()).with_name(name))?;
    let st = fstat(fd.as_fd()).map_err(|e| Error::os(OP, e).with_name(name))?;
    let me = crate::sys::unix::euid();
    if st.uid != me && !allow_foreign_owner {
        return Err(Error::refused_foreign_owner(OP, st.uid, me).with_name(name));
    }
    Ok((Object { fd }, Kind::Memory, Lifetime::Persistent))
}

pub(crate) fn remove(ns: &Namespace, name: &str) -> Result<Removed> {
    const OP: &str = "remove";
    let path = shm_name(OP, ns, name)?;
    shm::unlink(path.as_str()).map_err(|e| Error::os(OP, e.into()).with_name(name))?;
    // macOS cannot tell whether other processes still have it open.
    Ok(Removed { still_held: false })
}

pub(crate) fn from_inherited(token: &str) -> Result<(Object, Kind, Access)> {
    crate::sys::unix::adopt_token(token, Object::adopt)
}

/// macOS cannot reopen a shared-memory object through its descriptor.
pub(crate) fn reopen_read_only(_fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "macOS cannot narrow a descriptor's access; open the section read-only and send that handle",
    ))
}

/// This process, for people reading a peer slot: its pid (macOS builds no
/// channels).
pub(crate) fn process_token() -> u64 {
    u64::from(std::process::id()) << 32
}

/// The process a token names (macOS has no PID namespaces).
pub(crate) fn process_of(token: u64) -> Option<crate::types::PeerProcess> {
    let pid = (token >> 32) as u32;
    (pid != 0).then_some(crate::types::PeerProcess {
        pid,
        pid_namespace: crate::types::PidNamespace::Ours,
    })
}

/// Named sync objects: not built on macOS, whose shared memory has no
/// handle-counted lifetime to give them; every constructor says so.
pub(crate) mod sync {
    use std::time::Instant;

    use crate::error::{Error, ErrorKind, Result};
    use crate::sys::SyncSpec;
    use crate::types::ObjectState;

    fn unsupported(name: &str) -> Error {
        Error::new(ErrorKind::Unsupported, "create")
            .with_name(name)
            .with_detail("sync objects and channels are built for Linux and Windows only")
    }

    /// Values of these types are never made on macOS.
    #[derive(Debug)]
    enum Never {}

    macro_rules! never {
        ($($t:ident),*) => {$(
            #[derive(Debug)]
            pub(crate) struct $t(Never);
        )*};
    }
    never!(Mutex, Event, Semaphore, Data);

    impl Mutex {
        pub(crate) fn create(_: &SyncSpec<'_>, name: &str, _: &[u8]) -> Result<(Mutex, Data)> {
            Err(unsupported(name))
        }
        pub(crate) fn open(_: &SyncSpec<'_>, name: &str, _: usize) -> Result<(Mutex, Data)> {
            Err(unsupported(name))
        }
        pub(crate) fn lock(&self, _: Option<Instant>) -> Result<Option<bool>> {
            match self.0 {}
        }
        pub(crate) fn unlock(&self) -> Result<()> {
            match self.0 {}
        }
        pub(crate) fn mark_consistent(&self) -> Result<()> {
            match self.0 {}
        }
        pub(crate) fn holder(&self) -> Option<crate::types::PeerProcess> {
            match self.0 {}
        }
    }

    impl Event {
        pub(crate) fn create(_: &SyncSpec<'_>, name: &str, _: bool, _: bool) -> Result<Event> {
            Err(unsupported(name))
        }
        pub(crate) fn open(_: &SyncSpec<'_>, name: &str) -> Result<Event> {
            Err(unsupported(name))
        }
        pub(crate) fn set(&self) -> Result<()> {
            match self.0 {}
        }
        pub(crate) fn reset(&self) -> Result<()> {
            match self.0 {}
        }
        pub(crate) fn wait(&self, _: Option<Instant>) -> Result<bool> {
            match self.0 {}
        }
        pub(crate) fn poll_wait(&self) -> Result<bool> {
            match self.0 {}
        }
        pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
            match self.0 {}
        }
    }

    impl Semaphore {
        pub(crate) fn create(_: &SyncSpec<'_>, name: &str, _: u32, _: u32) -> Result<Semaphore> {
            Err(unsupported(name))
        }
        pub(crate) fn open(_: &SyncSpec<'_>, name: &str) -> Result<Semaphore> {
            Err(unsupported(name))
        }
        pub(crate) fn acquire(&self, _: Option<Instant>) -> Result<bool> {
            match self.0 {}
        }
        pub(crate) fn poll_acquire(&self) -> Result<bool> {
            match self.0 {}
        }
        pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
            match self.0 {}
        }
        pub(crate) fn release(&self, _: u32) -> Result<()> {
            match self.0 {}
        }
    }

    impl Data {
        pub(crate) fn ptr(&self) -> *mut u8 {
            match self.0 {}
        }
    }

    pub(crate) fn describe(_: &[u8]) -> Option<ObjectState> {
        None
    }
}

/// Waking a channel's sides: no channels on macOS (see `sync`).
#[derive(Debug)]
pub(crate) struct Waker(std::convert::Infallible);

impl Waker {
    pub(crate) fn create(_ns: &Namespace, base: &str, _anonymous: bool) -> Result<Waker> {
        Err(Error::new(ErrorKind::Unsupported, "create channel")
            .with_name(base)
            .with_detail("channels are built for Linux and Windows only"))
    }

    pub(crate) fn open(ns: &Namespace, base: Option<&str>, anonymous: bool) -> Result<Waker> {
        Waker::create(ns, base.unwrap_or("(anonymous channel)"), anonymous)
    }

    pub(crate) fn token(&self) -> Option<&str> {
        match self.0 {}
    }

    pub(crate) fn wait(
        &self,
        _: crate::sys::Side,
        _: &std::sync::atomic::AtomicU32,
        _: std::time::Instant,
    ) -> Result<()> {
        match self.0 {}
    }

    pub(crate) fn wake(&self, _: crate::sys::Side, _: &std::sync::atomic::AtomicU32) -> Result<()> {
        match self.0 {}
    }

    pub(crate) fn inheritable(&self) -> Result<(Option<String>, WakerShare)> {
        match self.0 {}
    }

    pub(crate) fn ring(&self, _: crate::sys::Side, _: &Object) -> Result<()> {
        match self.0 {}
    }

    pub(crate) fn watch<'a>(&'a self, _: crate::sys::Side, _: &'a Object, _: &'a str) -> Watch<'a> {
        match self.0 {}
    }
}

/// No channels on macOS (see `sync`).
#[derive(Debug)]
pub(crate) struct WakerShare;

/// A channel endpoint's readiness: no channels on macOS (see `sync`).
#[derive(Debug)]
pub struct Readiness(std::convert::Infallible);

impl Readiness {
    /// Consumes what made it ready (never reached on macOS).
    pub fn clear(&self) {
        match self.0 {}
    }
}

/// What a readiness would watch: nothing is ever made on macOS.
pub(crate) struct Watch<'a>(std::convert::Infallible, std::marker::PhantomData<&'a ()>);

pub(crate) fn ready_for(watches: Vec<Watch<'_>>) -> Result<Vec<Readiness>> {
    match watches.into_iter().next() {
        Some(w) => match w.0 {},
        None => Ok(Vec::new()),
    }
}

pub(crate) fn wait_any(ready: &[&Readiness], _: Option<std::time::Instant>) -> Result<Vec<usize>> {
    match ready.first() {
        Some(r) => match r.0 {},
        None => Ok(Vec::new()),
    }
}

/// Peer slots: no channels on macOS (see `sync`).
#[derive(Debug)]
pub(crate) struct PeerLock(std::convert::Infallible);

impl PeerLock {
    pub(crate) fn claim(
        _object: &Object,
        _index: u32,
        _owner: &std::sync::atomic::AtomicU64,
    ) -> io::Result<Option<PeerLock>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "channels are built for Linux and Windows only",
        ))
    }

    pub(crate) fn claimed_here(&self) -> bool {
        match self.0 {}
    }

    pub(crate) fn release(&mut self) {
        match self.0 {}
    }
}

pub(crate) fn peer_held(_object: &Object, _index: u32, _owner: u64) -> bool {
    false
}

// Image sections: macOS maps neither ELF nor PE images here (Mach-O is
// its own format); every call is `Unsupported`.
use crate::sys::ImageMapping;

fn no_images() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "image sections are mapped on Linux (ELF) and Windows (PE) only",
    )
}

pub(crate) fn open_image_file(path: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::File::open(path)
}

pub(crate) fn header_reader(file: &std::fs::File) -> io::Result<std::fs::File> {
    file.try_clone()
}

pub(crate) fn map_elf(
    _file: &std::fs::File,
    _span: u64,
    _segments: &[crate::sys::LoadSegment],
) -> io::Result<ImageMapping> {
    Err(no_images())
}

pub(crate) fn map_pe(_file: &std::fs::File) -> io::Result<ImageMapping> {
    Err(no_images())
}

pub(crate) fn page_cache(_file: &std::fs::File, _max_len: u64) -> io::Result<Option<Vec<bool>>> {
    Ok(None)
}

pub(crate) fn present_pages(_ptr: *const u8, _len: usize) -> io::Result<Vec<bool>> {
    Err(no_images())
}
