//! The ring, its peers and the waiting; the protocol is described in the
//! module docs of [`crate::channel`].

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{corrupted, ChannelOptions, WaitStrategy, MAX_SENDERS};
use crate::error::{Error, ErrorKind, Result};
use crate::section::{Access, Section};
use crate::sync::deadline;
use crate::sync::{Event, Mutex, Reset};
use crate::sys;
use crate::view::View;

const MAGIC: u64 = u64::from_le_bytes(*b"SECTCHAN");
const VERSION: u32 = 1;
const HEADER: usize = 512;
const READ: usize = 64;
/// Sleepers announce themselves on a line of their own: it is read on
/// every publish and written only by a side about to park.
const RX_WAITING: usize = 448;
const RX_STATE: usize = 76;
const RX_TOKEN: usize = 80;
const RESERVE: usize = 128;
const TX_WAITING: usize = 452;
const TX_EVER: usize = 140;
const SLOTS: usize = 192;
const SLOT_SIZE: usize = 16;

const RECORD: u64 = 16;
const RESERVED: u64 = 1 << 63;
/// Marks a committed pos word (so zeroed memory never reads as a record).
const COMMITTED: u64 = 1 << 62;
const PAD: u64 = 1 << 32;
const CANCEL: u64 = 1 << 33;

const FREE: u32 = 0;
const TAKEN: u32 = 1;
const CLOSED: u32 = 2;

/// How long one sleep lasts before liveness is checked again.
const NAP: Duration = Duration::from_millis(50);
/// Spins before parking, with `SpinThenPark`.
const SPINS: u32 = 2000;

fn round16(n: u64) -> u64 {
    n.div_ceil(RECORD) * RECORD
}

/// What a channel's section and its events are, shared by every handle.
#[derive(Debug)]
struct Shared {
    name: String,
    view: View,
    capacity: u64,
    senders: u32,
    rx_event: Event,
    tx_event: Event,
    reserve_lock: Option<Mutex>,
    wait: WaitStrategy,
}

impl Shared {
    fn word32(&self, at: usize) -> &AtomicU32 {
        self.view
            .atomic_u32(at)
            .expect("an aligned offset inside the checked header")
    }

    fn word64(&self, at: usize) -> &AtomicU64 {
        self.view
            .atomic_u64(at)
            .expect("an aligned offset inside the checked header")
    }

    fn slot_state(&self, i: u32) -> &AtomicU32 {
        self.word32(SLOTS + i as usize * SLOT_SIZE)
    }

    fn slot_generation(&self, i: u32) -> &AtomicU32 {
        self.word32(SLOTS + i as usize * SLOT_SIZE + 4)
    }

    fn slot_token(&self, i: u32) -> &AtomicU64 {
        self.word64(SLOTS + i as usize * SLOT_SIZE + 8)
    }

    /// The header words of the record at ring offset `off` (a multiple of
    /// 16 below the capacity, so both words are inside the ring).
    fn record(&self, off: u64) -> (&AtomicU64, &AtomicU64) {
        let at = HEADER + off as usize;
        (self.word64(at), self.word64(at + 8))
    }

    fn corrupted(&self, what: impl Into<String>) -> Error {
        corrupted(&self.name, what)
    }

    fn err(&self, kind: ErrorKind, op: &'static str) -> Error {
        Error::new(kind, op).with_name(&self.name)
    }

    /// Wakes the other side if it said it is going to sleep.
    fn wake(&self, waiting: usize, event: &Event) -> Result<()> {
        // Pairs with the SeqCst fence of the sleeper between announcing
        // itself and re-checking: one of the two sees the other.
        fence(Ordering::SeqCst);
        // Read first: the line stays shared while nobody sleeps, and only a
        // real sleeper costs an exclusive swap.
        let word = self.word32(waiting);
        if word.load(Ordering::SeqCst) != 0 && word.swap(0, Ordering::SeqCst) != 0 {
            event.set()?;
        }
        Ok(())
    }

    /// Waits until `check` yields something, `deadline` passes (None), or
    /// it fails. `check(true)` may also look at peer liveness (slower).
    fn wait_for<T>(
        &self,
        waiting: usize,
        event: &Event,
        deadline: Option<Instant>,
        mut check: impl FnMut(bool) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let mut spins = 0u32;
        loop {
            let thorough = spins % 1024 == 1023;
            if let Some(v) = check(thorough)? {
                return Ok(Some(v));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            let spin = match self.wait {
                WaitStrategy::Spin => true,
                WaitStrategy::SpinThenPark => spins < SPINS,
                WaitStrategy::Park => false,
            };
            if spin {
                // A short, growing pause between looks.
                for _ in 0..(1 << (spins / 256).min(6)) {
                    std::hint::spin_loop();
                }
                spins = spins.wrapping_add(1);
                continue;
            }
            // Announce, re-check (with the liveness checks), then sleep.
            self.word32(waiting).store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if let Some(v) = check(true)? {
                return Ok(Some(v));
            }
            let nap = deadline.map_or(NAP, |d| {
                d.saturating_duration_since(Instant::now()).min(NAP)
            });
            event.wait_timeout(nap)?;
        }
    }

    fn open(opts: &ChannelOptions, name: &str) -> Result<Shared> {
        let section = Section::options()
            .namespace(&opts.namespace)
            .access(Access::ReadWrite)
            .open(name)?;
        let size = section.size()?;
        if size < (HEADER + 64) as u64 {
            return Err(Error::new(ErrorKind::WrongKind, "open")
                .with_name(name)
                .with_detail("too small to be a channel"));
        }
        let view = section.map_all(Access::ReadWrite)?;
        let magic = view.atomic_u64(0)?;
        // A channel being made on Windows has its magic written last.
        let waited = Instant::now();
        while magic.load(Ordering::Acquire) == 0 && waited.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::new(ErrorKind::WrongKind, "open")
                .with_name(name)
                .with_detail("not a channel"));
        }
        let mut header = [0u8; 16];
        view.read_at(8, &mut header)?;
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let (version, capacity, senders) = (word(0), u64::from(word(4)), word(8));
        let name_err = |what: String| corrupted(name, what);
        if version != VERSION {
            return Err(name_err(format!(
                "channel version {version}, not {VERSION}"
            )));
        }
        if capacity < 64 || capacity % RECORD != 0 || HEADER as u64 + capacity > size {
            return Err(name_err(format!(
                "capacity {capacity} does not fit a {size}-byte section"
            )));
        }
        if senders == 0 || senders > MAX_SENDERS {
            return Err(name_err(format!("{senders} sender slots")));
        }
        let sync = opts.sync();
        let rx_event = sync.open_event(&format!("{name}.rx"))?;
        let tx_event = sync.open_event(&format!("{name}.tx"))?;
        let reserve_lock = if senders > 1 {
            Some(sync.open_mutex(&format!("{name}.reserve"))?)
        } else {
            None
        };
        Ok(Shared {
            name: name.to_owned(),
            view,
            capacity,
            senders,
            rx_event,
            tx_event,
            reserve_lock,
            wait: opts.wait,
        })
    }
}

/// Takes a peer slot for the process `token` names: a slot in one of the
/// `reusable` states, or one whose process is gone.
fn claim(state: &AtomicU32, owner: &AtomicU64, token: u64, reusable: &[u32]) -> bool {
    let taken = reusable.iter().any(|&from| {
        state
            .compare_exchange(from, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    });
    let taken = taken || {
        let old = owner.load(Ordering::Acquire);
        !sys::process_alive(old)
            && owner
                .compare_exchange(old, token, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    };
    if taken {
        owner.store(token, Ordering::Release);
    }
    taken
}

/// Whether a peer slot is held by a running process.
fn peer_alive(state: u32, token: u64) -> bool {
    state == TAKEN && sys::process_alive(token)
}

/// A channel's name and memory; keeps them alive while it lives.
#[derive(Debug)]
pub struct Channel {
    shared: Shared,
}

impl Channel {
    pub(crate) fn create(opts: &ChannelOptions, name: &str) -> Result<Channel> {
        const OP: &str = "create channel";
        let capacity = round16(u64::from(opts.capacity.max(64)));
        if capacity > u64::from(u32::MAX) - HEADER as u64 {
            return Err(Error::new(ErrorKind::InvalidSize, OP)
                .with_name(name)
                .with_detail("capacity too large"));
        }
        if opts.senders == 0 || opts.senders > MAX_SENDERS {
            return Err(Error::new(ErrorKind::InvalidRange, OP)
                .with_name(name)
                .with_detail(format!("1 to {MAX_SENDERS} senders, not {}", opts.senders)));
        }
        // The events (and lock) first: whoever finds the section finds them.
        let sync = opts.sync();
        let rx_event = sync.create_event(&format!("{name}.rx"), Reset::Auto, false)?;
        let tx_event = sync.create_event(&format!("{name}.tx"), Reset::Auto, false)?;
        let reserve_lock = if opts.senders > 1 {
            Some(sync.create_mutex(&format!("{name}.reserve"))?)
        } else {
            None
        };
        let mut o = Section::options();
        o.namespace(&opts.namespace)
            .lifetime(opts.lifetime)
            .size(HEADER as u64 + capacity);
        let init = |view: &View| -> Result<()> {
            let mut header = [0u8; 16];
            header[0..4].copy_from_slice(&VERSION.to_le_bytes());
            header[4..8].copy_from_slice(&(capacity as u32).to_le_bytes());
            header[8..12].copy_from_slice(&opts.senders.to_le_bytes());
            view.write_at(8, &header)?;
            view.atomic_u64(0)?.store(MAGIC, Ordering::Release);
            Ok(())
        };
        // Linux publishes the section only once it is initialised; Windows
        // cannot, so there the magic is written last and openers wait for it.
        #[cfg(not(windows))]
        let section = o.create_with(name, init)?;
        #[cfg(windows)]
        let section = {
            let s = o.create(name)?;
            init(&s.map_all(Access::ReadWrite)?)?;
            s
        };
        let view = section.map_all(Access::ReadWrite)?;
        Ok(Channel {
            shared: Shared {
                name: name.to_owned(),
                view,
                capacity,
                senders: opts.senders,
                rx_event,
                tx_event,
                reserve_lock,
                wait: opts.wait,
            },
        })
    }

    /// The ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.shared.capacity
    }

    /// Bytes of the ring in use (messages not yet consumed).
    pub fn fill(&self) -> u64 {
        let w = self.shared.word64(RESERVE).load(Ordering::Acquire);
        let r = self.shared.word64(READ).load(Ordering::Acquire);
        w.saturating_sub(r).min(self.shared.capacity)
    }
}

/// One sender. Several may be connected if the channel was created for
/// several (`ChannelOptions::senders`); each keeps its own order.
#[derive(Debug)]
pub struct Sender {
    shared: Shared,
    slot: u32,
    generation: u32,
    /// The read position last seen: reloaded only when the ring looks full
    /// with it, so most sends never touch the receiver's line.
    read: std::cell::Cell<u64>,
}

impl Sender {
    pub(crate) fn open(opts: &ChannelOptions, name: &str) -> Result<Sender> {
        let shared = Shared::open(opts, name)?;
        let token = sys::process_token();
        for slot in 0..shared.senders {
            let claimed = claim(
                shared.slot_state(slot),
                shared.slot_token(slot),
                token,
                &[FREE],
            );
            if claimed {
                let generation = shared
                    .slot_generation(slot)
                    .fetch_add(1, Ordering::AcqRel)
                    .wrapping_add(1);
                shared.word32(TX_EVER).store(1, Ordering::Release);
                return Ok(Sender {
                    shared,
                    slot,
                    generation,
                    read: std::cell::Cell::new(0),
                });
            }
        }
        Err(Error::new(ErrorKind::AlreadyExists, "open sender")
            .with_name(name)
            .with_detail(format!("all {} sender slots are in use", shared.senders)))
    }

    /// Whether the receiver is gone: closed (cheap), or, when `thorough`,
    /// its process ended without closing.
    fn receiver_gone(&self, thorough: bool) -> bool {
        let s = &self.shared;
        // Only now and then: the state shares the receiver's busiest line.
        if !thorough {
            return false;
        }
        match s.word32(RX_STATE).load(Ordering::Acquire) {
            CLOSED => true,
            TAKEN => !sys::process_alive(s.word64(RX_TOKEN).load(Ordering::Acquire)),
            _ => false,
        }
    }

    /// Tries to reserve room for `len` bytes; `None` when full.
    fn reserve(&self, len: usize) -> Result<Option<(u64, u64)>> {
        let s = &self.shared;
        let need = RECORD + round16(len as u64);
        if need > s.capacity {
            return Err(s.err(ErrorKind::InvalidSize, "send").with_detail(format!(
                "a {len}-byte message cannot fit a {}-byte ring",
                s.capacity
            )));
        }
        let _guard = match &s.reserve_lock {
            Some(lock) => Some(lock.lock()?.into_guard()),
            None => None,
        };
        let pos = s.word64(RESERVE).load(Ordering::Acquire);
        if pos % RECORD != 0 {
            return Err(s.corrupted(format!("reserve {pos} is not a record boundary")));
        }
        let off = pos % s.capacity;
        let pad = if off + need > s.capacity {
            s.capacity - off
        } else {
            0
        };
        let fits = |read: u64| {
            pos >= read
                && pos
                    .checked_add(pad + need)
                    .is_some_and(|end| end - read <= s.capacity)
        };
        if !fits(self.read.get()) {
            let read = s.word64(READ).load(Ordering::Acquire);
            if pos < read || pos - read > s.capacity {
                return Err(s.corrupted(format!("reserve {pos} and read {read} are inconsistent")));
            }
            self.read.set(read);
            if !fits(read) {
                return Ok(None);
            }
        }
        if pad > 0 {
            let (len_word, pos_word) = s.record(off);
            len_word.store((pad - RECORD) | PAD, Ordering::Relaxed);
            pos_word.store(pos | COMMITTED, Ordering::Release);
        }
        let at = pos + pad;
        let (len_word, pos_word) = s.record(at % s.capacity);
        let meta = (len as u64)
            | (u64::from(self.slot) << 40)
            | (u64::from(self.generation & 0xffff) << 48);
        len_word.store(meta, Ordering::Relaxed);
        pos_word.store(at | RESERVED, Ordering::Relaxed);
        // Release: the headers above are visible to whoever sees `reserve`.
        s.word64(RESERVE).store(at + need, Ordering::Release);
        Ok(Some((at, len as u64)))
    }

    fn loan_until(&mut self, len: usize, deadline: Option<Instant>) -> Result<Option<Loan<'_>>> {
        let this = &*self;
        let shared = &this.shared;
        let reserved = shared.wait_for(TX_WAITING, &shared.tx_event, deadline, |thorough| {
            if this.receiver_gone(thorough) {
                return Err(shared
                    .err(ErrorKind::Disconnected, "send")
                    .with_detail("the receiver is gone"));
            }
            this.reserve(len)
        })?;
        Ok(reserved.map(|(at, len)| Loan {
            sender: self,
            at,
            len: len as usize,
            done: false,
        }))
    }

    /// A writable slot of `len` bytes in the ring, waiting for room.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let loan = self.loan_until(len, None)?;
        Ok(loan.expect("an untimed wait does not time out"))
    }

    /// A slot if there is room now; `Full` otherwise.
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let name = self.shared.name.clone();
        self.loan_until(len, Some(Instant::now()))?
            .ok_or_else(|| Error::new(ErrorKind::Full, "send").with_name(&name))
    }

    /// A slot, waiting at most `timeout`; `TimedOut` otherwise.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        let name = self.shared.name.clone();
        self.loan_until(len, Some(deadline(timeout)))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "send").with_name(&name))
    }

    /// Copies `data` into the ring and sends it, waiting for room.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        let loan = self.loan(data.len())?;
        loan.fill_and_send(data)
    }

    /// Sends if there is room now; `Full` otherwise.
    pub fn try_send(&mut self, data: &[u8]) -> Result<()> {
        let loan = self.try_loan(data.len())?;
        loan.fill_and_send(data)
    }

    /// Sends, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        let loan = self.loan_timeout(data.len(), timeout)?;
        loan.fill_and_send(data)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let s = &self.shared;
        s.slot_state(self.slot).store(FREE, Ordering::Release);
        // The receiver may be waiting to learn that every sender is gone.
        let _ = s.wake(RX_WAITING, &s.rx_event);
    }
}

/// A slot in the ring being written; [`send`](Self::send) publishes it,
/// dropping it unsent cancels it.
#[derive(Debug)]
pub struct Loan<'a> {
    sender: &'a mut Sender,
    at: u64,
    len: usize,
    done: bool,
}

impl Loan<'_> {
    fn payload(&self) -> usize {
        HEADER + (self.at % self.sender.shared.capacity) as usize + RECORD as usize
    }

    /// The message length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` into the message at `offset`.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(self
                .sender
                .shared
                .err(ErrorKind::InvalidRange, "write")
                .with_detail(format!(
                    "{} bytes at {offset} in a {}-byte message",
                    data.len(),
                    self.len
                )));
        }
        self.sender
            .shared
            .view
            .write_at(self.payload() + offset, data)
    }

    /// The message's bytes, to write in place.
    ///
    /// # Safety
    /// The protocol gives these bytes to this loan alone; a peer that
    /// breaks it (a buggy or hostile process writing the ring) must not
    /// touch them while the borrow lives.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let at = self.payload();
        // SAFETY: in bounds of the live view (checked at reservation);
        // exclusivity per the contract and the protocol.
        unsafe {
            std::slice::from_raw_parts_mut(self.sender.shared.view.as_mut_ptr().add(at), self.len)
        }
    }

    fn fill_and_send(mut self, data: &[u8]) -> Result<()> {
        self.write_at(0, data)?;
        self.send();
        Ok(())
    }

    fn commit(&mut self, cancel: bool) {
        let s = &self.sender.shared;
        let (len_word, pos_word) = s.record(self.at % s.capacity);
        if cancel {
            len_word.fetch_or(CANCEL, Ordering::Relaxed);
        }
        // Release: the payload (and a cancel mark) before the commit.
        pos_word.store(self.at | COMMITTED, Ordering::Release);
        self.done = true;
        let _ = s.wake(RX_WAITING, &s.rx_event);
    }

    /// Publishes the message.
    pub fn send(mut self) {
        self.commit(false);
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.commit(true);
        }
    }
}

/// The receiver; one per channel at a time.
#[derive(Debug)]
pub struct Receiver {
    shared: Shared,
}

/// What the receiver found at its read position.
enum Found {
    Message {
        payload: usize,
        len: usize,
        next: u64,
    },
    Nothing,
}

impl Receiver {
    pub(crate) fn open(opts: &ChannelOptions, name: &str) -> Result<Receiver> {
        let shared = Shared::open(opts, name)?;
        let token = sys::process_token();
        let claimed = claim(
            shared.word32(RX_STATE),
            shared.word64(RX_TOKEN),
            token,
            &[FREE, CLOSED],
        );
        if !claimed {
            return Err(Error::new(ErrorKind::AlreadyExists, "open receiver")
                .with_name(name)
                .with_detail("the channel already has a live receiver"));
        }
        Ok(Receiver { shared })
    }

    /// Whether any sender could still send.
    fn senders_alive(&self) -> bool {
        let s = &self.shared;
        (0..s.senders).any(|i| {
            peer_alive(
                s.slot_state(i).load(Ordering::Acquire),
                s.slot_token(i).load(Ordering::Acquire),
            )
        })
    }

    /// Looks at the read position, skipping padding, cancelled records and
    /// records whose sender died before committing them.
    fn look(&self, thorough: bool) -> Result<Found> {
        let s = &self.shared;
        let cap = s.capacity;
        loop {
            let r = s.word64(READ).load(Ordering::Relaxed);
            if r % RECORD != 0 {
                return Err(s.corrupted(format!("read {r} is not a record boundary")));
            }
            let off = r % cap;
            let (len_word, pos_word) = s.record(off);
            let mut pos = pos_word.load(Ordering::Acquire);
            // A committed record at the read position says everything about
            // itself (its 64-bit position cannot be left from an earlier
            // lap); only without one is the sender's `reserve` line read.
            let w = if pos == r | COMMITTED {
                None
            } else {
                let w = s.word64(RESERVE).load(Ordering::Acquire);
                if w == r {
                    let ever = s.word32(TX_EVER).load(Ordering::Acquire) != 0;
                    if thorough
                        && ever
                        && !self.senders_alive()
                        && s.word64(RESERVE).load(Ordering::Acquire) == r
                    {
                        return Err(s
                            .err(ErrorKind::Disconnected, "receive")
                            .with_detail("every sender is gone"));
                    }
                    return Ok(Found::Nothing);
                }
                if w < r || w - r > cap {
                    return Err(s.corrupted(format!("read {r} and reserve {w} are inconsistent")));
                }
                // The header was written before `reserve` was published:
                // read it again now that the Acquire above covers it.
                pos = pos_word.load(Ordering::Acquire);
                Some(w)
            };
            let meta = len_word.load(Ordering::Relaxed);
            let len = meta & 0xffff_ffff;
            if meta & PAD != 0 {
                // A padding record is committed before `reserve` moves past
                // it; wait until it has.
                let end = r + (cap - off);
                if w.is_none() && s.word64(RESERVE).load(Ordering::Acquire) < end {
                    return Ok(Found::Nothing);
                }
                if pos != r | COMMITTED || len + RECORD != cap - off {
                    return Err(
                        s.corrupted(format!("a padding record at {r} does not end the ring"))
                    );
                }
                self.advance(r + cap - off)?;
                continue;
            }
            let size = RECORD + round16(len);
            let slot = ((meta >> 40) & 0xff) as u32;
            if off + size > cap || w.is_some_and(|w| r + size > w) || slot >= s.senders {
                return Err(s.corrupted(format!(
                    "a record at {r} claims {len} bytes from sender {slot}"
                )));
            }
            if pos == r | COMMITTED {
                if meta & CANCEL != 0 {
                    self.advance(r + size)?;
                    continue;
                }
                return Ok(Found::Message {
                    payload: HEADER + (off + RECORD) as usize,
                    len: len as usize,
                    next: r + size,
                });
            }
            if pos != r | RESERVED {
                return Err(s.corrupted(format!("the record at {r} has position word {pos:#x}")));
            }
            // Reserved and not committed yet: wait, unless its sender is gone.
            if thorough {
                let generation = ((meta >> 48) & 0xffff) as u32;
                let live = s.slot_generation(slot).load(Ordering::Acquire) & 0xffff == generation
                    && peer_alive(
                        s.slot_state(slot).load(Ordering::Acquire),
                        s.slot_token(slot).load(Ordering::Acquire),
                    );
                if !live {
                    self.advance(r + size)?;
                    continue;
                }
            }
            return Ok(Found::Nothing);
        }
    }

    fn advance(&self, to: u64) -> Result<()> {
        let s = &self.shared;
        // Release: everything read from the freed space happened before a
        // sender may reuse it.
        s.word64(READ).store(to, Ordering::Release);
        s.wake(TX_WAITING, &s.tx_event)
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Message<'_>>> {
        let found =
            self.shared
                .wait_for(RX_WAITING, &self.shared.rx_event, deadline, |thorough| {
                    Ok(match self.look(thorough)? {
                        Found::Message { payload, len, next } => Some((payload, len, next)),
                        Found::Nothing => None,
                    })
                })?;
        Ok(found.map(|(payload, len, next)| Message {
            receiver: self,
            payload,
            len,
            next,
        }))
    }

    /// The next message, waiting for one; `Disconnected` once every sender
    /// is gone and everything they sent has been received.
    pub fn recv(&mut self) -> Result<Message<'_>> {
        Ok(self
            .recv_until(None)?
            .expect("an untimed wait does not time out"))
    }

    /// The next message if there is one now; `Empty` otherwise.
    pub fn try_recv(&mut self) -> Result<Message<'_>> {
        let name = self.shared.name.clone();
        self.recv_until(Some(Instant::now()))?
            .ok_or_else(|| Error::new(ErrorKind::Empty, "receive").with_name(&name))
    }

    /// The next message, waiting at most `timeout`; `TimedOut` otherwise.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<'_>> {
        let name = self.shared.name.clone();
        self.recv_until(Some(deadline(timeout)))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "receive").with_name(&name))
    }

    /// Receives the next message into `buf` (replacing its contents).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let message = self.recv()?;
        buf.clear();
        buf.resize(message.len(), 0);
        message.copy_to(buf)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let s = &self.shared;
        s.word32(RX_STATE).store(CLOSED, Ordering::Release);
        let _ = s.wake(TX_WAITING, &s.tx_event);
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
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the message into `buf`, which must be exactly as long.
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() != self.len {
            return Err(self
                .receiver
                .shared
                .err(ErrorKind::InvalidRange, "receive")
                .with_detail(format!(
                    "a {}-byte buffer for a {}-byte message",
                    buf.len(),
                    self.len
                )));
        }
        self.receiver.shared.view.read_at(self.payload, buf)
    }

    /// Copies `buf.len()` bytes of the message at `offset` into `buf`.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(self
                .receiver
                .shared
                .err(ErrorKind::InvalidRange, "receive")
                .with_detail(format!(
                    "{} bytes at {offset} of a {}-byte message",
                    buf.len(),
                    self.len
                )));
        }
        self.receiver
            .shared
            .view
            .read_at(self.payload + offset, buf)
    }

    /// The message as a vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.len];
        // The range was validated when the message was found.
        let _ = self.receiver.shared.view.read_at(self.payload, &mut buf);
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
            std::slice::from_raw_parts(
                self.receiver.shared.view.as_ptr().add(self.payload),
                self.len,
            )
        }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        let _ = self.receiver.advance(self.next);
    }
}

/// What the first bytes of an entry say, if it is a channel (for listings;
/// the bytes are untrusted and only reported).
#[cfg(target_os = "linux")]
pub(crate) fn describe(head: &[u8]) -> Option<crate::name::ObjectState> {
    if head.len() < HEADER || u64::from_le_bytes(head[0..8].try_into().ok()?) != MAGIC {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    let capacity = u64::from(u32_at(12));
    let slots = u32_at(16).min(MAX_SENDERS);
    let senders = (0..slots)
        .filter(|&i| {
            let at = SLOTS + i as usize * SLOT_SIZE;
            peer_alive(u32_at(at), u64_at(at + 8))
        })
        .count() as u32;
    Some(crate::name::ObjectState::Channel {
        capacity,
        fill: u64_at(RESERVE).saturating_sub(u64_at(READ)).min(capacity),
        senders,
        receiver: peer_alive(u32_at(RX_STATE), u64_at(RX_TOKEN)),
    })
}
