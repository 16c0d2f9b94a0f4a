//! Channel endpoints, events and semaphores for async code on tokio
//! (feature `tokio`, Linux): a receiver's `recv().await`, a sender's
//! `loan(len).await` / `send(data).await`, an event's `wait().await` and a
//! semaphore's `acquire().await`, on the object's [`Readiness`] registered with
//! tokio's reactor (`AsyncFd`). No thread per channel and no busy loop: a
//! waiting task polls, arms its bell, and sleeps in the reactor until the
//! other side rings it, or for at most [`LOOK_AGAIN`] (a peer that dies
//! rings nothing; the look after the timeout notices it).
//!
//! Cancellation-safe: a future dropped while it waits has taken nothing
//! (a message is taken, and room reserved, only in the poll that
//! completes it); a `Loan` or `Message` the future returned behaves as
//! the blocking API's.
//!
//! Mapped memory has the weakness every page fault shares: a thread that
//! touches a page that is not in memory stops until the disk has read it,
//! and on a runtime's worker thread that stalls every task on it.
//! [`populate`] moves that wait off the runtime: try without blocking
//! ([`View::residency`], [`Residency::is_complete`](crate::Residency::is_complete)),
//! otherwise populate the range on tokio's blocking pool and await it,
//! then read at memory speed.
//!
//! Floor 5: uses `channel`, `sync`, `view` and the floors below.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::channel::{Loan, Message, Readiness, Receiver, Sender};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::{Event, Semaphore};
use crate::view::View;

/// The longest an awaiting endpoint sleeps before it looks again,
/// closely: how soon a peer that died is noticed.
pub const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// An object's readiness registered with tokio's reactor, and a notice
/// for the other tasks that await the same object: the task that clears
/// the readiness tells them, so that none sleeps on a readiness another
/// task consumed after it looked.
#[derive(Debug)]
struct Bell {
    fd: AsyncFd<Readiness>,
    heard: tokio::sync::Notify,
}

impl Bell {
    fn register(ready: Readiness) -> Result<Bell> {
        const OP: &str = "register with tokio";
        let outside = || {
            Error::new(ErrorKind::Unsupported, OP)
                .with_detail("an async endpoint is made inside a tokio runtime with I/O enabled")
        };
        // Registering outside a runtime panics: say so instead.
        tokio::runtime::Handle::try_current().map_err(|_| outside())?;
        // SAFETY: `Readiness` owns its descriptor (an `OwnedFd`) for as long
        // as it lives, and `as_raw_fd` always returns that one.
        let fd = unsafe { AsyncFd::register_with_interest(ready, Interest::READABLE) }
            .map_err(|e| Error::os(OP, e.into()))?;
        Ok(Bell {
            fd,
            heard: tokio::sync::Notify::new(),
        })
    }

    /// Calls `look` (which arms the object's bell when it finds nothing)
    /// until it says `true`, sleeping between looks until the readiness
    /// fires, another task of this object clears it, or [`LOOK_AGAIN`]
    /// passes.
    ///
    /// # Errors
    ///
    /// What `look` returns; [`ErrorKind::Unsupported`] when the runtime
    /// the object was registered with is gone (its reactor answers every
    /// wait at once with an error: looping on that would spin).
    async fn until(&self, mut look: impl FnMut() -> Result<bool>) -> Result<()> {
        loop {
            // Enabled before the look: a clear by another task after it
            // is never missed.
            let heard = self.heard.notified();
            tokio::pin!(heard);
            heard.as_mut().enable();
            if look()? {
                return Ok(());
            }
            tokio::select! {
                ready = self.fd.readable() => {
                    let mut guard = ready.map_err(|e| {
                        Error::new(ErrorKind::Unsupported, "wait").with_detail(format!(
                            "the tokio runtime this object was registered with is gone ({e})"
                        ))
                    })?;
                    guard.get_inner().clear();
                    guard.clear_ready();
                    self.heard.notify_waiters();
                }
                () = &mut heard => {}
                () = tokio::time::sleep(LOOK_AGAIN) => {}
            }
        }
    }
}

/// A [`Receiver`] for async code.
///
/// # Examples
///
/// ```
/// use sections::aio::{AsyncReceiver, AsyncSender};
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let channel = ChannelOptions::new().anonymous()?;
///     let mut rx = AsyncReceiver::new(channel.receiver()?)?;
///     let mut tx = AsyncSender::new(channel.sender()?)?;
///     let producer = async {
///         for i in 0u32..100 {
///             tx.send(&i.to_le_bytes()).await?;
///         }
///         Ok::<_, sections::Error>(())
///     };
///     let consumer = async {
///         let mut sum = 0;
///         for _ in 0..100 {
///             let message = rx.recv().await?;
///             let mut word = [0u8; 4];
///             message.read_at(0, &mut word)?;
///             sum += u32::from_le_bytes(word);
///         }
///         Ok::<_, sections::Error>(sum)
///     };
///     let ((), sum) = tokio::try_join!(producer, consumer)?;
///     assert_eq!(sum, 4950);
///     Ok(())
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncReceiver {
    rx: Receiver,
    ready: Bell,
    /// How long `recv` spins before it arms the bell and sleeps.
    spin: Duration,
}

impl AsyncReceiver {
    /// Registers `rx`'s readiness with the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] outside a tokio runtime; otherwise as
    /// [`Receiver::readiness`].
    ///
    /// # Panics
    ///
    /// Inside a runtime built without I/O (`enable_io`), as tokio's
    /// `AsyncFd` does.
    pub fn new(rx: Receiver) -> Result<AsyncReceiver> {
        let ready = Bell::register(rx.readiness()?)?;
        Ok(AsyncReceiver {
            rx,
            ready,
            spin: Duration::ZERO,
        })
    }

    /// Spins (on this task's thread, holding it) up to `spin` for a
    /// message before arming the bell and sleeping: a round trip with a
    /// peer that answers within it skips the bell (a system call on each
    /// side) and the reactor. Zero by default: the runtime thread is
    /// never held.
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// The next message, in place until dropped; `Disconnected` once
    /// every sender is gone and everything they sent was received.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`].
    pub async fn recv(&mut self) -> Result<Message<'_>> {
        if !self.spin.is_zero() && !self.rx.is_ready() {
            let started = std::time::Instant::now();
            while !self.rx.is_ready() && started.elapsed() < self.spin {
                std::hint::spin_loop();
            }
        }
        let rx = &self.rx;
        self.ready.until(|| rx.arm_and_look()).await?;
        self.rx.poll_recv()?.ok_or_else(|| {
            Error::new(ErrorKind::Corrupted, "receive")
                .with_detail("a message that was ready is gone")
        })
    }

    /// The blocking receiver, for calls this type does not wrap.
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.rx
    }

    /// The blocking receiver back.
    pub fn into_inner(self) -> Receiver {
        self.rx
    }
}

/// A [`Sender`] for async code. See [`AsyncReceiver`] for an example.
#[derive(Debug)]
pub struct AsyncSender {
    tx: Sender,
    ready: Bell,
}

impl AsyncSender {
    /// Registers `tx`'s readiness (room) with the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`AsyncReceiver::new`].
    pub fn new(tx: Sender) -> Result<AsyncSender> {
        let ready = Bell::register(tx.readiness()?)?;
        Ok(AsyncSender { tx, ready })
    }

    /// A slot of `len` bytes in the ring, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Sender::loan`].
    pub async fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let tx = &mut self.tx;
        self.ready.until(|| tx.reserve_armed(len)).await?;
        Ok(self.tx.reserved_loan())
    }

    /// Copies `data` into the ring and sends it, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Sender::send`].
    pub async fn send(&mut self, data: &[u8]) -> Result<()> {
        let mut loan = self.loan(data.len()).await?;
        loan.write_at(0, data)?;
        loan.send();
        Ok(())
    }

    /// The blocking sender, for calls this type does not wrap.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.tx
    }

    /// The blocking sender back.
    pub fn into_inner(self) -> Sender {
        self.tx
    }
}

/// An [`Event`] for async code: `wait().await`.
///
/// Cancellation-safe: the event is taken only in the poll that completes
/// the wait, so a dropped future took nothing. Several tasks may await
/// one `AsyncEvent` (each wakes on a set and looks); a task of its own
/// per waiter is not needed.
///
/// # Examples
///
/// ```
/// use sections::aio::AsyncEvent;
/// use sections::sync::{Reset, SyncOptions};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap(); let ns = sections::Namespace::at(dir.path());
/// let opts = SyncOptions::new().namespace(&ns).clone();
/// let done = opts.create_event("done", Reset::Auto, false)?;
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(async {
///     let waiter = AsyncEvent::new(opts.open_event("done")?)?;
///     // Another process, usually: a thread that sets the event later.
///     std::thread::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(20));
///         done.set()
///     });
///     waiter.wait().await
/// })
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncEvent {
    event: Event,
    ready: Bell,
}

impl AsyncEvent {
    /// Registers `event`'s readiness with the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`AsyncReceiver::new`] and [`Event::readiness`].
    pub fn new(event: Event) -> Result<AsyncEvent> {
        let ready = Bell::register(event.readiness()?)?;
        Ok(AsyncEvent { event, ready })
    }

    /// Waits until the event is set (taking it, if auto-reset).
    ///
    /// # Errors
    ///
    /// As [`Event::poll_wait`].
    pub async fn wait(&self) -> Result<()> {
        self.ready.until(|| self.event.poll_wait()).await
    }

    /// The event, for calls this type does not wrap (`set`, `reset`).
    pub fn get_ref(&self) -> &Event {
        &self.event
    }

    /// The event back.
    pub fn into_inner(self) -> Event {
        self.event
    }
}

/// A [`Semaphore`] for async code: `acquire().await`. Cancellation-safe
/// as [`AsyncEvent`]: a count is taken only in the completing poll.
#[derive(Debug)]
pub struct AsyncSemaphore {
    semaphore: Semaphore,
    ready: Bell,
}

impl AsyncSemaphore {
    /// Registers `semaphore`'s readiness with the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`AsyncReceiver::new`] and [`Semaphore::readiness`].
    pub fn new(semaphore: Semaphore) -> Result<AsyncSemaphore> {
        let ready = Bell::register(semaphore.readiness()?)?;
        Ok(AsyncSemaphore { semaphore, ready })
    }

    /// Takes one count, waiting for it.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::poll_acquire`].
    pub async fn acquire(&self) -> Result<()> {
        self.ready.until(|| self.semaphore.poll_acquire()).await
    }

    /// The semaphore, for calls this type does not wrap (`release`).
    pub fn get_ref(&self) -> &Semaphore {
        &self.semaphore
    }

    /// The semaphore back.
    pub fn into_inner(self) -> Semaphore {
        self.semaphore
    }
}

/// Makes `offset..offset+len` of `view` resident on tokio's blocking pool
/// ([`View::prefetch`]: `MADV_POPULATE_READ` or `_WRITE` on Linux 5.14 and
/// later), so that touching it afterwards does not stall the task's
/// worker thread on a disk read. The view is shared with the blocking
/// task (`Arc`): a future dropped early leaves the task to finish on its
/// own mapping.
///
/// # Errors
///
/// As [`View::prefetch`]; [`ErrorKind::Unsupported`] outside a tokio
/// runtime.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use sections::{Access, Section};
///
/// # fn main() -> sections::Result<()> {
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("data.bin");
/// std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
/// let view = Arc::new(Section::from_path(&path, Access::Read)?.map_all(Access::Read)?);
/// rt.block_on(async {
///     // Try without blocking; populate off the runtime if needed.
///     if !view.residency(0, view.len())?.is_complete() {
///         sections::aio::populate(&view, 0, view.len()).await?;
///     }
///     let mut first = [0u8; 4];
///     view.read_at(0, &mut first)?; // at memory speed now
///     assert_eq!(first, [7; 4]);
///     Ok(())
/// })
/// # }
/// ```
pub async fn populate(view: &Arc<View>, offset: usize, len: usize) -> Result<()> {
    tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(ErrorKind::Unsupported, "populate")
            .with_detail("populate is awaited inside a tokio runtime")
    })?;
    let view = Arc::clone(view);
    tokio::task::spawn_blocking(move || view.prefetch(offset, len).map(drop))
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Unsupported, "populate")
                .with_detail(format!("the blocking task failed: {e}"))
        })?
}
