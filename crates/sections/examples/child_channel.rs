//! An anonymous channel handed to a child process: no name, nothing in
//! any namespace, nothing to clean up.
//!
//! The parent creates a channel without a name, makes it inheritable and
//! starts a child (this program again) with the channel's token as its
//! argument. The child connects a sender with
//! `ChannelOptions::sender_from_token` and sends records of every length
//! from 0 to 2 KiB, written in place through loans; the parent checks each
//! one, then sees `Disconnected` once the child has exited and everything
//! it sent has been received.
//!
//! Run it with
//!
//! ```text
//! cargo run -p sections --example child_channel
//! ```
//!
//! It exits 0 when every record arrived intact and in order. Linux and
//! Windows (on Linux the channel's memory is a sealed memfd the child
//! inherits; on Windows an inherited section handle and two kernel events
//! with random names).

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use sections::channel::ChannelOptions;
use sections::ErrorKind;

/// Records the child sends: one of each length from 0 to `RECORDS - 1`.
const RECORDS: usize = 2048;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => parent(),
        [role, token] if role == "child" => child(token),
        _ => Err("usage: child_channel [child TOKEN]".into()),
    }
}

/// Record `i`: `i` bytes, each a function of `i` and its position, so a
/// record that arrived cut, mixed up or out of order shows.
fn record(i: usize) -> impl Iterator<Item = u8> {
    (0..i).map(move |at| (i * 31 + at * 7) as u8)
}

fn parent() -> Result<(), Box<dyn Error>> {
    // A small ring, so the child has to wait for the parent now and then.
    let channel = ChannelOptions::new().capacity(16 * 1024).anonymous()?;
    let mut rx = channel.receiver()?;

    let inheritable = channel.inheritable()?;
    let child = Command::new(std::env::current_exe()?)
        .arg("child")
        .arg(inheritable.token())
        .spawn()?;
    let mut child = KillOnDrop(child);
    // The child has inherited what it needs; the parent lets go of it.
    drop(inheritable);

    let mut received = 0;
    loop {
        let message = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(message) => message,
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => return Err(e.into()),
        };
        let got = message.to_vec();
        if !got.iter().copied().eq(record(received)) {
            return Err(format!("record {received} arrived damaged ({} bytes)", got.len()).into());
        }
        received += 1;
    }

    let status = child.0.wait()?;
    if !status.success() {
        return Err(format!("the child failed: {status}").into());
    }
    if received != RECORDS {
        return Err(format!("received {received} records, expected {RECORDS}").into());
    }
    println!("parent: {received} records from the child, all intact, then Disconnected");
    Ok(())
}

fn child(token: &str) -> Result<(), Box<dyn Error>> {
    let mut tx = ChannelOptions::new().sender_from_token(token)?;
    for i in 0..RECORDS {
        // A slot in the ring, filled in place: the parent reads these very
        // bytes, with no copy in between.
        let mut loan = tx.loan(i)?;
        let bytes: Vec<u8> = record(i).collect();
        loan.write_at(0, &bytes)?;
        loan.send();
    }
    // Dropping the sender (here, at exit) disconnects it.
    Ok(())
}

/// Kills the child if the parent returns early (on an error), so that the
/// example never leaves a process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
