//! Waking a channel's sides on Windows: a futex cannot cross processes
//! there, so each side has a named auto-reset kernel event, `BASE.rx` and
//! `BASE.tx`, set by the other side when it finds the sleeper's waiting
//! word set. A named channel's base is its name; an anonymous channel's is
//! random, in the default namespace, and travels in its token.

use std::os::windows::io::{AsHandle, AsRawHandle, BorrowedHandle, OwnedHandle, RawHandle};
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use windows_sys::Win32::Foundation::{HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT};
use windows_sys::Win32::System::Threading::WaitForMultipleObjects;

use super::object::Object;
use super::sync::Event;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{Side, SyncSpec};
use crate::types::{Lifetime, Namespace};

/// The two events of a channel.
#[derive(Debug)]
pub(crate) struct Waker {
    rx: Event,
    tx: Event,
    base: String,
}

/// Where a channel's events live: its namespace, or the default one for an
/// anonymous channel, so that a child finds them whatever its options say.
fn namespace(ns: &Namespace, anonymous: bool) -> Namespace {
    if anonymous {
        Namespace::default()
    } else {
        ns.clone()
    }
}

/// How a channel's events are made and opened: counted, this user's.
fn sync_spec(ns: &Namespace) -> SyncSpec<'_> {
    SyncSpec {
        namespace: ns,
        lifetime: Lifetime::Counted,
        allow_foreign_owner: false,
        mode: 0o600,
    }
}

impl Waker {
    pub(crate) fn create(ns: &Namespace, base: &str, anonymous: bool) -> Result<Waker> {
        let ns = namespace(ns, anonymous);
        let spec = sync_spec(&ns);
        Ok(Waker {
            rx: Event::create(&spec, &format!("{base}.rx"), false, false)?,
            tx: Event::create(&spec, &format!("{base}.tx"), false, false)?,
            base: base.to_owned(),
        })
    }

    pub(crate) fn open(ns: &Namespace, base: Option<&str>, anonymous: bool) -> Result<Waker> {
        let base = base.ok_or_else(|| {
            crate::error::Error::new(crate::error::ErrorKind::InvalidName, "open channel")
                .with_detail("the token does not name the channel's events")
        })?;
        let ns = namespace(ns, anonymous);
        let spec = sync_spec(&ns);
        Ok(Waker {
            rx: Event::open(&spec, &format!("{base}.rx"))?,
            tx: Event::open(&spec, &format!("{base}.tx"))?,
            base: base.to_owned(),
        })
    }

    /// What a child needs besides the section: the events' base name.
    pub(crate) fn token(&self) -> Option<&str> {
        Some(&self.base)
    }

    /// What a child needs besides the section: the base (the events are
    /// named; nothing to keep open).
    pub(crate) fn inheritable(&self) -> Result<(Option<String>, WakerShare)> {
        Ok((Some(self.base.clone()), WakerShare))
    }

    /// Rings `side`'s bell: its event, which its readiness waits on.
    pub(crate) fn ring(&self, side: Side, _object: &Object) -> Result<()> {
        self.event(side).set()
    }

    /// What a readiness of `side` waits on: a handle to its event, which
    /// is signalled when its bell rings.
    pub(crate) fn watch<'a>(
        &'a self,
        side: Side,
        _object: &'a Object,
        _name: &'a str,
    ) -> Watch<'a> {
        Watch::of(self.event(side).duplicate())
    }

    fn event(&self, side: Side) -> &Event {
        match side {
            Side::Receiver => &self.rx,
            Side::Senders => &self.tx,
        }
    }

    #[inline]
    pub(crate) fn wait(&self, side: Side, _word: &AtomicU32, until: Instant) -> Result<()> {
        self.event(side).wait(Some(until)).map(drop)
    }

    #[inline]
    pub(crate) fn wake(&self, side: Side, _word: &AtomicU32) -> Result<()> {
        self.event(side).set()
    }
}

/// Nothing to keep for a child: Windows channels' events are named.
#[derive(Debug)]
pub(crate) struct WakerShare;

/// What an event loop waits on for a channel endpoint: a waitable handle
/// (the side's auto-reset event) that is signalled when the other side
/// published something after this endpoint armed it (see
/// [`Receiver::poll_recv`](crate::channel::Receiver::poll_recv)). A wait
/// that returns it resets it; a sleeping endpoint of the same side may
/// take the signal instead (a spurious miss the next look or the coarse
/// timeout repairs: wait with one).
///
/// For an [`Event`](crate::sync::Event) or a
/// [`Semaphore`](crate::sync::Semaphore) it is a second handle to the
/// object itself: a wait that returns it has taken what a wait on the
/// object takes (an auto-reset event's signal, a count).
#[derive(Debug)]
pub struct Readiness {
    handle: OwnedHandle,
}

/// What a readiness waits on: a handle of its own to an event (a channel
/// side's, or a sync object's own), or the error duplicating it gave.
pub(crate) struct Watch<'a> {
    handle: Result<OwnedHandle>,
    _of: std::marker::PhantomData<&'a ()>,
}

impl Watch<'_> {
    pub(crate) fn of(handle: Result<OwnedHandle>) -> Self {
        Watch {
            handle,
            _of: std::marker::PhantomData,
        }
    }
}

/// Readiness for `watches`: one per handle (a wait on many is
/// `WaitForMultipleObjects`).
pub(crate) fn ready_for(watches: Vec<Watch<'_>>) -> Result<Vec<Readiness>> {
    watches
        .into_iter()
        .map(|w| w.handle.map(|handle| Readiness { handle }))
        .collect()
}

impl Readiness {
    /// Nothing to consume on Windows: the wait that saw the event reset
    /// it.
    pub fn clear(&self) {}
}

impl AsHandle for Readiness {
    fn as_handle(&self) -> BorrowedHandle<'_> {
        self.handle.as_handle()
    }
}

impl AsRawHandle for Readiness {
    fn as_raw_handle(&self) -> RawHandle {
        self.handle.as_raw_handle()
    }
}

/// Waits until one of `ready` is signalled or `until` passes: the index of
/// the one that is (none: the time passed).
pub(crate) fn wait_any(ready: &[&Readiness], until: Option<Instant>) -> Result<Vec<usize>> {
    // WaitForMultipleObjects takes at most MAXIMUM_WAIT_OBJECTS (64).
    if ready.len() > 64 {
        return Err(
            Error::new(ErrorKind::Unsupported, "select").with_detail(format!(
                "a select waits on at most 64 sources on Windows, not {}",
                ready.len()
            )),
        );
    }
    let handles: Vec<HANDLE> = ready
        .iter()
        .map(|r| r.handle.as_raw_handle() as HANDLE)
        .collect();
    let ms = until.map_or(u32::MAX - 1, |u| {
        let left = u.saturating_duration_since(Instant::now());
        u32::try_from(left.as_millis()).unwrap_or(u32::MAX - 1)
    });
    // SAFETY: `handles` holds `len` valid event handles that outlive the
    // call (borrowed from `ready`).
    let rc = unsafe { WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), 0, ms) };
    if rc == WAIT_TIMEOUT {
        return Ok(Vec::new());
    }
    let i = rc.wrapping_sub(WAIT_OBJECT_0) as usize;
    if i < handles.len() {
        return Ok(vec![i]);
    }
    Err(Error::os("select", std::io::Error::last_os_error()))
}
