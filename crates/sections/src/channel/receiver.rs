//! The receiving side: connecting the receiver, looking for the next
//! message (skipping padding, cancelled records and records of senders that
//! are gone), and messages read in place until dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::layout::{RX_OWNER, TX_EVER};
use super::peers::{claim, connected, held, sender_alive, sender_index, RECEIVER};
use super::ring::{Found, Look};
use super::wait::Shared;
use super::ChannelOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::named::deadline;
use crate::sys::{PeerLock, Side, PEER_CLOSED};

/// The receiver; one per channel at a time.
#[derive(Debug)]
pub struct Receiver {
    shared: Shared,
    /// This receiver's claim on the receiver slot.
    claim: PeerLock,
    /// Whether this receiver has seen a sender (connected, or by one of
    /// its messages): then a channel without senders is disconnected,
    /// whatever the shared "a sender came" word says.
    seen_sender: AtomicBool,
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
        })
    }

    /// Looks for a message; wakes waiting senders if records were skipped.
    #[inline]
    fn look(&self, mode: Look) -> Result<Option<(usize, usize, u64)>> {
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
    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Message<'_>>> {
        if !self.claim.claimed_here() {
            return Err(super::peers::forked_copy(&self.shared.ring, "receive"));
        }
        let found = self
            .shared
            .wait_for(Side::Receiver, deadline, |mode| self.look(mode))?;
        Ok(found.map(|(payload, len, next)| Message {
            receiver: self,
            payload,
            len,
            next,
        }))
    }

    /// The next message, waiting for one; `Disconnected` once every sender
    /// is gone and everything they sent has been received.
    #[inline]
    pub fn recv(&mut self) -> Result<Message<'_>> {
        Ok(self
            .recv_until(None)?
            .expect("an untimed wait does not time out"))
    }

    /// The next message if there is one now; `Empty` otherwise.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<'_>> {
        let name = self.shared.ring.name.clone();
        self.recv_until(Some(Instant::now()))?
            .ok_or_else(|| Error::new(ErrorKind::Empty, "receive").with_name(&name))
    }

    /// The next message, waiting at most `timeout`; `TimedOut` otherwise.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>> {
        let name = self.shared.ring.name.clone();
        self.recv_until(Some(deadline(timeout)))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "receive").with_name(&name))
    }

    /// Receives the next message into `buf` (replacing its contents).
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
        let s = &self.shared;
        if !self.claim.claimed_here() {
            // A forked child's copy: the slot is the parent's.
            return;
        }
        s.ring
            .mem
            .u64(RX_OWNER)
            .store(PEER_CLOSED, Ordering::Release);
        // Let go of the slot, then wake the senders (which ask the lock).
        self.claim.release();
        let _ = s.wake(Side::Senders);
    }
}

/// A received message, in place in the ring until dropped.
#[derive(Debug)]
pub struct Message<'a> {
    receiver: &'a mut Receiver,
    payload: usize,
    len: usize,
    next: u64,
}

impl Message<'_> {
    /// The message length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn shared(&self) -> &Shared {
        &self.receiver.shared
    }

    /// Copies the message into `buf`, which must be exactly as long.
    #[inline]
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() != self.len {
            return Err(self
                .shared()
                .ring
                .err(ErrorKind::InvalidRange, "receive")
                .with_detail(format!(
                    "a {}-byte buffer for a {}-byte message",
                    buf.len(),
                    self.len
                )));
        }
        self.shared().ring.mem.read(self.payload, buf)
    }

    /// Copies `buf.len()` bytes of the message at `offset` into `buf`.
    #[inline]
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(self
                .shared()
                .ring
                .err(ErrorKind::InvalidRange, "receive")
                .with_detail(format!(
                    "{} bytes at {offset} of a {}-byte message",
                    buf.len(),
                    self.len
                )));
        }
        self.shared().ring.mem.read(self.payload + offset, buf)
    }

    /// The message as a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.len];
        // The range was validated when the message was found.
        let _ = self.shared().ring.mem.read(self.payload, &mut buf);
        buf
    }

    /// The message's bytes in place.
    ///
    /// # Safety
    /// The protocol gives these bytes to the receiver until the message is
    /// dropped; a peer that breaks it (a buggy or hostile process writing
    /// the ring) must not write them while the borrow lives.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds of the live view (validated against the ring);
        // no writer per the contract.
        unsafe {
            std::slice::from_raw_parts(self.shared().view().as_ptr().add(self.payload), self.len)
        }
    }
}

impl Drop for Message<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.receiver.claim.claimed_here() {
            // A forked child's copy of its parent's message: the parent
            // frees it.
            return;
        }
        let shared = &self.receiver.shared;
        shared.ring.advance(self.next);
        let _ = shared.wake(Side::Senders);
    }
}
