//! Waking a channel's sides on Linux: each side sleeps on its own waiting
//! word in the channel's section as a shared futex, so nothing outside the
//! section is needed (anonymous channels included), and every process
//! that maps the section, in any PID namespace, can wake it.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::sync::{futex_wait, futex_wake};
use crate::error::{Error, Result};
use crate::sys::Side;
use crate::types::Namespace;

/// Sleeps and wakes on the section's waiting words.
#[derive(Debug)]
pub(crate) struct Waker;

impl Waker {
    /// For a new channel (`base`: its name, or a random one for an
    /// anonymous channel; Linux needs neither).
    pub(crate) fn create(_ns: &Namespace, _base: &str, _anonymous: bool) -> Result<Waker> {
        Ok(Waker)
    }

    /// For an existing channel: by its name, or by the base an anonymous
    /// channel's token carries.
    pub(crate) fn open(_ns: &Namespace, _base: Option<&str>, _anonymous: bool) -> Result<Waker> {
        Ok(Waker)
    }

    /// What a child needs besides the section to wake and be woken: nothing.
    pub(crate) fn token(&self) -> Option<&str> {
        None
    }

    /// Sleeps while `word` still says "waiting" (1), at most until `until`:
    /// a wake that cleared the word first is never lost.
    #[inline]
    pub(crate) fn wait(&self, _side: Side, word: &AtomicU32, until: Instant) -> Result<()> {
        futex_wait(word, 1, Some(until)).map_err(|e| Error::os("wait", e))
    }

    /// Wakes every sleeper of `word` (several senders may wait for room).
    #[inline]
    pub(crate) fn wake(&self, _side: Side, word: &AtomicU32) -> Result<()> {
        futex_wake(word, i32::MAX as u32).map_err(|e| Error::os("wake", e))
    }
}
