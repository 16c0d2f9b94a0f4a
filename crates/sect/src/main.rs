//! `sect`: the command-line tool for sections. A thin layer: parse, call
//! the library, print.

#[cfg(target_os = "linux")]
mod bench;
mod channel;
mod cli;
mod commands;
mod image;
mod report;
mod units;

use std::fmt;
use std::io;
use std::process::ExitCode;

use clap::Parser;

/// A runtime failure: printed as one `sect: error:` line, exit status 1.
#[derive(Debug)]
pub struct Failure {
    message: String,
    /// The name of a section the library did not find, so that every
    /// command words that the same way (see [`Failure::in_namespace`]).
    missing: Option<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            missing: None,
        }
    }

    /// No section `name`: worded by [`Failure::in_namespace`].
    pub fn missing(name: &str) -> Self {
        Failure {
            message: format!("section '{}': not found", report::shown(name)),
            missing: Some(name.to_owned()),
        }
    }

    /// The one wording of "no such section" for every command: `cat`,
    /// `info`, `rm`, `write` and `hold` each reach it through a different
    /// library call (open, inspect, remove).
    pub fn in_namespace(self, namespace: &std::path::Path) -> Self {
        match &self.missing {
            Some(name) => Failure::new(format!(
                "section '{}': not found in {}",
                report::shown(name),
                report::shown(&namespace.display().to_string())
            )),
            None => self,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Operations whose `NotFound` means "no section of that name" (and not,
/// say, a missing namespace directory at create).
const LOOKUPS: [&str; 3] = ["open", "inspect", "remove"];

impl From<sections::Error> for Failure {
    fn from(e: sections::Error) -> Self {
        match (e.kind(), e.name()) {
            (sections::ErrorKind::NotFound, Some(name)) if LOOKUPS.contains(&e.operation()) => {
                Failure::missing(name)
            }
            _ => match (e.foreign_owner(), e.name()) {
                // The library names its option; the tool names its flag.
                (Some(owner), Some(name)) => Failure::new(format!(
                    "section '{}': {}: {} (owned by uid {owner}, not by this user{}); \
                     pass --allow-foreign-owner to open it anyway",
                    report::shown(name),
                    e.operation(),
                    e.kind(),
                    my_uid().map_or(String::new(), |me| format!(" (uid {me})")),
                )),
                _ => Failure::new(e.to_string()),
            },
        }
    }
}

/// This process's effective uid, where there is one.
fn my_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Some(unsafe { libc::geteuid() })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Output errors: a closed pipe (`sect cat x | head`) ends the command
/// quietly; anything else is a failure.
#[derive(Debug)]
pub enum Outcome {
    Failed(Failure),
    PipeClosed,
}

impl From<Failure> for Outcome {
    fn from(f: Failure) -> Self {
        Outcome::Failed(f)
    }
}

impl From<sections::Error> for Outcome {
    fn from(e: sections::Error) -> Self {
        Outcome::Failed(e.into())
    }
}

impl From<io::Error> for Outcome {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Outcome::PipeClosed
        } else {
            Outcome::Failed(Failure::new(format!("writing output: {e}")))
        }
    }
}

fn main() -> ExitCode {
    // `sect bench ipc` starts this program again as its peer.
    #[cfg(target_os = "linux")]
    if let Ok(role) = std::env::var(bench::PEER) {
        bench::peer(&role);
    }
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) | Err(Outcome::PipeClosed) => ExitCode::SUCCESS,
        Err(Outcome::Failed(failure)) => {
            // One line, whatever the message contains: a name from outside
            // that slipped through unescaped still cannot print a control
            // character.
            let mut line = String::new();
            for c in failure.message.chars() {
                match c {
                    '\n' => line.push(' '),
                    c if c.is_control() => line.extend(c.escape_default()),
                    c => line.push(c),
                }
            }
            eprintln!("sect: error: {line}");
            ExitCode::FAILURE
        }
    }
}
