//! The receiving side: connecting the receiver, looking for the next
//! message (skipping padding, cancelled records and records of senders that
//! are gone), and messages read in place until dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::layout::{RX_OWNER, TX_EVER};
use super::peers::{claim, connected, held, leave, sender_alive, sender_index, RECEIVER};
use super::ring::{Found, Look};
use super::wait::Shared;
use super::{ChannelOptions, Returned};
use crate::error::{Error, ErrorKind, Result};
use crate::named::deadline;
use crate::sys::{PeerLock, Side, PEER_CLOSED};

/// The receiver; one per channel at a time.
///
/// Messages from one sender arrive in the order it sent them. Once every
/// sender is gone (dropped, or its process died), the receiver gets what
/// they had fully sent and then [`ErrorKind::Disconnected`].
///
/// # Examples
///
/// ```
/// use sections::ErrorKind;
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = sections::Namespace::at(dir.path());
/// let mut opts = ChannelOptions::new();
/// opts.namespace(&ns);
/// let _channel = opts.create("log")?;
/// let mut rx = opts.open_receiver("log")?;
///
/// let mut tx = opts.open_sender("log")?; // in another process
/// for line in ["starting", "working", "done"] {
///     tx.send(line.as_bytes())?;
/// }
/// drop(tx);
///
/// let mut lines = Vec::new();
/// loop {
///     match rx.recv() {
///         Ok(message) => lines.push(String::from_utf8(message.to_vec()).unwrap()),
///         Err(e) if e.kind() == ErrorKind::Disconnected => break,
///         Err(e) => return Err(e),
///     }
/// }
/// assert_eq!(lines, ["starting", "working", "done"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Receiver {
    pub(super) shared: Shared,
    /// This receiver's claim on the receiver slot.
    pub(super) claim: PeerLock,
    /// Whether this receiver has seen a sender (connected, or by one of
    /// its messages): then a channel without senders is disconnected,
    /// whatever the shared "a sender came" word says.
    seen_sender: AtomicBool,
    /// Which receiver this is in this process (for `Select`).
    pub(super) id: u64,
}

impl Receiver {
    pub(crate) fn open(opts: &ChannelOptions, name: &str) -> Result<Receiver> {
        Receiver::connect(opts.open_named(name)?)
    }

    pub(crate) fn connect(shared: Shared) -> Result<Receiver> {
        let owner = shared.ring.mem.u64(RX_OWNER);
        let Some(lock) = claim(&shared, RECEIVER, owner)? else {
            return Err(Error::new(ErrorKind::AlreadyExists, "open receiver")
                .with_name(&shared.ring.name)
                .with_detail("the channel already has a live receiver"));
        };
        Ok(Receiver {
            shared,
            claim: lock,
            seen_sender: AtomicBool::new(false),
            id: crate::types::unique_id(),
        })
    }

    /// Looks for a message; wakes waiting senders if records were skipped.
    #[inline]
    pub(super) fn look(&self, mode: Look) -> Result<Option<(usize, usize, u64)>> {
        let ring = &self.shared.ring;
        let alive = |slot: u32, generation: u32| sender_alive(&self.shared, slot, generation);
        // Every sender gone: one came (by the shared word, or as this
        // receiver saw) and none holds its slot. The owner words answer
        // "connected" without a system call; "none" is confirmed with the
        // locks (a system call each), and `Look::Liveness` asks the locks
        // only (not on every look).
        let owner = |i: u32| ring.slot_owner(i).load(Ordering::Acquire);
        let lock_held = |i: u32| held(&self.shared, sender_index(i), owner(i));
        let senders_gone = || {
            let any = if mode == Look::Liveness {
                (0..ring.senders).any(lock_held)
            } else {
                (0..ring.senders).any(|i| connected(owner(i)))
            };
            if any {
                self.seen_sender.store(true, Ordering::Relaxed);
                return false;
            }
            let came = self.seen_sender.load(Ordering::Relaxed)
                || ring.mem.u32(TX_EVER).load(Ordering::Acquire) != 0;
            came && (mode == Look::Liveness || !(0..ring.senders).any(lock_held))
        };
        let (found, skipped) = ring.look(mode, &alive, &senders_gone)?;
        if matches!(found, Found::Message { .. }) {
            self.seen_sender.store(true, Ordering::Relaxed);
        }
        if skipped {
            // Room was freed: a sender may be waiting for it.
            self.shared.wake(Side::Senders)?;
        }
        Ok(match found {
            Found::Message { payload, len, next } => Some((payload, len, next)),
            Found::Nothing => None,
        })
    }

    #[inline]
    fn find_until(&self, deadline: Option<Instant>) -> Result<Option<Span>> {
        if !self.claim.claimed_here() {
            return Err(super::peers::forked_copy(&self.shared.ring, "receive"));
        }
        let found = self
            .shared
            .wait_for(Side::Receiver, deadline, |mode| self.look(mode))?;
        Ok(found.map(|(payload, len, next)| Span { payload, len, next }))
    }

    #[inline]
    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Message<'_>>> {
        let found = self.find_until(deadline)?;
        Ok(found.map(|span| Message {
            receiver: self,
            span,
        }))
    }

    /// A message that owns this receiver: for holders that cannot keep a
    /// borrow, such as another language's objects. It waits like
    /// [`recv`](Self::recv) when `timeout` is `None`, at most `timeout`
    /// otherwise (`Duration::ZERO`: only a message there now, as
    /// [`try_recv`](Self::try_recv)). [`OwnedMessage::release`] frees the
    /// message's room and gives the receiver back; so does the error.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv), [`try_recv`](Self::try_recv) (`Empty`)
    /// and [`recv_timeout`](Self::recv_timeout) (`TimedOut`), with the
    /// receiver inside the [`Returned`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let rx = channel.receiver()?;
    /// tx.send(b"one")?;
    /// tx.send(b"two")?;
    ///
    /// let first = rx.recv_owned(None)?;
    /// assert_eq!(first.to_vec(), b"one");
    /// let rx = first.release(); // the room is free, the receiver back
    /// assert_eq!(rx.recv_owned(None)?.to_vec(), b"two");
    /// # Ok(()) }
    /// ```
    pub fn recv_owned(
        self,
        timeout: Option<Duration>,
    ) -> std::result::Result<OwnedMessage, Returned<Receiver>> {
        match self.find_until(timeout.map(deadline)) {
            Ok(Some(span)) => Ok(OwnedMessage {
                receiver: Some(self),
                span,
            }),
            Ok(None) => {
                let kind = match timeout {
                    Some(t) if t.is_zero() => ErrorKind::Empty,
                    _ => ErrorKind::TimedOut,
                };
                let error = Error::new(kind, "receive").with_name(&self.shared.ring.name);
                Err(Returned::new(error, self))
            }
            Err(error) => Err(Returned::new(error, self)),
        }
    }

    /// The next message, waiting for one; `Disconnected` once every sender
    /// is gone and everything they sent has been received.
    ///
    /// The message stays in the ring, and its room is taken, until it is
    /// dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] after the last message of the last
    /// sender; [`ErrorKind::Corrupted`] when the ring holds what no peer
    /// following the protocol writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send(b"hello")?;
    /// let message = rx.recv()?;
    /// assert_eq!(message.len(), 5);
    /// assert_eq!(message.to_vec(), b"hello");
    /// drop(message); // frees its room in the ring
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_>> {
        Ok(self
            .recv_until(None)?
            .expect("an untimed wait does not time out"))
    }

    /// The next message if there is one now; `Empty` otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Empty`] when no message is there now; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// assert_eq!(rx.try_recv().unwrap_err().kind(), ErrorKind::Empty);
    /// tx.send(b"now")?;
    /// assert_eq!(rx.try_recv()?.to_vec(), b"now");
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<'_>> {
        let name = self.shared.ring.name.clone();
        self.recv_until(Some(Instant::now()))?
            .ok_or_else(|| Error::new(ErrorKind::Empty, "receive").with_name(&name))
    }

    /// The next message, waiting at most `timeout`; `TimedOut` otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] when no message came in time; otherwise as
    /// [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let _tx = channel.sender()?; // connected, silent
    /// let mut rx = channel.receiver()?;
    /// let waited = rx.recv_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert_eq!(waited.kind(), ErrorKind::TimedOut);
    /// # Ok(()) }
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>> {
        let name = self.shared.ring.name.clone();
        self.recv_until(Some(deadline(timeout)))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "receive").with_name(&name))
    }

    /// Receives the next message into `buf` (replacing its contents).
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send(b"first")?;
    /// tx.send(b"2nd")?;
    ///
    /// let mut buf = Vec::new(); // reused: no allocation per message
    /// rx.recv_into(&mut buf)?;
    /// assert_eq!(buf, b"first");
    /// rx.recv_into(&mut buf)?;
    /// assert_eq!(buf, b"2nd");
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let message = self.recv()?;
        buf.clear();
        buf.resize(message.len(), 0);
        message.copy_to(buf)
    }
}

impl Drop for Receiver {
    #[inline]
    fn drop(&mut self) {
        // CLOSED, so that senders learn it at once.
        let owner = self.shared.ring.mem.u64(RX_OWNER);
        leave(
            &self.shared,
            &mut self.claim,
            owner,
            PEER_CLOSED,
            Side::Senders,
        );
    }
}

/// A received message, in place in the ring until dropped.
///
/// Read it with the copying accessors ([`read_at`](Self::read_at),
/// [`copy_to`](Self::copy_to), [`to_vec`](Self::to_vec)); drop it to free
/// its room for the senders.
///
/// # Examples
///
/// ```
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// let channel = ChannelOptions::new().anonymous()?;
/// let mut tx = channel.sender()?;
/// let mut rx = channel.receiver()?;
/// tx.send(&[1, 2, 3, 4])?;
///
/// let message = rx.recv()?;
/// assert!(!message.is_empty());
/// let mut tail = [0u8; 2];
/// message.read_at(2, &mut tail)?;
/// assert_eq!(tail, [3, 4]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Message<'a> {
    pub(super) receiver: &'a mut Receiver,
    pub(super) span: Span,
}

/// Where a received message lies in the ring, validated when found.
#[derive(Debug)]
pub(super) struct Span {
    pub(super) payload: usize,
    pub(super) len: usize,
    pub(super) next: u64,
}

impl Span {
    #[inline]
    fn copy_to(&self, shared: &Shared, buf: &mut [u8]) -> Result<()> {
        if buf.len() != self.len {
            return Err(shared
                .ring
                .err(ErrorKind::InvalidRange, "receive")
                .with_detail(format!(
                    "a {}-byte buffer for a {}-byte message",
                    buf.len(),
                    self.len
                )));
        }
        shared.ring.mem.read(self.payload, buf)
    }

    #[inline]
    fn read_at(&self, shared: &Shared, offset: usize, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(shared
                .ring
                .err(ErrorKind::InvalidRange, "receive")
                .with_detail(format!(
                    "{} bytes at {offset} of a {}-byte message",
                    buf.len(),
                    self.len
                )));
        }
        shared.ring.mem.read(self.payload + offset, buf)
    }

    fn to_vec(&self, shared: &Shared) -> Vec<u8> {
        let mut buf = vec![0u8; self.len];
        // The range was validated when the message was found.
        let _ = shared.ring.mem.read(self.payload, &mut buf);
        buf
    }

    #[inline]
    fn as_ptr(&self, shared: &Shared) -> *const u8 {
        // In bounds of the live view (validated against the ring).
        shared.view().as_ptr().wrapping_add(self.payload)
    }

    /// Frees the message's room (unless this is a forked child's copy of
    /// its parent's message: the parent frees it).
    #[inline]
    fn release(&self, receiver: &Receiver) {
        if !receiver.claim.claimed_here() {
            return;
        }
        let shared = &receiver.shared;
        shared.ring.advance(self.next);
        let _ = shared.wake(Side::Senders);
    }
}

impl Message<'_> {
    /// The message length.
    #[inline]
    pub fn len(&self) -> usize {
        self.span.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.span.len == 0
    }

    #[inline]
    fn shared(&self) -> &Shared {
        &self.receiver.shared
    }

    /// Copies the message into `buf`, which must be exactly as long.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRange`] when `buf` is not exactly as long as
    /// the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send(&42u64.to_le_bytes())?;
    ///
    /// let mut word = [0u8; 8];
    /// rx.recv()?.copy_to(&mut word)?;
    /// assert_eq!(u64::from_le_bytes(word), 42);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<()> {
        self.span.copy_to(self.shared(), buf)
    }

    /// Copies `buf.len()` bytes of the message at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRange`] when the range goes past the message's
    /// end.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send(b"type=3;body")?;
    ///
    /// let message = rx.recv()?;
    /// let mut kind = [0u8; 6];
    /// message.read_at(0, &mut kind)?;
    /// assert_eq!(&kind, b"type=3");
    /// let mut too_much = [0u8; 16];
    /// assert_eq!(message.read_at(0, &mut too_much).unwrap_err().kind(), ErrorKind::InvalidRange);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.span.read_at(self.shared(), offset, buf)
    }

    /// The message as a vector.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send("grüße".as_bytes())?;
    /// let text = String::from_utf8(rx.recv()?.to_vec()).unwrap();
    /// assert_eq!(text, "grüße");
    /// # Ok(()) }
    /// ```
    pub fn to_vec(&self) -> Vec<u8> {
        self.span.to_vec(self.shared())
    }

    /// The message's bytes in place.
    ///
    /// # Safety
    /// The protocol gives these bytes to the receiver until the message is
    /// dropped; a peer that breaks it (a buggy or hostile process writing
    /// the ring) must not write them while the borrow lives.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send(b"a,b,c")?;
    ///
    /// let message = rx.recv()?;
    /// // SAFETY: only this process uses the anonymous channel, and its
    /// // sender follows the protocol: nothing writes the message's bytes
    /// // while it is received.
    /// let fields = unsafe { message.as_slice() }.split(|&b| b == b',').count();
    /// assert_eq!(fields, 3);
    /// # Ok(()) }
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds of the live view (validated against the ring);
        // no writer per the contract.
        unsafe { std::slice::from_raw_parts(self.span.as_ptr(self.shared()), self.span.len) }
    }
}

impl Drop for Message<'_> {
    #[inline]
    fn drop(&mut self) {
        self.span.release(self.receiver);
    }
}

/// A received message that owns its [`Receiver`]
/// ([`Receiver::recv_owned`]), in place in the ring until
/// [`release`](Self::release)d (which gives the receiver back) or dropped
/// (which drops the receiver too).
///
/// # Examples
///
/// ```
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// let channel = ChannelOptions::new().anonymous()?;
/// let mut tx = channel.sender()?;
/// tx.send(&7u32.to_le_bytes())?;
///
/// let message = channel.receiver()?.recv_owned(None)?;
/// let mut word = [0u8; 4];
/// message.read_at(0, &mut word)?;
/// assert_eq!(u32::from_le_bytes(word), 7);
/// let _rx = message.release();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OwnedMessage {
    /// `None` only once released.
    receiver: Option<Receiver>,
    span: Span,
}

impl OwnedMessage {
    #[inline]
    fn shared(&self) -> &Shared {
        &self
            .receiver
            .as_ref()
            .expect("a live message has its receiver")
            .shared
    }

    /// The message length.
    #[inline]
    pub fn len(&self) -> usize {
        self.span.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.span.len == 0
    }

    /// Copies the message into `buf`, which must be exactly as long.
    ///
    /// # Errors
    ///
    /// As [`Message::copy_to`].
    #[inline]
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<()> {
        self.span.copy_to(self.shared(), buf)
    }

    /// Copies `buf.len()` bytes of the message at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// As [`Message::read_at`].
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.span.read_at(self.shared(), offset, buf)
    }

    /// The message as a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.span.to_vec(self.shared())
    }

    /// The message's first byte, for code that hands the memory to
    /// someone else (another language's buffer, say) and keeps this
    /// message alive while it is used; [`len`](Self::len) bytes are the
    /// message's. The same contract as [`Message::as_slice`] holds for
    /// reading through it.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.span.as_ptr(self.shared())
    }

    /// The message's bytes in place.
    ///
    /// # Safety
    /// As [`Message::as_slice`].
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds of the live view (validated against the ring);
        // no writer per the contract.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.span.len) }
    }

    /// Frees the message's room in the ring and gives the receiver back.
    #[inline]
    pub fn release(mut self) -> Receiver {
        let receiver = self
            .receiver
            .take()
            .expect("a live message has its receiver");
        self.span.release(&receiver);
        receiver
    }
}

impl Drop for OwnedMessage {
    #[inline]
    fn drop(&mut self) {
        if let Some(receiver) = self.receiver.take() {
            self.span.release(&receiver);
        }
    }
}
