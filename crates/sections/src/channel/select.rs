//! Waiting on many receivers at once, for blocking code: the receivers'
//! readiness (`Receiver::readiness`) waited on together, with liveness
//! looks between.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::receiver::Receiver;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::{wait_any, Readiness};

/// How long a wait lasts before every receiver is looked at again, closely
/// (a sender that died rings no bell).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Waits on several receivers: which one has a message (or an error, such
/// as every sender gone) ready. Built once for a set of receivers, it
/// waits on all their readiness together: no thread per receiver, no busy
/// loop, and no CPU while nothing comes. Take what is ready with
/// [`Receiver::poll_recv`] (it looks as closely as the select did: a
/// sender that died shows as [`ErrorKind::Disconnected`] there, and not
/// always to `try_recv`); stop selecting a receiver once it is
/// disconnected (it stays ready).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sections::channel::{ChannelOptions, Select};
///
/// # fn main() -> sections::Result<()> {
/// let (a, b) = (ChannelOptions::new().anonymous()?, ChannelOptions::new().anonymous()?);
/// let (mut rx_a, mut rx_b) = (a.receiver()?, b.receiver()?);
/// let mut tx_b = b.sender()?;
/// let _tx_a = a.sender()?;
///
/// let select = Select::new(&[&rx_a, &rx_b])?;
/// tx_b.send(b"to b")?;
/// let ready = select.wait(&[&rx_a, &rx_b], Some(Duration::from_secs(30)))?;
/// assert_eq!(ready, Some(1));
/// assert_eq!(rx_b.poll_recv()?.unwrap().to_vec(), b"to b");
/// // Nothing else comes: the wait times out.
/// assert_eq!(select.wait(&[&rx_a, &rx_b], Some(Duration::from_millis(20)))?, None);
/// # drop(rx_a);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Select {
    ready: Vec<Readiness>,
    /// Identities (ring addresses) of the receivers it was built for.
    of: Vec<usize>,
    /// Where the next scan starts (so that a busy receiver does not
    /// starve the others).
    next: Cell<usize>,
}

impl Select {
    /// Builds the readiness of each receiver.
    ///
    /// # Errors
    ///
    /// As [`Receiver::readiness`].
    pub fn new(receivers: &[&Receiver]) -> Result<Select> {
        let ready = receivers
            .iter()
            .map(|r| r.readiness())
            .collect::<Result<Vec<_>>>()?;
        Ok(Select {
            ready,
            of: receivers.iter().map(|r| r.identity()).collect(),
            next: Cell::new(0),
        })
    }

    /// The index of a receiver with something ready (its next
    /// [`poll_recv`](Receiver::poll_recv) returns a message or an error),
    /// waiting at most `timeout` (`None`: as long as it takes); `Ok(None)`
    /// when the timeout passed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRange`] when `receivers` are not those it was
    /// built for, in the same order; an error from the OS when waiting
    /// fails.
    pub fn wait(
        &self,
        receivers: &[&Receiver],
        timeout: Option<Duration>,
    ) -> Result<Option<usize>> {
        let same = receivers.len() == self.of.len()
            && receivers
                .iter()
                .zip(&self.of)
                .all(|(r, &id)| r.identity() == id);
        if !same {
            return Err(Error::new(ErrorKind::InvalidRange, "select")
                .with_detail("not the receivers this select was built for"));
        }
        let deadline = timeout.map(crate::named::deadline);
        let n = receivers.len();
        loop {
            let start = self.next.get();
            let ready = |close: bool| {
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| receivers[i].is_ready_now(close))
            };
            if let Some(i) = ready(false) {
                self.next.set((i + 1) % n.max(1));
                return Ok(Some(i));
            }
            // Arm every bell, then look again (closely: a sender that died
            // rings none), then wait.
            for r in receivers {
                r.arm();
            }
            if let Some(i) = ready(true) {
                self.next.set((i + 1) % n.max(1));
                return Ok(Some(i));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            let until = deadline.map_or(now + LOOK_AGAIN, |d| d.min(now + LOOK_AGAIN));
            let refs: Vec<&Readiness> = self.ready.iter().collect();
            for i in wait_any(&refs, Some(until))? {
                self.ready[i].clear();
            }
        }
    }
}
