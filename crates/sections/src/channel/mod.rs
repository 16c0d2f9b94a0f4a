//! A bounded inter-process channel of variable-length byte messages in one
//! section, named or anonymous: zero-copy loans for senders, in-place
//! messages for the receiver, back-pressure, peer liveness, and validation
//! of everything a peer can write.
//!
//! ```
//! use sections::channel::{self, ChannelOptions};
//!
//! # fn main() -> sections::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let ns = sections::Namespace::at(dir.path());
//! let mut opts = ChannelOptions::new();
//! opts.capacity(64 * 1024).namespace(&ns);
//! let _channel = opts.create("telemetry")?;
//! let mut tx = opts.open_sender("telemetry")?;
//! let mut rx = opts.open_receiver("telemetry")?;
//!
//! let mut loan = tx.loan(5)?;          // a slot in the ring, written in place
//! loan.write_at(0, b"hello")?;
//! loan.send();
//! let message = rx.recv()?;            // the bytes in place, until dropped
//! assert_eq!(message.to_vec(), b"hello");
//! # Ok(()) }
//! ```
//!
//! An anonymous channel has no name at all; hand it to a child process
//! (here this program itself, started again with the token in its
//! environment):
//!
//! ```
//! use std::time::Duration;
//! use sections::channel::ChannelOptions;
//!
//! # fn main() -> sections::Result<()> {
//! if let Ok(token) = std::env::var("WORKER_CHANNEL") {
//!     // The child: connect a sender with the token.
//!     let mut tx = ChannelOptions::new().sender_from_token(&token)?;
//!     return tx.send(b"hello from the child");
//! }
//! let channel = ChannelOptions::new().anonymous()?;
//! let mut rx = channel.receiver()?;
//! let inherit = channel.inheritable()?;
//! let mut child = std::process::Command::new(std::env::current_exe().unwrap())
//!     .env("WORKER_CHANNEL", inherit.token())
//!     .spawn()
//!     .unwrap();
//! drop(inherit); // the child has inherited what it needs
//! let message = rx.recv_timeout(Duration::from_secs(30))?;
//! assert_eq!(message.to_vec(), b"hello from the child");
//! # drop(message);
//! assert!(child.wait().unwrap().success());
//! # Ok(()) }
//! ```
//!
//! `examples/request_reply.rs` and `examples/child_channel.rs` in the
//! repository are complete programs with both sides in separate
//! processes.
//!
//! # Layout
//!
//! ```text
//!    0  magic "SECTCHAN", version (8), capacity (12), sender slots (16),
//!       key of the position words (24)
//!   64  receiver line: read position (u64), receiver slot state (u32),
//!       receiver process token (u64)
//!  128  sender line: reserve position (u64), senders ever connected (u32)
//!  192  sender slots: 16 × {state u32, generation u32, process token u64}
//!  448  sleepers: receiver waiting (u32), senders waiting (u32)
//!  456  several senders: the reservation lock word (see `Ring::try_lock`)
//!  508  the bell word: written (zeros) by a named channel's bell only
//!  512  the ring (capacity bytes, a multiple of 16)
//! ```
//!
//! # Protocol
//!
//! Positions only grow; `position % capacity` is the offset in the ring.
//! A record is a 16-byte header `{len word, pos word}` and its payload,
//! padded to 16 bytes, and never wraps: a record that does not fit before
//! the end of the ring is preceded by a padding record to the end, which
//! is committed and published on its own first (so a record of more than
//! half the ring is never kept out by its own padding).
//!
//! - The pos word is `(position | state) ^ key`, state being COMMITTED or
//!   RESERVED, and `key` a random word chosen at creation: neither a header
//!   left from an earlier lap, nor zeroed memory, nor payload bytes that
//!   happen to sit where a header will be pass for a new record.
//! - A single sender (the fast path) writes nothing shared while it holds a
//!   loan: it checks that `reserve + size - read <= capacity` (with a cached
//!   `read`, reloaded only when the ring looks full), the loan fills the
//!   payload, and the *commit* stores the len word, the pos word
//!   `position | COMMITTED` (Release) and then `reserve` (Release). A
//!   dropped loan publishes nothing. `reserve` may lag the record the
//!   receiver already took; the receiver allows for that, and a sender that
//!   connects publishes a committed record it finds at `reserve`.
//! - Several senders *reserve* under the reservation lock (a word of
//!   this protocol naming the holding sender's slot and generation; a
//!   waiter takes it over once that sender is gone, and honours its own
//!   deadline whatever the word says): write the
//!   header with `position | RESERVED`, then store `reserve` (Release), so
//!   the next sender can reserve behind while this one fills its payload;
//!   the commit stores `position | COMMITTED` (Release). A dropped loan
//!   commits as cancelled.
//! - The receiver looks at the header at `read`: committed for this
//!   position means a message, and while spinning nothing else is read
//!   (the senders' line stays with them). Otherwise, now and then and
//!   before sleeping, it reads `reserve` (Acquire): at or behind `read`
//!   means empty; ahead, the header must be reserved (wait, unless its
//!   sender's process is gone: skip it) or committed; anything else is
//!   `Corrupted`. Dropping a message stores `read` (Release), which frees
//!   the space.
//! - Wake-ups: a side about to sleep sets its "waiting" word, issues a
//!   SeqCst fence, re-checks, then sleeps; the other side, after
//!   publishing, issues a SeqCst fence and reads the word, and if set
//!   clears it and wakes the sleeper (so at least one of them sees the
//!   other). Linux sleeps on the waiting word itself as a shared futex
//!   (only while it still says "waiting", so a wake that came first is
//!   never lost); elsewhere on auto-reset events. Sleeps are bounded slices
//!   so that a dead peer is noticed. The ring and this protocol are
//!   model-checked with loom (`ring.rs`).
//!
//! The waiting word of one side, as a state machine:
//!
//! ```text
//!  state       event                                   next
//!  0 idle      sleeper: store 1, fence                 1 announced
//!  1 announced sleeper re-checks, finds work           1 (a later publish
//!                                                        wakes nobody: harmless)
//!  1 announced sleeper re-checks, finds none, sleeps   1 asleep (futex: only
//!                                                        while the word is 1)
//!  1 announced publisher: fence, load 1, swap 0, wake  0 idle, sleeper runs
//!  0 idle      publisher: fence, load 0                0 (no system call)
//! ```
//!
//! A wake-up is lost only if the publisher reads 0 while the sleeper's
//! re-check misses the publication; the two fences forbid that outcome
//! (store-buffering), which the loom model `no_lost_wake_up` checks by
//! failing with a deadlock when the fences are taken out.
//!
//! The word is a set of bits: 1 (`SLEEPER`) for a side that sleeps on it,
//! 2 (`BELL`) for one that waits in an event loop on its readiness
//! (`Receiver::poll_recv`, `Sender::poll_loan`); waiters OR their bit in,
//! the publisher swaps the word to 0 and, for each bit it found, wakes the
//! sleepers or rings the bell (`sys::Waker::ring`). The bell has the same
//! fences and re-check, and its own loom model, `no_lost_bell`. Layout
//! version 5: a version-4 peer would wake a bell waiter with a futex it
//! does not sleep on.
//!
//! Every length, offset and position read from the section is checked
//! before use; anything impossible is `ErrorKind::Corrupted`.

// Floor 4: uses the floors below (`section`, `view`, `share`, `named`,
// `sync` for `Select`'s events and semaphores, `sys` through its
// contract). One concept a file:
#[cfg(not(loom))]
mod handle; // Channel: create, open, adopt, check, describe
mod layout; // the header type and offsets, the record meta word
#[cfg(all(test, loom))]
mod model; // loom models of the ring and its lock
#[cfg(not(loom))]
mod owned; // OwnedLoan, Returned: what owns its endpoint
#[cfg(not(loom))]
mod peers; // peer slots and liveness
#[cfg(not(loom))]
mod ready; // readiness, poll_recv, poll_loan: waiting in an event loop
#[cfg(not(loom))]
mod receiver; // Receiver, Message
mod ring; // the ring protocol over the words, free of the OS
#[cfg(not(loom))]
mod select; // Select: waiting on many receivers
#[cfg(not(loom))]
mod sender; // Sender, Loan, the reservation lock's waiting
#[cfg(not(loom))]
mod wait; // spinning, parking, waking

use crate::error::{Error, ErrorKind, Result};
use crate::types::{Lifetime, Namespace};

#[cfg(not(loom))]
pub use crate::sys::Readiness;
#[cfg(not(loom))]
pub(crate) use handle::describe;
#[cfg(not(loom))]
pub use handle::{Channel, InheritableChannel};
#[cfg(not(loom))]
pub use owned::{OwnedLoan, Returned};
#[cfg(not(loom))]
pub use receiver::{Message, OwnedMessage, Receiver};
#[cfg(not(loom))]
pub use select::{Select, Source};
#[cfg(not(loom))]
pub use sender::{Loan, Sender};

/// Model builds check the ring alone.
#[cfg(loom)]
pub(crate) fn describe(
    _: &[u8],
    _: &dyn Fn(u32) -> Option<bool>,
) -> Option<crate::types::ObjectState> {
    None
}

/// How a blocked sender or receiver waits.
///
/// # Examples
///
/// ```
/// use sections::channel::{ChannelOptions, WaitStrategy};
///
/// # fn main() -> sections::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = sections::Namespace::at(dir.path());
/// let mut opts = ChannelOptions::new();
/// // Lowest latency, at the price of a core busy while waiting.
/// opts.namespace(&ns).wait(WaitStrategy::Spin);
/// let _channel = opts.create("ticks")?;
/// let mut rx = opts.open_receiver("ticks")?;
/// # drop(rx);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Spin on the shared memory: the lowest latency, a busy core.
    Spin,
    /// Spin briefly, then sleep on an event (the default). The spin
    /// adapts per handle: at most 20 µs (about what a wake-up costs),
    /// longer after waits the spin caught, shorter (down to none) after
    /// waits that had to sleep or spins that lost their CPU (a busy
    /// machine), with an occasional probe to find out whether spinning
    /// pays again.
    #[default]
    SpinThenPark,
    /// Sleep on an event at once.
    Park,
}

/// Options for creating and opening channels.
///
/// # Building options
///
/// The setters take and return `&mut Self` so that one options value can
/// be configured once and then used for every verb, `create` on one side
/// and `open_sender` / `open_receiver` on the others, without being moved
/// or rebuilt. Chain them straight into a verb, or configure a variable
/// first:
///
/// ```
/// use sections::Namespace;
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let ns = Namespace::at(dir.path());
///
/// let mut opts = ChannelOptions::new();
/// opts.capacity(64 * 1024).senders(2).namespace(&ns);
/// let _channel = opts.create("jobs")?;
/// let mut tx = opts.open_sender("jobs")?;
/// let mut rx = opts.open_receiver("jobs")?;
///
/// // Or one statement that ends in the verb:
/// let mut tx2 = ChannelOptions::new().namespace(&ns).open_sender("jobs")?;
///
/// tx.send(b"one")?;
/// tx2.send(b"two")?;
/// assert_eq!(rx.recv()?.to_vec(), b"one");
/// assert_eq!(rx.recv()?.to_vec(), b"two");
/// # Ok(()) }
/// ```
///
/// Binding the chain itself (`let opts = ChannelOptions::new().capacity(..);`)
/// keeps a reference to a temporary that is gone at the end of the
/// statement, which the compiler refuses (E0716); write it as above, or end
/// the chain with `.clone()`:
///
/// ```compile_fail,E0716
/// # use sections::channel::ChannelOptions;
/// let opts = ChannelOptions::new().capacity(4096).senders(2); // error: temporary dropped
/// let channel = opts.create("jobs");
/// ```
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    pub(crate) capacity: u32,
    pub(crate) senders: u32,
    pub(crate) namespace: Namespace,
    pub(crate) lifetime: Lifetime,
    pub(crate) wait: WaitStrategy,
    pub(crate) mode: u32,
    pub(crate) allow_foreign_owner: bool,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            capacity: 1 << 20,
            senders: 1,
            namespace: Namespace::default(),
            lifetime: Lifetime::Counted,
            wait: WaitStrategy::default(),
            mode: 0o600,
            allow_foreign_owner: false,
        }
    }
}

/// The most senders a channel can have at once.
pub const MAX_SENDERS: u32 = 16;

impl ChannelOptions {
    /// Defaults: 1 MiB ring, one sender, default namespace, handle-counted,
    /// spin-then-park.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().anonymous()?;
    /// assert_eq!(channel.capacity(), 1 << 20);
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Ring size in bytes (rounded up to 16; at least 64).
    ///
    /// Each message takes its length rounded up to 16 bytes, plus a
    /// 16-byte header; a message that could never fit is an
    /// [`ErrorKind::InvalidSize`] error when it is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(1000).anonymous()?;
    /// assert_eq!(channel.capacity(), 1008);
    /// let mut tx = channel.sender()?;
    /// let _rx = channel.receiver()?;
    /// let too_big = tx.send(&[0u8; 2000]).unwrap_err();
    /// assert_eq!(too_big.kind(), ErrorKind::InvalidSize);
    /// # Ok(()) }
    /// ```
    pub fn capacity(&mut self, bytes: u32) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// How many senders may be connected at once (1 = SPSC, the fast path,
    /// up to [`MAX_SENDERS`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use sections::ErrorKind;
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().senders(2).anonymous()?;
    /// let _a = channel.sender()?;
    /// let _b = channel.sender()?;
    /// let third = channel.sender().unwrap_err();
    /// assert_eq!(third.kind(), ErrorKind::AlreadyExists); // every slot is taken
    /// # Ok(()) }
    /// ```
    pub fn senders(&mut self, senders: u32) -> &mut Self {
        self.senders = senders;
        self
    }

    /// The namespace of the name.
    pub fn namespace(&mut self, namespace: &Namespace) -> &mut Self {
        self.namespace = namespace.clone();
        self
    }

    /// Handle-counted (default) or persistent.
    pub fn lifetime(&mut self, lifetime: Lifetime) -> &mut Self {
        self.lifetime = lifetime;
        self
    }

    /// Permission bits of a new channel's section (default `0o600`: its
    /// owner only; `0o666` lets a peer of any user that can reach the
    /// namespace connect, as peers in containers with other uids need,
    /// `0o660` the owner's group). Only read and write bits count.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o666;
        self
    }

    /// Allow connecting to a channel another user created (off by default:
    /// a name another user took first may be a trap).
    pub fn allow_foreign_owner(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// How opened senders and receivers wait.
    pub fn wait(&mut self, wait: WaitStrategy) -> &mut Self {
        self.wait = wait;
        self
    }

    /// Creates the channel named `name`; the returned handle keeps it (and
    /// its name) alive like any holder.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::AlreadyExists`]: the name is taken.
    /// - [`ErrorKind::InvalidRange`]: [`senders`](Self::senders) is 0 or
    ///   more than [`MAX_SENDERS`].
    /// - [`ErrorKind::InvalidSize`]: the capacity is too large.
    /// - [`ErrorKind::NoSpace`]: the namespace has no room for the ring.
    /// - [`ErrorKind::Unsupported`]: on macOS, and a persistent lifetime on
    ///   Windows.
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
    /// opts.capacity(256 * 1024).namespace(&ns);
    /// let channel = opts.create("events")?;
    /// assert_eq!(channel.capacity(), 256 * 1024);
    /// assert_eq!(opts.create("events").unwrap_err().kind(), ErrorKind::AlreadyExists);
    /// # Ok(()) }
    /// ```
    #[cfg(not(loom))]
    pub fn create(&self, name: &str) -> Result<Channel> {
        Channel::create(self, Some(name))
    }

    /// Creates a channel without a name, to connect to from this process
    /// ([`Channel::sender`], [`Channel::receiver`]) or to hand to a child
    /// ([`Channel::inheritable`]). It lives while a handle of it does.
    ///
    /// # Examples
    ///
    /// Between two threads of one process:
    ///
    /// ```
    /// use sections::channel::ChannelOptions;
    ///
    /// # fn main() -> sections::Result<()> {
    /// let channel = ChannelOptions::new().capacity(4096).anonymous()?;
    /// let mut tx = channel.sender()?;
    /// let mut rx = channel.receiver()?;
    /// std::thread::scope(|s| {
    ///     let producer = s.spawn(move || -> sections::Result<()> {
    ///         for i in 0..100u32 {
    ///             tx.send(&i.to_le_bytes())?;
    ///         }
    ///         Ok(()) // dropping `tx` disconnects
    ///     });
    ///     let mut sum = 0;
    ///     let mut buf = Vec::new();
    ///     while rx.recv_into(&mut buf).is_ok() {
    ///         sum += u32::from_le_bytes(buf[..4].try_into().unwrap());
    ///     }
    ///     assert_eq!(sum, 4950);
    ///     producer.join().unwrap()
    /// })?;
    /// # Ok(()) }
    /// ```
    #[cfg(not(loom))]
    pub fn anonymous(&self) -> Result<Channel> {
        Channel::create(self, None)
    }

    /// Connects a sender to the channel.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::NotFound`]: no channel has the name.
    /// - [`ErrorKind::AlreadyExists`]: every sender slot is held by a live
    ///   sender.
    /// - [`ErrorKind::WrongKind`]: the name is something other than a
    ///   channel.
    /// - [`ErrorKind::WrongVersion`]: another version of this library made
    ///   the channel.
    /// - [`ErrorKind::PermissionDenied`]: the channel belongs to another
    ///   user and [`allow_foreign_owner`](Self::allow_foreign_owner) was not
    ///   set, or its mode refuses this user.
    /// - [`ErrorKind::Corrupted`]: its header holds what no channel writes.
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
    /// assert_eq!(opts.open_sender("logs").unwrap_err().kind(), ErrorKind::NotFound);
    ///
    /// let _channel = opts.create("logs")?;
    /// let mut tx = opts.open_sender("logs")?; // usually in another process
    /// let mut rx = opts.open_receiver("logs")?;
    /// tx.send(b"started")?;
    /// assert_eq!(rx.recv()?.to_vec(), b"started");
    /// # Ok(()) }
    /// ```
    #[cfg(not(loom))]
    pub fn open_sender(&self, name: &str) -> Result<Sender> {
        Sender::open(self, name)
    }

    /// Connects the (one) receiver to the channel.
    ///
    /// # Errors
    ///
    /// As [`open_sender`](Self::open_sender), with
    /// [`ErrorKind::AlreadyExists`] when a live receiver holds the channel.
    /// A receiver that dropped or died frees its slot for the next one.
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
    /// let _channel = opts.create("orders")?;
    /// let rx = opts.open_receiver("orders")?;
    /// assert_eq!(opts.open_receiver("orders").unwrap_err().kind(), ErrorKind::AlreadyExists);
    /// drop(rx);
    /// let _rx = opts.open_receiver("orders")?; // free again
    /// # Ok(()) }
    /// ```
    #[cfg(not(loom))]
    pub fn open_receiver(&self, name: &str) -> Result<Receiver> {
        Receiver::open(self, name)
    }
}

/// Creates a channel with a ring of `capacity` bytes and one sender, in the
/// default namespace.
///
/// # Errors
///
/// As [`ChannelOptions::create`].
///
/// # Examples
///
/// ```
/// use sections::channel;
///
/// # fn main() -> sections::Result<()> {
/// # let name = &format!("doc-channel-create-{}", std::process::id());
/// let _channel = channel::create(name, 64 * 1024)?;
/// let mut tx = channel::open_sender(name)?;
/// let mut rx = channel::open_receiver(name)?;
/// tx.send(b"ping")?;
/// assert_eq!(rx.recv()?.to_vec(), b"ping");
/// # Ok(()) }
/// ```
#[cfg(not(loom))]
pub fn create(name: &str, capacity: u32) -> Result<Channel> {
    ChannelOptions::new().capacity(capacity).create(name)
}

/// Connects a sender in the default namespace.
///
/// # Errors
///
/// As [`ChannelOptions::open_sender`].
///
/// # Examples
///
/// ```
/// use sections::channel;
///
/// # fn main() -> sections::Result<()> {
/// # let name = &format!("doc-channel-sender-{}", std::process::id());
/// # let _channel = channel::create(name, 4096)?;
/// # let mut rx = channel::open_receiver(name)?;
/// // In the producing process:
/// let mut tx = channel::open_sender(name)?;
/// tx.send(b"reading: 21.5")?;
/// # assert_eq!(rx.recv()?.to_vec(), b"reading: 21.5");
/// # Ok(()) }
/// ```
#[cfg(not(loom))]
pub fn open_sender(name: &str) -> Result<Sender> {
    ChannelOptions::new().open_sender(name)
}

/// Connects the receiver in the default namespace.
///
/// # Errors
///
/// As [`ChannelOptions::open_receiver`].
///
/// # Examples
///
/// ```
/// use sections::channel;
///
/// # fn main() -> sections::Result<()> {
/// # let name = &format!("doc-channel-receiver-{}", std::process::id());
/// # let _channel = channel::create(name, 4096)?;
/// # let mut tx = channel::open_sender(name)?;
/// # tx.send(b"reading: 21.5")?;
/// // In the consuming process:
/// let mut rx = channel::open_receiver(name)?;
/// let message = rx.recv()?;
/// assert_eq!(message.to_vec(), b"reading: 21.5");
/// # Ok(()) }
/// ```
#[cfg(not(loom))]
pub fn open_receiver(name: &str) -> Result<Receiver> {
    ChannelOptions::new().open_receiver(name)
}

fn corrupted(name: &str, what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupted, "channel")
        .with_name(name)
        .with_detail(what)
}
