//! `sect`: the command-line tool for sections. A thin layer: parse, call
//! the library, print.

#[cfg(target_os = "linux")]
mod bench;
mod cli;
mod commands;
mod report;
mod units;

use std::fmt;
use std::io;
use std::process::ExitCode;

use clap::Parser;

/// A runtime failure: printed as one `sect: error:` line, exit status 1.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<sections::Error> for Failure {
    fn from(e: sections::Error) -> Self {
        Failure(e.to_string())
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
            Outcome::Failed(Failure(format!("writing output: {e}")))
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
            for c in failure.0.chars() {
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
