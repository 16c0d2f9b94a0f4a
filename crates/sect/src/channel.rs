//! `sect send` and `sect recv`: a channel's two ends on the command line,
//! for scripts and for debugging a program that speaks on one.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use sections::channel::{Channel, ChannelOptions};
use sections::ErrorKind;

use crate::cli::Global;
use crate::commands::namespace;
use crate::report::shown;
use crate::{Failure, Outcome};

type Result<T = ()> = std::result::Result<T, Outcome>;

/// What `sect send` sends.
#[derive(Debug)]
pub enum Input {
    /// Each argument, one message each.
    Arguments(Vec<String>),
    /// Each line of standard input.
    Lines,
    /// A whole file (or standard input, `-`) as one message.
    File(PathBuf),
}

impl Input {
    pub fn of(messages: Vec<String>, file: Option<PathBuf>) -> Input {
        match (messages.is_empty(), file) {
            (_, Some(file)) => Input::File(file),
            (true, None) => Input::Lines,
            (false, None) => Input::Arguments(messages),
        }
    }
}

/// The channel options of the command line.
fn options(g: &Global) -> ChannelOptions {
    let mut opts = ChannelOptions::new();
    opts.namespace(&namespace(g))
        .allow_foreign_owner(g.allow_foreign_owner);
    opts
}

/// Creates the channel when asked to: held by the caller while it runs.
fn create(opts: &mut ChannelOptions, name: &str, capacity: Option<u64>) -> Result<Option<Channel>> {
    let Some(capacity) = capacity else {
        return Ok(None);
    };
    let capacity = u32::try_from(capacity).map_err(|_| {
        Failure::new(format!(
            "channel '{}': a capacity of {capacity} bytes is more than a channel holds (4 GiB)",
            shown(name)
        ))
    })?;
    opts.capacity(capacity);
    Ok(Some(opts.create(name)?))
}

/// `--timeout SECS` as a duration; a clear error for what is not one.
fn timeout(secs: Option<f64>) -> std::result::Result<Option<Duration>, Failure> {
    secs.map(|s| {
        Duration::try_from_secs_f64(s).map_err(|_| {
            Failure::new(format!(
                "--timeout {s}: expected a number of seconds, 0 or more"
            ))
        })
    })
    .transpose()
}

pub fn send(
    g: &Global,
    name: &str,
    input: Input,
    capacity: Option<u64>,
    secs: Option<f64>,
) -> Result {
    let wait = timeout(secs)?;
    let mut opts = options(g);
    let _channel = create(&mut opts, name, capacity)?;
    let mut tx = opts.open_sender(name)?;
    let mut send = |message: &[u8]| -> Result {
        match wait {
            None => tx.send(message)?,
            Some(wait) => tx.send_timeout(message, wait)?,
        }
        Ok(())
    };
    match input {
        Input::Arguments(messages) => {
            for message in messages {
                send(message.as_bytes())?;
            }
        }
        Input::Lines => {
            for line in io::stdin().lock().split(b'\n') {
                let line =
                    line.map_err(|e| Failure::new(format!("reading standard input: {e}")))?;
                send(&line)?;
            }
        }
        Input::File(path) => {
            let mut bytes = Vec::new();
            let read = if path.as_os_str() == "-" {
                io::stdin().lock().read_to_end(&mut bytes)
            } else {
                std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes))
            };
            read.map_err(|e| {
                Failure::new(format!(
                    "reading {}: {e}",
                    shown(&path.display().to_string())
                ))
            })?;
            send(&bytes)?;
        }
    }
    Ok(())
}

pub fn recv(
    g: &Global,
    name: &str,
    count: Option<u64>,
    capacity: Option<u64>,
    secs: Option<f64>,
    hex: bool,
    raw: bool,
) -> Result {
    let wait = timeout(secs)?;
    let mut opts = options(g);
    let _channel = create(&mut opts, name, capacity)?;
    let mut rx = opts.open_receiver(name)?;
    let mut out = io::stdout().lock();
    let mut received = 0u64;
    let mut buf = Vec::new();
    while count.is_none_or(|n| received < n) {
        let message = match wait {
            None => rx.recv(),
            Some(wait) => rx.recv_timeout(wait),
        };
        let message = match message {
            Ok(message) => message,
            Err(e) if e.kind() == ErrorKind::Disconnected && count.is_none() => break,
            Err(e) => return Err(e.into()),
        };
        buf.clear();
        buf.resize(message.len(), 0);
        message.copy_to(&mut buf)?;
        drop(message);
        if raw {
            out.write_all(&buf)?;
        } else if hex {
            for byte in &buf {
                write!(out, "{byte:02x}")?;
            }
            writeln!(out)?;
        } else {
            writeln!(out, "{}", buf.escape_ascii())?;
        }
        // Each message is shown as it comes, not when the buffer fills.
        out.flush()?;
        received += 1;
    }
    Ok(())
}
