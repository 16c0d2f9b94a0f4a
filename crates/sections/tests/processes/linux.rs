//! Behaviour across real processes on Linux: this test binary re-executes itself in
//! a "role" (chosen by an environment variable) to act as the peer.
//!
//! Tests use a private namespace (a fresh directory on tmpfs), except the
//! interop tests, which must use `/dev/shm` and use unique names there.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libtest_mimic::Failed;

#[path = "../common/ns.rs"]
mod ns;
#[path = "../common/peer.rs"]
mod peer;
use ns::{create, open, read};
use peer::{spawn, spawn_with, wait_stdin_eof, Peer, TIMEOUT};
use sections::{gc, list, remove, Access, ErrorKind, Lifetime, Namespace, Section};

const FD: &str = "SECTIONS_TEST_FD";

pub fn main() {
    let tests: Vec<(&str, peer::TestFn)> = vec![
        (
            "two_processes_see_each_others_writes",
            two_processes_see_each_others_writes,
        ),
        (
            "read_only_opener_in_another_process_cannot_write",
            read_only_opener_cannot_write,
        ),
        (
            "last_holder_exiting_removes_the_name",
            last_holder_exiting_removes_the_name,
        ),
        (
            "kill9_of_last_holder_leaves_a_stale_name",
            kill9_of_last_holder_leaves_a_stale_name,
        ),
        (
            "kill9_of_a_non_last_holder_changes_nothing",
            kill9_of_a_non_last_holder_changes_nothing,
        ),
        (
            "persistent_section_survives_all_holders",
            persistent_section_survives_all_holders,
        ),
        (
            "racing_opens_never_see_a_removed_section",
            racing_opens_never_see_a_removed_section,
        ),
        (
            "racing_openers_never_see_an_unfinished_section",
            racing_openers_never_see_unfinished,
        ),
        (
            "c_shm_open_reads_a_library_section",
            c_shm_open_reads_a_library_section,
        ),
        (
            "library_opens_a_c_shm_open_segment",
            library_opens_a_c_shm_open_segment,
        ),
        (
            "durable_file_write_is_on_disk_after_writer_exits",
            durable_file_write_after_exit,
        ),
        (
            "growth_is_seen_by_another_process",
            growth_is_seen_by_another_process,
        ),
        (
            "anonymous_section_sent_over_a_socket",
            anonymous_section_sent_over_a_socket,
        ),
        (
            "anonymous_section_inherited_by_a_child",
            anonymous_section_inherited_by_a_child,
        ),
        (
            "usage_names_the_processes_that_hold_and_map",
            usage_names_holders,
        ),
        (
            "sigbus_outside_our_views_still_kills",
            sigbus_outside_our_views_still_kills,
        ),
    ];
    peer::main(tests, run_role);
}

// ---------------------------------------------------------------- helpers

fn namespace() -> (tempfile::TempDir, Namespace) {
    let dir = tempfile::Builder::new()
        .prefix("sections-proc-")
        .tempdir_in("/dev/shm")
        .expect("a temporary directory on /dev/shm");
    let ns = Namespace::at(dir.path());
    (dir, ns)
}

fn page() -> usize {
    sections::granularity()
}

fn ns_arg(ns: &Namespace) -> &str {
    ns.dir().to_str().unwrap()
}

fn unique(tag: &str) -> String {
    format!("sections-test-{}-{tag}", std::process::id())
}

/// Inode of the open section vs inode under the name right now.
fn same_as_named(section: &Section, ns: &Namespace, name: &str) -> bool {
    let fd = section.as_fd().try_clone_to_owned().unwrap();
    let mine = std::fs::File::from(fd).metadata().unwrap();
    match std::fs::symlink_metadata(ns.dir().join(name)) {
        Ok(now) => now.ino() == mine.ino() && now.dev() == mine.dev(),
        Err(_) => false,
    }
}

// ------------------------------------------------------------------ roles

fn run_role(role: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(shared) = ns::section_role(role, args) {
        return shared;
    }
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let ns = Namespace::at(arg(0));
    match role {
        "create-hold" => {
            let lifetime = if arg(3) == "persistent" {
                Lifetime::Persistent
            } else {
                Lifetime::Counted
            };
            let _s = Section::options()
                .size(arg(2).parse()?)
                .lifetime(lifetime)
                .namespace(&ns)
                .create_with(arg(1), |v| v.write_at(0, b"payload"))?;
            println!("ready");
            wait_stdin_eof();
        }
        "racer" => {
            let iterations: usize = arg(2).parse()?;
            let (mut opens, mut errors) = (0, 0);
            for _ in 0..iterations {
                match open(&ns, arg(1), Access::ReadWrite) {
                    Ok(s) => {
                        opens += 1;
                        if !same_as_named(&s, &ns, arg(1)) {
                            errors += 1;
                            eprintln!("opened a section that is no longer under its name");
                        }
                        let v = s.map_all(Access::ReadWrite)?;
                        if v.atomic_u64(0)?.load(Ordering::Acquire) == 0 {
                            errors += 1;
                            eprintln!("opened a section before it was initialised");
                        }
                        v.atomic_u64(8)?.fetch_add(1, Ordering::AcqRel);
                        std::thread::yield_now();
                        if !same_as_named(&s, &ns, arg(1)) {
                            errors += 1;
                            eprintln!("a section was removed while held");
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Stale) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            println!("opens={opens} errors={errors}");
        }
        "open-when-ready" => {
            let deadline = Instant::now() + TIMEOUT;
            let s = loop {
                match open(&ns, arg(1), Access::Read) {
                    Ok(s) => break s,
                    Err(e) if e.kind() == ErrorKind::NotFound && Instant::now() < deadline => {
                        std::hint::spin_loop()
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            let size = s.size()? as usize;
            let head = read(&s, 0, 8);
            let tail = read(&s, size - 8, 8);
            println!(
                "size={size} head={} tail={}",
                String::from_utf8_lossy(&head),
                String::from_utf8_lossy(&tail)
            );
        }
        "shm-read" => {
            let len: usize = arg(2).parse()?;
            let bytes = c_shm_read(arg(1), len)?;
            println!("{}", String::from_utf8_lossy(&bytes));
        }
        "shm-create" => {
            c_shm_create(arg(1), arg(2).as_bytes())?;
            println!("done");
        }
        "watch-size" => {
            let s = open(&ns, arg(1), Access::ReadWrite)?;
            println!("ready");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let size = s.size()? as usize;
            let v = s.map(size as u64 - page() as u64, page(), Access::Read)?;
            let mut buf = [0u8; 4];
            v.read_at(0, &mut buf)?;
            println!("size={size} tail={}", String::from_utf8_lossy(&buf));
        }
        "receive" => {
            let fd: i32 = std::env::var(FD)?.parse()?;
            // SAFETY: the parent passed us this descriptor, which nothing
            // else in this process owns.
            let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
            for _ in 0..2 {
                let s = Section::receive(&stream)?;
                let rw = s.map_all(Access::ReadWrite).map(drop).map_err(|e| e.kind());
                let text = read(&s, 0, 4);
                if rw.is_ok() {
                    s.map_all(Access::ReadWrite)?.write_at(0, b"pong")?;
                }
                println!(
                    "{:?} {} map-rw {rw:?}",
                    s.access(),
                    String::from_utf8_lossy(&text)
                );
            }
        }
        "inherit" => {
            let fd: i32 = std::env::var(FD)?.parse()?;
            // SAFETY: the parent made this descriptor inheritable for us.
            let s = Section::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })?;
            println!(
                "{:?} {}",
                s.kind(),
                String::from_utf8_lossy(&read(&s, 0, 9))
            );
        }
        "foreign-sigbus" => {
            // Install the library's SIGBUS handler by guarding a view...
            // (in a directory the test made: this process dies of SIGBUS
            // and cleans up nothing)
            let dir = std::path::Path::new(arg(0));
            let guarded = dir.join("guarded.bin");
            std::fs::write(&guarded, vec![1u8; 4096])?;
            let _view = Section::from_path(&guarded, Access::Read)?.map_all(Access::Read)?;
            // ...then fault in a mapping that is not the library's.
            let path = dir.join("raw.bin");
            std::fs::write(&path, vec![1u8; 8192])?;
            let file = std::fs::File::open(&path)?;
            // SAFETY: a private read-only mapping of our own file, read
            // once after the file shrank: this is meant to raise SIGBUS.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    8192,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    0,
                );
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(0)?;
                println!("touching");
                let byte = std::ptr::read_volatile(p.cast::<u8>().add(4096));
                println!("survived {byte}");
            }
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

/// Reads a segment with nothing but `shm_open` and `mmap`, as C would.
fn c_shm_read(name: &str, len: usize) -> std::io::Result<Vec<u8>> {
    let cname = std::ffi::CString::new(format!("/{name}")).unwrap();
    // SAFETY: plain libc calls with valid arguments; the mapping is only
    // read within `len` bytes and unmapped before returning.
    unsafe {
        let fd = libc::shm_open(cname.as_ptr(), libc::O_RDONLY, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        libc::close(fd);
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let out = std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec();
        libc::munmap(p, len);
        Ok(out)
    }
}

/// Creates a segment with `shm_open` + `ftruncate` + `mmap`, as C would.
fn c_shm_create(name: &str, data: &[u8]) -> std::io::Result<()> {
    let cname = std::ffi::CString::new(format!("/{name}")).unwrap();
    let len = 4096;
    // SAFETY: plain libc calls with valid arguments; writes stay within the
    // `len`-byte mapping.
    unsafe {
        let fd = libc::shm_open(
            cname.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o600,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::ftruncate(fd, len as libc::off_t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        libc::close(fd);
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), p.cast::<u8>(), data.len());
        libc::munmap(p, len);
    }
    Ok(())
}

// ------------------------------------------------------------------ tests

fn two_processes_see_each_others_writes() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let s = create(&ns, "share", 2 * page());
    s.map_all(Access::ReadWrite)?.write_at(0, b"from parent")?;
    let mut reader = spawn("open-read", &[ns_arg(&ns), "share", "0", "11"]);
    reader.expect("from parent");
    let mut writer = spawn("open-write", &[ns_arg(&ns), "share", "5000", "from child"]);
    writer.expect("done");
    writer.finish();
    assert_eq!(read(&s, 5000, 10), b"from child");
    drop(reader);
    Ok(())
}

fn read_only_opener_cannot_write() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let s = create(&ns, "ro", page());
    s.map_all(Access::ReadWrite)?.write_at(0, b"fixed")?;
    let mut reader = spawn("open-read", &[ns_arg(&ns), "ro", "0", "5"]);
    reader.expect("fixed");
    reader.expect("map-rw Err(PermissionDenied)");
    reader.expect("write Err(PermissionDenied)");
    reader.finish();
    assert_eq!(read(&s, 0, 5), b"fixed");
    Ok(())
}

fn last_holder_exiting_removes_the_name() -> Result<(), Failed> {
    let (dir, ns) = namespace();
    let mut holder = spawn("create-hold", &[ns_arg(&ns), "bye", "4096"]);
    holder.expect("ready");
    assert!(dir.path().join("bye").exists());
    let mine = open(&ns, "bye", Access::Read)?;
    holder.finish();
    assert!(dir.path().join("bye").exists(), "we still hold it");
    assert_eq!(read(&mine, 0, 7), b"payload");
    drop(mine);
    assert!(
        !dir.path().join("bye").exists(),
        "the last holder's drop removes the name"
    );
    Ok(())
}

fn kill9_of_last_holder_leaves_a_stale_name() -> Result<(), Failed> {
    let (dir, ns) = namespace();
    for reclaim_by_create in [true, false] {
        let mut holder = spawn("create-hold", &[ns_arg(&ns), "doomed", "8192"]);
        holder.expect("ready");
        holder.kill();
        assert!(
            dir.path().join("doomed").exists(),
            "a killed holder cannot remove the name"
        );
        let err = open(&ns, "doomed", Access::Read).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Stale, "{err}");
        let entries = list(&ns)?;
        assert_eq!(entries.len(), 1);
        assert!(entries[0].stale && entries[0].held == Some(false));
        if reclaim_by_create {
            let fresh = create(&ns, "doomed", page());
            assert_eq!(
                fresh.size()?,
                page() as u64,
                "a new section, not the stale one"
            );
            assert_eq!(read(&fresh, 0, 7), [0u8; 7]);
            drop(fresh);
        } else {
            assert_eq!(gc(&ns)?, ["doomed"]);
        }
        assert!(!dir.path().join("doomed").exists());
    }
    Ok(())
}

fn kill9_of_a_non_last_holder_changes_nothing() -> Result<(), Failed> {
    let (dir, ns) = namespace();
    let s = create(&ns, "sturdy", page());
    s.map_all(Access::ReadWrite)?.write_at(0, b"intact")?;
    let mut holder = spawn("open-hold", &[ns_arg(&ns), "sturdy"]);
    holder.expect("ready");
    holder.kill();
    let entries = list(&ns)?;
    assert_eq!((entries[0].held, entries[0].stale), (Some(true), false));
    let mut reader = spawn("open-read", &[ns_arg(&ns), "sturdy", "0", "6"]);
    reader.expect("intact");
    reader.finish();
    assert!(gc(&ns)?.is_empty());
    drop(s);
    assert!(!dir.path().join("sturdy").exists());
    Ok(())
}

fn persistent_section_survives_all_holders() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let holder = {
        let mut h = spawn("create-hold", &[ns_arg(&ns), "stays", "4096", "persistent"]);
        h.expect("ready");
        h
    };
    holder.kill();
    let s = open(&ns, "stays", Access::Read)?;
    assert_eq!(s.lifetime(), Lifetime::Persistent);
    assert_eq!(read(&s, 0, 7), b"payload");
    drop(s);
    assert!(!list(&ns)?[0].stale);
    assert!(gc(&ns)?.is_empty());
    remove(&ns, "stays")?;
    assert!(list(&ns)?.is_empty());
    Ok(())
}

fn racing_opens_never_see_a_removed_section() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let racers: Vec<Peer> = (0..4)
        .map(|_| spawn("racer", &[ns_arg(&ns), "race", "3000"]))
        .collect();
    let mut generation = 0u64;
    let mut creates = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline || creates < 50 {
        generation += 1;
        let made = Section::options()
            .size(page() as u64)
            .namespace(&ns)
            .create_with("race", |v| {
                v.atomic_u64(0)?.store(generation, Ordering::Release);
                Ok(())
            });
        match made {
            Ok(s) => {
                creates += 1;
                assert!(same_as_named(&s, &ns, "race"));
                for _ in 0..(generation % 7) {
                    std::thread::yield_now();
                }
                assert!(
                    same_as_named(&s, &ns, "race"),
                    "our live section was removed"
                );
                drop(s);
            }
            // An opener still holds the previous generation.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => std::thread::yield_now(),
            Err(e) => return Err(e.into()),
        }
        if creates > 5000 {
            break;
        }
    }
    let mut total_opens = 0;
    for mut r in racers {
        let line = r.line();
        let (opens, errors) = line
            .strip_prefix("opens=")
            .and_then(|rest| rest.split_once(" errors="))
            .ok_or_else(|| format!("unexpected racer output {line}"))?;
        assert_eq!(errors, "0", "{line}");
        total_opens += opens.parse::<usize>()?;
        r.finish();
    }
    assert!(total_opens > 0, "the racers never opened the section");
    assert!(creates > 0);
    assert!(list(&ns)?.is_empty(), "nothing left behind");
    Ok(())
}

fn racing_openers_never_see_unfinished() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let size = 1 << 20;
    for round in 0..10 {
        let name = format!("atomic{round}");
        let openers: Vec<Peer> = (0..2)
            .map(|_| spawn("open-when-ready", &[ns_arg(&ns), &name]))
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        let s = Section::options()
            .size(size as u64)
            .namespace(&ns)
            .create_with(&name, |v| {
                v.write_at(0, b"HEADHEAD")?;
                // Give openers every chance to see a half-made section.
                std::thread::sleep(Duration::from_millis(5));
                v.write_at(size - 8, b"TAILTAIL")
            })?;
        for mut o in openers {
            o.expect(&format!("size={size} head=HEADHEAD tail=TAILTAIL"));
            o.finish();
        }
        drop(s);
    }
    Ok(())
}

fn c_shm_open_reads_a_library_section() -> Result<(), Failed> {
    let name = unique("to-c");
    let s = Section::create(&name, 4096)?;
    s.map_all(Access::ReadWrite)?
        .write_at(0, b"made by sections")?;
    let mut c = spawn("shm-read", &["", &name, "16"]);
    c.expect("made by sections");
    c.finish();
    drop(s);
    assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
    Ok(())
}

fn library_opens_a_c_shm_open_segment() -> Result<(), Failed> {
    let name = unique("from-c");
    let mut c = spawn("shm-create", &["", &name, "made by C"]);
    c.expect("done");
    c.finish();
    let result = (|| -> Result<(), Failed> {
        let s = Section::open(&name, Access::ReadWrite)?;
        assert_eq!(s.size()?, 4096);
        assert_eq!(
            s.lifetime(),
            Lifetime::Persistent,
            "a foreign segment keeps POSIX lifetime"
        );
        assert_eq!(read(&s, 0, 9), b"made by C");
        drop(s);
        let entry = list(&Namespace::default())?
            .into_iter()
            .find(|e| e.name == name)
            .ok_or("segment not listed")?;
        assert_eq!((entry.lifetime, entry.stale), (Lifetime::Persistent, false));
        Ok(())
    })();
    Section::remove(&name)?;
    result
}

fn durable_file_write_after_exit() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let files = tempfile::tempdir()?;
    let path = files.path().join("durable.bin");
    let s = Section::options()
        .size(page() as u64)
        .file(&path)
        .namespace(&ns)
        .create("durable")?;
    let mut w = spawn("file-write", &[ns_arg(&ns), "durable", "flushed by child"]);
    w.expect("done");
    w.finish();
    drop(s);
    assert_eq!(&std::fs::read(&path)?[..16], b"flushed by child");
    Ok(())
}

fn growth_is_seen_by_another_process() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let s = create(&ns, "grows", page());
    let mut watcher = spawn("watch-size", &[ns_arg(&ns), "grows"]);
    watcher.expect("ready");
    s.grow(3 * page() as u64)?;
    s.map(2 * page() as u64, page(), Access::ReadWrite)?
        .write_at(0, b"more")?;
    watcher.send("check");
    watcher.expect(&format!("size={} tail=more", 3 * page()));
    watcher.finish();
    Ok(())
}

/// Lets a child inherit `fd` (clears close-on-exec) and tells it the number.
fn pass_fd(cmd: &mut Command, fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(raw, libc::F_SETFD, 0) };
    cmd.env(FD, raw.to_string());
}

fn anonymous_section_sent_over_a_socket() -> Result<(), Failed> {
    let s = Section::anonymous(page() as u64)?;
    s.map_all(Access::ReadWrite)?.write_at(0, b"ping")?;
    let (mine, theirs) = UnixStream::pair()?;
    let theirs = OwnedFd::from(theirs);
    let mut child = spawn_with("receive", &[""], |cmd| pass_fd(cmd, &theirs));
    drop(theirs);
    s.send_as(&mine, Access::Read)?;
    child.expect("Read ping map-rw Err(PermissionDenied)");
    s.send(&mine)?;
    child.expect("ReadWrite ping map-rw Ok(())");
    child.finish();
    assert_eq!(read(&s, 0, 4), b"pong");
    Ok(())
}

fn anonymous_section_inherited_by_a_child() -> Result<(), Failed> {
    let s = Section::anonymous(page() as u64)?;
    s.map_all(Access::ReadWrite)?.write_at(0, b"inherited")?;
    let fd = s.inheritable_fd()?;
    let mut child = spawn_with("inherit", &[""], |cmd| {
        cmd.env(FD, fd.as_raw_fd().to_string());
    });
    drop(fd);
    child.expect("Anonymous inherited");
    child.finish();
    Ok(())
}

fn usage_names_holders() -> Result<(), Failed> {
    let (_d, ns) = namespace();
    let s = create(&ns, "used", 4 * page());
    s.map_all(Access::ReadWrite)?
        .write_at(0, &vec![1u8; page()])?;
    let mut holder = spawn("open-hold", &[ns_arg(&ns), "used"]);
    holder.expect("ready");
    let entries = list(&ns)?;
    let usage = sections::usage(&ns, &entries)?;
    let users = &usage[0].users;
    let child = users
        .iter()
        .find(|u| u.pid == holder.child.id())
        .ok_or_else(|| format!("holder not among {users:?}"))?;
    assert!(child.holds_descriptor);
    assert_eq!(child.maps.len(), 1);
    assert_eq!(child.maps[0].end - child.maps[0].start, 4 * page() as u64);
    assert!(child.maps[0].perms.starts_with("rw") && child.maps[0].perms.ends_with('s'));
    assert!(users
        .iter()
        .any(|u| u.pid == std::process::id() && u.holds_descriptor));
    assert!(usage[0].resident_bytes.unwrap() >= page() as u64);
    // Inspecting took no hold: with both holders gone, the name goes.
    holder.finish();
    drop(s);
    assert!(list(&ns)?.is_empty());
    Ok(())
}

/// The library's SIGBUS handler claims faults in its own views only; any
/// other SIGBUS keeps its default effect.
fn sigbus_outside_our_views_still_kills() -> Result<(), Failed> {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir()?;
    let mut peer = spawn("foreign-sigbus", &[dir.path().to_str().unwrap()]);
    peer.expect("touching");
    let status = peer.child.wait()?;
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status}");
    Ok(())
}
