//! Handing an anonymous section to another process over a Unix socket
//! (`SCM_RIGHTS`), with the access it was sent with.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Sends `fd` and one tag byte as a single message.
///
/// # References
/// unix(7) `SCM_RIGHTS`, sendmsg(2)
pub(crate) fn send_fd(stream: &UnixStream, fd: BorrowedFd<'_>, tag: u8) -> io::Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("control buffer too small"));
    }
    let payload = [tag];
    loop {
        match sendmsg(
            stream,
            &[IoSlice::new(&payload)],
            &mut control,
            SendFlags::empty(),
        ) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(target_os = "linux")]
fn recv_flags() -> RecvFlags {
    RecvFlags::CMSG_CLOEXEC
}

/// Without `MSG_CMSG_CLOEXEC` the flag is set right after receiving.
#[cfg(not(target_os = "linux"))]
fn recv_flags() -> RecvFlags {
    RecvFlags::empty()
}

/// Receives one descriptor and its tag byte sent by [`send_fd`].
pub(crate) fn receive_fd(stream: &UnixStream) -> io::Result<(OwnedFd, u8)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut payload = [0u8; 1];
    let msg = loop {
        match recvmsg(
            stream,
            &mut [IoSliceMut::new(&mut payload)],
            &mut control,
            recv_flags(),
        ) {
            Ok(msg) => break msg,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if msg.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the socket without sending a section",
        ));
    }
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                // Keep the first; any extra descriptors are closed on drop.
                if received.is_none() {
                    received = Some(fd);
                }
            }
        }
    }
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the message carried more descriptors than one section",
        ));
    }
    let fd = received.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the message carried no section descriptor",
        )
    })?;
    #[cfg(not(target_os = "linux"))]
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
    Ok((fd, payload[0]))
}
