//! The command line, defined once: parsing, `--help`, shell completions and
//! the man page all come from these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::units::{parse_mode, parse_offset, parse_size};

/// Create, fill, read, inspect and remove named sections (shared memory
/// and named memory-mapped files).
#[derive(Debug, Parser)]
#[command(name = "sect", version, about, max_term_width = 100, after_help = SIZES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The one rule for SIZE and N arguments (`units.rs` implements it).
const SIZES_HELP: &str = "\
Sizes and offsets (SIZE, N) are bytes: 4096, or hexadecimal 0x1000 (no unit).
Units: K, M, G, T (or k, m, g, t) and KiB, MiB, GiB, TiB are powers of 1024;
KB (or kB), MB, GB, TB are powers of 1000; B is bytes. Forms with a lowercase
b (Mb, mb, kb) could mean bits and are refused; so are fractions (1.5M: write
1536K) and negative numbers. Text output shows sizes exactly: 4 KiB, 1.5 GiB,
or the byte count with a rounded size, 4097 B (~4.0 KiB); JSON shows bytes.";

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
    #[command(after_help = SIZES_HELP)]
    Create {
        /// The section's name.
        name: String,
        /// Size: 4096, 0x1000, 64K = 64KiB (1024s), 1MB (1000s); units below.
        #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_hyphen_values = true)]
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
    #[command(after_help = SIZES_HELP)]
    Write {
        /// The section's name.
        name: String,
        /// Where to start writing (bytes, 0x hex, or with a unit: 4K).
        #[arg(long, value_name = "N", value_parser = parse_offset, default_value = "0", allow_hyphen_values = true)]
        offset: u64,
        /// The input; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Write the section's bytes to standard output.
    #[command(after_help = SIZES_HELP)]
    Cat {
        /// The section's name.
        name: String,
        /// Where to start (bytes, 0x hex, or with a unit: 4K).
        #[arg(long, value_name = "N", value_parser = parse_offset, default_value = "0", allow_hyphen_values = true)]
        offset: u64,
        /// How many bytes (default: to the end).
        #[arg(long, value_name = "N", value_parser = parse_offset, allow_hyphen_values = true)]
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
    /// Send messages on a channel: each MESSAGE argument, or else each
    /// line of standard input (without its newline), or with --file the
    /// whole file as one message.
    Send {
        /// The channel's name.
        name: String,
        /// The messages, in order.
        #[arg(conflicts_with = "file")]
        messages: Vec<String>,
        /// Send FILE's bytes as one message (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Create the channel with this capacity in bytes (it lives while
        /// this command or another holder runs).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        create: Option<u64>,
        /// Give up when the receiver makes no room for this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
    },
    /// Receive messages from a channel and print each on its own line
    /// (control characters and backslashes escaped), until every sender is
    /// gone, or --count messages came.
    Recv {
        /// The channel's name.
        name: String,
        /// Stop after N messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Create the channel with this capacity in bytes (it lives while
        /// this command or another holder runs).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        create: Option<u64>,
        /// Give up when no message comes for this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Print each message as hexadecimal instead.
        #[arg(long, conflicts_with = "raw")]
        hex: bool,
        /// Write the messages' bytes unframed and unescaped.
        #[arg(long)]
        raw: bool,
    },
    /// Show an executable or shared library (ELF or PE): its loadable
    /// segments with their protections and how many of their pages the
    /// page cache holds; with --symbols, its hottest and coldest symbols.
    /// The file is only parsed, nothing of it is mapped to run; parsing
    /// reads its headers and symbol tables without read-ahead, so those
    /// pages (and no others) may be resident because of it.
    Image {
        /// The image file.
        file: PathBuf,
        /// Also rank its functions and data by the pages of their file
        /// range in the page cache: the hottest and the coldest.
        #[arg(long)]
        symbols: bool,
        /// How many symbols each of the two lists shows.
        #[arg(long, value_name = "N", default_value = "10", requires = "symbols",
              value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        top: u64,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure what sections rest on, on this machine: a mapped file
    /// against read(), shared memory against private memory.
    #[command(after_help = SIZES_HELP)]
    Bench {
        /// Suites to run (default: all).
        #[arg(value_enum)]
        suites: Vec<Suite>,
        /// Fewer runs and operations (3 runs per case).
        #[arg(long)]
        quick: bool,
        /// Size of the data file and of each memory region.
        #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "512MiB", allow_hyphen_values = true)]
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
    /// Print the man page sect(1) (roff), or write it and one page per
    /// command (sect-create(1), ...) into a directory.
    Man {
        /// Write sect.1 and sect-COMMAND.1 for every command into DIR
        /// (created if missing) instead of printing sect.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    /// An executable image mapped by its segments against reading it
    /// whole; what one call brings into memory (needs a C compiler).
    Image,
    /// Async code: a cold file scanned on one tokio thread (plain view,
    /// populated view, tokio::fs), and the channel awaited on both sides
    /// against a tokio UnixStream.
    Async,
}
