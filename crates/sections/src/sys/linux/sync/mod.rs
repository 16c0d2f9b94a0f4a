//! Named sync objects on Linux, which has no kernel objects for them:
//! futex words and a robust pthread mutex in a small named section, so
//! they share the sections' handle-counted lifetime, stale detection and
//! `gc`. Built on this layer's own section objects and mappings (it sits
//! below `Section`).
//!
//! Layout (offsets in bytes):
//!
//! ```text
//!   0  magic "SECTSYNC"
//!   8  version (u32) = 4 (2: `set` and `release` wake every sleeper, see
//!      `words.rs`, where a version-1 peer woke one and could lose it;
//!      3: an event word counts its sets above the set bit; 4: events and
//!      semaphores ring a bell for waiters in event loops, which a
//!      version-3 peer would not)
//!  12  kind (u32): 1 mutex, 2 event, 3 semaphore
//!  16  payload length (u32): bytes of the guarded value, for a mutex
//!  64  the object: pthread_mutex_t | event {signaled u32, manual u32,
//!      bell u32, rung u32} | semaphore {count u32, max u32, bell u32,
//!      rung u32}
//! 128  the guarded value, for a mutex that guards one
//! ```
//!
//! `bell` is nonzero while a waiter in an event loop may wait
//! (`words.rs`); a signaller that finds it rings by writing zeros into
//! `rung`, which nothing reads: the write is what every waiter's inotify
//! watch of the file reports (as a named channel's bell, `waker.rs`).
//!
//! The header is written before the section is published, and checked on
//! every open: bytes another process can write are untrusted, so a wrong
//! magic, kind or length is a `WrongKind` error and another version a
//! `WrongVersion` error, never a misreading.

mod raw;
mod words;

pub(crate) use raw::{futex_wait, futex_wake};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use raw::LockState;

use crate::error::{Error, ErrorKind, Result};
use crate::sys::linux::object::{create_named, open_named, Object};
use crate::sys::{Mapping, Spec, SyncSpec};
use crate::types::{validate_name, Access, ObjectState, PeerProcess};

const MAGIC: &[u8; 8] = b"SECTSYNC";
const VERSION: u32 = 4;
// The header: MAGIC at 0, VERSION at 8, the kind at 12, the payload's
// length at 16, then:
/// Who took the mutex last, for people (`sect info`): the low 32 bits of
/// its PID namespace's inode and its pid there (0: not recorded). The lock
/// word's thread id names a thread of the holder's own PID namespace; these
/// say which namespace that is. Never read to decide anything.
const HOLDER_NAMESPACE: usize = 24;
const HOLDER_PID: usize = 28;
const OBJECT: usize = 64;
/// An event's or semaphore's bell word, and where a ring writes.
const BELL: usize = OBJECT + 8;
const RUNG: usize = OBJECT + 12;
const PAYLOAD: usize = 128;
const _: () = assert!(OBJECT + raw::MUTEX_SIZE <= PAYLOAD);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mutex = 1,
    Event = 2,
    Semaphore = 3,
}

impl Kind {
    fn name(code: u32) -> &'static str {
        match code {
            1 => "mutex",
            2 => "event",
            3 => "semaphore",
            _ => "unknown object",
        }
    }
}

/// A sync object's section, mapped whole; the object keeps this process's
/// hold on the name.
#[derive(Debug)]
struct Shared {
    map: Mapping,
    _object: Object,
    name: String,
}

impl Shared {
    fn word(&self, at: usize) -> &AtomicU32 {
        self.map.u32_at(at)
    }

    fn err(&self, op: &'static str, e: std::io::Error) -> Error {
        Error::os(op, e).with_name(&self.name)
    }
}

/// The first eight bytes as the two native-endian words they are stored as.
fn magic_words() -> (u32, u32) {
    let word = |i: usize| u32::from_ne_bytes(MAGIC[i..i + 4].try_into().expect("4 bytes"));
    (word(0), word(4))
}

/// Creates the section with its header, running `init` on the object area
/// before the name is published.
fn create(
    spec: &SyncSpec<'_>,
    name: &str,
    kind: Kind,
    payload: &[u8],
    init: impl Fn(&Mapping) -> Result<()>,
) -> Result<Shared> {
    const OP: &str = "create";
    validate_name(name).map_err(|e| e.with_op(OP))?;
    let size = PAYLOAD + payload.len().next_multiple_of(8);
    let map = |object: &Object| {
        Mapping::new(object, 0, size, Access::ReadWrite)
            .map_err(|e| Error::os(OP, e).with_name(name))
    };
    let section = Spec {
        size: Some(size as u64),
        mode: spec.mode,
        lifetime: spec.lifetime,
        file: None,
        exec: false,
        reserve: true,
    };
    let (object, _) = create_named(
        spec.namespace,
        name,
        &section,
        Some(&mut |object: Object| {
            let m = map(&object)?;
            let (a, b) = magic_words();
            for (at, value) in [
                (0, a),
                (4, b),
                (8, VERSION),
                (12, kind as u32),
                (16, payload.len() as u32),
            ] {
                m.u32_at(at).store(value, Ordering::Relaxed);
            }
            // SAFETY: the section is not published yet, so nothing else
            // maps these bytes; the payload fits (the size was made for it).
            unsafe {
                std::ptr::copy_nonoverlapping(payload.as_ptr(), m.ptr().add(PAYLOAD), payload.len())
            };
            init(&m)
        }),
    )?;
    Ok(Shared {
        map: map(&object)?,
        _object: object,
        name: name.to_owned(),
    })
}

/// Opens the section and checks that it is a `kind` with `payload` bytes.
fn open(spec: &SyncSpec<'_>, name: &str, kind: Kind, payload: usize) -> Result<Shared> {
    const OP: &str = "open";
    validate_name(name).map_err(|e| e.with_op(OP))?;
    let (object, _, _) = open_named(
        spec.namespace,
        name,
        Access::ReadWrite,
        spec.allow_foreign_owner,
    )?;
    let wrong = |why: String| {
        Error::new(ErrorKind::WrongKind, OP)
            .with_name(name)
            .with_detail(why)
    };
    let size = object
        .size()
        .map_err(|e| Error::os(OP, e).with_name(name))?;
    if size < PAYLOAD as u64 {
        return Err(wrong(format!(
            "{size} bytes is too small to be a sync object"
        )));
    }
    let len = usize::try_from(size).map_err(|_| wrong(format!("{size} bytes")))?;
    let map = Mapping::new(&object, 0, len, Access::ReadWrite)
        .map_err(|e| Error::os(OP, e).with_name(name))?;
    let word = |at: usize| map.u32_at(at).load(Ordering::Acquire);
    if (word(0), word(4)) != magic_words() {
        return Err(wrong("a section, not a sync object".to_owned()));
    }
    if word(8) != VERSION {
        return Err(Error::new(ErrorKind::WrongVersion, OP)
            .with_name(name)
            .with_detail(format!(
                "sync object of layout version {}, and this library speaks {VERSION}",
                word(8)
            )));
    }
    if word(12) != kind as u32 {
        return Err(wrong(format!(
            "a {}, not a {}",
            Kind::name(word(12)),
            Kind::name(kind as u32)
        )));
    }
    let stored = word(16) as usize;
    if stored != payload || (PAYLOAD + payload) as u64 > size {
        return Err(wrong(format!(
            "it guards {stored} bytes, not {payload} (a different type?)"
        )));
    }
    Ok(Shared {
        map,
        _object: object,
        name: name.to_owned(),
    })
}

/// The guarded value's bytes.
#[derive(Debug)]
pub(crate) struct Data {
    ptr: *mut u8,
}

impl Data {
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

// SAFETY: a pointer into a mapping the owning `Guarded` keeps alive; it is
// only dereferenced while the mutex is held.
unsafe impl Send for Data {}
// SAFETY: see `Send`.
unsafe impl Sync for Data {}

/// A robust pthread mutex at offset 64 of its section.
#[derive(Debug)]
pub(crate) struct Mutex {
    shared: Shared,
}

impl Mutex {
    fn at(&self) -> *mut u8 {
        self.shared.map.ptr().wrapping_add(OBJECT)
    }

    pub(crate) fn create(spec: &SyncSpec<'_>, name: &str, payload: &[u8]) -> Result<(Mutex, Data)> {
        let shared = create(spec, name, Kind::Mutex, payload, |map| {
            // SAFETY: the section is not published yet, so nothing else
            // uses these bytes; the offset is 64-aligned and in bounds.
            unsafe { raw::mutex_init(map.ptr().add(OBJECT)) }
                .map_err(|e| Error::os("create", e).with_name(name))
        })?;
        Ok(Mutex::with_data(shared))
    }

    pub(crate) fn open(spec: &SyncSpec<'_>, name: &str, payload: usize) -> Result<(Mutex, Data)> {
        Ok(Mutex::with_data(open(spec, name, Kind::Mutex, payload)?))
    }

    fn with_data(shared: Shared) -> (Mutex, Data) {
        let data = Data {
            ptr: shared.map.ptr().wrapping_add(PAYLOAD),
        };
        (Mutex { shared }, data)
    }

    /// `Some(abandoned)` when taken, `None` when `deadline` passed first.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        // SAFETY: the mutex was initialised before the section was
        // published and lives as long as `self.shared`.
        let state = match deadline {
            Some(d) if d <= Instant::now() => unsafe { raw::mutex_try_lock(self.at()) },
            _ => unsafe { raw::mutex_lock(self.at(), deadline) },
        }
        .map_err(|e| self.shared.err("lock", e))?;
        if state != LockState::TimedOut {
            let token = crate::sys::process_token();
            let (namespace, pid) = (token as u32, (token >> 32) as u32);
            self.shared
                .word(HOLDER_NAMESPACE)
                .store(namespace, Ordering::Relaxed);
            self.shared.word(HOLDER_PID).store(pid, Ordering::Relaxed);
        }
        Ok(match state {
            LockState::Acquired => Some(false),
            LockState::OwnerDied => Some(true),
            LockState::TimedOut => None,
        })
    }

    pub(crate) fn unlock(&self) -> Result<()> {
        // SAFETY: called by the guard, on the thread that holds the mutex.
        unsafe { raw::mutex_unlock(self.at()) }.map_err(|e| self.shared.err("unlock", e))
    }

    pub(crate) fn mark_consistent(&self) -> Result<()> {
        // SAFETY: called by a guard that took the mutex as abandoned.
        unsafe { raw::mutex_consistent(self.at()) }
            .map_err(|e| self.shared.err("mark consistent", e))
    }

    pub(crate) fn holder(&self) -> Option<PeerProcess> {
        // SAFETY: the mutex bytes are mapped while `self` lives.
        let tid = unsafe { raw::mutex_owner_tid(self.at()) };
        holder_of(
            tid,
            self.shared.word(HOLDER_NAMESPACE).load(Ordering::Relaxed),
            self.shared.word(HOLDER_PID).load(Ordering::Relaxed),
        )
    }
}

/// The process holding a mutex whose lock word names thread `tid`, given
/// the holder's recorded PID namespace and pid (both 0: not recorded). A
/// holder of this PID namespace is the thread's process, if it still runs;
/// a holder of another (or of one nobody could tell) is named by its
/// recorded pid and marked so: this namespace cannot look at it.
fn holder_of(tid: u32, namespace: u32, pid: u32) -> Option<PeerProcess> {
    use crate::types::PidNamespace;
    if tid == 0 {
        return None;
    }
    let local = || {
        raw::process_of_thread(tid).map(|pid| PeerProcess {
            pid,
            pid_namespace: PidNamespace::Ours,
        })
    };
    if pid == 0 {
        return local();
    }
    match super::namespace_of(namespace) {
        PidNamespace::Ours => local(),
        elsewhere => Some(PeerProcess {
            pid,
            pid_namespace: elsewhere,
        }),
    }
}

/// A word of the section as a shared futex (no `FUTEX_PRIVATE_FLAG`).
struct Futex<'a> {
    word: &'a AtomicU32,
    shared: &'a Shared,
}

impl words::Word for Futex<'_> {
    fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    fn compare_exchange(&self, current: u32, new: u32) -> std::result::Result<u32, u32> {
        self.word
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }

    fn wait(&self, expected: u32, deadline: Option<Instant>) -> Result<()> {
        raw::futex_wait(self.word, expected, deadline).map_err(|e| self.shared.err("wait", e))
    }

    fn wake_all(&self) -> Result<()> {
        raw::futex_wake(self.word, i32::MAX as u32).map_err(|e| self.shared.err("wake", e))
    }

    fn corrupted(&self, what: String) -> Error {
        Error::new(ErrorKind::Corrupted, "wait")
            .with_name(&self.shared.name)
            .with_detail(what)
    }
}

impl Shared {
    /// The object's first word, as a futex.
    fn first(&self) -> Futex<'_> {
        Futex {
            word: self.word(OBJECT),
            shared: self,
        }
    }

    fn second(&self) -> &AtomicU32 {
        self.word(OBJECT + 4)
    }

    /// An event's or semaphore's bell.
    fn bell(&self) -> Doorbell<'_> {
        Doorbell { shared: self }
    }

    /// What a readiness watches: the object's file, where its bell writes.
    fn watch(&self) -> crate::sys::Watch<'_> {
        crate::sys::Watch::new(self._object.fd(), "watch", &self.name)
    }
}

/// The bell of an event's or semaphore's waiters in event loops.
struct Doorbell<'a> {
    shared: &'a Shared,
}

impl words::Bell for Doorbell<'_> {
    fn announce(&self) {
        self.shared.word(BELL).store(1, Ordering::SeqCst);
    }

    fn take_announcement(&self) -> bool {
        // Read first: the line stays shared while nobody announces.
        let word = self.shared.word(BELL);
        word.load(Ordering::SeqCst) != 0 && word.swap(0, Ordering::SeqCst) != 0
    }

    fn ring(&self) -> Result<()> {
        crate::sys::linux::bell::ring(self.shared._object.fd(), RUNG as u64)
            .map_err(|e| e.with_name(&self.shared.name))
    }
}

/// An event: its word (set bit, count of sets) at 64, `manual` (0 or 1)
/// at 68; the protocol is in `words.rs`.
#[derive(Debug)]
pub(crate) struct Event {
    shared: Shared,
    manual: bool,
}

impl Event {
    pub(crate) fn create(
        spec: &SyncSpec<'_>,
        name: &str,
        manual: bool,
        set: bool,
    ) -> Result<Event> {
        let shared = create(spec, name, Kind::Event, &[], |map| {
            map.u32_at(OBJECT).store(u32::from(set), Ordering::Relaxed);
            map.u32_at(OBJECT + 4)
                .store(u32::from(manual), Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Event { shared, manual })
    }

    pub(crate) fn open(spec: &SyncSpec<'_>, name: &str) -> Result<Event> {
        let shared = open(spec, name, Kind::Event, 0)?;
        let manual = match shared.second().load(Ordering::Relaxed) {
            0 => false,
            1 => true,
            other => {
                return Err(Error::new(ErrorKind::WrongKind, "open")
                    .with_name(name)
                    .with_detail(format!("damaged event (reset mode {other})")))
            }
        };
        Ok(Event { shared, manual })
    }

    pub(crate) fn set(&self) -> Result<()> {
        words::set(&self.shared.first(), &self.shared.bell())
    }

    pub(crate) fn poll_wait(&self) -> Result<bool> {
        Ok(words::poll_wait(
            &self.shared.first(),
            &self.shared.bell(),
            self.manual,
        ))
    }

    pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
        Ok(self.shared.watch())
    }

    pub(crate) fn reset(&self) -> Result<()> {
        words::reset(&self.shared.first());
        Ok(())
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<bool> {
        words::wait(&self.shared.first(), self.manual, deadline)
    }
}

/// A semaphore: `count` at 64, `max` at 68; the protocol is in `words.rs`.
#[derive(Debug)]
pub(crate) struct Semaphore {
    shared: Shared,
    max: u32,
}

impl Semaphore {
    pub(crate) fn create(
        spec: &SyncSpec<'_>,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Semaphore> {
        if max == 0 || initial > max {
            return Err(Error::new(ErrorKind::InvalidRange, "create")
                .with_name(name)
                .with_detail(format!("initial count {initial} with maximum {max}")));
        }
        let shared = create(spec, name, Kind::Semaphore, &[], |map| {
            map.u32_at(OBJECT).store(initial, Ordering::Relaxed);
            map.u32_at(OBJECT + 4).store(max, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Semaphore { shared, max })
    }

    pub(crate) fn open(spec: &SyncSpec<'_>, name: &str) -> Result<Semaphore> {
        let shared = open(spec, name, Kind::Semaphore, 0)?;
        let max = shared.second().load(Ordering::Relaxed);
        if max == 0 || shared.word(OBJECT).load(Ordering::Relaxed) > max {
            return Err(Error::new(ErrorKind::WrongKind, "open")
                .with_name(name)
                .with_detail("damaged semaphore (count above its maximum)"));
        }
        Ok(Semaphore { shared, max })
    }

    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Result<bool> {
        words::acquire(&self.shared.first(), self.max, deadline)
    }

    pub(crate) fn poll_acquire(&self) -> Result<bool> {
        words::poll_acquire(&self.shared.first(), &self.shared.bell(), self.max)
    }

    pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
        Ok(self.shared.watch())
    }

    pub(crate) fn release(&self, n: u32) -> Result<()> {
        words::release(&self.shared.first(), &self.shared.bell(), self.max, n)?.map_err(|c| {
            Error::new(ErrorKind::InvalidRange, "release")
                .with_name(&self.shared.name)
                .with_detail(format!(
                    "releasing {n} would pass the maximum {} (count is {c})",
                    self.max
                ))
        })
    }
}

/// What the first bytes of an entry say, if it is a sync object. The bytes
/// are untrusted: anything unexpected is "not a sync object".
pub(crate) fn describe(head: &[u8]) -> Option<ObjectState> {
    if head.len() < OBJECT + 12 || &head[..8] != MAGIC {
        return None;
    }
    let word = |at: usize| u32::from_ne_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    if word(8) != VERSION {
        return None;
    }
    match word(12) {
        1 => {
            // glibc's `__owner` (a thread id), third int of the mutex.
            let tid = word(OBJECT + 8);
            Some(ObjectState::Mutex {
                held: tid != 0,
                holder: holder_of(tid, word(HOLDER_NAMESPACE), word(HOLDER_PID)),
            })
        }
        2 => Some(ObjectState::Event {
            set: word(OBJECT) & 1 == 1,
            manual: word(OBJECT + 4) == 1,
        }),
        3 => Some(ObjectState::Semaphore {
            count: word(OBJECT),
            max: word(OBJECT + 4),
        }),
        _ => None,
    }
}
