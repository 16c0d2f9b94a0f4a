//! The sending side: connecting a sender, reserving room (under the
//! reservation lock when there are several senders), loans written in
//! place, and sending.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::layout::{RX_OWNER, TX_EVER};
use super::peers::{claim, forked_copy, held, leave, sender_alive, sender_index, RECEIVER};
use super::ring::{Look, Reservation, Ring};
use super::wait::Shared;
use super::{ChannelOptions, OwnedLoan, Returned};
use crate::error::{Error, ErrorKind, Result};
use crate::named::deadline;
use crate::sys::{PeerLock, Side, PEER_CLOSED, PEER_FREE};

/// Attempts at a busy reservation lock before waiting between them: a
/// holder keeps it for a few instructions.
const LOCK_SPINS: u32 = 128;
/// Then attempts with a yield of the CPU between them (a holder that was
/// descheduled inside its few instructions gets to run), before sleeps.
const LOCK_YIELDS: u32 = 64;
/// How often a sender waiting for the reservation lock asks whether its
/// holder lives.
const LOCK_CHECK: Duration = Duration::from_millis(1);

/// One sender. Several may be connected if the channel was created for
/// several (`ChannelOptions::senders`); each keeps its own order.
///
/// Dropping it (or the death of its process) disconnects it: once every
/// sender is gone, the receiver gets what they had sent and then
/// [`ErrorKind::Disconnected`].
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
/// tx.send(b"last words")?;
/// drop(tx);
/// assert_eq!(rx.recv()?.to_vec(), b"last words");
/// assert_eq!(rx.recv().unwrap_err().kind(), ErrorKind::Disconnected);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sender {
    pub(super) shared: Shared,
    /// This sender's claim on its slot (dropped after the slot is freed).
    claim: PeerLock,
    slot: u32,
    generation: u32,
    /// The read position last seen: reloaded only when the ring looks full
    /// with it, so most sends never touch the receiver's line.
    read: Cell<u64>,
    /// Room reserved by `reserve_armed` for the loan `reserved_loan` makes
    /// next (the async adapter's two steps, with no await between).
    pub(super) reserved: Option<Reservation>,
}

impl Sender {
    pub(crate) fn open(opts: &ChannelOptions, name: &str) -> Result<Sender> {
        Sender::connect(opts.open_named(name)?)
    }

    pub(crate) fn connect(shared: Shared) -> Result<Sender> {
        let ring = &shared.ring;
        for slot in 0..ring.senders {
            let Some(lock) = claim(&shared, sender_index(slot), ring.slot_owner(slot))? else {
                continue;
            };
            let generation = ring
                .slot_generation(slot)
                .fetch_add(1, Ordering::AcqRel)
                .wrapping_add(1);
            ring.mem.u32(TX_EVER).store(1, Ordering::Release);
            // A single sender that left between committing and
            // publishing left its record behind `reserve`.
            if let Err(e) = ring.repair_reserve() {
                ring.slot_owner(slot).store(PEER_FREE, Ordering::Release);
                return Err(e);
            }
            return Ok(Sender {
                shared,
                claim: lock,
                slot,
                generation,
                read: Cell::new(0),
                reserved: None,
            });
        }
        Err(Error::new(ErrorKind::AlreadyExists, "open sender")
            .with_name(&ring.name)
            .with_detail(format!("all {} sender slots are in use", ring.senders)))
    }

    /// Whether the receiver is gone: no longer holding its slot (closed,
    /// or its process ended). `Look::Fast` does not look; `Look::Reserve`
    /// asks only when the owner word says closed.
    #[inline]
    pub(super) fn receiver_gone(&self, mode: Look) -> bool {
        let owner = || self.shared.ring.mem.u64(RX_OWNER).load(Ordering::Acquire);
        match mode {
            Look::Fast => false,
            // The word says closed: the lock confirms (the word alone is
            // anyone's to write).
            Look::Reserve => owner() == PEER_CLOSED && !held(&self.shared, RECEIVER, owner()),
            Look::Liveness => !held(&self.shared, RECEIVER, owner()),
        }
    }

    /// Takes the reservation lock of a channel with several senders,
    /// waiting at most until `deadline`: `false` if it passed first. The
    /// holder keeps it for a few instructions, so this spins briefly, then
    /// waits with short sleeps, asking now and then whether the holder
    /// lives (a dead one's lock is taken over) and whether the receiver
    /// does (`Disconnected`). Whatever a peer wrote into the lock word, a
    /// timed call returns on time.
    fn lock_reserve(&self, deadline: Option<Instant>) -> Result<bool> {
        let ring = &self.shared.ring;
        let me = Ring::lock_word(self.slot, self.generation);
        let alive = |slot: u32, generation: u32| sender_alive(&self.shared, slot, generation);
        let mut attempts = 0u32;
        let mut checked = Instant::now();
        let mut pause = Duration::from_micros(20);
        loop {
            let check_holder = attempts > LOCK_SPINS && checked.elapsed() >= LOCK_CHECK;
            if ring.try_lock(me, check_holder, &alive)? {
                return Ok(true);
            }
            attempts += 1;
            if attempts <= LOCK_SPINS {
                std::hint::spin_loop();
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                // A last attempt that asks whether the holder lives (one
                // system call): a short deadline (`try_loan`, `poll_loan`)
                // must not wait for ever behind a dead sender's lock.
                return ring.try_lock(me, true, &alive);
            }
            if check_holder {
                checked = now;
                if self.receiver_gone(Look::Liveness) {
                    return Err(ring
                        .err(ErrorKind::Disconnected, "send")
                        .with_detail("the receiver is gone"));
                }
            }
            if attempts <= LOCK_SPINS + LOCK_YIELDS {
                std::thread::yield_now();
                continue;
            }
            let nap = deadline.map_or(pause, |d| pause.min(d - now));
            std::thread::sleep(nap);
            pause = (pause * 2).min(LOCK_CHECK);
        }
    }

    /// Reserves room, under the reservation lock if there are several
    /// senders; `None` when full, or when the lock was not free before
    /// `deadline`.
    #[inline]
    fn reserve(&self, len: usize, deadline: Option<Instant>) -> Result<Option<Reservation>> {
        let ring = &self.shared.ring;
        if ring.senders == 1 {
            return ring.reserve(self.slot, self.generation, len, &self.read);
        }
        if !self.lock_reserve(deadline)? {
            return Ok(None);
        }
        let result = ring.reserve(self.slot, self.generation, len, &self.read);
        ring.unlock(Ring::lock_word(self.slot, self.generation));
        // A sender in an event loop that found the lock taken armed its
        // bell: the lock is free now (nothing to do when nobody waits).
        let _ = self.shared.wake(Side::Senders);
        result
    }

    #[inline]
    pub(super) fn reserve_until(
        &self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<Reservation>> {
        let shared = &self.shared;
        if !self.claim.claimed_here() {
            return Err(forked_copy(&shared.ring, "send"));
        }
        shared.wait_for(Side::Senders, deadline, |mode| {
            if self.receiver_gone(mode) {
                return Err(shared
                    .ring
                    .err(ErrorKind::Disconnected, "send")
                    .with_detail("the receiver is gone"));
            }
            self.reserve(len, deadline)
        })
    }

    #[inline]
    fn loan_until(&mut self, len: usize, deadline: Option<Instant>) -> Result<Option<Loan<'_>>> {
        let reserved = self.reserve_until(len, deadline)?;
        Ok(reserved.map(|res| Loan {
            sender: self,
            res,
            done: false,
        }))
    }

    /// A loan that owns this sender: for holders that cannot keep a
    /// borrow, such as another language's objects or a task that moves
    /// between threads. It waits for room like [`loan`](Self::loan) when
    /// `timeout` is `None`, at most `timeout` otherwise (`Duration::ZERO`:
    /// only if there is room now, as [`try_loan`](Self::try_loan)).
    /// [`OwnedLoan::send`] and [`OwnedLoan::cancel`] give the sender back;
    /// so does the error.
    ///
    /// # Errors
    ///
    /// As [`loan`](Self::loan), [`try_loan`](Self::try_loan) (`Full`) and
    /// [`loan_timeout`](Self::loan_timeout) (`TimedOut`), with the sender
    /// inside the [`Returned`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(64).anonymous()?;
    /// let tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    ///
    /// let mut loan = tx.loan_owned(5, None)?; // the loan owns the sender
    /// loan.write_at(0, b"owned")?;
    /// let tx = loan.send(); // and gives it back
    ///
    /// // No room now: the error gives the sender back too.
    /// let full = tx.loan_owned(40, Some(Duration::ZERO)).unwrap_err();
    /// assert_eq!(full.kind(), ErrorKind::Full);
    /// let _tx = full.into_inner();
    /// assert_eq!(rx.recv()?.to_vec(), b"owned");
    /// # Ok(()) }
    /// ```
    pub fn loan_owned(
        self,
        len: usize,
        timeout: Option<Duration>,
    ) -> std::result::Result<OwnedLoan, Returned<Sender>> {
        let deadline = timeout.map(deadline);
        match self.reserve_until(len, deadline) {
            Ok(Some(res)) => Ok(OwnedLoan::new(self, res)),
            Ok(None) => {
                let kind = match timeout {
                    Some(t) if t.is_zero() => ErrorKind::Full,
                    _ => ErrorKind::TimedOut,
                };
                let error = Error::new(kind, "send").with_name(&self.shared.ring.name);
                Err(Returned::new(error, self))
            }
            Err(error) => Err(Returned::new(error, self)),
        }
    }

    /// A writable slot of `len` bytes in the ring, waiting for room.
    ///
    /// Write the message in place, then [`send`](Loan::send) it: no copy
    /// through a buffer of your own. A loan dropped unsent is cancelled.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Disconnected`] when the receiver is gone (noticed when
    /// the loan has to wait for room);
    /// [`ErrorKind::InvalidSize`] when `len` could never fit the ring;
    /// [`ErrorKind::Corrupted`] when the ring holds what no peer following
    /// the protocol writes.
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
    ///
    /// let id: u64 = 7;
    /// let body = b"frame data";
    /// let mut loan = tx.loan(8 + body.len())?;
    /// loan.write_at(0, &id.to_le_bytes())?;
    /// loan.write_at(8, body)?;
    /// loan.send();
    ///
    /// let message = rx.recv()?;
    /// let mut header = [0u8; 8];
    /// message.read_at(0, &mut header)?;
    /// assert_eq!(u64::from_le_bytes(header), 7);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let loan = self.loan_until(len, None)?;
        Ok(loan.expect("an untimed wait does not time out"))
    }

    /// A slot if there is room now; `Full` otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when there is no room now; otherwise as
    /// [`loan`](Self::loan).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(64).anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let _rx = channel.receiver()?;
    /// tx.try_loan(40)?.send(); // 16 header + 48 payload: the ring is full
    /// assert_eq!(tx.try_loan(1).unwrap_err().kind(), ErrorKind::Full);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let name = self.shared.ring.name.clone();
        self.loan_until(len, Some(Instant::now()))?
            .ok_or_else(|| Error::new(ErrorKind::Full, "send").with_name(&name))
    }

    /// A slot, waiting at most `timeout`; `TimedOut` otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] when no room was made in time; otherwise as
    /// [`loan`](Self::loan).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(64).anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let _rx = channel.receiver()?; // connected, but not reading
    /// tx.send(&[0u8; 48])?;
    /// let waited = tx.loan_timeout(8, Duration::from_millis(20)).unwrap_err();
    /// assert_eq!(waited.kind(), ErrorKind::TimedOut);
    /// # Ok(()) }
    /// ```
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        let name = self.shared.ring.name.clone();
        self.loan_until(len, Some(deadline(timeout)))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "send").with_name(&name))
    }

    /// Copies `data` into the ring and sends it, waiting for room.
    ///
    /// # Errors
    ///
    /// As [`loan`](Self::loan): [`ErrorKind::Disconnected`] when the
    /// receiver is gone, [`ErrorKind::InvalidSize`] when `data` could never
    /// fit the ring. A send that finds room at once does not ask whether
    /// the receiver is still there (that would slow every send); one that
    /// has to wait for room does.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(64).anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let rx = channel.receiver()?;
    /// tx.send(&[1u8; 48])?; // fills the ring
    /// drop(rx); // the receiver leaves without reading
    /// assert_eq!(tx.send(b"two").unwrap_err().kind(), ErrorKind::Disconnected);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        let loan = self.loan(data.len())?;
        loan.fill_and_send(data)
    }

    /// Sends if there is room now; `Full` otherwise.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Full`] when there is no room now; otherwise as
    /// [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// Dropping samples instead of waiting when the consumer falls behind:
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(256).anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let _rx = channel.receiver()?;
    /// let mut dropped = 0;
    /// for sample in 0..100u64 {
    ///     match tx.try_send(&sample.to_le_bytes()) {
    ///         Ok(()) => {}
    ///         Err(e) if e.kind() == ErrorKind::Full => dropped += 1,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// assert!(dropped > 0);
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        let loan = self.try_loan(data.len())?;
        loan.fill_and_send(data)
    }

    /// Sends, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TimedOut`] when no room was made in time; otherwise as
    /// [`send`](Self::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// tx.send_timeout(b"on time", Duration::from_millis(100))?;
    /// assert_eq!(rx.recv()?.to_vec(), b"on time");
    /// # Ok(()) }
    /// ```
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        let loan = self.loan_timeout(data.len(), timeout)?;
        loan.fill_and_send(data)
    }
}

impl Sender {
    /// Copies `data` into the reserved message at `offset`.
    #[inline]
    pub(super) fn write_reserved(
        &self,
        res: &Reservation,
        offset: usize,
        data: &[u8],
    ) -> Result<()> {
        let ring = &self.shared.ring;
        if !self.claim.claimed_here() {
            return Err(forked_copy(ring, "write"));
        }
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end as u64 > res.len)
        {
            return Err(ring
                .err(ErrorKind::InvalidRange, "write")
                .with_detail(format!(
                    "{} bytes at {offset} in a {}-byte message",
                    data.len(),
                    res.len
                )));
        }
        ring.mem.write(ring.payload(res) + offset, data)
    }

    /// The reserved message's bytes.
    ///
    /// # Safety
    /// As [`Loan::as_mut_slice`]; and one slice at a time per reservation.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn reserved_slice(&self, res: &Reservation) -> &mut [u8] {
        let at = self.shared.ring.payload(res);
        // SAFETY: in bounds of the live view (checked at reservation);
        // exclusivity per the caller's contract and the protocol.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.shared.view().as_mut_ptr().add(at),
                res.len as usize,
            )
        }
    }

    /// The reserved message's first byte.
    #[inline]
    pub(super) fn reserved_ptr(&self, res: &Reservation) -> *mut u8 {
        let at = self.shared.ring.payload(res);
        // In bounds of the live view (checked at reservation).
        self.shared.view().as_mut_ptr().wrapping_add(at)
    }

    /// Sends (or, with `cancel`, cancels) the reserved message and wakes
    /// the receiver.
    #[inline]
    pub(super) fn commit_reserved(&self, res: &Reservation, cancel: bool) {
        if !self.claim.claimed_here() {
            // A forked child's copy of its parent's loan: the parent sends
            // or cancels it.
            return;
        }
        let s = &self.shared;
        s.ring.commit(res, self.slot, self.generation, cancel);
        let _ = s.wake(Side::Receiver);
    }
}

impl Drop for Sender {
    #[inline]
    fn drop(&mut self) {
        if let Some(res) = self.reserved.take() {
            self.commit_reserved(&res, true);
        }
        // The receiver may be waiting to learn that every sender is gone.
        let owner = self.shared.ring.slot_owner(self.slot);
        leave(
            &self.shared,
            &mut self.claim,
            owner,
            PEER_FREE,
            Side::Receiver,
        );
    }
}

/// A slot in the ring being written; [`send`](Self::send) publishes it,
/// dropping it unsent cancels it.
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
///
/// let loan = tx.loan(3)?;
/// drop(loan); // changed our mind: nothing is sent
/// let mut loan = tx.loan(3)?;
/// assert_eq!(loan.len(), 3);
/// loan.write_at(0, b"yes")?;
/// loan.send();
/// assert_eq!(rx.recv()?.to_vec(), b"yes");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Loan<'a> {
    pub(super) sender: &'a mut Sender,
    pub(super) res: Reservation,
    pub(super) done: bool,
}

impl Loan<'_> {
    /// The message length.
    #[inline]
    pub fn len(&self) -> usize {
        self.res.len as usize
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.res.len == 0
    }

    /// Copies `data` into the message at `offset`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRange`] when `data` goes past the message's end.
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
    /// let _rx = channel.receiver()?;
    /// let mut loan = tx.loan(4)?;
    /// loan.write_at(0, b"ab")?;
    /// loan.write_at(2, b"cd")?;
    /// assert_eq!(loan.write_at(3, b"xy").unwrap_err().kind(), ErrorKind::InvalidRange);
    /// loan.send();
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        self.sender.write_reserved(&self.res, offset, data)
    }

    /// The message's bytes, to write in place.
    ///
    /// # Safety
    /// The protocol gives these bytes to this loan alone; a peer that
    /// breaks it (a buggy or hostile process writing the ring) must not
    /// touch them while the borrow lives.
    ///
    /// # Examples
    ///
    /// Filling a message in place, for example with a reader or a
    /// serializer that wants a `&mut [u8]`:
    ///
    /// ```
    /// use std::io::Read;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    ///
    /// let mut source: &[u8] = b"read straight into the ring";
    /// let mut loan = tx.loan(source.len())?;
    /// // SAFETY: only this process and its own receiver use the anonymous
    /// // channel, and both follow the protocol.
    /// let bytes = unsafe { loan.as_mut_slice() };
    /// source.read_exact(bytes).unwrap();
    /// loan.send();
    /// assert_eq!(rx.recv()?.to_vec(), b"read straight into the ring");
    /// # Ok(()) }
    /// ```
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.sender.reserved_slice(&self.res) }
    }

    #[inline]
    fn fill_and_send(mut self, data: &[u8]) -> Result<()> {
        self.write_at(0, data)?;
        self.send();
        Ok(())
    }

    #[inline]
    fn commit(&mut self, cancel: bool) {
        self.done = true;
        self.sender.commit_reserved(&self.res, cancel);
    }

    /// Publishes the message. (In a process forked while the loan was
    /// taken, the copy sends nothing: the loan is its parent's.)
    #[inline]
    pub fn send(mut self) {
        self.commit(false);
    }
}

impl Drop for Loan<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.commit(true);
        }
    }
}
