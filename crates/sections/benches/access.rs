//! The cost of the safe accessors against raw pointer access to the same
//! view, in the same run: `read_at`/`write_at` (atomic word copies) vs
//! `ptr::copy`, and `atomic_u64` loads vs plain loads.
//!
//! Run with `cargo bench -p sections --bench access`.

use std::sync::atomic::Ordering;

use sections::{Access, Section, View};

fn main() {
    divan::main();
}

const LEN: usize = 1 << 20;

fn view() -> View {
    Section::anonymous(LEN as u64)
        .unwrap()
        .map_all(Access::ReadWrite)
        .unwrap()
}

#[divan::bench(args = [8, 64, 4096, 65536])]
fn read_at(bencher: divan::Bencher, len: usize) {
    let v = view();
    let mut buf = vec![0u8; len];
    bencher.bench_local(|| v.read_at(divan::black_box(64), &mut buf).unwrap());
}

#[divan::bench(args = [8, 64, 4096, 65536])]
fn raw_copy_out(bencher: divan::Bencher, len: usize) {
    let v = view();
    let mut buf = vec![0u8; len];
    bencher.bench_local(|| {
        // SAFETY: the view is private to this benchmark and `len` bytes at
        // offset 64 are in bounds.
        unsafe {
            std::ptr::copy_nonoverlapping(
                v.as_ptr().add(divan::black_box(64)),
                buf.as_mut_ptr(),
                len,
            )
        }
    });
}

#[divan::bench(args = [8, 64, 4096, 65536])]
fn write_at(bencher: divan::Bencher, len: usize) {
    let v = view();
    let buf = vec![7u8; len];
    bencher.bench_local(|| v.write_at(divan::black_box(64), &buf).unwrap());
}

#[divan::bench(args = [8, 64, 4096, 65536])]
fn raw_copy_in(bencher: divan::Bencher, len: usize) {
    let v = view();
    let buf = vec![7u8; len];
    bencher.bench_local(|| {
        // SAFETY: as in `raw_copy_out`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                buf.as_ptr(),
                v.as_mut_ptr().add(divan::black_box(64)),
                len,
            )
        }
    });
}

#[divan::bench]
fn atomic_u64_load(bencher: divan::Bencher) {
    let v = view();
    bencher.bench_local(|| {
        v.atomic_u64(divan::black_box(128))
            .unwrap()
            .load(Ordering::Acquire)
    });
}

#[divan::bench]
fn raw_u64_load(bencher: divan::Bencher) {
    let v = view();
    bencher.bench_local(|| {
        // SAFETY: aligned and in bounds; nothing writes it concurrently.
        unsafe {
            v.as_ptr()
                .add(divan::black_box(128))
                .cast::<u64>()
                .read_volatile()
        }
    });
}

#[divan::bench]
fn atomic_u64_fetch_add(bencher: divan::Bencher) {
    let v = view();
    bencher.bench_local(|| {
        v.atomic_u64(divan::black_box(128))
            .unwrap()
            .fetch_add(1, Ordering::AcqRel)
    });
}
