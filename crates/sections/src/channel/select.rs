//! Waiting on many receivers, events and semaphores at once, for blocking
//! code: their readiness (`Receiver::readiness`, `Event::readiness`,
//! `Semaphore::readiness`) waited on together, with liveness looks
//! between.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::receiver::Receiver;
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{Event, Semaphore};
use crate::sys::{
    ready_for, wait_any, Readiness, Watch, WAIT_ANY_MAX, WAIT_ANY_TAKES_SYNC_OBJECTS,
};

/// How long a wait lasts before every receiver is looked at again, closely
/// (a sender that died rings no bell).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// One thing a [`Select`] waits on. A receiver is *ready* when its next
/// [`poll_recv`](Receiver::poll_recv) returns a message or an error (the
/// select takes nothing from it); an event or semaphore is *taken* by the
/// select that reports it, as [`Event::wait`] or [`Semaphore::acquire`]
/// would have taken it.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A channel's receiving end.
    Receiver(&'a Receiver),
    /// An event: reported once set, and then taken (cleared, if
    /// auto-reset; a manual-reset event is reported for as long as it is
    /// set, as a wait on it returns at once).
    Event(&'a Event),
    /// A semaphore: reported once a count was taken for the caller.
    Semaphore(&'a Semaphore),
}

impl<'a> From<&'a Receiver> for Source<'a> {
    fn from(rx: &'a Receiver) -> Self {
        Source::Receiver(rx)
    }
}

impl<'a> From<&'a Event> for Source<'a> {
    fn from(event: &'a Event) -> Self {
        Source::Event(event)
    }
}

impl<'a> From<&'a Semaphore> for Source<'a> {
    fn from(semaphore: &'a Semaphore) -> Self {
        Source::Semaphore(semaphore)
    }
}

impl<'a> Source<'a> {
    fn watch(&self) -> Result<Watch<'a>> {
        match *self {
            Source::Receiver(rx) => Ok(rx.watch()),
            Source::Event(e) => e.watch(),
            Source::Semaphore(s) => s.watch(),
        }
    }

    /// Which object this is, and of what kind (for the check that a wait
    /// is given what the select was built for).
    fn identity(&self) -> (u8, u64) {
        match self {
            Source::Receiver(rx) => (0, rx.identity()),
            Source::Event(e) => (1, e.identity()),
            Source::Semaphore(s) => (2, s.identity()),
        }
    }

    /// Whether it is ready (a receiver) or was just taken (the others).
    /// The first look of a round (`armed` false) is the cheap one: a
    /// receiver's does not ask whether its senders live, and an event's or
    /// semaphore's only tries, announcing no waiter (so a signaller does
    /// not ring for a select that found something at once). The look
    /// after arming does both.
    fn poll(&self, armed: bool) -> Result<bool> {
        match (self, armed) {
            (Source::Receiver(rx), _) => Ok(rx.is_ready_now(armed)),
            (Source::Event(e), false) => e.wait_timeout(Duration::ZERO),
            (Source::Event(e), true) => e.poll_wait(),
            (Source::Semaphore(s), false) => s.try_acquire(),
            (Source::Semaphore(s), true) => s.poll_acquire(),
        }
    }

    /// Announces a waiter, so that the next message rings the bell (an
    /// event's or semaphore's armed poll announces itself).
    fn arm(&self) {
        if let Source::Receiver(rx) = self {
            rx.arm();
        }
    }
}

/// Waits on several receivers, events and semaphores ([`Source`]s): which
/// receiver has a message (or an error, such as every sender gone) ready,
/// or which event or semaphore it took. Built once for a set of sources,
/// it waits on all their bells together (Linux: one inotify instance
/// watching every source's file; Windows: `WaitForMultipleObjects`): no
/// thread per source, no busy loop, and no CPU while nothing comes. After
/// any bell it looks at every source, starting after the one it reported
/// last (so a busy source does not starve the others). Take what a receiver has
/// with [`Receiver::poll_recv`] (it looks as closely as the select did: a
/// sender that died shows as [`ErrorKind::Disconnected`] there, and not
/// always to `try_recv`); stop selecting a receiver once it is
/// disconnected (it stays ready). On Windows a select waits on at most 64
/// sources.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sections::channel::{ChannelOptions, Select};
///
/// # fn main() -> sections::Result<()> {
/// let (a, b) = (ChannelOptions::new().anonymous()?, ChannelOptions::new().anonymous()?);
/// let (mut rx_a, mut rx_b) = (a.receiver()?, b.receiver()?);
/// let mut tx_b = b.sender()?;
/// let _tx_a = a.sender()?;
///
/// let select = Select::new(&[&rx_a, &rx_b])?;
/// tx_b.send(b"to b")?;
/// let ready = select.wait(&[&rx_a, &rx_b], Some(Duration::from_secs(30)))?;
/// assert_eq!(ready, Some(1));
/// assert_eq!(rx_b.poll_recv()?.unwrap().to_vec(), b"to b");
/// // Nothing else comes: the wait times out.
/// assert_eq!(select.wait(&[&rx_a, &rx_b], Some(Duration::from_millis(20)))?, None);
/// # drop(rx_a);
/// # Ok(()) }
/// ```
///
/// Events and semaphores mix in as [`Source`]s (see
/// [`Event::readiness`](crate::sync::Event::readiness)).
#[derive(Debug)]
pub struct Select {
    ready: Vec<Readiness>,
    /// Identities of the sources it was built for.
    of: Vec<(u8, u64)>,
    /// Where the next scan starts (so that a busy receiver does not
    /// starve the others).
    next: Cell<usize>,
}

impl Select {
    /// Builds the readiness of each source: `&[&Receiver]`, or
    /// `&[Source]` to mix in events and semaphores.
    ///
    /// # Errors
    ///
    /// As [`Receiver::readiness`] and [`Event::readiness`];
    /// [`ErrorKind::Unsupported`] for more than 64 sources on Windows.
    pub fn new<'a, S: Copy + Into<Source<'a>>>(sources: &[S]) -> Result<Select> {
        let sources: Vec<Source<'a>> = sources.iter().map(|&s| s.into()).collect();
        if let Some(max) = WAIT_ANY_MAX.filter(|&max| sources.len() > max) {
            return Err(
                Error::new(ErrorKind::Unsupported, "select").with_detail(format!(
                    "a select waits on at most {max} sources here, not {}",
                    sources.len()
                )),
            );
        }
        let watches = sources
            .iter()
            .map(Source::watch)
            .collect::<Result<Vec<_>>>()?;
        // One readiness for all on Linux (an inotify instance watching
        // every source's file), one per source on Windows.
        let ready = ready_for(watches)?;
        Ok(Select {
            ready,
            of: sources.iter().map(Source::identity).collect(),
            next: Cell::new(0),
        })
    }

    /// The index of a source that is ready (a receiver whose next
    /// [`poll_recv`](Receiver::poll_recv) returns a message or an error)
    /// or that it took (an event or semaphore), waiting at most `timeout`
    /// (`None`: as long as it takes); `Ok(None)` when the timeout passed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRange`] when `sources` are not those it was
    /// built for, in the same order; [`ErrorKind::Corrupted`] for a
    /// semaphore whose count a peer damaged; an error from the OS when
    /// waiting fails.
    pub fn wait<'a, S: Copy + Into<Source<'a>>>(
        &self,
        sources: &[S],
        timeout: Option<Duration>,
    ) -> Result<Option<usize>> {
        let sources: Vec<Source<'a>> = sources.iter().map(|&s| s.into()).collect();
        let same = sources.len() == self.of.len()
            && sources
                .iter()
                .zip(&self.of)
                .all(|(s, &id)| s.identity() == id);
        if !same {
            return Err(Error::new(ErrorKind::InvalidRange, "select")
                .with_detail("not the sources this select was built for"));
        }
        let deadline = timeout.map(crate::named::deadline);
        let n = sources.len();
        loop {
            let start = self.next.get();
            let ready = |armed: bool| -> Result<Option<usize>> {
                for i in (0..n).map(|k| (start + k) % n) {
                    if sources[i].poll(armed)? {
                        return Ok(Some(i));
                    }
                }
                Ok(None)
            };
            if let Some(i) = ready(false)? {
                self.next.set((i + 1) % n.max(1));
                return Ok(Some(i));
            }
            // Arm every bell, then look again (closely: a sender that died
            // rings none), then wait.
            for s in &sources {
                s.arm();
            }
            if let Some(i) = ready(true)? {
                self.next.set((i + 1) % n.max(1));
                return Ok(Some(i));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let until = deadline.map_or(now + LOOK_AGAIN, |d| d.min(now + LOOK_AGAIN));
            let refs: Vec<&Readiness> = self.ready.iter().collect();
            for i in wait_any(&refs, Some(until))? {
                self.ready[i].clear();
                // Windows: a wait that returned an event's or a
                // semaphore's own handle took it.
                if WAIT_ANY_TAKES_SYNC_OBJECTS && !matches!(sources[i], Source::Receiver(_)) {
                    self.next.set((i + 1) % n.max(1));
                    return Ok(Some(i));
                }
            }
        }
    }
}
