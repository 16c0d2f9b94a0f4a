//! Linux: sync objects in a small named section.
//!
//! Layout (offsets in bytes):
//!
//! ```text
//!   0  magic "SECTSYNC"
//!   8  version (u32) = 2 (2: `set` and `release` wake every sleeper, see
//!      `protocol.rs`; a version-1 peer would wake one and could lose it)
//!  12  kind (u32): 1 mutex, 2 event, 3 semaphore
//!  16  payload length (u32): bytes of the guarded value, for a mutex
//!  64  the object: pthread_mutex_t | event {signaled u32, manual u32}
//!      | semaphore {count u32, max u32}
//! 128  the guarded value, for a mutex that guards one
//! ```
//!
//! The header is written before the section is published (`create_with`),
//! and checked on every open: bytes another process can write are
//! untrusted, so a wrong magic, kind or length is a `WrongKind` error and
//! another version a `WrongVersion` error, never a misreading.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::section::{Access, Section};
use crate::sync::protocol;
use crate::sync::{Reset, SyncOptions};
use crate::sys::sync::{self as raw, LockState};
use crate::view::View;

const MAGIC: &[u8; 8] = b"SECTSYNC";
const VERSION: u32 = 2;
const OBJECT: usize = 64;
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

fn options(opts: &SyncOptions, payload: usize) -> crate::SectionOptions {
    let mut o = Section::options();
    o.namespace(&opts.namespace)
        .lifetime(opts.lifetime)
        .allow_foreign_owner(opts.allow_foreign_owner)
        .size((PAYLOAD + payload.next_multiple_of(8)) as u64);
    o
}

/// Creates the section with its header, running `init` on the object area
/// before the name is published.
fn create(
    opts: &SyncOptions,
    name: &str,
    kind: Kind,
    payload: &[u8],
    init: impl Fn(&View) -> Result<()>,
) -> Result<View> {
    let section = options(opts, payload.len()).create_with(name, |view| {
        view.write_at(0, MAGIC)?;
        view.write_at(8, &VERSION.to_ne_bytes())?;
        view.write_at(12, &(kind as u32).to_ne_bytes())?;
        view.write_at(16, &(payload.len() as u32).to_ne_bytes())?;
        view.write_at(PAYLOAD, payload)?;
        init(view)
    })?;
    section.map_all(Access::ReadWrite)
}

/// Opens the section and checks that it is a `kind` with `payload` bytes.
fn open(opts: &SyncOptions, name: &str, kind: Kind, payload: usize) -> Result<View> {
    const OP: &str = "open";
    let section = options(opts, 0).access(Access::ReadWrite).open(name)?;
    let wrong = |why: String| {
        Error::new(ErrorKind::WrongKind, OP)
            .with_name(name)
            .with_detail(why)
    };
    let size = section.size()?;
    if size < PAYLOAD as u64 {
        return Err(wrong(format!(
            "{size} bytes is too small to be a sync object"
        )));
    }
    let view = section.map_all(Access::ReadWrite)?;
    let mut header = [0u8; 20];
    view.read_at(0, &mut header)?;
    let word = |at: usize| u32::from_ne_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    if &header[..8] != MAGIC {
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
    Ok(view)
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
    view: View,
}

impl Mutex {
    fn at(&self) -> *mut u8 {
        self.view.as_mut_ptr().wrapping_add(OBJECT)
    }

    pub(crate) fn create(opts: &SyncOptions, name: &str, payload: &[u8]) -> Result<(Mutex, Data)> {
        let view = create(opts, name, Kind::Mutex, payload, |view| {
            // SAFETY: the section is not published yet, so nothing else
            // uses these bytes; the offset is 64-aligned and in bounds.
            unsafe { raw::mutex_init(view.as_mut_ptr().add(OBJECT)) }
                .map_err(|e| Error::os("create", e).with_name(name))
        })?;
        Ok(Mutex::with_data(view))
    }

    pub(crate) fn open(opts: &SyncOptions, name: &str, payload: usize) -> Result<(Mutex, Data)> {
        Ok(Mutex::with_data(open(opts, name, Kind::Mutex, payload)?))
    }

    fn with_data(view: View) -> (Mutex, Data) {
        let data = Data {
            ptr: view.as_mut_ptr().wrapping_add(PAYLOAD),
        };
        (Mutex { view }, data)
    }

    fn err(&self, op: &'static str, e: std::io::Error) -> Error {
        self.view.section().err_os(op, e)
    }

    /// `Some(abandoned)` when taken, `None` when `deadline` passed first.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Option<bool>> {
        // SAFETY: the mutex was initialised before the section was
        // published and lives as long as `self.view`.
        let state = match deadline {
            Some(d) if d <= Instant::now() => unsafe { raw::mutex_try_lock(self.at()) },
            _ => unsafe { raw::mutex_lock(self.at(), deadline) },
        }
        .map_err(|e| self.err("lock", e))?;
        Ok(match state {
            LockState::Acquired => Some(false),
            LockState::OwnerDied => Some(true),
            LockState::TimedOut => None,
        })
    }

    pub(crate) fn unlock(&self) -> Result<()> {
        // SAFETY: called by the guard, on the thread that holds the mutex.
        unsafe { raw::mutex_unlock(self.at()) }.map_err(|e| self.err("unlock", e))
    }

    pub(crate) fn mark_consistent(&self) -> Result<()> {
        // SAFETY: called by a guard that took the mutex as abandoned.
        unsafe { raw::mutex_consistent(self.at()) }.map_err(|e| self.err("mark consistent", e))
    }

    pub(crate) fn holder(&self) -> Option<u32> {
        // SAFETY: the mutex bytes are mapped while `self` lives.
        match unsafe { raw::mutex_owner_tid(self.at()) } {
            0 => None,
            tid => raw::process_of_thread(tid),
        }
    }
}

/// The futex words of an event or semaphore.
#[derive(Debug)]
struct Words {
    view: View,
}

impl Words {
    fn first(&self) -> Futex<'_> {
        Futex {
            word: self
                .view
                .atomic_u32(OBJECT)
                .expect("offset 64 of a checked sync section"),
            section: self.view.section(),
        }
    }

    fn second(&self) -> &AtomicU32 {
        self.view
            .atomic_u32(OBJECT + 4)
            .expect("offset 68 of a checked sync section")
    }
}

/// A word of the section as a shared futex (no `FUTEX_PRIVATE_FLAG`).
struct Futex<'a> {
    word: &'a AtomicU32,
    section: &'a Section,
}

impl protocol::Word for Futex<'_> {
    fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    fn store(&self, value: u32, order: Ordering) {
        self.word.store(value, order)
    }

    fn compare_exchange(&self, current: u32, new: u32) -> std::result::Result<u32, u32> {
        self.word
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
    }

    fn wait(&self, expected: u32, deadline: Option<Instant>) -> Result<()> {
        raw::futex_wait(self.word, expected, deadline).map_err(|e| self.section.err_os("wait", e))
    }

    fn wake_all(&self) -> Result<()> {
        raw::futex_wake(self.word, i32::MAX as u32).map_err(|e| self.section.err_os("wake", e))
    }

    fn corrupted(&self, what: String) -> Error {
        self.section
            .err(ErrorKind::Corrupted, "wait")
            .with_detail(what)
    }
}

/// An event: `signaled` (0 or 1) at 64, `manual` (0 or 1) at 68; the
/// protocol is in `protocol.rs`.
#[derive(Debug)]
pub(crate) struct Event {
    words: Words,
    manual: bool,
}

impl Event {
    pub(crate) fn create(opts: &SyncOptions, name: &str, reset: Reset, set: bool) -> Result<Event> {
        let manual = reset == Reset::Manual;
        let view = create(opts, name, Kind::Event, &[], |view| {
            view.atomic_u32(OBJECT)?
                .store(u32::from(set), Ordering::Relaxed);
            view.atomic_u32(OBJECT + 4)?
                .store(u32::from(manual), Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Event {
            words: Words { view },
            manual,
        })
    }

    pub(crate) fn open(opts: &SyncOptions, name: &str) -> Result<Event> {
        let words = Words {
            view: open(opts, name, Kind::Event, 0)?,
        };
        let manual = match words.second().load(Ordering::Relaxed) {
            0 => false,
            1 => true,
            other => {
                return Err(Error::new(ErrorKind::WrongKind, "open")
                    .with_name(name)
                    .with_detail(format!("damaged event (reset mode {other})")))
            }
        };
        Ok(Event { words, manual })
    }

    pub(crate) fn set(&self) -> Result<()> {
        protocol::set(&self.words.first())
    }

    pub(crate) fn reset(&self) -> Result<()> {
        protocol::reset(&self.words.first());
        Ok(())
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<bool> {
        protocol::wait(&self.words.first(), self.manual, deadline)
    }
}

/// A semaphore: `count` at 64, `max` at 68; the protocol is in
/// `protocol.rs`.
#[derive(Debug)]
pub(crate) struct Semaphore {
    words: Words,
    max: u32,
}

impl Semaphore {
    pub(crate) fn create(
        opts: &SyncOptions,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Semaphore> {
        if max == 0 || initial > max {
            return Err(Error::new(ErrorKind::InvalidRange, "create")
                .with_name(name)
                .with_detail(format!("initial count {initial} with maximum {max}")));
        }
        let view = create(opts, name, Kind::Semaphore, &[], |view| {
            view.atomic_u32(OBJECT)?.store(initial, Ordering::Relaxed);
            view.atomic_u32(OBJECT + 4)?.store(max, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(Semaphore {
            words: Words { view },
            max,
        })
    }

    pub(crate) fn open(opts: &SyncOptions, name: &str) -> Result<Semaphore> {
        let words = Words {
            view: open(opts, name, Kind::Semaphore, 0)?,
        };
        let max = words.second().load(Ordering::Relaxed);
        if max == 0 || words.first().word.load(Ordering::Relaxed) > max {
            return Err(Error::new(ErrorKind::WrongKind, "open")
                .with_name(name)
                .with_detail("damaged semaphore (count above its maximum)"));
        }
        Ok(Semaphore { words, max })
    }

    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Result<bool> {
        protocol::acquire(&self.words.first(), self.max, deadline)
    }

    pub(crate) fn release(&self, n: u32) -> Result<()> {
        protocol::release(&self.words.first(), self.max, n)?.map_err(|c| {
            self.words
                .view
                .section()
                .err(ErrorKind::InvalidRange, "release")
                .with_detail(format!(
                    "releasing {n} would pass the maximum {} (count is {c})",
                    self.max
                ))
        })
    }
}

/// What the first bytes of an entry say, if it is a sync object. The bytes
/// are untrusted: anything unexpected is "not a sync object".
pub(crate) fn describe(head: &[u8]) -> Option<crate::name::ObjectState> {
    use crate::name::ObjectState;
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
                holder: if tid == 0 {
                    None
                } else {
                    raw::process_of_thread(tid)
                },
            })
        }
        2 => Some(ObjectState::Event {
            set: word(OBJECT) == 1,
            manual: word(OBJECT + 4) == 1,
        }),
        3 => Some(ObjectState::Semaphore {
            count: word(OBJECT),
            max: word(OBJECT + 4),
        }),
        _ => None,
    }
}
