//! The behaviour suite every backend passes: written once, run on Linux
//! natively and on Windows under Wine. Where the platforms differ, the test
//! says so and expects the typed error. Peers are real processes: this
//! binary re-executes itself in a role.

use std::sync::atomic::Ordering;

use libtest_mimic::Failed;

#[path = "common/ns.rs"]
mod ns;
#[path = "common/peer.rs"]
mod peer;
use ns::{create, open, private_namespace, read, PrivateNamespace};
use peer::{spawn, wait_stdin_eof, Peer};
use sections::{Access, Disposition, ErrorKind, Kind, Lifetime, Namespace, Section};

fn main() {
    let tests: Vec<(&str, peer::TestFn)> = vec![
        ("two_processes_share_a_named_section", two_processes_share),
        (
            "read_only_opener_cannot_write",
            read_only_opener_cannot_write,
        ),
        (
            "last_holder_leaving_removes_the_name",
            last_holder_leaving_removes_the_name,
        ),
        ("killed_last_holder", killed_last_holder),
        (
            "killed_non_last_holder_changes_nothing",
            killed_non_last_holder,
        ),
        ("persistent_lifetime", persistent_lifetime),
        (
            "create_open_and_create_or_open",
            create_open_and_create_or_open,
        ),
        ("hostile_names_are_invalid", hostile_names),
        ("bad_sizes_and_ranges", bad_sizes_and_ranges),
        ("copy_on_write_stays_private", copy_on_write_stays_private),
        (
            "atomics_are_shared_between_processes",
            atomics_between_processes,
        ),
        ("file_backed_sections", file_backed_sections),
        ("named_file_section_opens_the_same_file", named_file_section),
        ("anonymous_section_handed_to_a_child", anonymous_to_child),
        ("growth", growth),
        ("create_with_initialises_before_publishing", create_with),
        ("view_operations", view_operations),
        ("default_namespace_names", default_namespace_names),
    ];
    peer::main(tests, run_role);
}

// ---------------------------------------------------------------- helpers

fn namespace() -> PrivateNamespace {
    private_namespace("portable")
}

fn ns_arg(p: &PrivateNamespace) -> String {
    p.arg.clone()
}

fn gran() -> usize {
    sections::granularity()
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
            let _s = Section::options()
                .size(arg(2).parse()?)
                .namespace(&ns)
                .create(arg(1))?;
            let v = _s.map_all(Access::ReadWrite)?;
            v.write_at(0, b"payload")?;
            println!("ready");
            wait_stdin_eof();
        }
        "count" => {
            let s = open(&ns, arg(1), Access::ReadWrite)?;
            let v = s.map_all(Access::ReadWrite)?;
            let n: u64 = arg(2).parse()?;
            for _ in 0..n {
                v.atomic_u64(64)?.fetch_add(1, Ordering::AcqRel);
            }
            println!("counted");
        }
        "adopt" => {
            let s = Section::from_token(arg(0))?;
            println!(
                "{:?} {:?} {}",
                s.kind(),
                s.access(),
                String::from_utf8_lossy(&read(&s, 0, 9))
            );
            if s.access().writes() {
                s.map_all(Access::ReadWrite)?
                    .write_at(0, b"child was here")?;
            }
            println!("done");
        }
        "adopt-line" => {
            let mut token = String::new();
            std::io::stdin().read_line(&mut token)?;
            let s = Section::from_token(token.trim())?;
            println!(
                "{:?} {}",
                s.kind(),
                String::from_utf8_lossy(&read(&s, 0, 9))
            );
        }
        other => return Err(format!("unknown role {other}").into()),
    }
    Ok(())
}

// ------------------------------------------------------------------ tests

fn two_processes_share() -> Result<(), Failed> {
    let p = namespace();
    let s = create(&p.ns, "share", 2 * gran());
    s.map_all(Access::ReadWrite)?.write_at(0, b"from parent")?;
    let mut reader = spawn("open-read", &[&ns_arg(&p), "share", "0", "11"]);
    reader.expect("from parent");
    reader.expect("map-rw Err(PermissionDenied)");
    reader.expect("write Err(PermissionDenied)");
    reader.finish();
    let mut writer = spawn("open-write", &[&ns_arg(&p), "share", "5000", "from child"]);
    writer.expect("done");
    writer.finish();
    assert_eq!(read(&s, 5000, 10), b"from child");
    Ok(())
}

fn read_only_opener_cannot_write() -> Result<(), Failed> {
    let p = namespace();
    let _owner = create(&p.ns, "ro", gran());
    let reader = open(&p.ns, "ro", Access::Read)?;
    assert_eq!(
        reader.map_all(Access::ReadWrite).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let v = reader.map_all(Access::Read)?;
    assert_eq!(
        v.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        v.atomic_u32(0).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    Ok(())
}

fn last_holder_leaving_removes_the_name() -> Result<(), Failed> {
    let p = namespace();
    let mut holder = spawn("create-hold", &[&ns_arg(&p), "bye", "65536"]);
    holder.expect("ready");
    let mine = open(&p.ns, "bye", Access::Read)?;
    holder.finish();
    assert_eq!(read(&mine, 0, 7), b"payload", "we still hold it");
    let view = mine.map_all(Access::Read)?;
    drop(mine);
    assert!(
        open(&p.ns, "bye", Access::Read).is_ok(),
        "a view still holds it"
    );
    drop(view);
    assert_eq!(
        open(&p.ns, "bye", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    Ok(())
}

fn killed_last_holder() -> Result<(), Failed> {
    let p = namespace();
    let mut holder = spawn("create-hold", &[&ns_arg(&p), "doomed", "65536"]);
    holder.expect("ready");
    holder.kill();
    let err = open(&p.ns, "doomed", Access::Read).unwrap_err();
    if cfg!(windows) {
        // The kernel closed the killed process's handles: the name is gone.
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    } else {
        // A name left behind, never opened as live.
        assert_eq!(err.kind(), ErrorKind::Stale, "{err}");
        assert_eq!(sections::gc(&p.ns)?, ["doomed"]);
    }
    // Either way the name can be created again.
    drop(create(&p.ns, "doomed", gran()));
    Ok(())
}

fn killed_non_last_holder() -> Result<(), Failed> {
    let p = namespace();
    let s = create(&p.ns, "sturdy", gran());
    s.map_all(Access::ReadWrite)?.write_at(0, b"intact")?;
    let mut holder = spawn("open-hold", &[&ns_arg(&p), "sturdy"]);
    holder.expect("ready");
    holder.kill();
    let mut reader = spawn("open-read", &[&ns_arg(&p), "sturdy", "0", "6"]);
    reader.expect("intact");
    reader.finish();
    drop(s);
    assert_eq!(
        open(&p.ns, "sturdy", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    Ok(())
}

fn persistent_lifetime() -> Result<(), Failed> {
    let p = namespace();
    let made = Section::options()
        .size(gran() as u64)
        .lifetime(Lifetime::Persistent)
        .namespace(&p.ns)
        .create("stays");
    if cfg!(windows) {
        let err = made.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            err.to_string().contains("file"),
            "says what to use instead: {err}"
        );
        return Ok(());
    }
    drop(made?);
    assert_eq!(
        open(&p.ns, "stays", Access::Read)?.lifetime(),
        Lifetime::Persistent
    );
    sections::remove(&p.ns, "stays")?;
    assert_eq!(
        open(&p.ns, "stays", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    Ok(())
}

fn create_open_and_create_or_open() -> Result<(), Failed> {
    let p = namespace();
    let first = create(&p.ns, "once", 3 * gran());
    let err = Section::options()
        .size(gran() as u64)
        .namespace(&p.ns)
        .create("once")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(
        open(&p.ns, "missing", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let (second, what) = Section::options()
        .size(gran() as u64)
        .namespace(&p.ns)
        .create_or_open("once")?;
    assert_eq!(
        what,
        Disposition::Opened {
            size: 3 * gran() as u64
        }
    );
    assert_eq!(second.size()?, 3 * gran() as u64);
    let (_third, what) = Section::options()
        .size(gran() as u64)
        .namespace(&p.ns)
        .create_or_open("fresh")?;
    assert_eq!(what, Disposition::Created);
    drop(first);
    Ok(())
}

fn hostile_names() -> Result<(), Failed> {
    let p = namespace();
    let long = "n".repeat(256);
    for name in ["", ".", "..", "../escape", "a/b", "nul\0", long.as_str()] {
        let err = Section::options()
            .size(4096)
            .namespace(&p.ns)
            .create(name)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}");
        assert_eq!(
            open(&p.ns, name, Access::Read).unwrap_err().kind(),
            ErrorKind::InvalidName
        );
    }
    Ok(())
}

fn bad_sizes_and_ranges() -> Result<(), Failed> {
    let p = namespace();
    let make = |size| {
        Section::options()
            .size(size)
            .namespace(&p.ns)
            .create("sz")
            .map(drop)
    };
    assert_eq!(make(0).unwrap_err().kind(), ErrorKind::InvalidSize);
    assert_eq!(make(u64::MAX).unwrap_err().kind(), ErrorKind::InvalidSize);
    let s = create(&p.ns, "range", 2 * gran());
    assert_eq!(
        s.map(1, 10, Access::Read).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        s.map(0, 0, Access::Read).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        s.map(gran() as u64, gran() + 1, Access::Read)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidRange
    );
    let v = s.map_all(Access::ReadWrite)?;
    let mut buf = [0u8; 2];
    assert_eq!(
        v.read_at(2 * gran() - 1, &mut buf).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(v.atomic_u64(4).unwrap_err().kind(), ErrorKind::InvalidRange);
    assert_eq!(
        s.grow(gran() as u64).unwrap_err().kind(),
        ErrorKind::InvalidSize
    );
    Ok(())
}

fn copy_on_write_stays_private() -> Result<(), Failed> {
    let p = namespace();
    let s = create(&p.ns, "cow", gran());
    let shared = s.map_all(Access::ReadWrite)?;
    shared.write_at(0, b"original")?;
    let reader = open(&p.ns, "cow", Access::Read)?;
    let private = reader.map_all(Access::CopyOnWrite)?;
    private.write_at(0, b"modified")?;
    assert_eq!(read(&s, 0, 8), b"original");
    let mut buf = [0u8; 8];
    private.read_at(0, &mut buf)?;
    assert_eq!(&buf, b"modified");
    Ok(())
}

fn atomics_between_processes() -> Result<(), Failed> {
    let p = namespace();
    let s = create(&p.ns, "count", gran());
    let peers: Vec<Peer> = (0..3)
        .map(|_| spawn("count", &[&ns_arg(&p), "count", "20000"]))
        .collect();
    for mut peer in peers {
        peer.expect("counted");
        peer.finish();
    }
    let v = s.map_all(Access::ReadWrite)?;
    assert_eq!(v.atomic_u64(64)?.load(Ordering::Acquire), 60_000);
    Ok(())
}

fn file_backed_sections() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data.bin");
    let mut content = vec![0u8; 2 * gran()];
    content[..5].copy_from_slice(b"hello");
    std::fs::write(&path, &content)?;
    {
        let s = Section::from_path(&path, Access::ReadWrite)?;
        assert_eq!((s.kind(), s.size()?), (Kind::File, content.len() as u64));
        let v = s.map_all(Access::ReadWrite)?;
        assert_eq!(read(&s, 0, 5), b"hello");
        v.write_at(gran(), b"written")?;
        v.flush_durable()?;
        let cow = s.map_all(Access::CopyOnWrite)?;
        cow.write_at(0, b"PRIVATE")?;
    }
    let on_disk = std::fs::read(&path)?;
    assert_eq!(&on_disk[gran()..gran() + 7], b"written");
    assert_eq!(
        &on_disk[..5],
        b"hello",
        "copy-on-write never reaches the file"
    );
    let ro = Section::from_path(&path, Access::Read)?;
    assert_eq!(
        ro.map_all(Access::ReadWrite).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    Ok(())
}

fn named_file_section() -> Result<(), Failed> {
    let p = namespace();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("named.bin");
    let s = Section::options()
        .size(gran() as u64)
        .file(&path)
        .namespace(&p.ns)
        .create("byfile")?;
    assert_eq!(s.kind(), Kind::NamedFile);
    let mut writer = spawn("file-write", &[&ns_arg(&p), "byfile", "flushed by child"]);
    writer.expect("done");
    writer.finish();
    assert_eq!(read(&s, 0, 16), b"flushed by child");
    drop(s);
    assert_eq!(&std::fs::read(&path)?[..16], b"flushed by child");
    Ok(())
}

fn anonymous_to_child() -> Result<(), Failed> {
    let s = Section::anonymous(gran() as u64)?;
    s.map_all(Access::ReadWrite)?.write_at(0, b"inherited")?;
    let shared = s.inheritable()?;
    let mut child = spawn("adopt", &[shared.token()]);
    drop(shared);
    child.expect("Anonymous ReadWrite inherited");
    child.expect("done");
    child.finish();
    assert_eq!(read(&s, 0, 14), b"child was here");
    #[cfg(windows)]
    {
        use std::os::windows::io::AsHandle;
        let mut child = spawn("adopt-line", &[]);
        let token = s.duplicate_into(child.child.as_handle())?;
        child.send(&token);
        child.expect("Anonymous child was");
        child.finish();
    }
    Ok(())
}

fn growth() -> Result<(), Failed> {
    // A file-backed section grows everywhere; new views cover the new range.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("grows.bin");
    std::fs::write(&path, vec![0u8; gran()])?;
    let f = Section::from_path(&path, Access::ReadWrite)?;
    let old = f.map_all(Access::ReadWrite)?;
    f.grow(3 * gran() as u64)?;
    assert_eq!(f.size()?, 3 * gran() as u64);
    f.map(2 * gran() as u64, gran(), Access::ReadWrite)?
        .write_at(0, b"tail")?;
    old.write_at(0, b"head")?;
    drop((old, f));
    let bytes = std::fs::read(&path)?;
    assert_eq!(
        (bytes.len(), &bytes[..4], &bytes[2 * gran()..2 * gran() + 4]),
        (3 * gran(), &b"head"[..], &b"tail"[..])
    );

    let p = namespace();
    let s = create(&p.ns, "grow", gran());
    let result = s.grow(4 * gran() as u64);
    if cfg!(windows) {
        // A pagefile-backed section has a fixed maximum size.
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        return Ok(());
    }
    result?;
    let peer = open(&p.ns, "grow", Access::ReadWrite)?;
    assert_eq!(peer.size()?, 4 * gran() as u64);
    peer.map(3 * gran() as u64, gran(), Access::ReadWrite)?
        .write_at(0, b"far")?;
    assert_eq!(read(&s, 3 * gran(), 3), b"far");
    Ok(())
}

fn create_with() -> Result<(), Failed> {
    let p = namespace();
    let made = Section::options()
        .size(gran() as u64)
        .namespace(&p.ns)
        .create_with("init", |v| v.write_at(0, b"ready"));
    if cfg!(windows) {
        assert_eq!(made.unwrap_err().kind(), ErrorKind::Unsupported);
        return Ok(());
    }
    let s = made?;
    assert_eq!(read(&open(&p.ns, "init", Access::Read)?, 0, 5), b"ready");
    drop(s);
    Ok(())
}

fn view_operations() -> Result<(), Failed> {
    let s = Section::anonymous(16 * gran() as u64)?;
    let v = s.map_all(Access::ReadWrite)?;
    v.write_at(0, &vec![1u8; 4 * gran()])?;
    v.prefetch(0, 4 * gran())?;
    let r = v.residency(0, v.len())?;
    assert!(r.resident_pages * r.page_size >= 4 * gran(), "{r:?}");
    v.advise(sections::Advice::WillNeed)?;
    v.flush()?;
    v.flush_range(5, 100)?;
    match v.lock(0, gran()) {
        Ok(()) => v.unlock(0, gran())?,
        Err(e) => assert_eq!(e.kind(), ErrorKind::PermissionDenied),
    }
    Ok(())
}

/// The default namespace: `/dev/shm/NAME` on Linux, `Local\NAME` on
/// Windows, where an explicit `Local\` prefix names the same object.
fn default_namespace_names() -> Result<(), Failed> {
    let name = format!("sections-portable-{}-default", std::process::id());
    let s = Section::create(&name, gran() as u64)?;
    s.map_all(Access::ReadWrite)?.write_at(0, b"default")?;
    assert_eq!(read(&Section::open(&name, Access::Read)?, 0, 7), b"default");
    if cfg!(windows) {
        let prefixed = Section::open(&format!("Local\\{name}"), Access::Read)?;
        assert_eq!(read(&prefixed, 0, 7), b"default");
        for bad in ["Local\\", "Local\\a\\b", "Global\\..", "x\\y"] {
            let err = Section::open(bad, Access::Read).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
        }
    } else {
        assert!(std::path::Path::new("/dev/shm").join(&name).exists());
    }
    drop(s);
    assert_eq!(
        Section::open(&name, Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    Ok(())
}
