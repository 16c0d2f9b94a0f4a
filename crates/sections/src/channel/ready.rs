//! Waiting in an event loop: the endpoints' readiness, polling that arms
//! the bell (`poll_recv`, `poll_loan`), and the hooks `Select` and the
//! async adapter use. The bell itself is `wait.rs`'s and `sys::Waker`'s.

use std::time::Instant;

use super::receiver::{Message, Receiver, Span};
use super::ring::Look;
use super::sender::{Loan, Sender};
use crate::error::{ErrorKind, Result};
use crate::sys::{Readiness, Side};

impl Receiver {
    /// What an event loop waits on for this receiver (see [`Readiness`]):
    /// call [`poll_recv`](Self::poll_recv) until it says `None`, then wait
    /// for this to be readable (with a coarse timeout), clear it, and call
    /// `poll_recv` again.
    ///
    /// # Errors
    ///
    /// An error from the OS when the watch cannot be made (on Linux, a
    /// named channel's readiness is an inotify watch: limited per user by
    /// `fs.inotify.max_user_instances`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use std::os::fd::AsFd;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// let ready = rx.readiness()?;
    /// assert!(rx.poll_recv()?.is_none()); // armed: a send will ring
    /// tx.send(b"wake up")?;
    /// let mut fds = [rustix::event::PollFd::new(&ready, rustix::event::PollFlags::IN)];
    /// rustix::event::poll(&mut fds, None).unwrap();
    /// ready.clear();
    /// assert_eq!(rx.poll_recv()?.unwrap().to_vec(), b"wake up");
    /// # Ok(()) }
    /// # main().unwrap(); }
    /// ```
    pub fn readiness(&self) -> Result<Readiness> {
        self.shared.readiness(Side::Receiver)
    }

    /// The next message if there is one now; otherwise `None`, after
    /// arming this receiver's [`Readiness`]: a sender that publishes from
    /// now on rings it, so waiting for it loses no wake-up. (The re-check
    /// after arming also notices senders that are gone:
    /// [`ErrorKind::Disconnected`].)
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn poll_recv(&mut self) -> Result<Option<Message<'_>>> {
        if !self.claim.claimed_here() {
            return Err(super::peers::forked_copy(&self.shared.ring, "receive"));
        }
        let found = match self.look(Look::Fast)? {
            Some(found) => Some(found),
            None => {
                self.shared.announce_bell(Side::Receiver);
                self.look(Look::Liveness)?
            }
        };
        Ok(found.map(|(payload, len, next)| Message {
            receiver: self,
            span: Span { payload, len, next },
        }))
    }

    /// Whether [`try_recv`](Self::try_recv) would return something now (a
    /// message or an error), without taking it.
    pub fn is_ready(&self) -> bool {
        self.is_ready_now(false)
    }

    /// As `is_ready`; `closely`: with the liveness checks.
    pub(crate) fn is_ready_now(&self, closely: bool) -> bool {
        let mode = if closely { Look::Liveness } else { Look::Fast };
        !matches!(self.look(mode), Ok(None))
    }

    /// Whether a message (or an error) is there, arming the bell first
    /// when nothing is: `poll_recv` without taking the message (for the
    /// async adapter, which takes it after its loop; unused where the
    /// adapter is not built).
    #[allow(dead_code)]
    pub(crate) fn arm_and_look(&self) -> Result<bool> {
        if !self.claim.claimed_here() {
            return Err(super::peers::forked_copy(&self.shared.ring, "receive"));
        }
        if self.look(Look::Fast)?.is_some() {
            return Ok(true);
        }
        self.shared.announce_bell(Side::Receiver);
        Ok(self.look(Look::Liveness)?.is_some())
    }

    /// Arms this receiver's bell (see `poll_recv`).
    pub(crate) fn arm(&self) {
        self.shared.announce_bell(Side::Receiver);
    }

    /// Which receiver this is in this process (for `Select`).
    pub(crate) fn identity(&self) -> u64 {
        self.id
    }

    /// What its readiness watches (for `Select`).
    pub(crate) fn watch(&self) -> crate::sys::Watch<'_> {
        self.shared.watch(Side::Receiver)
    }
}

impl Sender {
    /// What an event loop waits on for room (see [`Readiness`]): call
    /// [`poll_loan`](Self::poll_loan) until it says `None`, then wait for
    /// this to be readable (with a coarse timeout), clear it, and call
    /// `poll_loan` again.
    ///
    /// # Errors
    ///
    /// As [`Receiver::readiness`](super::Receiver::readiness).
    pub fn readiness(&self) -> Result<Readiness> {
        self.shared.readiness(Side::Senders)
    }

    /// A loan if there is room now; otherwise `None`, after arming this
    /// sender's [`Readiness`]: the receiver rings it when it frees room.
    ///
    /// # Errors
    ///
    /// As [`loan`](Self::loan) ([`ErrorKind::Disconnected`] when the
    /// receiver is gone).
    pub fn poll_loan(&mut self, len: usize) -> Result<Option<Loan<'_>>> {
        Ok(if self.reserve_armed(len)? {
            Some(self.reserved_loan())
        } else {
            None
        })
    }

    /// `poll_loan` in two steps (the async adapter holds no loan across
    /// an await): reserves `len` bytes (kept for `reserved_loan`) if there
    /// is room, arming the bell when there is not.
    pub(crate) fn reserve_armed(&mut self, len: usize) -> Result<bool> {
        if let Some(res) = self.reserved.take() {
            // A reservation nobody made a loan of: cancelled.
            self.commit_reserved(&res, true);
        }
        self.reserved = match self.reserve_until(len, Some(Instant::now()))? {
            Some(res) => Some(res),
            None => {
                self.shared.announce_bell(Side::Senders);
                if self.receiver_gone(Look::Liveness) {
                    return Err(self
                        .shared
                        .ring
                        .err(ErrorKind::Disconnected, "send")
                        .with_detail("the receiver is gone"));
                }
                self.reserve_until(len, Some(Instant::now()))?
            }
        };
        Ok(self.reserved.is_some())
    }

    /// The loan of what `reserve_armed` reserved.
    ///
    /// # Panics
    /// When nothing is reserved (`reserve_armed` said `false`).
    pub(crate) fn reserved_loan(&mut self) -> Loan<'_> {
        let res = self
            .reserved
            .take()
            .expect("reserve_armed said there is room");
        Loan {
            sender: self,
            res,
            done: false,
        }
    }
}
