//! A channel's section and how to connect to it: creating (named or
//! anonymous), opening by name or by an inherited token, checking the
//! header, and what a listing may say about it.

use std::time::{Duration, Instant};

use super::layout::{
    CAPACITY, HEADER, KEY, MAGIC, READ, RECORD, RESERVE, RX_OWNER, SENDERS, SLOTS, SLOT_OWNER,
    SLOT_SIZE, VERSION, VERSION_AT,
};
use super::peers::{connected, sender_index, RECEIVER};
use super::receiver::Receiver;
use super::ring::{round16, Mem, Ring};
use super::sender::Sender;
use super::wait::Shared;
use super::{ChannelOptions, MAX_SENDERS};
use crate::error::{Error, ErrorKind, Result};
use crate::section::Section;
use crate::share::Inheritable;
use crate::sys::{self, Waker};
use crate::types::Access;
use crate::view::View;
use std::sync::atomic::Ordering;

/// The name errors of an anonymous channel carry.
pub(crate) const ANONYMOUS: &str = "(anonymous channel)";

/// A random name for what an anonymous channel needs besides its section
/// (the kernel events of Windows).
fn random_base() -> String {
    format!(
        "sections-channel-{:016x}{:016x}",
        sys::random_word(),
        sys::random_word()
    )
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
    let mut header = [0u8; HEADER];
    view.read_at(0, &mut header)?;
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let (version, capacity, senders) = (word(VERSION_AT), u64::from(word(CAPACITY)), word(SENDERS));
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

/// Maps `section` and checks that it is a channel.
pub(crate) fn attach(
    opts: &ChannelOptions,
    name: &str,
    section: &Section,
    waker: impl FnOnce() -> Result<Waker>,
) -> Result<Shared> {
    let view = section.map_all(Access::ReadWrite)?;
    let (capacity, senders) = check_header(name, &view)?;
    // Every page of the ring mapped now, so that no message pays a
    // page fault (a failure here is memory that is not there).
    view.prefetch(0, view.len())?;
    let waker = waker()?;
    Ok(Shared {
        ring: Ring::new(Mem::new(view), name, capacity, senders),
        waker,
        wait: opts.wait,
        adaptive: super::wait::Adaptive::new(),
    })
}

/// Bytes in use from the two positions (which a single sender's lag, or a
/// hostile peer, may leave in any order).
fn fill(reserve: u64, read: u64, capacity: u64) -> u64 {
    reserve.saturating_sub(read).min(capacity)
}

/// A channel's section (and, elsewhere than Linux, its events); keeps them
/// alive while it lives. Connect with [`ChannelOptions::open_sender`] and
/// [`ChannelOptions::open_receiver`] by name, or with
/// [`sender`](Self::sender) / [`receiver`](Self::receiver) from this handle,
/// or hand an anonymous one to a child with [`inheritable`](Self::inheritable).
///
/// # Examples
///
/// A request channel and a reply channel make a request/reply pair; the
/// server creates both, each client connects by name.
///
/// ```
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = sections::Namespace::at(dir.path());
/// let mut opts = ChannelOptions::new();
/// opts.capacity(16 * 1024).namespace(&ns);
///
/// // The server:
/// let requests = opts.create("requests")?;
/// let replies = opts.create("replies")?;
/// let mut inbox = requests.receiver()?;
/// let mut outbox = replies.sender()?;
///
/// // A client (usually another process):
/// let mut ask = opts.open_sender("requests")?;
/// let mut answer = opts.open_receiver("replies")?;
///
/// ask.send(b"2+2")?;
/// let question = inbox.recv()?.to_vec();
/// assert_eq!(question, b"2+2");
/// outbox.send(b"4")?;
/// assert_eq!(answer.recv()?.to_vec(), b"4");
/// # Ok(()) }
/// ```
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
/// [`ChannelOptions::receiver_from_token`]. See
/// [`Channel::inheritable`] for an example.
#[derive(Debug)]
pub struct InheritableChannel {
    _section: Inheritable,
    _waker: crate::sys::WakerShare,
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
            .mode(opts.mode)
            .size(HEADER as u64 + capacity);
        let mut waker = None;
        let mut init = |view: &View| -> Result<()> {
            view.write_at(VERSION_AT, &VERSION.to_le_bytes())?;
            view.write_at(CAPACITY, &(capacity as u32).to_le_bytes())?;
            view.write_at(SENDERS, &opts.senders.to_le_bytes())?;
            view.write_at(KEY, &sys::random_word().to_le_bytes())?;
            let base = name.map_or_else(random_base, str::to_owned);
            waker = Some(Waker::create(&opts.namespace, &base, name.is_none())?);
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
            Some(name) => o.create_initialised(name, init)?,
        };
        let waker = waker.expect("made with the section");
        let shared = attach(opts, label, &section, || Ok(waker))?;
        Ok(Channel {
            section,
            shared,
            opts: opts.clone(),
            anonymous: name.is_none(),
        })
    }

    /// The ring size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(100).anonymous()?;
    /// assert_eq!(channel.capacity(), 112); // rounded up to 16
    /// # Ok(()) }
    /// ```
    pub fn capacity(&self) -> u64 {
        self.shared.ring.capacity
    }

    /// Bytes of the ring in use (messages not yet consumed).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(4096).anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// assert_eq!(channel.fill(), 0);
    /// tx.send(&[7u8; 100])?;
    /// assert!(channel.fill() >= 100); // the message, its header and padding
    /// drop(rx.recv()?);
    /// assert_eq!(channel.fill(), 0);
    /// # Ok(()) }
    /// ```
    pub fn fill(&self) -> u64 {
        let mem = &self.shared.ring.mem;
        fill(
            mem.u64(RESERVE).load(Ordering::Acquire),
            mem.u64(READ).load(Ordering::Acquire),
            self.shared.ring.capacity,
        )
    }

    fn attach(&self) -> Result<Shared> {
        let base = self.shared.waker.token().map(str::to_owned);
        attach(&self.opts, &self.shared.ring.name, &self.section, || {
            Waker::open(&self.opts.namespace, base.as_deref(), self.anonymous)
        })
    }

    /// Connects a sender in this process.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] when every sender slot is held.
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
    /// tx.send(b"local")?;
    /// assert_eq!(rx.recv()?.to_vec(), b"local");
    /// # Ok(()) }
    /// ```
    pub fn sender(&self) -> Result<Sender> {
        Sender::connect(self.attach()?)
    }

    /// Connects the receiver in this process.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::AlreadyExists`] when a live receiver holds the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let _rx = channel.receiver()?;
    /// assert_eq!(channel.receiver().unwrap_err().kind(), ErrorKind::AlreadyExists);
    /// # Ok(()) }
    /// ```
    pub fn receiver(&self) -> Result<Receiver> {
        Receiver::connect(self.attach()?)
    }

    /// Makes the channel inheritable by child processes started while the
    /// returned value lives; the child connects with the token.
    ///
    /// # Examples
    ///
    /// The parent sends work to a child (this program itself, started
    /// again with the token in its environment) that receives it:
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// if let Ok(token) = std::env::var("JOBS_CHANNEL") {
    ///     // The child.
    ///     let mut rx = ChannelOptions::new().receiver_from_token(&token)?;
    ///     let job = rx.recv_timeout(Duration::from_secs(30))?.to_vec();
    ///     assert_eq!(job, b"resize photo.png");
    ///     return Ok(());
    /// }
    ///
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let inherit = channel.inheritable()?;
    /// let mut child = std::process::Command::new(std::env::current_exe().unwrap())
    ///     .env("JOBS_CHANNEL", inherit.token())
    ///     .spawn()
    ///     .unwrap();
    /// drop(inherit); // started: the child has its handles
    /// let mut tx = channel.sender()?;
    /// tx.send(b"resize photo.png")?;
    /// assert!(child.wait().unwrap().success());
    /// # Ok(()) }
    /// ```
    pub fn inheritable(&self) -> Result<InheritableChannel> {
        let section = self.section.inheritable()?;
        let (base, waker) = self.shared.waker.inheritable()?;
        let token = match base {
            Some(base) => format!("channel:{base}:{}", section.token()),
            None => format!("channel::{}", section.token()),
        };
        Ok(InheritableChannel {
            _section: section,
            _waker: waker,
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
        attach(self, ANONYMOUS, &section, || {
            Waker::open(&self.namespace, base, true)
        })
    }

    /// Connects a sender to the channel a parent passed as `token`.
    ///
    /// The other options that count here are the
    /// [`wait`](Self::wait) strategy; the token says everything else.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidName`] when `token` is not a channel token;
    /// [`ErrorKind::AlreadyExists`] when every sender slot is held; an
    /// error from the OS when the handle it names was not inherited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// if let Ok(token) = std::env::var("RESULTS_CHANNEL") {
    ///     // The child reports back.
    ///     let mut tx = ChannelOptions::new().sender_from_token(&token)?;
    ///     return tx.send(b"42");
    /// }
    ///
    /// let channel = ChannelOptions::new().anonymous()?;
    /// let mut rx = channel.receiver()?;
    /// let inherit = channel.inheritable()?;
    /// let mut child = std::process::Command::new(std::env::current_exe().unwrap())
    ///     .env("RESULTS_CHANNEL", inherit.token())
    ///     .spawn()
    ///     .unwrap();
    /// drop(inherit);
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(30))?.to_vec(), b"42");
    /// assert!(child.wait().unwrap().success());
    /// # Ok(()) }
    /// ```
    pub fn sender_from_token(&self, token: &str) -> Result<Sender> {
        Sender::connect(self.adopt(token)?)
    }

    /// Connects the receiver to the channel a parent passed as `token`.
    ///
    /// See [`Channel::inheritable`] for an example, and
    /// [`sender_from_token`](Self::sender_from_token) for the errors
    /// ([`ErrorKind::AlreadyExists`] here when a live receiver holds the
    /// channel).
    pub fn receiver_from_token(&self, token: &str) -> Result<Receiver> {
        Receiver::connect(self.adopt(token)?)
    }

    pub(crate) fn open_named(&self, name: &str) -> Result<Shared> {
        let section = crate::section::Section::options()
            .namespace(&self.namespace)
            .access(Access::ReadWrite)
            .allow_foreign_owner(self.allow_foreign_owner)
            .open(name)?;
        attach(self, name, &section, || {
            Waker::open(&self.namespace, Some(name), false)
        })
    }
}

/// What the first bytes of an entry say, if it is a channel (for listings;
/// the bytes are untrusted and only reported). `held(index)` says whether
/// the peer slot with that lock index is held (`None`: cannot tell).
pub(crate) fn describe(
    head: &[u8],
    held: &dyn Fn(u32) -> Option<bool>,
) -> Option<crate::types::ObjectState> {
    if head.len() < HEADER || u64::from_le_bytes(head[0..8].try_into().ok()?) != MAGIC {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(VERSION_AT) != VERSION {
        return None;
    }
    let capacity = u64::from(u32_at(CAPACITY));
    let slots = u32_at(SENDERS).min(MAX_SENDERS);
    // The lock decides where it can be asked; the word where it cannot.
    let alive = |index: u32, owner: u64| held(index).unwrap_or_else(|| connected(owner));
    let senders: Vec<u64> = (0..slots)
        .map(|i| u64_at(SLOTS + i as usize * SLOT_SIZE + SLOT_OWNER))
        .enumerate()
        .filter(|&(i, owner)| alive(sender_index(i as u32), owner))
        .map(|(_, owner)| owner)
        .collect();
    let rx_owner = u64_at(RX_OWNER);
    let receiver = alive(RECEIVER, rx_owner);
    Some(crate::types::ObjectState::Channel {
        capacity,
        fill: fill(u64_at(RESERVE), u64_at(READ), capacity),
        senders: senders.len() as u32,
        receiver,
        receiver_process: receiver.then(|| sys::process_of(rx_owner)).flatten(),
        sender_processes: senders.into_iter().filter_map(sys::process_of).collect(),
    })
}
