//! Uncontended lock + unlock: the robust inter-process mutex against
//! `std::sync::Mutex` and a plain (private, non-robust) pthread mutex, in
//! the same run. Linux only.
//!
//! Run with `cargo bench -p sections --bench sync`.

fn main() {
    #[cfg(target_os = "linux")]
    divan::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use sections::sync::SyncOptions;

    #[divan::bench]
    fn sections_mutex(bencher: divan::Bencher) {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let mut opts = SyncOptions::new();
        opts.namespace(&sections::Namespace::at(dir.path()));
        let m = opts.create_mutex("bench").unwrap();
        bencher.bench_local(|| drop(m.lock().unwrap()));
    }

    #[divan::bench]
    fn std_mutex(bencher: divan::Bencher) {
        let m = std::sync::Mutex::new(0u64);
        bencher.bench_local(|| drop(divan::black_box(&m).lock().unwrap()));
    }

    #[divan::bench]
    fn raw_pthread_mutex(bencher: divan::Bencher) {
        let m = Box::new(libc::PTHREAD_MUTEX_INITIALIZER);
        let p = Box::into_raw(m);
        bencher.bench_local(|| {
            // SAFETY: a valid, initialised mutex owned by this benchmark,
            // locked and unlocked by this thread.
            unsafe {
                libc::pthread_mutex_lock(divan::black_box(p));
                libc::pthread_mutex_unlock(p);
            }
        });
        // SAFETY: unlocked, and nothing else refers to it.
        unsafe {
            libc::pthread_mutex_destroy(p);
            drop(Box::from_raw(p));
        }
    }
}
