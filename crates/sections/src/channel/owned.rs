//! What owns its endpoint, for holders that cannot keep a borrow: the
//! owned loan ([`OwnedLoan`]; the owned message is `receiver.rs`'s
//! `OwnedMessage`) and the error that gives the endpoint back
//! ([`Returned`]).

use super::ring::Reservation;
use super::sender::Sender;
use crate::error::{Error, ErrorKind, Result};

/// An error from a call that took its endpoint by value
/// ([`Sender::loan_owned`], [`Receiver::recv_owned`](super::Receiver::recv_owned)), with the endpoint
/// given back: a timeout or a full ring loses nothing.
///
/// It converts into [`Error`] (dropping the endpoint), so `?` works in a
/// function returning [`crate::Result`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sections::ErrorKind;
/// use sections::channel::ChannelOptions;
///
/// # fn main() -> sections::Result<()> {
/// let channel = ChannelOptions::new().anonymous()?;
/// let _tx = channel.sender()?;
/// let rx = channel.receiver()?;
/// let empty = rx.recv_owned(Some(Duration::ZERO)).unwrap_err();
/// assert_eq!(empty.kind(), ErrorKind::Empty);
/// let (error, rx) = empty.into_parts(); // the receiver, still connected
/// # drop((error, rx));
/// # Ok(()) }
/// ```
pub struct Returned<T> {
    /// Boxed: the error path pays the allocation, and the `Result` of the
    /// success path stays small.
    parts: Box<(Error, T)>,
}

impl<T> Returned<T> {
    pub(crate) fn new(error: Error, value: T) -> Returned<T> {
        Returned {
            parts: Box::new((error, value)),
        }
    }

    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.parts.0
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.parts.0.kind()
    }

    /// The endpoint, given back.
    pub fn into_inner(self) -> T {
        self.parts.1
    }

    /// The error and the endpoint.
    pub fn into_parts(self) -> (Error, T) {
        *self.parts
    }
}

impl<T> std::fmt::Debug for Returned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Returned")
            .field("error", self.error())
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Display for Returned<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error().fmt(f)
    }
}

impl<T> std::error::Error for Returned<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

impl<T> From<Returned<T>> for Error {
    fn from(returned: Returned<T>) -> Error {
        returned.into_parts().0
    }
}

/// A loan that owns its [`Sender`] ([`Sender::loan_owned`]):
/// [`send`](Self::send) publishes the message and gives the sender back,
/// [`cancel`](Self::cancel) gives it back with nothing sent. Dropping it
/// cancels the message and drops the sender (which disconnects it).
///
/// # Examples
///
/// ```
/// use sections::channel::{ChannelOptions, OwnedLoan};
///
/// # fn main() -> sections::Result<()> {
/// let channel = ChannelOptions::new().anonymous()?;
/// let mut rx = channel.receiver()?;
///
/// // A loan can be kept where a borrow cannot: in a struct, a queue...
/// let mut pending: Vec<OwnedLoan> = Vec::new();
/// pending.push(channel.sender()?.loan_owned(2, None)?);
/// let mut loan = pending.pop().unwrap();
/// loan.write_at(0, b"hi")?;
/// let tx = loan.send();
/// assert_eq!(rx.recv()?.to_vec(), b"hi");
/// # drop(tx);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct OwnedLoan {
    /// `None` only once sent or cancelled.
    sender: Option<Sender>,
    res: Reservation,
}

impl OwnedLoan {
    pub(super) fn new(sender: Sender, res: Reservation) -> OwnedLoan {
        OwnedLoan {
            sender: Some(sender),
            res,
        }
    }

    #[inline]
    fn sender(&self) -> &Sender {
        self.sender.as_ref().expect("a live loan has its sender")
    }

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
    #[inline]
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        self.sender().write_reserved(&self.res, offset, data)
    }

    /// The message's bytes, to write in place.
    ///
    /// # Safety
    /// As [`Loan::as_mut_slice`](super::Loan::as_mut_slice): the protocol gives these bytes to this
    /// loan alone; a peer that breaks it must not touch them while the
    /// borrow lives.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the caller's contract is this function's; `&mut self`
        // makes this the only slice of the reservation.
        unsafe { self.sender().reserved_slice(&self.res) }
    }

    /// The message's first byte, for code that hands the memory to
    /// someone else (another language's buffer, say) and keeps this loan
    /// alive while it is used; [`len`](Self::len) bytes are the loan's.
    #[inline]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.sender().reserved_ptr(&self.res)
    }

    #[inline]
    fn finish(&mut self, cancel: bool) -> Sender {
        let sender = self.sender.take().expect("a live loan has its sender");
        sender.commit_reserved(&self.res, cancel);
        sender
    }

    /// Publishes the message and gives the sender back. (In a process
    /// forked while the loan was taken, the copy sends nothing.)
    #[inline]
    pub fn send(mut self) -> Sender {
        self.finish(false)
    }

    /// Cancels the message and gives the sender back.
    #[inline]
    pub fn cancel(mut self) -> Sender {
        self.finish(true)
    }
}

impl Drop for OwnedLoan {
    #[inline]
    fn drop(&mut self) {
        if self.sender.is_some() {
            drop(self.finish(true));
        }
    }
}
