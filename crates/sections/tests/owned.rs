//! Owned loans and messages: they own their endpoint, give it back on
//! send, cancel, release and on every error, and keep the ring's rules
//! (one message at a time, room freed on release, a dropped loan sends
//! nothing).

use std::time::{Duration, Instant};

use sections::channel::ChannelOptions;
use sections::ErrorKind;

#[test]
fn owned_loan_and_message_round_trip_and_give_back_their_endpoints() {
    let channel = ChannelOptions::new().capacity(4096).anonymous().unwrap();
    let mut tx = channel.sender().unwrap();
    let mut rx = channel.receiver().unwrap();
    for i in 0..1000u32 {
        let mut loan = tx.loan_owned(8, None).unwrap();
        assert_eq!(loan.len(), 8);
        loan.write_at(0, &i.to_le_bytes()).unwrap();
        loan.write_at(4, &(!i).to_le_bytes()).unwrap();
        assert_eq!(
            loan.write_at(5, &[0; 4]).unwrap_err().kind(),
            ErrorKind::InvalidRange
        );
        tx = loan.send();
        let message = rx.recv_owned(None).unwrap();
        assert_eq!(message.len(), 8);
        let mut bytes = [0u8; 8];
        message.copy_to(&mut bytes).unwrap();
        assert_eq!(bytes[..4], i.to_le_bytes());
        assert_eq!(bytes[4..], (!i).to_le_bytes());
        // SAFETY: one process, both ends follow the protocol.
        assert_eq!(unsafe { message.as_slice() }, &bytes);
        rx = message.release();
    }
}

#[test]
fn errors_give_the_endpoint_back_still_connected() {
    let channel = ChannelOptions::new().capacity(64).anonymous().unwrap();
    let tx = channel.sender().unwrap();
    let rx = channel.receiver().unwrap();

    let empty = rx.recv_owned(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::Empty);
    let started = Instant::now();
    let timed = empty
        .into_inner()
        .recv_owned(Some(Duration::from_millis(30)))
        .unwrap_err();
    assert_eq!(timed.kind(), ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(30));
    let rx = timed.into_inner();

    let too_big = tx.loan_owned(1000, None).unwrap_err();
    assert_eq!(too_big.kind(), ErrorKind::InvalidSize);
    let mut loan = too_big.into_inner().loan_owned(40, None).unwrap();
    loan.write_at(0, &[7; 40]).unwrap();
    let tx = loan.send();
    let full = tx.loan_owned(40, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(full.kind(), ErrorKind::Full);
    // `?` turns it into the crate's error.
    let as_error: sections::Error = full.into();
    assert_eq!(as_error.kind(), ErrorKind::Full);

    // The sender went with the error above: the receiver gets the message
    // and then Disconnected, the receiver still the same one.
    let message = rx.recv_owned(None).unwrap();
    assert_eq!(message.to_vec(), [7; 40]);
    let gone = message.release().recv_owned(None).unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::Disconnected);
}

#[test]
fn a_cancelled_or_dropped_loan_sends_nothing_and_a_released_message_frees_room() {
    let channel = ChannelOptions::new().capacity(64).anonymous().unwrap();
    let mut tx = channel.sender().unwrap();
    let rx = channel.receiver().unwrap();

    let mut loan = tx.loan_owned(40, None).unwrap();
    loan.write_at(0, &[1; 40]).unwrap();
    tx = loan.cancel();
    let mut loan = tx.loan_owned(40, None).unwrap();
    loan.write_at(0, &[2; 40]).unwrap();
    tx = loan.send();
    // The ring is full until the message is released.
    let full = tx.loan_owned(40, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(full.kind(), ErrorKind::Full);
    tx = full.into_inner();
    let message = rx.recv_owned(None).unwrap();
    assert_eq!(message.to_vec(), [2; 40], "the cancelled loan was not sent");
    let held = tx.loan_owned(40, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(held.kind(), ErrorKind::Full, "room is taken while held");
    tx = held.into_inner();
    let rx = message.release();
    let mut loan = tx.loan_owned(40, Some(Duration::ZERO)).unwrap();
    loan.write_at(0, &[3; 40]).unwrap();
    // Dropping a loan cancels it and drops its sender: the receiver sees
    // the channel disconnected, with nothing in it.
    drop(loan);
    let gone = rx.recv_owned(None).unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::Disconnected);
}

#[test]
fn a_dropped_owned_message_frees_its_room_and_disconnects_the_receiver() {
    let channel = ChannelOptions::new().capacity(64).anonymous().unwrap();
    let mut tx = channel.sender().unwrap();
    let rx = channel.receiver().unwrap();
    tx.send(&[9; 40]).unwrap();
    let message = rx.recv_owned(None).unwrap();
    assert!(!message.as_ptr().is_null());
    drop(message);
    // The room is free (a send that finds room does not ask whether the
    // receiver lives); the next one has to wait and learns it is gone.
    tx.try_send(&[9; 40]).unwrap();
    assert_eq!(
        tx.send(&[9; 40]).unwrap_err().kind(),
        ErrorKind::Disconnected
    );
    // A new receiver may connect: the slot was given up.
    let rx = channel.receiver().unwrap();
    drop(rx);
}
