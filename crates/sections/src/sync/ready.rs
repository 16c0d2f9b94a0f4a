//! Events and semaphores for event loops: a readiness to wait on, and
//! polls that take without sleeping (the protocol is the platform
//! layer's: a bell on Linux, the object's own handle on Windows).

use super::{Event, Semaphore};
use crate::error::Result;
use crate::sys::Readiness;

impl Event {
    /// A descriptor (Linux) or waitable handle (Windows) for an event
    /// loop: it becomes ready when the event is set after a
    /// [`poll_wait`](Self::poll_wait) found it clear. Each readiness
    /// hears every set; make one per waiting task. Readiness may be
    /// spurious: poll, and wait again if the poll finds nothing.
    ///
    /// On Linux it is an inotify watch of the event's file (a set writes
    /// into the file when an event-loop waiter announced itself). On
    /// Windows it is a second handle to the event, and a wait that returns
    /// it has *taken* what a wait on the event takes (an auto-reset
    /// event's set): count that as the wait's success, and do not poll
    /// for it again ([`Select`](crate::channel::Select) does this on both
    /// platforms).
    ///
    /// Each readiness holds an inotify instance on Linux (a `Select`, one
    /// for all its sources): a user has `fs.inotify.max_user_instances` of
    /// them (128 on many systems), for all their processes; the error says
    /// so when it is reached.
    ///
    /// # Errors
    ///
    /// An OS error, such as the per-user inotify limits (named in the
    /// error).
    ///
    /// # Examples
    ///
    /// A [`Select`](crate::channel::Select) over an event and a channel:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::channel::{ChannelOptions, Select, Source};
    /// use sections::sync::{Reset, SyncOptions};
    /// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
    /// let stop = SyncOptions::new().namespace(&ns).create_event("stop", Reset::Auto, false)?;
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let (mut rx, _tx) = (channel.receiver()?, channel.sender()?);
    ///
    /// let sources = [Source::from(&rx), Source::from(&stop)];
    /// let select = Select::new(&sources)?;
    /// stop.set()?; // another process, usually
    /// assert_eq!(select.wait(&sources, Some(Duration::from_secs(30)))?, Some(1));
    /// // The select took the set (an auto-reset event): nothing is left.
    /// assert!(!stop.poll_wait()?);
    /// # Ok::<(), sections::Error>(())
    /// ```
    pub fn readiness(&self) -> Result<Readiness> {
        crate::sys::ready_one(self.imp.watch()?)
    }

    /// Takes the event if it is set, as [`wait`](Self::wait) would
    /// (clearing it, if auto-reset), without sleeping; otherwise arms the
    /// event's [`readiness`](Self::readiness) for the next set and returns
    /// `false`. Taking happens only in a poll that returns `true`, so an
    /// event loop's future that is dropped has taken nothing.
    ///
    /// A manual-reset event set and at once reset releases the threads
    /// that sleep in `wait`, but a poller that did not look in between
    /// sees nothing (the reset came first).
    ///
    /// # Errors
    ///
    /// An OS error from the bell (Linux) or the wait (Windows).
    pub fn poll_wait(&self) -> Result<bool> {
        self.imp.poll_wait()
    }

    /// Which event this is in this process (for `Select`).
    pub(crate) fn identity(&self) -> u64 {
        self.id
    }

    /// What its readiness watches (for `Select`).
    pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
        self.imp.watch()
    }
}

impl Semaphore {
    /// As [`Event::readiness`]: ready when a count is released after a
    /// [`poll_acquire`](Self::poll_acquire) found none. On Windows a wait
    /// that returns it has taken a count.
    ///
    /// # Errors
    ///
    /// As [`Event::readiness`].
    pub fn readiness(&self) -> Result<Readiness> {
        crate::sys::ready_one(self.imp.watch()?)
    }

    /// Takes one count if there is one, without sleeping; otherwise arms
    /// the semaphore's [`readiness`](Self::readiness) for the next release
    /// and returns `false`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted) for a count
    /// above the maximum (a peer wrote it); an OS error from the bell.
    pub fn poll_acquire(&self) -> Result<bool> {
        self.imp.poll_acquire()
    }

    /// Which semaphore this is in this process (for `Select`).
    pub(crate) fn identity(&self) -> u64 {
        self.id
    }

    /// What its readiness watches (for `Select`).
    pub(crate) fn watch(&self) -> Result<crate::sys::Watch<'_>> {
        self.imp.watch()
    }
}
