//! Channels, senders and receivers over the ring: opening, peers and their
//! liveness, waiting and waking.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::ring::{
    round16, Found, Look, Mem, Reservation, Ring, CLOSED, FREE, HEADER, KEY, MAGIC, READ, RECORD,
    RESERVE, RX_STATE, RX_TOKEN, RX_WAITING, TAKEN, TX_EVER, TX_WAITING, VERSION,
};
use super::{ChannelOptions, WaitStrategy, MAX_SENDERS};
use crate::error::{Error, ErrorKind, Result};
use crate::section::{Access, Section};
use crate::share::Inheritable;
use crate::sync::deadline;
use crate::sys;
use crate::view::View;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How long one sleep lasts before liveness is checked again.
const NAP: Duration = Duration::from_millis(50);
/// Spins before parking, with `SpinThenPark`.
const SPINS: u32 = 2000;
/// The name errors of an anonymous channel carry.
const ANONYMOUS: &str = "(anonymous channel)";

/// Attempts at a busy reservation lock before waiting between them: a
/// holder keeps it for a few instructions.
const LOCK_SPINS: u32 = 128;
/// How often a sender waiting for the reservation lock asks whether its
/// holder lives.
const LOCK_CHECK: Duration = Duration::from_millis(1);

/// How sides sleep and are woken.
#[derive(Debug)]
enum Kernel {
    /// A shared futex on each side's waiting word: nothing outside the
    /// section.
    #[cfg(target_os = "linux")]
    InSection,
    /// Named auto-reset events (`BASE.rx`, `BASE.tx`); an anonymous
    /// channel's base is a random name.
    #[cfg(not(target_os = "linux"))]
    Named {
        rx: crate::sync::Event,
        tx: crate::sync::Event,
        base: String,
    },
}

/// A random word: std's randomly keyed hasher over this process and the
/// time (for position-word keys and anonymous channels' object names).
fn random_word() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(sys::process_token());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// A random name for the kernel objects of an anonymous channel.
#[cfg(not(target_os = "linux"))]
fn random_base() -> String {
    format!(
        "sections-channel-{:016x}{:016x}",
        random_word(),
        random_word()
    )
}

impl Kernel {
    #[cfg(target_os = "linux")]
    fn create(_opts: &ChannelOptions, _base: Option<&str>) -> Result<Kernel> {
        Ok(Kernel::InSection)
    }

    #[cfg(not(target_os = "linux"))]
    fn create(opts: &ChannelOptions, base: Option<&str>) -> Result<Kernel> {
        use crate::sync::Reset;
        let sync = Self::sync(opts, base.is_none());
        let base = base.map_or_else(random_base, str::to_owned);
        Ok(Kernel::Named {
            rx: sync.create_event(&format!("{base}.rx"), Reset::Auto, false)?,
            tx: sync.create_event(&format!("{base}.tx"), Reset::Auto, false)?,
            base,
        })
    }

    #[cfg(target_os = "linux")]
    fn open(_opts: &ChannelOptions, _base: Option<&str>, _anonymous: bool) -> Result<Kernel> {
        Ok(Kernel::InSection)
    }

    #[cfg(not(target_os = "linux"))]
    fn open(opts: &ChannelOptions, base: Option<&str>, anonymous: bool) -> Result<Kernel> {
        let base = base.ok_or_else(|| {
            Error::new(ErrorKind::InvalidName, "open channel")
                .with_detail("the token does not name the channel's events")
        })?;
        let sync = Self::sync(opts, anonymous);
        Ok(Kernel::Named {
            rx: sync.open_event(&format!("{base}.rx"))?,
            tx: sync.open_event(&format!("{base}.tx"))?,
            base: base.to_owned(),
        })
    }

    /// The objects of an anonymous channel are in the default namespace,
    /// so that a child finds them whatever its options say.
    #[cfg(not(target_os = "linux"))]
    fn sync(opts: &ChannelOptions, anonymous: bool) -> crate::sync::SyncOptions {
        if anonymous {
            crate::sync::SyncOptions::new()
        } else {
            opts.sync()
        }
    }

    /// What a child needs besides the section to open the same objects.
    fn base(&self) -> Option<&str> {
        match self {
            #[cfg(target_os = "linux")]
            Kernel::InSection => None,
            #[cfg(not(target_os = "linux"))]
            Kernel::Named { base, .. } => Some(base),
        }
    }
}

/// What every handle of a channel has: its ring and how to wait.
#[derive(Debug)]
struct Shared {
    ring: Ring,
    kernel: Kernel,
    wait: WaitStrategy,
}

/// Validates a channel's header; returns capacity and sender slots.
fn check_header(name: &str, view: &View) -> Result<(u64, u32)> {
    let size = view.len() as u64;
    if size < (HEADER + 64) as u64 {
        return Err(Error::new(ErrorKind::WrongKind, "open")
            .with_name(name)
            .with_detail("too small to be a channel"));
    }
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
    let bad = |what: String| super::corrupted(name, what);
    if version != VERSION {
        return Err(Error::new(ErrorKind::WrongVersion, "open")
            .with_name(name)
            .with_detail(format!(
                "a channel of layout version {version}, and this library speaks {VERSION}"
            )));
    }
    if capacity < 64 || capacity % RECORD != 0 || HEADER as u64 + capacity > size {
        return Err(bad(format!(
            "capacity {capacity} does not fit a {size}-byte section"
        )));
    }
    if senders == 0 || senders > MAX_SENDERS {
        return Err(bad(format!("{senders} sender slots")));
    }
    Ok((capacity, senders))
}

impl Shared {
    /// Maps `section` and checks that it is a channel.
    fn attach(
        opts: &ChannelOptions,
        name: &str,
        section: &Section,
        kernel: impl FnOnce() -> Result<Kernel>,
    ) -> Result<Shared> {
        let view = section.map_all(Access::ReadWrite)?;
        let (capacity, senders) = check_header(name, &view)?;
        // Every page of the ring mapped now, so that no message pays a
        // page fault (a failure here is memory that is not there).
        view.prefetch(0, view.len())?;
        let kernel = kernel()?;
        Ok(Shared {
            ring: Ring::new(Mem::new(view), name, capacity, senders),
            kernel,
            wait: opts.wait,
        })
    }

    #[inline]
    fn view(&self) -> &View {
        self.ring.mem.view()
    }

    /// Wakes the other side if it said it is going to sleep.
    #[inline]
    fn wake(&self, waiting: usize) -> Result<()> {
        if !self.ring.must_wake(waiting) {
            return Ok(());
        }
        match &self.kernel {
            #[cfg(target_os = "linux")]
            Kernel::InSection => {
                // Every waiter: several senders may wait for room.
                sys::sync::futex_wake(self.ring.mem.u32(waiting), i32::MAX as u32)
                    .map_err(|e| Error::os("wake", e).with_name(&self.ring.name))
            }
            #[cfg(not(target_os = "linux"))]
            Kernel::Named { rx, tx, .. } => {
                if waiting == RX_WAITING {
                    rx.set()
                } else {
                    tx.set()
                }
            }
        }
    }

    /// Sleeps until woken or `until`.
    #[inline]
    fn park(&self, waiting: usize, until: Instant) -> Result<()> {
        match &self.kernel {
            #[cfg(target_os = "linux")]
            Kernel::InSection => {
                // Sleeps only while the word still says "waiting": a wake
                // that cleared it first is never lost.
                sys::sync::futex_wait(self.ring.mem.u32(waiting), 1, Some(until))
                    .map_err(|e| Error::os("wait", e).with_name(&self.ring.name))
            }
            #[cfg(not(target_os = "linux"))]
            Kernel::Named { rx, tx, .. } => {
                let event = if waiting == RX_WAITING { rx } else { tx };
                event
                    .wait_timeout(until.saturating_duration_since(Instant::now()))
                    .map(drop)
            }
        }
    }

    /// Waits until `check` yields something, `deadline` passes (None), or
    /// it fails. `check` is told how closely to look: now and then, before
    /// sleeping and when the deadline passes, more than while spinning.
    fn wait_for<T>(
        &self,
        waiting: usize,
        deadline: Option<Instant>,
        mut check: impl FnMut(Look) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let mut spins = 0u32;
        loop {
            let mode = if spins % 1024 == 1023 {
                Look::Liveness
            } else {
                Look::Fast
            };
            if let Some(v) = check(mode)? {
                return Ok(Some(v));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // A last, closer look: damage and a closed peer show even
                // to `try_` calls.
                return check(Look::Reserve);
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
            self.ring.announce(waiting);
            if let Some(v) = check(Look::Liveness)? {
                return Ok(Some(v));
            }
            let nap = Instant::now() + NAP;
            self.park(waiting, deadline.map_or(nap, |d| d.min(nap)))?;
        }
    }
}

/// Bytes in use from the two positions (which a single sender's lag, or a
/// hostile peer, may leave in any order).
fn fill(reserve: u64, read: u64, capacity: u64) -> u64 {
    reserve.saturating_sub(read).min(capacity)
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

/// A channel's section (and, elsewhere than Linux, its events); keeps them
/// alive while it lives. Connect with [`ChannelOptions::open_sender`] and
/// [`ChannelOptions::open_receiver`] by name, or with
/// [`sender`](Self::sender) / [`receiver`](Self::receiver) from this handle,
/// or hand an anonymous one to a child with [`inheritable`](Self::inheritable).
#[derive(Debug)]
pub struct Channel {
    section: Section,
    shared: Shared,
    opts: ChannelOptions,
    anonymous: bool,
}

/// A channel made inheritable for child processes started while this
/// lives; pass [`token`](Self::token) to the child, which connects with
/// [`ChannelOptions::sender_from_token`] or
/// [`ChannelOptions::receiver_from_token`].
#[derive(Debug)]
pub struct InheritableChannel {
    _section: Inheritable,
    token: String,
}

impl InheritableChannel {
    /// What the child passes to `sender_from_token` / `receiver_from_token`.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Channel {
    /// Creates a channel: named (`Some(name)`) or anonymous.
    pub(crate) fn create(opts: &ChannelOptions, name: Option<&str>) -> Result<Channel> {
        const OP: &str = "create channel";
        let label = name.unwrap_or(ANONYMOUS);
        let capacity = round16(u64::from(opts.capacity.max(64)));
        if capacity > u64::from(u32::MAX) - HEADER as u64 {
            return Err(Error::new(ErrorKind::InvalidSize, OP)
                .with_name(label)
                .with_detail("capacity too large"));
        }
        if opts.senders == 0 || opts.senders > MAX_SENDERS {
            return Err(Error::new(ErrorKind::InvalidRange, OP)
                .with_name(label)
                .with_detail(format!("1 to {MAX_SENDERS} senders, not {}", opts.senders)));
        }
        let mut o = Section::options();
        o.namespace(&opts.namespace)
            .lifetime(opts.lifetime)
            .size(HEADER as u64 + capacity);
        let mut kernel = None;
        let mut init = |view: &View| -> Result<()> {
            let mut header = [0u8; 24];
            header[0..4].copy_from_slice(&VERSION.to_le_bytes());
            header[4..8].copy_from_slice(&(capacity as u32).to_le_bytes());
            header[8..12].copy_from_slice(&opts.senders.to_le_bytes());
            header[16..24].copy_from_slice(&random_word().to_le_bytes());
            view.write_at(8, &header)?;
            debug_assert_eq!(KEY, 24);
            kernel = Some(Kernel::create(opts, name)?);
            view.atomic_u64(0)?.store(MAGIC, Ordering::Release);
            Ok(())
        };
        // Linux publishes a named section only once it is initialised;
        // Windows cannot, so there the magic is written last and openers
        // wait for it.
        let section = match name {
            None => {
                let s = o.anonymous()?;
                init(&s.map_all(Access::ReadWrite)?)?;
                s
            }
            #[cfg(not(windows))]
            Some(name) => o.create_with(name, init)?,
            #[cfg(windows)]
            Some(name) => {
                let s = o.create(name)?;
                init(&s.map_all(Access::ReadWrite)?)?;
                s
            }
        };
        let kernel = kernel.expect("initialised with the section");
        let shared = Shared::attach(opts, label, &section, || Ok(kernel))?;
        Ok(Channel {
            section,
            shared,
            opts: opts.clone(),
            anonymous: name.is_none(),
        })
    }

    /// The ring size in bytes.
    pub fn capacity(&self) -> u64 {
        self.shared.ring.capacity
    }

    /// Bytes of the ring in use (messages not yet consumed).
    pub fn fill(&self) -> u64 {
        let mem = &self.shared.ring.mem;
        fill(
            mem.u64(RESERVE).load(Ordering::Acquire),
            mem.u64(READ).load(Ordering::Acquire),
            self.shared.ring.capacity,
        )
    }

    fn attach(&self) -> Result<Shared> {
        let base = self.shared.kernel.base().map(str::to_owned);
        Shared::attach(&self.opts, &self.shared.ring.name, &self.section, || {
            Kernel::open(&self.opts, base.as_deref(), self.anonymous)
        })
    }

    /// Connects a sender in this process.
    pub fn sender(&self) -> Result<Sender> {
        Sender::connect(self.attach()?)
    }

    /// Connects the receiver in this process.
    pub fn receiver(&self) -> Result<Receiver> {
        Receiver::connect(self.attach()?)
    }

    /// Makes the channel inheritable by child processes started while the
    /// returned value lives; the child connects with the token.
    pub fn inheritable(&self) -> Result<InheritableChannel> {
        let section = self.section.inheritable()?;
        let token = match self.shared.kernel.base() {
            Some(base) => format!("channel:{base}:{}", section.token()),
            None => format!("channel::{}", section.token()),
        };
        Ok(InheritableChannel {
            _section: section,
            token,
        })
    }
}

impl ChannelOptions {
    /// Adopts the channel a parent passed as `token` (see
    /// [`Channel::inheritable`]).
    fn adopt(&self, token: &str) -> Result<Shared> {
        let bad = || {
            Error::new(ErrorKind::InvalidName, "open channel")
                .with_detail(format!("'{token}' is not a channel token"))
        };
        let rest = token.strip_prefix("channel:").ok_or_else(bad)?;
        let (base, section) = rest.split_once(':').ok_or_else(bad)?;
        let base = (!base.is_empty()).then_some(base);
        let section = Section::from_token(section)?;
        Shared::attach(self, ANONYMOUS, &section, || Kernel::open(self, base, true))
    }

    /// Connects a sender to the channel a parent passed as `token`.
    pub fn sender_from_token(&self, token: &str) -> Result<Sender> {
        Sender::connect(self.adopt(token)?)
    }

    /// Connects the receiver to the channel a parent passed as `token`.
    pub fn receiver_from_token(&self, token: &str) -> Result<Receiver> {
        Receiver::connect(self.adopt(token)?)
    }

    fn open_named(&self, name: &str) -> Result<Shared> {
        let section = crate::section::Section::options()
            .namespace(&self.namespace)
            .access(Access::ReadWrite)
            .open(name)?;
        Shared::attach(self, name, &section, || {
            Kernel::open(self, Some(name), false)
        })
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
    read: Cell<u64>,
}

impl Sender {
    pub(crate) fn open(opts: &ChannelOptions, name: &str) -> Result<Sender> {
        Sender::connect(opts.open_named(name)?)
    }

    fn connect(shared: Shared) -> Result<Sender> {
        let ring = &shared.ring;
        let token = sys::process_token();
        for slot in 0..ring.senders {
            if claim(ring.slot_state(slot), ring.slot_token(slot), token, &[FREE]) {
                let generation = ring
                    .slot_generation(slot)
                    .fetch_add(1, Ordering::AcqRel)
                    .wrapping_add(1);
                ring.mem.u32(TX_EVER).store(1, Ordering::Release);
                // A single sender that left between committing and
                // publishing left its record behind `reserve`.
                if let Err(e) = ring.repair_reserve() {
                    ring.slot_state(slot).store(FREE, Ordering::Release);
                    return Err(e);
                }
                return Ok(Sender {
                    shared,
                    slot,
                    generation,
                    read: Cell::new(0),
                });
            }
        }
        Err(Error::new(ErrorKind::AlreadyExists, "open sender")
            .with_name(&ring.name)
            .with_detail(format!("all {} sender slots are in use", ring.senders)))
    }

    /// Whether the receiver is gone: closed, or (`Look::Liveness`) its
    /// process ended. `Look::Fast` does not look.
    #[inline]
    fn receiver_gone(&self, mode: Look) -> bool {
        let mem = &self.shared.ring.mem;
        if mode == Look::Fast {
            return false;
        }
        match mem.u32(RX_STATE).load(Ordering::Acquire) {
            CLOSED => true,
            TAKEN if mode == Look::Liveness => {
                !sys::process_alive(mem.u64(RX_TOKEN).load(Ordering::Acquire))
            }
            _ => false,
        }
    }

    /// Whether sender `slot` of `generation` is connected in a live
    /// process (for the reservation lock and for skipping its records).
    fn sender_alive(ring: &Ring, slot: u32, generation: u32) -> bool {
        ring.slot_generation(slot).load(Ordering::Acquire) & 0xffff == generation & 0xffff
            && peer_alive(
                ring.slot_state(slot).load(Ordering::Acquire),
                ring.slot_token(slot).load(Ordering::Acquire),
            )
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
        let alive = |slot: u32, generation: u32| Self::sender_alive(ring, slot, generation);
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
                return Ok(false);
            }
            if check_holder {
                checked = now;
                if self.receiver_gone(Look::Liveness) {
                    return Err(ring
                        .err(ErrorKind::Disconnected, "send")
                        .with_detail("the receiver is gone"));
                }
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
        result
    }

    #[inline]
    fn loan_until(&mut self, len: usize, deadline: Option<Instant>) -> Result<Option<Loan<'_>>> {
        let this = &*self;
        let shared = &this.shared;
        let reserved = shared.wait_for(TX_WAITING, deadline, |mode| {
            if this.receiver_gone(mode) {
                return Err(shared
                    .ring
                    .err(ErrorKind::Disconnected, "send")
                    .with_detail("the receiver is gone"));
            }
            this.reserve(len, deadline)
        })?;
        Ok(reserved.map(|res| Loan {
            sender: self,
            res,
            done: false,
        }))
    }

    /// A writable slot of `len` bytes in the ring, waiting for room.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let loan = self.loan_until(len, None)?;
        Ok(loan.expect("an untimed wait does not time out"))
    }

    /// A slot if there is room now; `Full` otherwise.
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        let name = self.shared.ring.name.clone();
        self.loan_until(len, Some(Instant::now()))?
            .ok_or_else(|| Error::new(ErrorKind::Full, "send").with_name(&name))
    }

    /// A slot, waiting at most `timeout`; `TimedOut` otherwise.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        let name = self.shared.ring.name.clone();
        self.loan_until(len, Some(deadline(timeout)))?
            .ok_or_else(|| Error::new(ErrorKind::TimedOut, "send").with_name(&name))
    }

    /// Copies `data` into the ring and sends it, waiting for room.
    #[inline]
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        let loan = self.loan(data.len())?;
        loan.fill_and_send(data)
    }

    /// Sends if there is room now; `Full` otherwise.
    #[inline]
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
    #[inline]
    fn drop(&mut self) {
        let s = &self.shared;
        s.ring.slot_state(self.slot).store(FREE, Ordering::Release);
        // The receiver may be waiting to learn that every sender is gone.
        let _ = s.wake(RX_WAITING);
    }
}

/// A slot in the ring being written; [`send`](Self::send) publishes it,
/// dropping it unsent cancels it.
#[derive(Debug)]
pub struct Loan<'a> {
    sender: &'a mut Sender,
    res: Reservation,
    done: bool,
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
    #[inline]
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        let ring = &self.sender.shared.ring;
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end as u64 > self.res.len)
        {
            return Err(ring
                .err(ErrorKind::InvalidRange, "write")
                .with_detail(format!(
                    "{} bytes at {offset} in a {}-byte message",
                    data.len(),
                    self.res.len
                )));
        }
        ring.mem.write(ring.payload(&self.res) + offset, data)
    }

    /// The message's bytes, to write in place.
    ///
    /// # Safety
    /// The protocol gives these bytes to this loan alone; a peer that
    /// breaks it (a buggy or hostile process writing the ring) must not
    /// touch them while the borrow lives.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let shared = &self.sender.shared;
        let at = shared.ring.payload(&self.res);
        // SAFETY: in bounds of the live view (checked at reservation);
        // exclusivity per the contract and the protocol.
        unsafe { std::slice::from_raw_parts_mut(shared.view().as_mut_ptr().add(at), self.len()) }
    }

    #[inline]
    fn fill_and_send(mut self, data: &[u8]) -> Result<()> {
        self.write_at(0, data)?;
        self.send();
        Ok(())
    }

    #[inline]
    fn commit(&mut self, cancel: bool) {
        let s = &self.sender.shared;
        s.ring
            .commit(&self.res, self.sender.slot, self.sender.generation, cancel);
        self.done = true;
        let _ = s.wake(RX_WAITING);
    }

    /// Publishes the message.
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

/// The receiver; one per channel at a time.
#[derive(Debug)]
pub struct Receiver {
    shared: Shared,
}

impl Receiver {
    pub(crate) fn open(opts: &ChannelOptions, name: &str) -> Result<Receiver> {
        Receiver::connect(opts.open_named(name)?)
    }

    fn connect(shared: Shared) -> Result<Receiver> {
        let mem = &shared.ring.mem;
        let token = sys::process_token();
        if !claim(mem.u32(RX_STATE), mem.u64(RX_TOKEN), token, &[FREE, CLOSED]) {
            return Err(Error::new(ErrorKind::AlreadyExists, "open receiver")
                .with_name(&shared.ring.name)
                .with_detail("the channel already has a live receiver"));
        }
        Ok(Receiver { shared })
    }

    /// Looks for a message; wakes waiting senders if records were skipped.
    #[inline]
    fn look(&self, mode: Look) -> Result<Option<(usize, usize, u64)>> {
        let ring = &self.shared.ring;
        let alive = |slot: u32, generation: u32| Sender::sender_alive(ring, slot, generation);
        // Connected senders; with `Look::Liveness` only those whose
        // process still runs (a /proc read each, so not on every look).
        let senders_alive = || {
            (0..ring.senders).any(|i| {
                let state = ring.slot_state(i).load(Ordering::Acquire);
                if mode == Look::Liveness {
                    peer_alive(state, ring.slot_token(i).load(Ordering::Acquire))
                } else {
                    state == TAKEN
                }
            })
        };
        let (found, skipped) = ring.look(mode, &alive, &senders_alive)?;
        if skipped {
            // Room was freed: a sender may be waiting for it.
            self.shared.wake(TX_WAITING)?;
        }
        Ok(match found {
            Found::Message { payload, len, next } => Some((payload, len, next)),
            Found::Nothing => None,
        })
    }

    #[inline]
    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<Message<'_>>> {
        let found = self
            .shared
            .wait_for(RX_WAITING, deadline, |mode| self.look(mode))?;
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
        s.ring.mem.u32(RX_STATE).store(CLOSED, Ordering::Release);
        let _ = s.wake(TX_WAITING);
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
        let shared = &self.receiver.shared;
        shared.ring.advance(self.next);
        let _ = shared.wake(TX_WAITING);
    }
}

/// What the first bytes of an entry say, if it is a channel (for listings;
/// the bytes are untrusted and only reported).
#[cfg(target_os = "linux")]
pub(crate) fn describe(head: &[u8]) -> Option<crate::name::ObjectState> {
    use super::ring::{SLOTS, SLOT_SIZE};
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
        fill: fill(u64_at(RESERVE), u64_at(READ), capacity),
        senders,
        receiver: peer_alive(u32_at(RX_STATE), u64_at(RX_TOKEN)),
    })
}
