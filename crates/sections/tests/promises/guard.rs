//! "A peer cannot crash you by shrinking a section": whatever else the
//! process maps (anonymous sections, channels, sync objects, files), and
//! however many views it has, a truncated section is an error, never a
//! SIGBUS; and a view that met one never again reports a write as done.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;

use libtest_mimic::Failed;
use sections::channel::ChannelOptions;
use sections::sync::{Reset, SyncOptions};
use sections::{granularity, Access, ErrorKind, Namespace, Section};

use crate::ns::{create, private_namespace};
use crate::peer::{self, spawn, TestFn};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "an_anonymous_view_never_unguards_a_named_one",
            anonymous_view_never_unguards,
        ),
        ("ten_thousand_mixed_views_are_all_guarded", many_views),
        (
            "a_patched_view_never_reports_a_successful_write",
            patched_view_stays_failed,
        ),
        (
            "more_views_than_the_map_count_allows_to_split_never_crash",
            past_the_map_count,
        ),
        (
            "a_large_view_read_page_by_page_after_truncation_never_crashes",
            large_view_page_by_page,
        ),
        (
            "a_sigbus_sent_with_kill_keeps_its_default_effect",
            sent_sigbus_kills,
        ),
    ]
}

type RoleResult = Result<(), Box<dyn std::error::Error>>;

pub fn role(role: &str, args: &[String]) -> Option<RoleResult> {
    let ns = Namespace::at(args.first().map(String::as_str).unwrap_or(""));
    match role {
        "guard-mix" => Some(guard_mix(&ns)),
        "guard-many" => Some(guard_many(&ns, args[1].parse().unwrap_or(0))),
        "guard-plain" => Some(guard_plain(&ns, args[1].parse().unwrap_or(0))),
        "guard-large" => Some(guard_large(&ns)),
        "guard-wait" => Some((|| {
            let s = Section::options()
                .size(8192)
                .namespace(&ns)
                .create("held")?;
            let _v = s.map_all(Access::ReadWrite)?;
            println!("ready");
            crate::peer::wait_stdin_eof();
            Ok(())
        })()),
        _ => None,
    }
}

fn truncate(ns: &Namespace, name: &str, len: u64) -> std::io::Result<()> {
    // A program outside the library: it could be C with shm_open and
    // ftruncate.
    OpenOptions::new()
        .write(true)
        .open(ns.dir().join(name))?
        .set_len(len)
}

fn kind<T>(r: sections::Result<T>) -> String {
    format!("{:?}", r.map(drop).map_err(|e| e.kind()))
}

/// The sequence that used to kill the process: an anonymous view took no
/// slot but freed the named view's slot when dropped.
fn guard_mix(ns: &Namespace) -> RoleResult {
    let page = granularity() as u64;
    let named = Section::options()
        .size(2 * page)
        .namespace(ns)
        .create("mixed")?;
    let anonymous = Section::anonymous(page)?;
    let anonymous_view = anonymous.map_all(Access::ReadWrite)?;
    let view = named.map_all(Access::ReadWrite)?;
    // The same section handed over a socket (it arrives without its name)
    // and a file on tmpfs opened by path: both can be truncated too.
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    named.send(&a)?;
    let received = Section::receive(&b)?.map_all(Access::ReadWrite)?;
    let file = ns.dir().join("file-on-tmpfs");
    std::fs::write(&file, vec![1u8; 2 * page as usize])?;
    let file_view = Section::from_path(&file, Access::Read)?.map_all(Access::Read)?;
    // Other kinds in the same process, made and dropped in between.
    let channel = ChannelOptions::new().capacity(4096).anonymous()?;
    let event = SyncOptions::new()
        .namespace(ns)
        .create_event("ev", Reset::Auto, false)?;
    drop(anonymous_view);
    drop(channel);
    drop(event);
    truncate(ns, "mixed", 0)?;
    truncate(ns, "file-on-tmpfs", 0)?;
    println!("read {}", kind(view.read_at(0, &mut [0u8; 8])));
    println!("write {}", kind(view.write_at(page as usize, b"x")));
    println!(
        "received {}",
        kind(received.read_at(page as usize, &mut [0u8; 8]))
    );
    println!("file {}", kind(file_view.read_at(0, &mut [0u8; 8])));
    Ok(())
}

/// Runs a role to its end: its lines and how it ended.
fn run_to_end(role: &str, args: &[&str]) -> (Vec<String>, std::process::ExitStatus) {
    let mut p = spawn(role, args);
    let mut lines = Vec::new();
    while let Some(line) = p.line_within(peer::TIMEOUT) {
        lines.push(line);
    }
    let status = p.child.wait().expect("wait for the peer");
    (lines, status)
}

fn anonymous_view_never_unguards() -> Result<(), Failed> {
    let ns = private_namespace("guard-mix");
    let (lines, status) = run_to_end("guard-mix", &[&ns.arg]);
    assert_ne!(
        status.signal(),
        Some(libc::SIGBUS),
        "the process died of SIGBUS"
    );
    assert!(status.success(), "{status}: {lines:?}");
    assert_eq!(
        lines,
        [
            "read Err(Truncated)",
            "write Err(Truncated)",
            "received Err(Truncated)",
            "file Err(Truncated)"
        ],
        "{lines:?}"
    );
    Ok(())
}

/// Ten thousand views (more than the guard's table used to hold) of a
/// named section, interleaved with anonymous views (some dropped on the
/// way), file views, channels and events; then every named and file view
/// is truncated under it.
fn guard_many(ns: &Namespace, n: usize) -> RoleResult {
    let page = granularity() as u64;
    let named = Section::options()
        .size(2 * page)
        .namespace(ns)
        .create("many")?;
    let file = ns.dir().join("backing.bin");
    std::fs::write(&file, vec![1u8; 2 * page as usize])?;
    let file_section = Section::from_path(&file, Access::ReadWrite)?;
    let anonymous = Section::anonymous(page)?;
    let mut views = Vec::with_capacity(n);
    let mut file_views = Vec::new();
    let mut anonymous_views = Vec::new();
    let mut others = Vec::new();
    for i in 0..n {
        views.push(named.map_all(Access::ReadWrite)?);
        match i % 4 {
            0 => anonymous_views.push(anonymous.map_all(Access::ReadWrite)?),
            1 if i % 400 == 1 => others.push(ChannelOptions::new().capacity(4096).anonymous()?),
            2 => file_views.push(file_section.map_all(Access::Read)?),
            _ => {}
        }
        if i % 7 == 0 {
            // Drop an anonymous view now and then: each drop used to free
            // some other view's slot.
            anonymous_views.pop();
        }
    }
    truncate(ns, "many", 0)?;
    OpenOptions::new().write(true).open(&file)?.set_len(0)?;
    let mut truncated = 0;
    let mut buf = [0u8; 8];
    for v in &views {
        match v.read_at(page as usize, &mut buf) {
            Err(e) if e.kind() == ErrorKind::Truncated => truncated += 1,
            other => println!("a named view read {:?}", other.map_err(|e| e.kind())),
        }
    }
    let mut file_truncated = 0;
    for v in &file_views {
        if v.read_at(0, &mut buf).map_err(|e| e.kind()) == Err(ErrorKind::Truncated) {
            file_truncated += 1;
        }
    }
    // The anonymous views are untouched.
    for v in &anonymous_views {
        v.write_at(0, b"fine")?;
    }
    println!("named {truncated} of {}", views.len());
    println!("file {file_truncated} of {}", file_views.len());
    Ok(())
}

fn many_views() -> Result<(), Failed> {
    let ns = private_namespace("guard-many");
    let n: usize = 10_000;
    let (lines, status) = run_to_end("guard-many", &[&ns.arg, &n.to_string()]);
    assert_ne!(
        status.signal(),
        Some(libc::SIGBUS),
        "the process died of SIGBUS"
    );
    assert!(status.success(), "{status}: {lines:?}");
    let files = (0..n).filter(|i| i % 4 == 2).count();
    assert_eq!(
        lines,
        [
            format!("named {n} of {n}"),
            format!("file {files} of {files}")
        ],
        "{lines:?}"
    );
    Ok(())
}

fn patched_view_stays_failed() -> Result<(), Failed> {
    let ns = private_namespace("guard-sticky");
    let page = granularity();
    let s = create(&ns.ns, "sticky", 4 * page);
    let v = s.map_all(Access::ReadWrite)?;
    v.write_at(3 * page, b"before")?;
    truncate(&ns.ns, "sticky", page as u64)?;
    let err = v.write_at(3 * page, b"lost").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated);
    assert!(err.to_string().contains("shrank"), "{err}");
    // The file grows back: the patched page is still not the section's,
    // so writes there must keep failing rather than vanish.
    truncate(&ns.ns, "sticky", 4 * page as u64)?;
    for _ in 0..3 {
        assert_eq!(
            v.write_at(3 * page, b"again").unwrap_err().kind(),
            ErrorKind::Truncated
        );
    }
    // A copy that only reaches the patched page at its end fails too.
    let mut buf = vec![0u8; page + 8];
    assert_eq!(
        v.read_at(2 * page, &mut buf).unwrap_err().kind(),
        ErrorKind::Truncated
    );
    // Bytes below the first patched page still work.
    v.write_at(0, b"kept")?;
    let mut head = [0u8; 4];
    v.read_at(0, &mut head)?;
    assert_eq!(&head, b"kept");
    // A new view sees the section as it is now.
    let fresh = s.map_all(Access::ReadWrite)?;
    fresh.write_at(3 * page, b"new")?;
    let mut back = [0u8; 3];
    fresh.read_at(3 * page, &mut back)?;
    assert_eq!(&back, b"new");
    Ok(())
}

/// `n` views of one two-page named section, truncated under them; every
/// read of every view is counted.
fn guard_plain(ns: &Namespace, n: usize) -> RoleResult {
    let page = granularity();
    let s = Section::options()
        .size(2 * page as u64)
        .namespace(ns)
        .create("plain")?;
    let views = (0..n)
        .map(|_| s.map_all(Access::ReadWrite))
        .collect::<sections::Result<Vec<_>>>()?;
    truncate(ns, "plain", 0)?;
    let mut truncated = 0;
    for v in &views {
        if v.read_at(page, &mut [0u8; 8]).map_err(|e| e.kind()) == Err(ErrorKind::Truncated) {
            truncated += 1;
        }
    }
    println!("truncated {truncated} of {n}");
    Ok(())
}

/// Each view's first fault used to split its mapping around one page;
/// past `vm.max_map_count` mappings the kernel refused the next split and
/// the process died of SIGBUS.
fn past_the_map_count() -> Result<(), Failed> {
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")?
        .trim()
        .parse()?;
    // More than half the limit: one split each would pass it.
    let n = limit / 2 + 2_000;
    let ns = private_namespace("guard-plain");
    let (lines, status) = run_to_end("guard-plain", &[&ns.arg, &n.to_string()]);
    assert_ne!(
        status.signal(),
        Some(libc::SIGBUS),
        "died of SIGBUS: {lines:?}"
    );
    assert!(status.success(), "{status}: {lines:?}");
    assert_eq!(lines, [format!("truncated {n} of {n}")]);
    Ok(())
}

/// A 256 MiB view whose file is truncated, read every other page: every
/// read is `Truncated`, however many pages fault.
fn guard_large(ns: &Namespace) -> RoleResult {
    let page = granularity();
    let len = 256usize << 20;
    let s = Section::options()
        .size(len as u64)
        .sparse(true)
        .namespace(ns)
        .create("large")?;
    let v = s.map_all(Access::ReadWrite)?;
    truncate(ns, "large", 0)?;
    let mut truncated = 0;
    let mut reads = 0;
    for off in (0..len).step_by(2 * page) {
        reads += 1;
        if v.read_at(off, &mut [0u8; 8]).map_err(|e| e.kind()) == Err(ErrorKind::Truncated) {
            truncated += 1;
        }
    }
    println!("truncated {truncated} of {reads}");
    Ok(())
}

fn large_view_page_by_page() -> Result<(), Failed> {
    let ns = private_namespace("guard-large");
    let (lines, status) = run_to_end("guard-large", &[&ns.arg]);
    assert_ne!(
        status.signal(),
        Some(libc::SIGBUS),
        "died of SIGBUS: {lines:?}"
    );
    assert!(status.success(), "{status}: {lines:?}");
    let reads = (256usize << 20) / (2 * granularity());
    assert_eq!(lines, [format!("truncated {reads} of {reads}")]);
    Ok(())
}

/// The guard handles faults in its own views only: a SIGBUS another
/// process sends with `kill` has its default effect (it used to be
/// swallowed, and the guard switched off for good).
fn sent_sigbus_kills() -> Result<(), Failed> {
    let ns = private_namespace("guard-sent");
    let mut peer = spawn("guard-wait", &[&ns.arg]);
    peer.expect("ready");
    // SAFETY: sending a signal to our own child.
    assert_eq!(
        unsafe { libc::kill(peer.child.id() as i32, libc::SIGBUS) },
        0
    );
    let status = peer.child.wait()?;
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status}");
    Ok(())
}
