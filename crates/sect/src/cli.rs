//! The command line, defined once: parsing, `--help`, shell completions and
//! the man page all come from these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::units::{parse_mode, parse_offset, parse_size};

/// Create, fill, read, inspect and remove named sections (shared memory
/// and named memory-mapped files).
#[derive(Debug, Parser)]
#[command(name = "sect", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where names live unless `--namespace` says otherwise.
#[cfg(windows)]
const DEFAULT_NAMESPACE: &str = "Local\\";
#[cfg(not(windows))]
const DEFAULT_NAMESPACE: &str = "/dev/shm";

#[derive(Debug, Args)]
pub struct Global {
    /// The namespace that holds the names: a directory (on Windows, a
    /// private prefix; the default is the session's Local\ namespace).
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_NAMESPACE)]
    pub namespace: PathBuf,
    /// Open sections owned by another user (refused by default: a name
    /// another user created first may be a trap).
    #[arg(long, global = true)]
    pub allow_foreign_owner: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a section. Without --hold it is persistent: it stays until
    /// `sect rm`. With --hold it lives while a holder runs.
    Create {
        /// The section's name.
        name: String,
        /// Size: 4096, 64K, 64KiB, 1M, 1MiB, 1G, 1GiB (K = 1024).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        size: u64,
        /// Permission bits in octal (default 600: owner only).
        #[arg(long, value_name = "OCTAL", value_parser = parse_mode, default_value = "600")]
        mode: u32,
        /// Back the section by this file (created at SIZE if missing).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Hold the section until SIGINT, SIGTERM or SIGHUP, then release
        /// it; the name goes with its last holder.
        #[arg(long)]
        hold: bool,
    },
    /// Open an existing section and hold it until SIGINT, SIGTERM or SIGHUP.
    Hold {
        /// The section's name.
        name: String,
    },
    /// Copy FILE (or standard input) into the section at an offset.
    Write {
        /// The section's name.
        name: String,
        /// Where to start writing (bytes; size suffixes allowed).
        #[arg(long, value_name = "N", value_parser = parse_offset, default_value = "0")]
        offset: u64,
        /// The input; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Write the section's bytes to standard output.
    Cat {
        /// The section's name.
        name: String,
        /// Where to start (bytes; size suffixes allowed).
        #[arg(long, value_name = "N", value_parser = parse_offset, default_value = "0")]
        offset: u64,
        /// How many bytes (default: to the end).
        #[arg(long, value_name = "N", value_parser = parse_offset)]
        len: Option<u64>,
        /// Print a hexdump with offsets instead of raw bytes.
        #[arg(long)]
        hex: bool,
    },
    /// List every entry of the namespace.
    Ls {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show a section and every process that holds or maps it.
    Info {
        /// The section's name.
        name: String,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove a name. Processes that hold it keep their mappings.
    Rm {
        /// The section's name.
        name: String,
    },
    /// Remove stale names (left by holders that died) and print each.
    Gc {
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure what sections rest on, on this machine: a mapped file
    /// against read(), shared memory against private memory.
    Bench {
        /// Suites to run (default: all).
        #[arg(value_enum)]
        suites: Vec<Suite>,
        /// Fewer runs and operations (3 runs per case).
        #[arg(long)]
        quick: bool,
        /// Size of the data file and of each memory region.
        #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "512MiB")]
        size: u64,
        /// Measured runs per case (default 5, or 3 with --quick).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        runs: Option<u64>,
        /// Also write the results as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also draw SVG charts into DIR.
        #[arg(long, value_name = "DIR")]
        plot: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// Which bench suites to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// A mapped file against read() and pread().
    Mmap,
    /// Shared memory against private memory.
    Shared,
    /// Messages between processes: the channel against a pipe, a Unix
    /// socket and the raw cache-line floor.
    Ipc,
}
