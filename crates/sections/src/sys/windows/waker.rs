//! Waking a channel's sides on Windows: a futex cannot cross processes
//! there, so each side has a named auto-reset kernel event, `BASE.rx` and
//! `BASE.tx`, set by the other side when it finds the sleeper's waiting
//! word set. A named channel's base is its name; an anonymous channel's is
//! random, in the default namespace, and travels in its token.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::sync::Event;
use crate::error::Result;
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
