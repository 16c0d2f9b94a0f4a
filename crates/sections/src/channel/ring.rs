//! The ring protocol over the words of a channel's section, free of
//! processes and the OS (peers, waiting and waking are in `peers.rs` and
//! `wait.rs`), so that it can be model-checked with loom (`--cfg loom`,
//! `model.rs`). The protocol is described in the module docs of
//! [`crate::channel`]; the layout is `layout.rs`.

use std::cell::Cell;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};

use super::layout::{
    Meta, HEADER, KEY, LOCK, READ, RECORD, RESERVE, SLOTS, SLOT_GENERATION, SLOT_OWNER, SLOT_SIZE,
};

/// The state bits of a position word (see the module docs of the channel).
const RESERVED: u64 = 1 << 63;
/// Marks a committed position word (so zeroed memory never reads as one).
const COMMITTED: u64 = 1 << 62;

pub(crate) fn round16(n: u64) -> u64 {
    n.div_ceil(RECORD) * RECORD
}

/// The bytes of a channel: its header and ring.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct Mem {
    view: crate::view::View,
}

#[cfg(not(loom))]
impl Mem {
    /// `view` must be writable and hold at least the header and
    /// `capacity` bytes of ring (checked by the caller, see `Ring::new`).
    pub(crate) fn new(view: crate::view::View) -> Mem {
        Mem { view }
    }

    #[inline]
    pub(crate) fn view(&self) -> &crate::view::View {
        &self.view
    }

    #[inline]
    pub(crate) fn u64(&self, at: usize) -> &AtomicU64 {
        assert!(at % 8 == 0 && at + 8 <= self.view.len(), "word {at}");
        // SAFETY: in bounds and 8-byte aligned (views start on a page), in
        // a writable mapping that lives as long as `&self`; every access to
        // these bytes through this crate is atomic.
        unsafe { AtomicU64::from_ptr(self.view.as_mut_ptr().add(at).cast()) }
    }

    #[inline]
    pub(crate) fn u32(&self, at: usize) -> &AtomicU32 {
        assert!(at % 4 == 0 && at + 4 <= self.view.len(), "word {at}");
        // SAFETY: as for `u64`, 4-byte aligned.
        unsafe { AtomicU32::from_ptr(self.view.as_mut_ptr().add(at).cast()) }
    }

    #[inline]
    pub(crate) fn write(&self, at: usize, data: &[u8]) -> Result<()> {
        self.view.write_at(at, data)
    }

    #[inline]
    pub(crate) fn read(&self, at: usize, buf: &mut [u8]) -> Result<()> {
        self.view.read_at(at, buf)
    }
}

/// The model's bytes: loom atomics, one per word (the protocol never
/// reads one location at two widths). Payloads are whole words.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Mem {
    w64: Vec<AtomicU64>,
    w32: Vec<AtomicU32>,
}

#[cfg(loom)]
impl Mem {
    pub(crate) fn zeroed(len: usize) -> Mem {
        Mem {
            w64: (0..len / 8).map(|_| AtomicU64::new(0)).collect(),
            w32: (0..len / 4).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    pub(crate) fn u64(&self, at: usize) -> &AtomicU64 {
        &self.w64[at / 8]
    }

    #[inline]
    pub(crate) fn u32(&self, at: usize) -> &AtomicU32 {
        &self.w32[at / 4]
    }

    #[inline]
    pub(crate) fn write(&self, at: usize, data: &[u8]) -> Result<()> {
        for (i, w) in data.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..w.len()].copy_from_slice(w);
            self.u64(at + i * 8)
                .store(u64::from_le_bytes(word), Ordering::Relaxed);
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn read(&self, at: usize, buf: &mut [u8]) -> Result<()> {
        for (i, w) in buf.chunks_mut(8).enumerate() {
            let word = self.u64(at + i * 8).load(Ordering::Relaxed).to_le_bytes();
            w.copy_from_slice(&word[..w.len()]);
        }
        Ok(())
    }
}

/// A sender's room in the ring, from `reserve` to `commit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reservation {
    /// Position of the record's header.
    pub(crate) at: u64,
    pub(crate) len: u64,
}

/// How closely the receiver looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// Only the record at the read position (spinning).
    Fast,
    /// Also the senders' `reserve`, so that damage shows, and whether
    /// any sender is still connected (without asking whether its process
    /// runs).
    Reserve,
    /// Also whether senders are alive (system calls).
    Liveness,
}

/// What the receiver found at its read position.
#[derive(Debug)]
pub(crate) enum Found {
    Message {
        /// Offset of the payload from the start of the section.
        payload: usize,
        len: usize,
        /// The read position after it.
        next: u64,
    },
    Nothing,
}

/// The protocol over one channel's words; every value read from them is
/// validated before use.
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) mem: Mem,
    pub(crate) name: String,
    pub(crate) capacity: u64,
    pub(crate) senders: u32,
    key: u64,
}

impl Ring {
    /// `mem` holds `HEADER + capacity` bytes; `capacity` is a multiple of
    /// 16 of at least 64 and `senders` at least 1 (validated by the caller).
    pub(crate) fn new(mem: Mem, name: &str, capacity: u64, senders: u32) -> Ring {
        let key = mem.u64(KEY).load(Ordering::Relaxed);
        Ring {
            mem,
            name: name.to_owned(),
            capacity,
            senders,
            key,
        }
    }

    pub(crate) fn corrupted(&self, what: impl Into<String>) -> Error {
        super::corrupted(&self.name, what)
    }

    pub(crate) fn err(&self, kind: ErrorKind, op: &'static str) -> Error {
        Error::new(kind, op).with_name(&self.name)
    }

    /// Sender slot `i`'s owner word (see `peers.rs`).
    pub(crate) fn slot_owner(&self, i: u32) -> &AtomicU64 {
        self.mem.u64(SLOTS + i as usize * SLOT_SIZE + SLOT_OWNER)
    }

    pub(crate) fn slot_generation(&self, i: u32) -> &AtomicU32 {
        self.mem
            .u32(SLOTS + i as usize * SLOT_SIZE + SLOT_GENERATION)
    }

    /// The header words of the record at ring offset `off` (a multiple of
    /// 16 below the capacity, so both words are inside the ring).
    #[inline]
    fn record(&self, off: u64) -> (&AtomicU64, &AtomicU64) {
        let at = HEADER + off as usize;
        (self.mem.u64(at), self.mem.u64(at + 8))
    }

    /// A position word as stored: the position, a state bit, and the
    /// channel's key, so that no earlier payload passes for a header by
    /// accident.
    #[inline]
    fn tag(&self, pos: u64, state: u64) -> u64 {
        (pos | state) ^ self.key
    }

    /// The reservation lock word that names sender `slot` of `generation`
    /// as its holder: `generation & 0xffff` in the high half, `slot + 1` in
    /// the low half (0 is "free").
    #[inline]
    pub(crate) fn lock_word(slot: u32, generation: u32) -> u32 {
        ((generation & 0xffff) << 16) | (slot + 1)
    }

    /// One attempt at the reservation lock for `me` (a [`lock_word`]);
    /// `true` when taken. A channel with several senders reserves under it.
    ///
    /// ```text
    ///  word          event                                          next
    ///  0 free        a sender swaps 0 → its word (Acquire)          held by it
    ///  held by s     s unlocks: swaps its word → 0 (Release)        0 free
    ///  held by s     another sender is told (`check_holder`) that
    ///                s's slot no longer belongs to that generation
    ///                in a live process: swaps s's word → its own    held by it
    ///  held by "me"  (a hostile write, or a dead holder of 65536
    ///                generations ago): the caller takes it          held by it
    ///  other         a slot past the channel's senders              Corrupted
    /// ```
    ///
    /// A holder that died inside [`reserve`](Self::reserve) left at most a
    /// header beyond `reserve` (overwritten by the next reservation) or a
    /// published reservation (which the receiver skips once the sender is
    /// gone), so taking the lock over is safe. The holder is only asked
    /// about when the caller has waited a while (liveness costs a system
    /// call), and a live holder is waited for: a hostile peer that writes a
    /// live sender's word delays senders, within their deadlines, as a slow
    /// sender would.
    ///
    /// [`lock_word`]: Self::lock_word
    #[inline]
    pub(crate) fn try_lock(
        &self,
        me: u32,
        check_holder: bool,
        alive: &dyn Fn(u32, u32) -> bool,
    ) -> Result<bool> {
        let word = self.mem.u32(LOCK);
        // Relaxed: the swap below is what orders.
        let current = word.load(Ordering::Relaxed);
        let take = |from: u32| {
            // Acquire: what the previous holder published under the lock.
            word.compare_exchange(from, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        };
        if current == 0 || current == me {
            return Ok(take(current));
        }
        let slot = (current & 0xffff).wrapping_sub(1);
        if slot >= self.senders {
            return Err(self.corrupted(format!("reservation lock word {current:#x}")));
        }
        if check_holder && !alive(slot, current >> 16) {
            return Ok(take(current));
        }
        Ok(false)
    }

    /// Releases the reservation lock held by `me`. If it is no longer ours
    /// (taken over by a sender that thought us dead, or a hostile write),
    /// it is left to whoever has it.
    #[inline]
    pub(crate) fn unlock(&self, me: u32) {
        // Release: the reservation is published before the next holder
        // reads `reserve`.
        let _ = self
            .mem
            .u32(LOCK)
            .compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed);
    }

    /// Offset in the section of a reservation's payload.
    #[inline]
    pub(crate) fn payload(&self, r: &Reservation) -> usize {
        HEADER + (r.at % self.capacity) as usize + RECORD as usize
    }

    /// A single sender publishes `reserve` only at commit; one that left
    /// (or died) between the two may have left committed records behind
    /// `reserve`: the next single sender publishes them before reserving.
    pub(crate) fn repair_reserve(&self) -> Result<()> {
        if self.senders != 1 {
            return Ok(());
        }
        let reserve = self.mem.u64(RESERVE);
        let pos = reserve.load(Ordering::Acquire);
        if pos % RECORD != 0 {
            return Err(self.corrupted(format!("reserve {pos} is not a record boundary")));
        }
        let off = pos % self.capacity;
        let (len_word, pos_word) = self.record(off);
        if pos_word.load(Ordering::Acquire) != self.tag(pos, COMMITTED) {
            return Ok(());
        }
        let meta = Meta::from_word(len_word.load(Ordering::Relaxed));
        let size = RECORD + round16(u64::from(meta.len));
        if meta.pad || off + size > self.capacity {
            return Err(self.corrupted(format!("a record at {pos} runs past the ring")));
        }
        reserve.store(pos.wrapping_add(size), Ordering::Release);
        Ok(())
    }

    /// Reserves room for `len` bytes from sender `slot`; `None` when full.
    /// `read` caches the read position (reloaded only when the ring looks
    /// full with it). With several senders, the caller holds the
    /// reservation lock.
    #[inline]
    pub(crate) fn reserve(
        &self,
        slot: u32,
        generation: u32,
        len: usize,
        read: &Cell<u64>,
    ) -> Result<Option<Reservation>> {
        let cap = self.capacity;
        // Checked before any arithmetic: a length near `usize::MAX` would
        // wrap the rounding and pass for a small record.
        let need = u64::try_from(len)
            .ok()
            .filter(|&l| l <= cap)
            .map_or(u64::MAX, |l| RECORD + round16(l));
        if need > cap {
            return Err(self
                .err(ErrorKind::InvalidSize, "send")
                .with_detail(format!("a {len}-byte message cannot fit a {cap}-byte ring")));
        }
        // Acquire: with several senders, what the previous holder of the
        // lock published (the lock orders it too); alone, our own store.
        let reserve = self.mem.u64(RESERVE);
        let mut pos = reserve.load(Ordering::Acquire);
        if pos % RECORD != 0 {
            return Err(self.corrupted(format!("reserve {pos} is not a record boundary")));
        }
        let off = pos % cap;
        if off + need > cap {
            // The record would run past the end: first a padding record to
            // the end, published on its own, so that a record of more than
            // half the ring is not kept out by its own padding.
            let pad = cap - off;
            if !self.room(pos, pad, read)? {
                return Ok(None);
            }
            let (len_word, pos_word) = self.record(off);
            len_word.store(Meta::padding(pad - RECORD).word(), Ordering::Relaxed);
            // Release: the padding's length before its position word.
            pos_word.store(self.tag(pos, COMMITTED), Ordering::Release);
            // Release: the padding is committed before `reserve` passes it.
            pos = pos.wrapping_add(pad);
            reserve.store(pos, Ordering::Release);
        }
        if !self.room(pos, need, read)? {
            return Ok(None);
        }
        let res = Reservation {
            at: pos,
            len: len as u64,
        };
        if self.senders > 1 {
            // Several senders: the reservation is published now, so that
            // the next sender can reserve behind it while this one writes.
            let (len_word, pos_word) = self.record(pos % cap);
            len_word.store(
                Meta::message(len as u64, slot, generation).word(),
                Ordering::Relaxed,
            );
            pos_word.store(self.tag(pos, RESERVED), Ordering::Relaxed);
            // Release: the header is visible to whoever sees `reserve` move
            // past it.
            reserve.store(pos.wrapping_add(need), Ordering::Release);
        }
        // A single sender writes nothing shared until it commits: the
        // receiver, polling the record's line, sees it change once.
        Ok(Some(res))
    }

    /// Whether `need` bytes at `pos` are free; `read` caches the read
    /// position and is reloaded only when the cached one says no.
    #[inline]
    fn room(&self, pos: u64, need: u64, read: &Cell<u64>) -> Result<bool> {
        let cap = self.capacity;
        let fits = |read: u64| pos >= read && pos - read <= cap - need;
        if fits(read.get()) {
            return Ok(true);
        }
        // Acquire: the receiver's reads of the space it freed happened
        // before we write it.
        let r = self.mem.u64(READ).load(Ordering::Acquire);
        if pos < r || pos - r > cap {
            return Err(self.corrupted(format!("reserve {pos} and read {r} are inconsistent")));
        }
        read.set(r);
        Ok(fits(r))
    }

    /// Publishes (or, with `cancel`, withdraws) a reservation.
    #[inline]
    pub(crate) fn commit(&self, r: &Reservation, slot: u32, generation: u32, cancel: bool) {
        let cap = self.capacity;
        let (len_word, pos_word) = self.record(r.at % cap);
        if self.senders > 1 {
            if cancel {
                len_word.fetch_or(Meta::CANCEL_BIT, Ordering::Relaxed);
            }
            // Release: the payload (and a cancel mark) before the commit.
            pos_word.store(self.tag(r.at, COMMITTED), Ordering::Release);
            return;
        }
        if cancel {
            // Nothing was published: the next reservation takes the room.
            return;
        }
        len_word.store(
            Meta::message(r.len, slot, generation).word(),
            Ordering::Relaxed,
        );
        // Release: the payload and length before the commit.
        pos_word.store(self.tag(r.at, COMMITTED), Ordering::Release);
        // Release: `reserve` never passes a record that is not committed.
        // It may lag behind what the receiver already took; the receiver
        // allows for that.
        self.mem.u64(RESERVE).store(
            r.at.wrapping_add(RECORD + round16(r.len)),
            Ordering::Release,
        );
    }

    /// Looks at the read position, skipping padding, cancelled records and
    /// (with `Look::Liveness`) records whose sender is gone (`alive(slot,
    /// generation)` false). `Look::Fast` leaves the senders' line alone
    /// unless a record is being written; the other modes also report
    /// `Disconnected` once the ring is drained and `senders_gone()` (which
    /// the caller makes as thorough as the mode) says a sender came and
    /// none is left. Also says
    /// whether records were skipped (room freed for senders).
    #[inline]
    pub(crate) fn look(
        &self,
        mode: Look,
        alive: &dyn Fn(u32, u32) -> bool,
        senders_gone: &dyn Fn() -> bool,
    ) -> Result<(Found, bool)> {
        let cap = self.capacity;
        let mut skipped = false;
        // Every turn of the loop consumes at least 16 bytes of a ring that
        // holds at most `cap` of them; more turns means the peer keeps
        // rewriting what we skip.
        for _ in 0..=cap / RECORD + 1 {
            // Relaxed: only the receiver writes it.
            let r = self.mem.u64(READ).load(Ordering::Relaxed);
            if r % RECORD != 0 {
                return Err(self.corrupted(format!("read {r} is not a record boundary")));
            }
            let off = r % cap;
            let (len_word, pos_word) = self.record(off);
            // Acquire: pairs with the commit's Release (payload, length).
            let mut pos = pos_word.load(Ordering::Acquire);
            let committed = self.tag(r, COMMITTED);
            let reserved = self.tag(r, RESERVED);
            // A committed record at the read position says everything about
            // itself (its 64-bit position cannot be left from an earlier
            // lap); only without one is the senders' line read.
            let w = if pos == committed {
                None
            } else if mode == Look::Fast && pos != reserved {
                return Ok((Found::Nothing, skipped));
            } else {
                // Acquire: pairs with the Release of `reserve`.
                let w = self.mem.u64(RESERVE).load(Ordering::Acquire);
                if w > r && w - r > cap || r > w && r - w > cap {
                    return Err(
                        self.corrupted(format!("read {r} and reserve {w} are inconsistent"))
                    );
                }
                if w <= r {
                    // Empty (a single sender's `reserve` may lag by the
                    // record it is publishing).
                    if mode != Look::Fast
                        && senders_gone()
                        && self.mem.u64(RESERVE).load(Ordering::Acquire) <= r
                        && pos_word.load(Ordering::Acquire) != committed
                    {
                        return Err(self
                            .err(ErrorKind::Disconnected, "receive")
                            .with_detail("every sender is gone"));
                    }
                    return Ok((Found::Nothing, skipped));
                }
                // The header was written before `reserve` was published:
                // read it again now that the Acquire above covers it.
                pos = pos_word.load(Ordering::Acquire);
                Some(w)
            };
            let meta = Meta::from_word(len_word.load(Ordering::Relaxed));
            let len = u64::from(meta.len);
            if meta.pad {
                // Padding is committed before `reserve` moves past it; the
                // read position does not pass `reserve` (so a sender never
                // finds `read` ahead of it).
                // Positions are any peer's to write: wrapping, never a
                // panic (what does not add up is `Corrupted` below).
                let end = r.wrapping_add(cap - off);
                if w.is_none() && self.mem.u64(RESERVE).load(Ordering::Acquire) < end {
                    return Ok((Found::Nothing, skipped));
                }
                if pos != committed || len + RECORD != cap - off {
                    return Err(
                        self.corrupted(format!("a padding record at {r} does not end the ring"))
                    );
                }
                self.advance(end);
                skipped = true;
                continue;
            }
            let size = RECORD + round16(len);
            let slot = u32::from(meta.slot);
            if off + size > cap
                || w.is_some_and(|w| r.wrapping_add(size) > w)
                || slot >= self.senders
            {
                return Err(self.corrupted(format!(
                    "a record at {r} claims {len} bytes from sender {slot}"
                )));
            }
            if pos == committed {
                if meta.cancel {
                    self.advance(r.wrapping_add(size));
                    skipped = true;
                    continue;
                }
                return Ok((
                    Found::Message {
                        payload: HEADER + (off + RECORD) as usize,
                        len: len as usize,
                        next: r.wrapping_add(size),
                    },
                    skipped,
                ));
            }
            if pos != reserved {
                return Err(self.corrupted(format!(
                    "the record at {r} has position word {:#x}",
                    pos ^ self.key
                )));
            }
            // Reserved and not committed yet: wait, unless its sender is gone.
            if mode == Look::Liveness && !alive(slot, u32::from(meta.generation)) {
                self.advance(r.wrapping_add(size));
                skipped = true;
                continue;
            }
            return Ok((Found::Nothing, skipped));
        }
        Err(self.corrupted("the ring keeps changing under the receiver"))
    }

    /// Frees the ring up to `to`.
    #[inline]
    pub(crate) fn advance(&self, to: u64) {
        // Release: everything read from the freed space happened before a
        // sender may reuse it.
        self.mem.u64(READ).store(to, Ordering::Release);
    }

    /// A side about to wait: announce how (`SLEEPER`: it sleeps on the
    /// word; `BELL`: ring its bell), then re-check before waiting. Bits of
    /// other waiters of the same side (several senders) are kept.
    #[inline]
    pub(crate) fn announce(&self, waiting: usize, how: u32) {
        self.mem.u32(waiting).fetch_or(how, Ordering::SeqCst);
        // Pairs with the fence in `must_wake`: either the publisher sees
        // the announcement or the re-check sees what it published.
        fence(Ordering::SeqCst);
    }

    /// After publishing: how the other side announced it waits (0: it
    /// does not); clears the announcement.
    #[inline]
    pub(crate) fn must_wake(&self, waiting: usize) -> u32 {
        // Pairs with the waiter's fence in `announce`.
        fence(Ordering::SeqCst);
        // Read first: the line stays shared while nobody waits, and only a
        // real waiter costs an exclusive swap.
        let word = self.mem.u32(waiting);
        if word.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        word.swap(0, Ordering::SeqCst)
    }
}
