//! A bounded inter-process channel of variable-length byte messages in one
//! named section: zero-copy loans for senders, in-place messages for the
//! receiver, back-pressure, peer liveness, and validation of everything a
//! peer can write.
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
//! # Layout
//!
//! ```text
//!    0  magic "SECTCHAN", version, capacity, sender slots
//!   64  receiver line: read position (u64), receiver slot state (u32),
//!       receiver process token (u64)
//!  128  sender line: reserve position (u64), senders ever connected (u32)
//!  192  sender slots: 16 × {state u32, generation u32, process token u64}
//!  448  sleepers: receiver waiting (u32), senders waiting (u32)
//!  512  the ring (capacity bytes, a multiple of 16)
//! ```
//!
//! # Protocol
//!
//! Positions only grow; `position % capacity` is the offset in the ring.
//! A record is a 16-byte header `{len word, pos word}` and its payload,
//! padded to 16 bytes, and never wraps: a record that does not fit before
//! the end of the ring is preceded by a padding record to the end.
//!
//! - A sender *reserves* (under the reservation mutex when there can be
//!   several senders): it checks that `reserve + size - read <= capacity`,
//!   writes the padding record if needed (committed at once) and its own
//!   header with the pos word `position | RESERVED`, then stores `reserve`
//!   (Release). Writing the header before publishing the reservation means
//!   a receiver never finds a reserved record without its length.
//! - The sender fills the payload, then *commits*: stores the pos word
//!   `position | COMMITTED` (Release). A dropped loan commits as cancelled.
//! - The receiver looks at the header at `read` first: committed for this
//!   position means a message (no other line is read). Otherwise it reads
//!   `reserve` (Acquire): equal to `read` means empty; else it reads the
//!   header again, which must now be reserved (wait, unless its sender's
//!   process is gone: skip it) or committed; anything else is `Corrupted`. Taking a message and dropping it stores `read`
//!   (Release), which frees the space.
//! - The pos word holds the full position and a committed or reserved bit,
//!   so neither a header left from an earlier lap nor zeroed memory passes
//!   for a new record.
//! - Wake-ups: a side about to sleep sets its "waiting" word, re-checks,
//!   then waits on its auto-reset event; the other side, after publishing,
//!   reads the word and sets the event (both with SeqCst fences, so at least
//!   one of them sees the other). Sleeps are bounded slices so that a dead
//!   peer is noticed.
//!
//! Every length, offset and position read from the section is checked
//! before use; anything impossible is `ErrorKind::Corrupted`.

mod ring;

use crate::error::{Error, ErrorKind, Result};
use crate::name::Namespace;
use crate::section::Lifetime;
use crate::sync::SyncOptions;

#[cfg(target_os = "linux")]
pub(crate) use ring::describe;
pub use ring::{Channel, Loan, Message, Receiver, Sender};

/// How a blocked sender or receiver waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitStrategy {
    /// Spin on the shared memory: the lowest latency, a busy core.
    Spin,
    /// Spin briefly with backoff, then sleep on an event (the default).
    #[default]
    SpinThenPark,
    /// Sleep on an event at once.
    Park,
}

/// Options for creating and opening channels.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    pub(crate) capacity: u32,
    pub(crate) senders: u32,
    pub(crate) namespace: Namespace,
    pub(crate) lifetime: Lifetime,
    pub(crate) wait: WaitStrategy,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            capacity: 1 << 20,
            senders: 1,
            namespace: Namespace::default(),
            lifetime: Lifetime::Counted,
            wait: WaitStrategy::default(),
        }
    }
}

/// The most senders a channel can have at once.
pub const MAX_SENDERS: u32 = 16;

impl ChannelOptions {
    /// Defaults: 1 MiB ring, one sender, default namespace, handle-counted,
    /// spin-then-park.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ring size in bytes (rounded up to 16; at least 64).
    pub fn capacity(&mut self, bytes: u32) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// How many senders may be connected at once (1 = SPSC, the fast path,
    /// up to [`MAX_SENDERS`]).
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

    /// How opened senders and receivers wait.
    pub fn wait(&mut self, wait: WaitStrategy) -> &mut Self {
        self.wait = wait;
        self
    }

    pub(crate) fn sync(&self) -> SyncOptions {
        let mut o = SyncOptions::new();
        o.namespace(&self.namespace).lifetime(self.lifetime);
        o
    }

    /// Creates the channel named `name`; the returned handle keeps it (and
    /// its name) alive like any holder.
    pub fn create(&self, name: &str) -> Result<Channel> {
        Channel::create(self, name)
    }

    /// Connects a sender to the channel.
    pub fn open_sender(&self, name: &str) -> Result<Sender> {
        Sender::open(self, name)
    }

    /// Connects the (one) receiver to the channel.
    pub fn open_receiver(&self, name: &str) -> Result<Receiver> {
        Receiver::open(self, name)
    }
}

/// Creates a channel with a ring of `capacity` bytes and one sender, in the
/// default namespace.
pub fn create(name: &str, capacity: u32) -> Result<Channel> {
    ChannelOptions::new().capacity(capacity).create(name)
}

/// Connects a sender in the default namespace.
pub fn open_sender(name: &str) -> Result<Sender> {
    ChannelOptions::new().open_sender(name)
}

/// Connects the receiver in the default namespace.
pub fn open_receiver(name: &str) -> Result<Receiver> {
    ChannelOptions::new().open_receiver(name)
}

fn corrupted(name: &str, what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupted, "channel")
        .with_name(name)
        .with_detail(what)
}
