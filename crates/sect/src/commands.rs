//! One function per subcommand.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use clap::CommandFactory;
use sections::{Access, Lifetime, Namespace, Section, SectionOptions};

use crate::cli::{Cli, Command, Global};
use crate::report::{self, shown, EntryReport};
use crate::units::{exact, exact_with_bytes};
use crate::{Failure, Outcome};

type Result<T = ()> = std::result::Result<T, Outcome>;

pub fn run(cli: Cli) -> Result {
    let g = &cli.global;
    dispatch(g, cli.command).map_err(|outcome| match outcome {
        Outcome::Failed(failure) => Outcome::Failed(failure.in_namespace(&g.namespace)),
        other => other,
    })
}

fn dispatch(g: &Global, command: Command) -> Result {
    match command {
        Command::Create {
            name,
            size,
            mode,
            file,
            hold,
        } => create(g, &name, size, mode, file.as_deref(), hold),
        Command::Hold { name } => hold(g, &name),
        Command::Write { name, offset, file } => write(g, &name, offset, file.as_deref()),
        Command::Cat {
            name,
            offset,
            len,
            hex,
        } => cat(g, &name, offset, len, hex),
        Command::Ls { json } => ls(g, json),
        Command::Info { name, json } => info(g, &name, json),
        Command::Rm { name } => rm(g, &name),
        Command::Gc { dry_run } => gc(g, dry_run),
        Command::Send {
            name,
            messages,
            file,
            create,
            timeout,
        } => crate::channel::send(
            g,
            &name,
            crate::channel::Input::of(messages, file),
            create,
            timeout,
        ),
        Command::Recv {
            name,
            count,
            create,
            timeout,
            hex,
            raw,
        } => crate::channel::recv(g, &name, count, create, timeout, hex, raw),
        Command::Image {
            file,
            symbols,
            top,
            json,
        } => crate::image::run(&file, symbols, top as usize, json),
        #[cfg(target_os = "linux")]
        Command::Bench {
            suites,
            quick,
            size,
            runs,
            json,
            plot,
        } => Ok(crate::bench::run(crate::bench::Options {
            suites,
            quick,
            size,
            runs: runs.map_or(if quick { 3 } else { 5 }, |r| r as usize),
            json,
            plot,
        })?),
        #[cfg(not(target_os = "linux"))]
        Command::Bench { .. } => Err(Failure::new(
            "sect bench measures Linux system calls (read, pread, posix_fadvise, getrusage) \
             and is available on Linux only",
        )
        .into()),
        Command::Completions { shell } => {
            let mut out = io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "sect", &mut out);
            out.flush()?;
            Ok(())
        }
        Command::Man { dir: None } => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(man_command()).render(&mut out)?;
            out.flush()?;
            Ok(())
        }
        Command::Man { dir: Some(dir) } => man_pages(&dir),
    }
}

/// The command line as the man pages describe it: without the `help`
/// command, which has no page (`--help` is on every page).
fn man_command() -> clap::Command {
    let mut sect = Cli::command().disable_help_subcommand(true);
    // Built once, so that each command knows its full name (sect-create).
    sect.build();
    sect
}

/// Writes `sect.1` and `sect-COMMAND.1` for every command into `dir`, the
/// pages `sect.1` refers to, and prints each path.
fn man_pages(dir: &Path) -> Result {
    let failed = |e: io::Error| {
        Failure::new(format!(
            "writing man pages to {}: {e}",
            shown(&dir.display().to_string())
        ))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let sect = man_command();
    let mut pages = vec![sect.clone()];
    pages.extend(sect.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    let mut out = io::stdout().lock();
    for page in pages {
        let path = clap_mangen::Man::new(page)
            .generate_to(dir)
            .map_err(failed)?;
        writeln!(out, "{}", shown(&path.display().to_string()))?;
    }
    Ok(())
}

pub fn namespace(g: &Global) -> Namespace {
    Namespace::at(&g.namespace)
}

fn options(g: &Global) -> SectionOptions {
    let mut options = Section::options();
    options
        .namespace(&namespace(g))
        .allow_foreign_owner(g.allow_foreign_owner);
    options
}

fn create(g: &Global, name: &str, size: u64, mode: u32, file: Option<&Path>, hold: bool) -> Result {
    let lifetime = if hold {
        Lifetime::Counted
    } else {
        Lifetime::Persistent
    };
    let mut opts = options(g);
    opts.size(size).mode(mode).lifetime(lifetime);
    if let Some(path) = file {
        opts.file(path);
    }
    // Signals are caught before the section exists, so that one arriving
    // right after the "holding" line still releases it.
    let signals = if hold { Some(catch_signals()?) } else { None };
    let section = opts.create(name).map_err(|e| {
        if e.kind() == sections::ErrorKind::Unsupported && !hold {
            // The library says why; the tool can say what to type instead.
            Failure::new(format!("{e}; hold it instead with 'sect create --hold'"))
        } else {
            e.into()
        }
    })?;
    let what = match file {
        Some(path) => format!("file section over {}", shown(&path.display().to_string())),
        None => "memory section".to_owned(),
    };
    let size = exact(section.size()?);
    let name = shown(name);
    match signals {
        None => {
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "created '{name}': {size} {what} in {}, persistent: it stays until 'sect rm {name}'",
                shown(&g.namespace.display().to_string())
            )?;
            Ok(())
        }
        Some(signals) => hold_until_signal(
            signals,
            section,
            &format!(
                "holding '{name}': {size} {what}, removed when its last holder exits; stop with Ctrl-C or SIGTERM"
            ),
        ),
    }
}

fn hold(g: &Global, name: &str) -> Result {
    let signals = catch_signals()?;
    let section = options(g).access(Access::Read).open(name)?;
    let lifetime = match section.lifetime() {
        Lifetime::Counted => "counted: it lives at least until this holder exits",
        Lifetime::Persistent => "persistent: holding does not change its lifetime",
    };
    let size = exact(section.size()?);
    hold_until_signal(
        signals,
        section,
        &format!(
            "holding '{}': {size}, {lifetime}; stop with Ctrl-C or SIGTERM",
            shown(name)
        ),
    )
}

/// Waits for the signal to let go: SIGINT, SIGTERM or SIGHUP on Unix.
#[cfg(unix)]
struct Release(signal_hook::iterator::Signals);

#[cfg(unix)]
fn catch_signals() -> std::result::Result<Release, Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map(Release)
        .map_err(|e| Failure::new(format!("cannot catch signals: {e}")))
}

#[cfg(unix)]
impl Release {
    fn wait(mut self) {
        let _signal = self.0.forever().next();
    }
}

/// On Windows, Ctrl-C or ending the process lets go: the kernel closes the
/// handles of an ended process, and the name goes with the last one.
#[cfg(windows)]
struct Release;

#[cfg(windows)]
fn catch_signals() -> std::result::Result<Release, Failure> {
    Ok(Release)
}

#[cfg(windows)]
impl Release {
    fn wait(self) {
        loop {
            std::thread::park();
        }
    }
}

fn hold_until_signal(release: Release, section: Section, line: &str) -> Result {
    // A holder maps the section too, so `sect info` shows where. Sections
    // too large for the address space are held without a view.
    let view = section.map_all(Access::Read).ok();
    {
        let mut out = io::stdout().lock();
        // A closed stdout must not stop us from holding.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
    release.wait();
    drop((view, section));
    Ok(())
}

fn write(g: &Global, name: &str, offset: u64, file: Option<&Path>) -> Result {
    let mut data = Vec::new();
    let source = match file {
        Some(path) if path != Path::new("-") => {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut data))
                .map_err(|e| Failure::new(format!("reading {}: {e}", path.display())))?;
            shown(&path.display().to_string())
        }
        _ => {
            io::stdin()
                .lock()
                .read_to_end(&mut data)
                .map_err(|e| Failure::new(format!("reading standard input: {e}")))?;
            "standard input".to_owned()
        }
    };
    let section = options(g).access(Access::ReadWrite).open(name)?;
    let size = section.size()?;
    let name = shown(name);
    if offset > size {
        return Err(Failure::new(format!(
            "section '{name}': offset {offset} is past the end (the section is {size} bytes); nothing was written"
        ))
        .into());
    }
    let room = size - offset;
    if data.len() as u64 > room {
        return Err(Failure::new(format!(
            "section '{name}': {} bytes from {source} do not fit at offset {offset}: the section is {size} bytes, room for {room}; nothing was written",
            data.len()
        ))
        .into());
    }
    if !data.is_empty() {
        let view = section.map_all(Access::ReadWrite)?;
        view.write_at(offset as usize, &data)?;
    }
    eprintln!("wrote {} bytes to '{name}' at offset {offset}", data.len());
    Ok(())
}

fn cat(g: &Global, name: &str, offset: u64, len: Option<u64>, hex: bool) -> Result {
    let section = options(g).access(Access::Read).open(name)?;
    let size = section.size()?;
    let name = shown(name);
    if offset > size {
        return Err(Failure::new(format!(
            "section '{name}': offset {offset} is past the end (the section is {size} bytes)"
        ))
        .into());
    }
    let len = match len {
        Some(len) if len > size - offset => {
            return Err(Failure::new(format!(
                "section '{name}': {len} bytes at offset {offset} go past the end (the section is {size} bytes, {} left)",
                size - offset
            ))
            .into())
        }
        Some(len) => len,
        None => size - offset,
    };
    if len == 0 {
        return Ok(());
    }
    let view = section.map_all(Access::Read)?;
    let mut out = BufWriter::new(io::stdout().lock());
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = CHUNK.min((len - done) as usize);
        let at = offset + done;
        view.read_at(at as usize, &mut buf[..n])?;
        if hex {
            for (i, line) in buf[..n].chunks(16).enumerate() {
                writeln!(out, "{}", report::hexdump_line(at + 16 * i as u64, line))?;
            }
        } else {
            out.write_all(&buf[..n])?;
        }
        done += n as u64;
    }
    out.flush()?;
    Ok(())
}

fn reports(g: &Global, with_maps: bool) -> std::result::Result<Vec<EntryReport>, Failure> {
    let ns = namespace(g);
    let entries = sections::list(&ns)?;
    reports_of(&ns, &entries, with_maps)
}

fn reports_of(
    ns: &Namespace,
    entries: &[sections::EntryInfo],
    with_maps: bool,
) -> std::result::Result<Vec<EntryReport>, Failure> {
    let usage = sections::usage(ns, entries)?;
    let mut users = report::Users::default();
    Ok(entries
        .iter()
        .zip(&usage)
        .map(|(e, u)| EntryReport::new(e, u, &mut users, with_maps))
        .collect())
}

fn ls(g: &Global, json: bool) -> Result {
    let reports = reports(g, false)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &reports).map_err(io::Error::from)?;
        writeln!(out)?;
    } else {
        let rows: Vec<_> = reports.iter().map(report::ls_row).collect();
        write!(out, "{}", report::table(&report::LS_HEADER, &rows))?;
    }
    Ok(())
}

/// The one entry `name`, looking at no other entry of the namespace.
#[cfg(target_os = "linux")]
fn find(g: &Global, name: &str, with_maps: bool) -> std::result::Result<EntryReport, Failure> {
    let ns = namespace(g);
    let entry = sections::entry(&ns, name)?;
    let mut reports = reports_of(&ns, &[entry], with_maps)?;
    Ok(reports.remove(0))
}

/// Listing is not available elsewhere; `list` says why.
#[cfg(not(target_os = "linux"))]
fn find(g: &Global, name: &str, with_maps: bool) -> std::result::Result<EntryReport, Failure> {
    sections::validate_name(name)?;
    reports(g, with_maps)?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Failure::missing(name))
}

fn info(g: &Global, name: &str, json: bool) -> Result {
    let r = find(g, name, true)?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &r).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut row = report::ls_row(&r);
    row[1] = exact_with_bytes(r.size);
    for (key, value) in report::LS_HEADER.iter().zip(&row) {
        // The object's own line below says more than LOCKED BY.
        if value.is_empty() || *key == "LOCKED BY" {
            continue;
        }
        writeln!(out, "{:<10} {value}", format!("{}:", key.to_lowercase()))?;
    }
    if let Some(file) = &r.file {
        writeln!(out, "{:<10} {}", "file:", shown(file))?;
    }
    if let Some(state) = r.object_state() {
        writeln!(out, "{:<10} {state}", format!("{}:", r.object))?;
    }
    let maps = r.maps.as_deref().unwrap_or_default();
    let rows: Vec<Vec<String>> = r
        .holders
        .iter()
        .flat_map(|&pid| {
            let mine: Vec<_> = maps.iter().filter(|m| m.pid == pid).collect();
            let comm = command_of(pid);
            if mine.is_empty() {
                vec![vec![
                    pid.to_string(),
                    shown(&comm),
                    "(open, not mapped)".to_owned(),
                    String::new(),
                ]]
            } else {
                mine.iter()
                    .map(|m| {
                        vec![
                            pid.to_string(),
                            shown(&m.comm),
                            format!("{:x}-{:x}", m.start, m.end),
                            m.perms.clone(),
                        ]
                    })
                    .collect()
            }
        })
        .collect();
    writeln!(out)?;
    if rows.is_empty() {
        writeln!(out, "no process holds or maps it")?;
    } else {
        write!(
            out,
            "{}",
            report::table(&["PID", "COMMAND", "MAPPED", "PERMS"], &rows)
        )?;
    }
    Ok(())
}

fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default()
}

fn rm(g: &Global, name: &str) -> Result {
    let before = find(g, name, false).ok();
    let shown_name = shown(name);
    let removed = sections::remove(&namespace(g), name)?;
    let me = std::process::id();
    let others: Vec<u32> = before
        .map(|r| r.holders.into_iter().filter(|&p| p != me).collect())
        .unwrap_or_default();
    let mut out = io::stdout().lock();
    if others.is_empty() && !removed.still_held {
        writeln!(out, "removed '{shown_name}'")?;
    } else {
        let pids = others
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let who = if others.is_empty() {
            "processes".to_owned()
        } else {
            format!("{} process(es) (pid {pids})", others.len())
        };
        writeln!(
            out,
            "removed '{shown_name}'; {who} still hold it and keep their mappings until they let go"
        )?;
    }
    Ok(())
}

fn gc(g: &Global, dry_run: bool) -> Result {
    let ns = namespace(g);
    let names: Vec<String> = if dry_run {
        sections::list(&ns)?
            .into_iter()
            .filter(|e| e.stale)
            .map(|e| e.name)
            .collect()
    } else {
        sections::gc(&ns)?
    };
    let mut out = io::stdout().lock();
    let verb = if dry_run { "would remove" } else { "removed" };
    for name in &names {
        writeln!(out, "{verb} stale '{}'", shown(name))?;
    }
    if names.is_empty() {
        eprintln!(
            "no stale sections in {}",
            shown(&g.namespace.display().to_string())
        );
    }
    Ok(())
}
