//! A private namespace per test: a fresh directory on tmpfs (removed
//! afterwards) on Unix, a fresh name prefix on Windows, so that tests never
//! meet each other's names.

// Each test binary uses the part it needs.
#![allow(dead_code)]

use sections::{Access, Namespace, Section};

pub struct PrivateNamespace {
    pub ns: Namespace,
    /// The namespace as a command-line argument for peer processes.
    pub arg: String,
    #[cfg(unix)]
    _dir: tempfile::TempDir,
}

pub fn private_namespace(tag: &str) -> PrivateNamespace {
    #[cfg(unix)]
    let (ns, dir) = {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sections-{tag}-"))
            .tempdir_in("/dev/shm")
            .expect("a temporary directory on /dev/shm");
        (Namespace::at(dir.path()), dir)
    };
    #[cfg(windows)]
    let ns = {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Namespace::at(format!("{tag}-{}-{n}", std::process::id()))
    };
    PrivateNamespace {
        arg: ns.dir().to_string_lossy().into_owned(),
        ns,
        #[cfg(unix)]
        _dir: dir,
    }
}

/// Creates `name` in `ns` with `size` bytes, or fails the test.
pub fn create(ns: &Namespace, name: &str, size: usize) -> Section {
    Section::options()
        .size(size as u64)
        .namespace(ns)
        .create(name)
        .unwrap()
}

/// Opens `name` in `ns` with `access`.
pub fn open(ns: &Namespace, name: &str, access: Access) -> sections::Result<Section> {
    Section::options().namespace(ns).access(access).open(name)
}

/// Copies `len` bytes at `offset` out of a read view of the whole section.
pub fn read(section: &Section, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    section
        .map_all(Access::Read)
        .unwrap()
        .read_at(offset, &mut buf)
        .unwrap();
    buf
}

/// The peer roles the section suites share, on the section `args[1]` in
/// the namespace `args[0]`:
/// - `open-hold NS NAME`: map it read-write, say "ready", hold until stdin
///   closes;
/// - `open-write NS NAME OFFSET TEXT`: write TEXT at OFFSET, say "done";
/// - `open-read NS NAME OFFSET LEN`: open read-only, print the bytes, then
///   what a read-write map and a write through a read view return;
/// - `file-write NS NAME TEXT`: write TEXT at 0, flush durably, say "done".
///
/// `None` when `role` is none of these.
pub fn section_role(role: &str, args: &[String]) -> Option<Result<(), Box<dyn std::error::Error>>> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let ns = Namespace::at(arg(0));
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        match role {
            "open-hold" => {
                let s = open(&ns, arg(1), Access::ReadWrite)?;
                let _view = s.map_all(Access::ReadWrite)?;
                println!("ready");
                super::peer::wait_stdin_eof();
            }
            "open-write" => {
                let s = open(&ns, arg(1), Access::ReadWrite)?;
                s.map_all(Access::ReadWrite)?
                    .write_at(arg(2).parse()?, arg(3).as_bytes())?;
                println!("done");
            }
            "open-read" => {
                let s = open(&ns, arg(1), Access::Read)?;
                let bytes = read(&s, arg(2).parse()?, arg(3).parse()?);
                println!("{}", String::from_utf8_lossy(&bytes));
                let rw = s.map_all(Access::ReadWrite).map(drop).map_err(|e| e.kind());
                println!("map-rw {rw:?}");
                let view = s.map_all(Access::Read)?;
                println!("write {:?}", view.write_at(0, b"x").map_err(|e| e.kind()));
            }
            "file-write" => {
                let s = open(&ns, arg(1), Access::ReadWrite)?;
                let v = s.map_all(Access::ReadWrite)?;
                v.write_at(0, arg(2).as_bytes())?;
                v.flush_durable()?;
                println!("done");
            }
            _ => unreachable!("checked below"),
        }
        Ok(())
    };
    matches!(
        role,
        "open-hold" | "open-write" | "open-read" | "file-write"
    )
    .then(run)
}
