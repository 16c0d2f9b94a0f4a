//! The cost of the lifetime protocol: `create + drop` and `open + map +
//! drop` of a named section, against the raw `shm_open + ftruncate + mmap`
//! sequence in the same run; and what reserving a section's memory at
//! creation adds, for 1 MiB, 64 MiB and 1 GiB sections.
//!
//! Run with `cargo bench -p sections --bench lifetime`.

use std::ffi::CString;

use sections::{Access, Lifetime, Section};

fn main() {
    divan::main();
}

const SIZE: usize = 64 * 1024;

fn name(tag: &str) -> String {
    format!("sections-bench-{}-{tag}", std::process::id())
}

fn c_name(name: &str) -> CString {
    CString::new(format!("/{name}")).unwrap()
}

/// Maps `SIZE` bytes of `fd` shared and read-write, unmaps them and closes
/// `fd`: the raw sequence's part after the descriptor is in hand.
///
/// # Safety
/// `fd` is an open descriptor of at least `SIZE` bytes that nothing else
/// owns.
unsafe fn map_unmap_close(fd: libc::c_int) {
    // SAFETY: a fresh shared mapping of an open descriptor (the caller's
    // promise), unmapped before return; nothing else uses or closes `fd`.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        libc::munmap(p, SIZE);
        libc::close(fd);
    }
}

/// Raw POSIX: create, size, map, unmap, close, unlink.
#[divan::bench]
fn raw_create_drop(bencher: divan::Bencher) {
    let name = c_name(&name("raw-create"));
    bencher.bench_local(|| {
        // SAFETY: libc calls with valid arguments; the mapping is unmapped
        // before the iteration ends.
        unsafe {
            let fd = libc::shm_open(
                name.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                0o600,
            );
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, SIZE as libc::off_t), 0);
            map_unmap_close(fd);
            libc::shm_unlink(name.as_ptr());
        }
    });
}

/// The library: create a handle-counted section, map it, drop both (the
/// last drop removes the name).
#[divan::bench]
fn sections_create_drop(bencher: divan::Bencher) {
    let name = name("create");
    bencher.bench_local(|| {
        let s = Section::create(&name, SIZE as u64).unwrap();
        let v = s.map_all(Access::ReadWrite).unwrap();
        drop((v, s));
    });
}

/// The library without reserving memory (`sparse`), like the raw sequence:
/// the lifetime protocol's own cost.
#[divan::bench]
fn sections_create_drop_sparse(bencher: divan::Bencher) {
    let name = name("create-sparse");
    bencher.bench_local(|| {
        let s = Section::options()
            .size(SIZE as u64)
            .sparse(true)
            .create(&name)
            .unwrap();
        let v = s.map_all(Access::ReadWrite).unwrap();
        drop((v, s));
    });
}

/// What reserving costs at creation: create and drop a section of each
/// size, reserved (the default) and sparse. A reserved section has all its
/// pages; a sparse one pays for each page at its first touch instead (and
/// can fail there).
#[divan::bench_group(sample_count = 10, sample_size = 1)]
mod reserve {
    use super::*;

    const SIZES: [u64; 3] = [1 << 20, 64 << 20, 1 << 30];

    #[divan::bench(args = SIZES)]
    fn reserved(bencher: divan::Bencher, size: u64) {
        let name = name(&format!("reserved-{size}"));
        bencher.bench_local(|| drop(Section::create(&name, size).unwrap()));
    }

    #[divan::bench(args = SIZES)]
    fn sparse(bencher: divan::Bencher, size: u64) {
        let name = name(&format!("sparse-{size}"));
        bencher.bench_local(|| {
            drop(
                Section::options()
                    .size(size)
                    .sparse(true)
                    .create(&name)
                    .unwrap(),
            )
        });
    }
}

/// The library with POSIX lifetime: create, map, drop, remove.
#[divan::bench]
fn sections_create_drop_persistent(bencher: divan::Bencher) {
    let name = name("create-persistent");
    bencher.bench_local(|| {
        let s = Section::options()
            .size(SIZE as u64)
            .lifetime(Lifetime::Persistent)
            .create(&name)
            .unwrap();
        let v = s.map_all(Access::ReadWrite).unwrap();
        drop((v, s));
        Section::remove(&name).unwrap();
    });
}

/// Raw POSIX: open an existing segment, map, unmap, close.
#[divan::bench]
fn raw_open_map_drop(bencher: divan::Bencher) {
    let owner = Section::create(&name("raw-open"), SIZE as u64).unwrap();
    let name = c_name(owner.name().unwrap());
    bencher.bench_local(|| {
        // SAFETY: as in `raw_create_drop`.
        unsafe {
            let fd = libc::shm_open(name.as_ptr(), libc::O_RDWR, 0);
            assert!(fd >= 0);
            map_unmap_close(fd);
        }
    });
}

/// The library: open a live handle-counted section (joining its holders),
/// map it, drop both (leaving the holders).
#[divan::bench]
fn sections_open_map_drop(bencher: divan::Bencher) {
    let owner = Section::create(&name("open"), SIZE as u64).unwrap();
    let name = owner.name().unwrap().to_owned();
    bencher.bench_local(|| {
        let s = Section::open(&name, Access::ReadWrite).unwrap();
        let v = s.map_all(Access::ReadWrite).unwrap();
        drop((v, s));
    });
}
