//! A private namespace per test: a fresh directory on tmpfs (removed
//! afterwards) on Unix, a fresh name prefix on Windows, so that tests never
//! meet each other's names.

// Each test binary uses the part it needs.
#![allow(dead_code)]

use sections::Namespace;

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
