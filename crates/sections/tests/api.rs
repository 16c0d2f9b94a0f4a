#![cfg(target_os = "linux")]
//! Behaviour of one process on Linux: creating, opening, views, lifetime, bad input.
//! Every test works in a private namespace (a fresh directory on tmpfs) and
//! so cleans up everything it creates.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use sections::{
    gc, granularity, list, remove, Access, Advice, Disposition, EntryKind, ErrorKind, Kind,
    Lifetime, Namespace, Section,
};

fn namespace() -> (tempfile::TempDir, Namespace) {
    let dir = tempfile::Builder::new()
        .prefix("sections-api-")
        .tempdir_in("/dev/shm")
        .expect("a temporary directory on /dev/shm");
    let ns = Namespace::at(dir.path());
    (dir, ns)
}

fn create(ns: &Namespace, name: &str, size: u64) -> Section {
    Section::options()
        .size(size)
        .namespace(ns)
        .create(name)
        .unwrap()
}

fn open(ns: &Namespace, name: &str, access: Access) -> sections::Result<Section> {
    Section::options().namespace(ns).access(access).open(name)
}

fn page() -> u64 {
    granularity() as u64
}

#[test]
fn create_then_open_sees_writes_both_ways() {
    let (_d, ns) = namespace();
    let a = create(&ns, "both", 2 * page());
    let b = open(&ns, "both", Access::ReadWrite).unwrap();
    let va = a.map_all(Access::ReadWrite).unwrap();
    let vb = b.map(page(), granularity(), Access::ReadWrite).unwrap();
    va.write_at(granularity() + 3, b"from a").unwrap();
    let mut buf = [0u8; 6];
    vb.read_at(3, &mut buf).unwrap();
    assert_eq!(&buf, b"from a");
    vb.write_at(100, b"from b").unwrap();
    va.read_at(granularity() + 100, &mut buf).unwrap();
    assert_eq!(&buf, b"from b");
    assert_eq!(b.size().unwrap(), 2 * page());
    assert_eq!(a.kind(), Kind::Memory);
    assert_eq!(a.name(), Some("both"));
}

#[test]
fn named_memory_section_is_the_file_under_exactly_its_name() {
    let (dir, ns) = namespace();
    let s = create(&ns, "plain", 5000);
    let md = std::fs::metadata(dir.path().join("plain")).unwrap();
    assert_eq!(md.len(), 5000);
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    s.map_all(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"xyz")
        .unwrap();
    assert_eq!(
        &std::fs::read(dir.path().join("plain")).unwrap()[..3],
        b"xyz"
    );
}

#[test]
fn read_only_opener_cannot_write() {
    let (_d, ns) = namespace();
    let _owner = create(&ns, "ro", page());
    let reader = open(&ns, "ro", Access::Read).unwrap();
    let err = reader.map_all(Access::ReadWrite).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let view = reader.map_all(Access::Read).unwrap();
    assert_eq!(
        view.write_at(0, b"x").unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        view.atomic_u32(0).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // The descriptor itself is read-only, so even a raw writable shared
    // mapping of it is refused by the kernel.
    let fd = reader.as_fd();
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            granularity(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            0,
        )
    };
    assert_eq!(raw, libc::MAP_FAILED);
}

#[test]
fn copy_on_write_view_never_changes_the_section() {
    let (_d, ns) = namespace();
    let s = create(&ns, "cow", page());
    let shared = s.map_all(Access::ReadWrite).unwrap();
    shared.write_at(0, b"original").unwrap();
    let reader = open(&ns, "cow", Access::Read).unwrap();
    let private = reader.map_all(Access::CopyOnWrite).unwrap();
    private.write_at(0, b"modified").unwrap();
    let mut buf = [0u8; 8];
    private.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"modified");
    shared.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"original");
}

#[test]
fn last_drop_removes_the_name_and_views_keep_it_alive() {
    let (dir, ns) = namespace();
    let s = create(&ns, "alive", page());
    let view = s.map_all(Access::ReadWrite).unwrap();
    let other = open(&ns, "alive", Access::Read).unwrap();
    drop(s);
    assert!(
        dir.path().join("alive").exists(),
        "another handle still holds it"
    );
    drop(other);
    assert!(dir.path().join("alive").exists(), "a view still holds it");
    view.write_at(0, b"still mapped").unwrap();
    drop(view);
    assert!(!dir.path().join("alive").exists());
    assert_eq!(
        open(&ns, "alive", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn persistent_section_stays_until_removed() {
    let (_d, ns) = namespace();
    let s = Section::options()
        .size(page())
        .lifetime(Lifetime::Persistent)
        .namespace(&ns)
        .create("keep")
        .unwrap();
    s.map_all(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"kept")
        .unwrap();
    drop(s);
    let again = open(&ns, "keep", Access::Read).unwrap();
    assert_eq!(again.lifetime(), Lifetime::Persistent);
    let mut buf = [0u8; 4];
    again
        .map_all(Access::Read)
        .unwrap()
        .read_at(0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"kept");
    let removed = remove(&ns, "keep").unwrap();
    assert!(
        !removed.still_held,
        "persistent handles are not counted holds"
    );
    assert_eq!(
        open(&ns, "keep", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn remove_of_a_held_section_frees_the_name_but_not_the_memory() {
    let (_d, ns) = namespace();
    let s = create(&ns, "rm", page());
    let view = s.map_all(Access::ReadWrite).unwrap();
    let other = open(&ns, "rm", Access::ReadWrite).unwrap();
    let removed = remove(&ns, "rm").unwrap();
    assert!(removed.still_held);
    view.write_at(0, b"ok").unwrap();
    // A new section of the same name is independent, and the old holders'
    // drops leave it alone.
    let fresh = create(&ns, "rm", 2 * page());
    drop((s, view, other));
    assert_eq!(
        open(&ns, "rm", Access::Read).unwrap().size().unwrap(),
        2 * page()
    );
    drop(fresh);
}

#[test]
fn create_fails_if_the_name_exists_and_open_if_it_does_not() {
    let (_d, ns) = namespace();
    let _s = create(&ns, "once", page());
    let err = Section::options()
        .size(page())
        .namespace(&ns)
        .create("once")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("once"), "{err}");
    let err = open(&ns, "missing", Access::Read).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::NotFound
    );
}

#[test]
fn create_or_open_says_what_happened_and_the_real_size() {
    let (_d, ns) = namespace();
    let (first, what) = Section::options()
        .size(3 * page())
        .namespace(&ns)
        .create_or_open("coo")
        .unwrap();
    assert_eq!(what, Disposition::Created);
    let (second, what) = Section::options()
        .size(page())
        .namespace(&ns)
        .create_or_open("coo")
        .unwrap();
    assert_eq!(what, Disposition::Opened { size: 3 * page() });
    assert_eq!(
        second.size().unwrap(),
        3 * page(),
        "the existing size is kept"
    );
    drop((first, second));
}

#[test]
fn create_with_initialises_before_publishing() {
    let (_d, ns) = namespace();
    let s = Section::options()
        .size(page())
        .namespace(&ns)
        .create_with("init", |view| view.write_at(0, b"ready"))
        .unwrap();
    let mut buf = [0u8; 5];
    open(&ns, "init", Access::Read)
        .unwrap()
        .map_all(Access::Read)
        .unwrap()
        .read_at(0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"ready");
    drop(s);
    // A failing initialiser publishes nothing.
    let err = Section::options()
        .size(page())
        .namespace(&ns)
        .create_with("init2", |view| {
            view.write_at(page() as usize, b"past the end")
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRange);
    assert_eq!(
        open(&ns, "init2", Access::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(list(&ns).unwrap().is_empty());
}

#[test]
fn hostile_names_are_refused_and_touch_nothing_outside() {
    let (dir, ns) = namespace();
    let long = "n".repeat(256);
    for name in [
        "",
        ".",
        "..",
        "../escape",
        "a/b",
        "/abs",
        "nul\0",
        long.as_str(),
        ".sections-x",
    ] {
        let err = Section::options()
            .size(page())
            .namespace(&ns)
            .create(name)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}");
        assert_eq!(
            open(&ns, name, Access::Read).unwrap_err().kind(),
            ErrorKind::InvalidName
        );
        assert_eq!(
            remove(&ns, name).unwrap_err().kind(),
            ErrorKind::InvalidName
        );
    }
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // 255 bytes is allowed.
    drop(create(&ns, &"n".repeat(255), page()));
}

#[test]
fn symlinks_in_the_namespace_are_never_followed() {
    let (dir, ns) = namespace();
    let target = dir.path().join("target-file");
    std::fs::write(&target, vec![7u8; 4096]).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
    let err = open(&ns, "link", Access::ReadWrite).unwrap_err();
    assert_ne!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = Section::options()
        .size(page())
        .namespace(&ns)
        .create("link")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        vec![7u8; 4096],
        "the target is untouched"
    );
}

#[test]
fn bad_sizes_and_ranges_are_typed_errors() {
    let (_d, ns) = namespace();
    let opts = |size| {
        Section::options()
            .size(size)
            .namespace(&ns)
            .create("sz")
            .map(drop)
    };
    assert_eq!(opts(0).unwrap_err().kind(), ErrorKind::InvalidSize);
    assert_eq!(opts(u64::MAX).unwrap_err().kind(), ErrorKind::InvalidSize);
    assert_eq!(
        Section::anonymous(0).unwrap_err().kind(),
        ErrorKind::InvalidSize
    );

    let s = create(&ns, "range", 2 * page());
    assert_eq!(
        s.map(1, 10, Access::Read).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        s.map(0, 0, Access::Read).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        s.map(page(), granularity() + 1, Access::Read)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        s.map(u64::MAX - page() + 1, 1, Access::Read)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidRange
    );
    let v = s.map_all(Access::ReadWrite).unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(
        v.read_at(2 * granularity() - 1, &mut buf)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(
        v.write_at(usize::MAX, b"x").unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(v.atomic_u64(4).unwrap_err().kind(), ErrorKind::InvalidRange);
    assert_eq!(
        v.atomic_u32(2 * granularity() - 2).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
    assert_eq!(s.grow(page()).unwrap_err().kind(), ErrorKind::InvalidSize);
    assert_eq!(s.grow(u64::MAX).unwrap_err().kind(), ErrorKind::InvalidSize);
}

#[test]
fn a_size_the_os_cannot_map_is_an_error_not_a_crash() {
    let (_d, ns) = namespace();
    // 1 EiB: reserving its memory fails at once, and nothing is left.
    let huge = 1u64 << 60;
    let err = Section::options()
        .size(huge)
        .namespace(&ns)
        .create("huge")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert_eq!(std::fs::read_dir(ns.dir()).unwrap().count(), 0);
    // Sparse, tmpfs accepts the size; the address space does not.
    match Section::options()
        .size(huge)
        .sparse(true)
        .namespace(&ns)
        .create("huge")
    {
        Ok(s) => {
            let err = s.map_all(Access::ReadWrite).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Os, "{err}");
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::InvalidSize | ErrorKind::Os),
            "{e}"
        ),
    }
}

#[test]
fn atomics_are_shared_between_views() {
    let (_d, ns) = namespace();
    let s = create(&ns, "atomics", page());
    let a = s.map_all(Access::ReadWrite).unwrap();
    let b = open(&ns, "atomics", Access::ReadWrite)
        .unwrap()
        .map_all(Access::ReadWrite)
        .unwrap();
    a.atomic_u64(8)
        .unwrap()
        .fetch_add(5, std::sync::atomic::Ordering::SeqCst);
    b.atomic_u64(8)
        .unwrap()
        .fetch_add(7, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        a.atomic_u64(8)
            .unwrap()
            .load(std::sync::atomic::Ordering::SeqCst),
        12
    );
    a.atomic_u32(4)
        .unwrap()
        .store(0xdead_beef, std::sync::atomic::Ordering::Release);
    let mut buf = [0u8; 4];
    b.read_at(4, &mut buf).unwrap();
    assert_eq!(u32::from_ne_bytes(buf), 0xdead_beef);
}

#[test]
fn read_and_write_at_handle_every_alignment() {
    let s = Section::anonymous(page()).unwrap();
    let v = s.map_all(Access::ReadWrite).unwrap();
    let data: Vec<u8> = (0..200u8).collect();
    for offset in 0..17 {
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 200] {
            v.write_at(offset, &data[..len]).unwrap();
            let mut out = vec![0u8; len];
            v.read_at(offset, &mut out).unwrap();
            assert_eq!(out, &data[..len], "offset {offset} len {len}");
        }
    }
}

#[test]
fn growth_is_seen_and_new_views_cover_it() {
    let (_d, ns) = namespace();
    let s = create(&ns, "grow", page());
    let old = s.map_all(Access::ReadWrite).unwrap();
    let peer = open(&ns, "grow", Access::ReadWrite).unwrap();
    s.grow(4 * page()).unwrap();
    assert_eq!(peer.size().unwrap(), 4 * page());
    peer.map(3 * page(), granularity(), Access::ReadWrite)
        .unwrap()
        .write_at(0, b"far")
        .unwrap();
    let mut buf = [0u8; 3];
    s.map(3 * page(), granularity(), Access::Read)
        .unwrap()
        .read_at(0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"far");
    old.write_at(0, b"old view still valid").unwrap();
    // Growing to a size a peer already passed is a no-op, never a shrink.
    peer.grow(4 * page()).unwrap();
    assert_eq!(s.size().unwrap(), 4 * page());
    // A read-only handle may not grow.
    let ro = open(&ns, "grow", Access::Read).unwrap();
    assert_eq!(
        ro.grow(8 * page()).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn anonymous_section_is_sealed_against_shrinking() {
    let s = Section::anonymous(4 * page()).unwrap();
    assert_eq!(s.kind(), Kind::Anonymous);
    let rc = unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&s.as_fd()), 0) };
    assert_eq!(rc, -1, "a peer must not be able to shrink it");
    assert_eq!(s.size().unwrap(), 4 * page());
    s.grow(8 * page()).unwrap();
    assert_eq!(s.size().unwrap(), 8 * page());
}

#[test]
fn anonymous_section_sent_over_a_socket_keeps_its_access() {
    let s = Section::anonymous(page()).unwrap();
    s.map_all(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"sent")
        .unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    s.send_as(&a, Access::Read).unwrap();
    let got = Section::receive(&b).unwrap();
    assert_eq!(got.access(), Access::Read);
    assert_eq!(
        got.map_all(Access::ReadWrite).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let mut buf = [0u8; 4];
    got.map_all(Access::Read)
        .unwrap()
        .read_at(0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"sent");
    s.send(&a).unwrap();
    let rw = Section::receive(&b).unwrap();
    assert_eq!(rw.access(), Access::ReadWrite);
    rw.map_all(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"back")
        .unwrap();
    s.map_all(Access::Read)
        .unwrap()
        .read_at(0, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"back");
    // A read-only handle cannot send more access than it has.
    assert_eq!(
        got.send_as(&a, Access::ReadWrite).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    // A peer that closes without sending is an error, not a hang.
    drop(a);
    assert!(Section::receive(&b).is_err());
}

#[test]
fn file_backed_sections_show_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let mut content = vec![0u8; 3 * granularity()];
    content[..5].copy_from_slice(b"hello");
    std::fs::write(&path, &content).unwrap();

    let s = Section::from_path(&path, Access::ReadWrite).unwrap();
    assert_eq!(s.kind(), Kind::File);
    assert_eq!(s.size().unwrap(), content.len() as u64);
    let v = s.map_all(Access::ReadWrite).unwrap();
    let mut buf = [0u8; 5];
    v.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    v.write_at(granularity(), b"written").unwrap();
    v.flush_durable().unwrap();
    assert_eq!(
        &std::fs::read(&path).unwrap()[granularity()..granularity() + 7],
        b"written"
    );

    let cow = s.map_all(Access::CopyOnWrite).unwrap();
    cow.write_at(0, b"PRIVATE").unwrap();
    cow.flush().unwrap();
    drop(cow);
    assert_eq!(
        &std::fs::read(&path).unwrap()[..5],
        b"hello",
        "copy-on-write never reaches the file"
    );

    // A file opened read-only gives a read-only section.
    let file = std::fs::File::open(&path).unwrap();
    let ro = Section::from_file(&file).unwrap();
    assert_eq!(ro.access(), Access::Read);
    assert_eq!(
        ro.map_all(Access::ReadWrite).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert!(Section::from_path(dir.path().join("missing"), Access::Read).is_err());
    assert_eq!(
        Section::from_path(dir.path(), Access::Read)
            .unwrap_err()
            .kind(),
        ErrorKind::Os
    );
}

#[test]
fn named_file_sections_open_the_same_file_and_detect_replacement() {
    let (_d, ns) = namespace();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("backing.bin");
    let s = Section::options()
        .size(2 * page())
        .file(&path)
        .namespace(&ns)
        .create("byfile")
        .unwrap();
    assert_eq!(s.kind(), Kind::NamedFile);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * page());
    s.map_all(Access::ReadWrite)
        .unwrap()
        .write_at(10, b"on disk")
        .unwrap();

    let other = open(&ns, "byfile", Access::Read).unwrap();
    assert_eq!(other.kind(), Kind::NamedFile);
    let mut buf = [0u8; 7];
    other
        .map_all(Access::Read)
        .unwrap()
        .read_at(10, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"on disk");
    drop(other);

    let listed = list(&ns).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, EntryKind::File);
    assert_eq!(listed[0].size, 2 * page());
    assert_eq!(
        listed[0].file.as_deref(),
        Some(std::fs::canonicalize(&path).unwrap().as_path())
    );

    // Replace the file: the name no longer refers to the same data.
    let moved = files.path().join("moved.bin");
    std::fs::rename(&path, &moved).unwrap();
    std::fs::write(&path, vec![0u8; 2 * granularity()]).unwrap();
    let err = open(&ns, "byfile", Access::Read).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Replaced, "{err}");
    std::fs::remove_file(&path).unwrap();
    let err = open(&ns, "byfile", Access::Read).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Replaced, "{err}");
    assert!(err.to_string().contains("removed"), "{err}");
    drop(s);
    assert!(
        list(&ns).unwrap().is_empty(),
        "the name went with its last holder"
    );
    assert!(moved.exists(), "the backing file itself is never deleted");
}

#[test]
fn foreign_owned_sections_are_refused_unless_allowed() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let (dir, ns) = namespace();
    let s = Section::options()
        .size(page())
        .lifetime(Lifetime::Persistent)
        .namespace(&ns)
        .create("squat")
        .unwrap();
    drop(s);
    std::os::unix::fs::chown(dir.path().join("squat"), Some(65534), Some(65534)).unwrap();
    let err = open(&ns, "squat", Access::Read).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("uid 65534"), "{err}");
    Section::options()
        .namespace(&ns)
        .access(Access::Read)
        .allow_foreign_owner(true)
        .open("squat")
        .unwrap();
}

#[test]
fn listing_shows_every_entry_and_changes_nothing() {
    let (dir, ns) = namespace();
    let counted = create(&ns, "counted", page());
    let persistent = Section::options()
        .size(2 * page())
        .lifetime(Lifetime::Persistent)
        .mode(0o640)
        .namespace(&ns)
        .create("persistent")
        .unwrap();
    drop(persistent);
    std::fs::File::create(dir.path().join("foreign"))
        .unwrap()
        .write_all(b"abc")
        .unwrap();
    std::fs::create_dir(dir.path().join("subdir")).unwrap();

    for _ in 0..2 {
        let entries = list(&ns).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["counted", "foreign", "persistent"]);
        let c = &entries[0];
        assert_eq!(
            (c.lifetime, c.held, c.stale),
            (Lifetime::Counted, Some(true), false)
        );
        assert_eq!(c.owner_uid, unsafe { libc::geteuid() });
        let f = &entries[1];
        assert_eq!(
            (f.kind, f.size, f.lifetime, f.held),
            (EntryKind::Memory, 3, Lifetime::Persistent, Some(false))
        );
        let p = &entries[2];
        assert_eq!(
            (p.mode, p.size, p.lifetime),
            (0o640, 2 * page(), Lifetime::Persistent)
        );
    }
    // Listing took no hold: the last holder's drop still removes the name.
    drop(counted);
    assert!(!dir.path().join("counted").exists());
    // gc leaves live, persistent and foreign entries alone.
    assert!(gc(&ns).unwrap().is_empty());
    assert_eq!(list(&ns).unwrap().len(), 2);
}

#[test]
fn view_operations_work_and_report_residency() {
    let s = Section::anonymous(16 * page()).unwrap();
    let v = s.map_all(Access::ReadWrite).unwrap();
    assert_eq!(v.residency(0, v.len()).unwrap().resident_pages, 0);
    v.prefetch(0, 4 * granularity()).unwrap();
    let r = v.residency(0, v.len()).unwrap();
    assert!(r.resident_pages >= 4, "{r:?}");
    assert_eq!(r.total_pages, 16);
    for advice in [
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::Normal,
    ] {
        v.advise(advice).unwrap();
    }
    v.flush().unwrap();
    v.flush_async().unwrap();
    v.flush_range(5, 100).unwrap();
    match v.lock(0, granularity()) {
        Ok(()) => v.unlock(0, granularity()).unwrap(),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::PermissionDenied);
            assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
        }
    }
    assert_eq!(
        v.prefetch(0, v.len() + 1).unwrap_err().kind(),
        ErrorKind::InvalidRange
    );
}

#[test]
fn prefetch_past_a_truncated_file_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinks.bin");
    std::fs::write(&path, vec![1u8; 4 * granularity()]).unwrap();
    let s = Section::from_path(&path, Access::Read).unwrap();
    let v = s.map_all(Access::Read).unwrap();
    // Someone else truncates the file under our view.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(granularity() as u64)
        .unwrap();
    let err = v.prefetch(0, v.len()).unwrap_err();
    assert!(err.to_string().contains("beyond the end"), "{err}");
}

#[test]
fn a_missing_namespace_is_a_clear_error() {
    let ns = Namespace::at("/nonexistent/sections-ns");
    let err = Section::options()
        .size(page())
        .namespace(&ns)
        .create("x")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains("/nonexistent/sections-ns"),
        "{err}"
    );
}

#[test]
fn executable_views_need_an_executable_handle() {
    let plain = Section::anonymous(page()).unwrap();
    assert_eq!(
        plain.map_all(Access::ReadExecute).unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let exec = Section::options()
        .size(page())
        .access(Access::ReadWriteExecute)
        .anonymous()
        .unwrap();
    assert_eq!(exec.access(), Access::ReadWriteExecute);
    // x86-64 `ret`; mapping it executable is what matters here, not running it.
    exec.map_all(Access::ReadWrite)
        .unwrap()
        .write_at(0, &[0xc3])
        .unwrap();
    let code = exec.map_all(Access::ReadExecute).unwrap();
    let mut byte = [0u8];
    code.read_at(0, &mut byte).unwrap();
    assert_eq!(byte, [0xc3]);
    exec.map_all(Access::CopyOnWriteExecute).unwrap();
}

#[test]
fn copy_within_moves_bytes_inside_a_view() {
    let s = Section::anonymous(2 * page()).unwrap();
    let v = s.map_all(Access::ReadWrite).unwrap();
    v.write_at(0, b"abcdefgh").unwrap();
    // SAFETY: nothing else accesses this private anonymous section.
    unsafe { v.copy_within(0, granularity() + 1, 8).unwrap() };
    // Overlapping ranges behave like memmove.
    unsafe { v.copy_within(0, 2, 8).unwrap() };
    let mut buf = [0u8; 10];
    v.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"ababcdefgh");
    v.read_at(granularity() + 1, &mut buf[..8]).unwrap();
    assert_eq!(&buf[..8], b"abcdefgh");
    let err = unsafe { v.copy_within(0, 2 * granularity() - 4, 8) }.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRange);
    let ro = s.map_all(Access::Read).unwrap();
    assert_eq!(
        unsafe { ro.copy_within(0, 8, 8) }.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[test]
fn large_views_are_placed_for_huge_pages() {
    // A view's address agrees with its offset modulo 2 MiB, so that huge
    // pages of the section can be mapped whole.
    let s = Section::anonymous(8 << 20).unwrap();
    for offset in [0u64, 4096, 3 << 20] {
        let v = s.map(offset, 4 << 20, Access::ReadWrite).unwrap();
        assert_eq!(
            v.as_ptr() as u64 % (2 << 20),
            offset % (2 << 20),
            "offset {offset}"
        );
        v.write_at(v.len() - 1, b"x").unwrap();
    }
}

#[test]
fn a_file_shrunk_by_another_process_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinks.bin");
    std::fs::write(&path, vec![7u8; 4 * granularity()]).unwrap();
    let s = Section::from_path(&path, Access::ReadWrite).unwrap();
    let v = s.map_all(Access::ReadWrite).unwrap();
    let mut buf = [0u8; 8];
    v.read_at(3 * granularity(), &mut buf).unwrap();
    assert_eq!(buf, [7; 8]);
    // "Another process" truncates the file under the view.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(granularity() as u64)
        .unwrap();
    let err = v.read_at(3 * granularity(), &mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    let err = v.write_at(2 * granularity(), b"lost").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Truncated, "{err}");
    // What is still inside the file reads and writes as before.
    v.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, [7; 8]);
    v.write_at(8, b"kept").unwrap();
    drop(v);
    assert_eq!(&std::fs::read(&path).unwrap()[8..12], b"kept");
}

#[test]
fn a_named_section_truncated_by_a_foreign_program_is_an_error_not_a_crash() {
    let (dir, ns) = namespace();
    let s = create(&ns, "victim", 4 * page());
    let v = s.map_all(Access::ReadWrite).unwrap();
    v.write_at(0, b"ok").unwrap();
    // A program outside the library (it could use shm_open + ftruncate).
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("victim"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(
        v.read_at(0, &mut buf).unwrap_err().kind(),
        ErrorKind::Truncated
    );
    assert_eq!(
        v.atomic_u64(8)
            .unwrap()
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "zeros, not a crash"
    );
}

#[test]
fn anonymous_memory_is_sealed_against_execve() {
    // MFD_NOEXEC_SEAL: the memfd can never be run or made executable by
    // chmod (hardened systems expect it); executable views still work.
    let s = Section::options()
        .size(page())
        .access(Access::ReadExecute)
        .anonymous()
        .unwrap();
    let seals = unsafe { libc::fcntl(s.as_fd().as_raw_fd(), libc::F_GET_SEALS) };
    assert!(seals >= 0);
    const F_SEAL_EXEC: i32 = 0x20;
    // Linux 6.3 brought the flag; older kernels get a memfd without it.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = numbers.next().unwrap().parse().unwrap();
    let minor: u32 = numbers.next().unwrap().parse().unwrap();
    if (major, minor) >= (6, 3) {
        assert_ne!(seals & F_SEAL_EXEC, 0, "seals {seals:#x}");
    }
    assert_ne!(seals & libc::F_SEAL_SHRINK, 0, "seals {seals:#x}");
    s.map_all(Access::ReadExecute).unwrap();
}

#[test]
fn a_hard_linked_entry_is_refused() {
    // Another user may link a file they can reach (root's world-writable
    // file, or another section) under a section name; the owner check sees
    // the file's owner, not who made the link. A section has one name.
    let (dir, ns) = namespace();
    let real = Section::options()
        .size(page())
        .lifetime(Lifetime::Persistent)
        .namespace(&ns)
        .create("real")
        .unwrap();
    drop(real);
    std::fs::hard_link(dir.path().join("real"), dir.path().join("trap")).unwrap();
    for name in ["trap", "real"] {
        let err = open(&ns, name, Access::Read).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{name}: {err}");
        assert!(err.to_string().contains("2 hard links"), "{err}");
        let err = Section::options()
            .namespace(&ns)
            .access(Access::Read)
            .allow_foreign_owner(true)
            .open(name)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{name}: {err}");
    }
    // Once the extra name is gone, the section opens again.
    std::fs::remove_file(dir.path().join("trap")).unwrap();
    open(&ns, "real", Access::Read).unwrap();
}

#[test]
fn remove_refuses_what_is_not_a_section() {
    let (dir, ns) = namespace();
    let fifo = std::ffi::CString::new(dir.path().join("pipe").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).unwrap();
    std::fs::create_dir(dir.path().join("dir")).unwrap();
    for (name, what) in [
        ("pipe", "a FIFO"),
        ("link", "a symbolic link"),
        ("dir", "a directory"),
    ] {
        let err = remove(&ns, name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind, "{name}: {err}");
        assert!(err.to_string().contains(what), "{name}: {err}");
        assert!(
            std::fs::symlink_metadata(dir.path().join(name)).is_ok(),
            "{name} was removed"
        );
        let err = sections::entry(&ns, name).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::WrongKind, "{name}: {err}");
        assert!(err.to_string().contains(what), "{name}: {err}");
    }
    assert_eq!(
        remove(&ns, "missing").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Sets `path`'s access time far in the past and its modification time to
/// now: any read of it (a listing reads the first bytes of every entry)
/// then moves the access time, even on a `relatime` mount.
fn make_reads_visible(path: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .set_modified(std::time::SystemTime::now()),
    )
    .unwrap();
}

fn accessed(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().accessed().unwrap()
}

#[test]
fn one_entry_is_described_without_the_others() {
    let (dir, ns) = namespace();
    let _s = create(&ns, "one", page());
    // A neighbour that shows whether anything read it.
    let neighbour = dir.path().join("neighbour");
    std::fs::write(&neighbour, b"untouched").unwrap();
    make_reads_visible(&neighbour);
    let before = accessed(&neighbour);
    let e = sections::entry(&ns, "one").unwrap();
    assert_eq!(
        (e.name.as_str(), e.size, e.held),
        ("one", page(), Some(true))
    );
    let usage = sections::usage(&ns, &[e]).unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].users[0].pid, std::process::id());
    assert_eq!(
        accessed(&neighbour),
        before,
        "entry() or usage() read another entry"
    );
    // The probe works: a listing reads every entry.
    list(&ns).unwrap();
    assert_ne!(
        accessed(&neighbour),
        before,
        "the neighbour cannot show reads"
    );
    assert_eq!(
        sections::entry(&ns, "nothing").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        sections::entry(&ns, "../x").unwrap_err().kind(),
        ErrorKind::InvalidName
    );
}

#[test]
fn residency_of_huge_sparse_entries_costs_what_they_hold() {
    // A 4 EiB sparse file holds one page: its residency is that page, found
    // by skipping holes rather than mapping 4 EiB (which would take minutes
    // and a gigabyte per 4 TiB for mincore's vector).
    let (dir, ns) = namespace();
    let path = dir.path().join("sparse");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(1 << 62).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"x", 1 << 40).unwrap();
    let entries = list(&ns).unwrap();
    let start = std::time::Instant::now();
    let usage = sections::usage(&ns, &entries).unwrap();
    assert_eq!(usage[0].resident_bytes, Some(page()));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// A token is a string: whatever descriptor it names, adopting it closes
/// or takes over nothing of this process, on error or on success.
#[cfg(unix)]
#[test]
fn a_token_never_closes_or_takes_over_the_descriptor_it_names() {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;

    use sections::channel::ChannelOptions;

    let mut file = tempfile::tempfile().unwrap();
    file.write_all(b"mine").unwrap();
    let fd = file.as_raw_fd();
    for token in [
        format!("fd:{fd}:1:0"),
        format!("fd:{fd}:1:1"),
        format!("channel::fd:{fd}:1:0"),
        "fd:0:1:0".to_owned(),
        "fd:2:1:0".to_owned(),
    ] {
        let _ = Section::from_token(&token).map(|s| s.map_all(Access::Read));
        let _ = ChannelOptions::new().receiver_from_token(&token);
        let _ = ChannelOptions::new().sender_from_token(&token);
    }
    // The file's descriptor is still the file's.
    file.write_all(b" still").unwrap();
    file.rewind().unwrap();
    let mut back = String::new();
    file.read_to_string(&mut back).unwrap();
    assert_eq!(back, "mine still");
    // SAFETY: fcntl(F_GETFD) on descriptors 0 and 2 only asks.
    assert!(unsafe { libc::fcntl(0, libc::F_GETFD) } >= 0, "stdin open");
    assert!(unsafe { libc::fcntl(2, libc::F_GETFD) } >= 0, "stderr open");

    // This process's own token, adopted here: two owners of one number
    // would close it twice. Drop the share first, then the adopted side.
    let section = Section::anonymous(4096).unwrap();
    let share = section.inheritable().unwrap();
    let adopted = Section::from_token(share.token()).unwrap();
    drop(share);
    let victim = tempfile::tempfile().unwrap();
    let view = adopted.map_all(Access::ReadWrite).unwrap();
    view.write_at(0, b"ok").unwrap();
    drop((view, adopted));
    // The victim that may have reused the number is still open.
    assert!(victim.metadata().is_ok());
    // SAFETY: fcntl(F_GETFD) only asks.
    assert!(unsafe { libc::fcntl(victim.as_raw_fd(), libc::F_GETFD) } >= 0);
}

/// A guard forgotten (safe: `mem::forget`) and its mutex dropped: the lock
/// word is on this thread's robust list, which the C library walks through
/// the mapping. The mutex keeps its mapping, so locking another robust
/// mutex writes into nothing but its own pages (before, it wrote a pointer
/// into a section mapped where the first mutex had been).
#[test]
fn a_mutex_dropped_with_a_forgotten_guard_never_corrupts_memory() {
    let (_dir, ns) = namespace();
    let mut opts = sections::sync::SyncOptions::new();
    opts.namespace(&ns);
    let other = opts.create_mutex("other").unwrap();
    // Run on a thread of its own: its robust list ends with it.
    std::thread::scope(|s| {
        s.spawn(|| {
            let first = opts.create_mutex("first").unwrap();
            std::mem::forget(first.lock().unwrap().into_guard());
            drop(first);
            let section = create(&ns, "after", 4096);
            let view = section.map_all(Access::ReadWrite).unwrap();
            view.write_at(0, &[0xaa; 4096]).unwrap();
            for _ in 0..100 {
                drop(other.lock().unwrap());
            }
            let mut back = [0u8; 4096];
            view.read_at(0, &mut back).unwrap();
            assert!(
                back.iter().all(|&b| b == 0xaa),
                "locking wrote into a section"
            );
        })
        .join()
        .unwrap();
    });
}

#[test]
fn a_zero_sized_guarded_value_is_refused() {
    let (_dir, ns) = namespace();
    let mut opts = sections::sync::SyncOptions::new();
    opts.namespace(&ns);
    let e = opts.create_guarded("empty", ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSize);
    let e = opts.open_guarded::<[u8; 0]>("empty").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidSize);
}

/// A guarded value is a private copy while locked: bytes written around the
/// mutex (here by a view of the same bytes in this process, as a peer that
/// ignores the mutex would) never change a reference the guard handed out,
/// and what the holder changed is written back when the guard goes.
#[cfg(target_os = "linux")]
#[test]
fn a_guarded_value_is_copied_out_and_written_back_never_aliased() {
    let (dir, ns) = namespace();
    let mut opts = sections::sync::SyncOptions::new();
    opts.namespace(&ns);
    let guarded = opts.create_guarded("counter", 0x5eed_u64).unwrap();
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("counter"))
        .expect("the guarded value's file");
    let view = Section::from_path(&file, Access::ReadWrite)
        .unwrap()
        .map_all(Access::ReadWrite)
        .unwrap();
    let at = (64..=view.len() - 8)
        .step_by(64)
        .find(|&at| {
            let mut word = [0u8; 8];
            view.read_at(at, &mut word).unwrap();
            u64::from_ne_bytes(word) == 0x5eed
        })
        .expect("the value's bytes in its file");

    {
        let held = guarded.lock().unwrap().into_guard();
        let seen: &u64 = &held;
        view.write_at(at, &99u64.to_ne_bytes()).unwrap();
        assert_eq!(
            *seen, 0x5eed,
            "a reference into shared memory was handed out"
        );
        // Read only: nothing is written back, the bytes keep what was written.
    }
    let mut word = [0u8; 8];
    view.read_at(at, &mut word).unwrap();
    assert_eq!(u64::from_ne_bytes(word), 99);

    {
        let mut held = guarded.lock().unwrap().into_guard();
        assert_eq!(*held, 99);
        *held += 1;
        view.read_at(at, &mut word).unwrap();
        assert_eq!(u64::from_ne_bytes(word), 99, "written before release");
    }
    view.read_at(at, &mut word).unwrap();
    assert_eq!(u64::from_ne_bytes(word), 100, "not written back on release");
    assert_eq!(*guarded.lock().unwrap().into_guard(), 100);
}
