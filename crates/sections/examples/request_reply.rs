//! Two processes share a named section and talk over a pair of channels,
//! one for requests and one for replies.
//!
//! The client writes a batch of numbers into the shared section (bulk data
//! stays where it is; nothing copies it), then sends a small request
//! naming where the batch is; the server reads the batch in place, sums
//! it, and replies with the sum, which the client checks against its own.
//! The channel also orders the section's bytes: what the client wrote
//! before sending a request is what the server reads after receiving it.
//!
//! Run it with
//!
//! ```text
//! cargo run -p sections --example request_reply
//! ```
//!
//! Started without arguments, the program is the server: it makes a private
//! namespace (a temporary directory, removed at the end), creates the
//! section and both channels in it, and starts itself again as the client
//! (`request_reply client DIR`). It exits 0 when every reply was right.
//! Linux and Windows.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use sections::channel::ChannelOptions;
use sections::{Access, ErrorKind, Namespace, Section};

/// The section's size: room for `SLOTS` batches.
const SECTION_SIZE: u64 = 64 * 1024;
/// Batches are written round-robin into this many slots of the section.
const SLOTS: usize = 8;
const SLOT_SIZE: usize = SECTION_SIZE as usize / SLOTS;
/// Numbers per batch (8 bytes each: they fit a slot).
const BATCH: usize = 500;
const ROUNDS: u64 = 200;
/// How long either side waits for the other before giving up.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => server(),
        Some("client") if args.len() == 2 => client(Namespace::at(&args[1])),
        _ => Err("usage: request_reply [client NAMESPACE_DIR]".into()),
    }
}

/// A request: where a batch starts in the section and how many numbers it
/// has, as two little-endian `u32`s.
fn encode(offset: usize, count: usize) -> [u8; 8] {
    let mut request = [0u8; 8];
    request[..4].copy_from_slice(&(offset as u32).to_le_bytes());
    request[4..].copy_from_slice(&(count as u32).to_le_bytes());
    request
}

fn decode(request: &[u8; 8]) -> (usize, usize) {
    let word = |at: usize| u32::from_le_bytes(request[at..at + 4].try_into().unwrap()) as usize;
    (word(0), word(4))
}

fn server() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let ns = Namespace::at(dir.path());

    let section = Section::options()
        .size(SECTION_SIZE)
        .namespace(&ns)
        .create("numbers")?;
    let view = section.map_all(Access::Read)?;

    let mut opts = ChannelOptions::new();
    opts.capacity(4096).namespace(&ns);
    let requests = opts.create("requests")?;
    let replies = opts.create("replies")?;
    let mut inbox = requests.receiver()?;
    let mut outbox = replies.sender()?;

    let client = Command::new(std::env::current_exe()?)
        .arg("client")
        .arg(dir.path())
        .spawn()?;
    let mut client = KillOnDrop(client);

    let mut served = 0u64;
    loop {
        let mut request = [0u8; 8];
        match inbox.recv_timeout(PATIENCE) {
            Ok(message) => message.copy_to(&mut request)?,
            // The client dropped its sender: it is done.
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => return Err(e.into()),
        }
        let (offset, count) = decode(&request);
        // The request comes from another process: check it before use.
        if offset % 8 != 0 || count > SLOT_SIZE / 8 || offset + count * 8 > view.len() {
            return Err(format!("bad request: {count} numbers at {offset}").into());
        }
        let mut batch = vec![0u8; count * 8];
        view.read_at(offset, &mut batch)?;
        let sum: u64 = batch
            .chunks_exact(8)
            .map(|n| u64::from_le_bytes(n.try_into().unwrap()))
            .fold(0, u64::wrapping_add);
        outbox.send(&sum.to_le_bytes())?;
        served += 1;
    }

    let status = client.0.wait()?;
    if !status.success() {
        return Err(format!("the client failed: {status}").into());
    }
    if served != ROUNDS {
        return Err(format!("served {served} requests, expected {ROUNDS}").into());
    }
    println!("server: summed {served} batches of {BATCH} numbers for the client");
    Ok(())
}

fn client(ns: Namespace) -> Result<(), Box<dyn Error>> {
    // Open everything by name, as any other process could.
    let section = Section::options().namespace(&ns).open("numbers")?;
    let view = section.map_all(Access::ReadWrite)?;
    let mut opts = ChannelOptions::new();
    opts.namespace(&ns);
    let mut ask = opts.open_sender("requests")?;
    let mut answers = opts.open_receiver("replies")?;

    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..ROUNDS {
        let offset = (round as usize % SLOTS) * SLOT_SIZE;
        let mut batch = Vec::with_capacity(BATCH * 8);
        let mut expected = 0u64;
        for _ in 0..BATCH {
            // xorshift: numbers the server cannot guess.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            expected = expected.wrapping_add(seed);
            batch.extend_from_slice(&seed.to_le_bytes());
        }
        view.write_at(offset, &batch)?;
        ask.send(&encode(offset, BATCH))?;

        let mut reply = [0u8; 8];
        answers.recv_timeout(PATIENCE)?.copy_to(&mut reply)?;
        let sum = u64::from_le_bytes(reply);
        if sum != expected {
            return Err(
                format!("round {round}: the server said {sum}, expected {expected}").into(),
            );
        }
    }
    println!("client: {ROUNDS} replies, all right");
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
