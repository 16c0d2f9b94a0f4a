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
