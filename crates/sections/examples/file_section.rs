//! A file-backed section shared by name: the name stands for the file, so
//! another process maps the same file without knowing where it is, and the
//! data outlives the name.
//!
//! The parent creates a section named `journal`, backed by a file of its
//! choosing, and starts a child (this program again) that knows only the
//! namespace and the name. The child opens `journal`, writes records to
//! it and publishes how many it wrote in an atomic counter at the start of
//! the section, then flushes to disk and exits. The parent reads the
//! records from its own view, drops its handle (the name goes with its
//! last holder), and finds the same records in the file.
//!
//! Run it with
//!
//! ```text
//! cargo run -p sections --example file_section
//! ```
//!
//! It exits 0 when the records came through the section and landed in the
//! file. The namespace and the file live in a temporary directory, removed
//! at the end. Linux and Windows.

use std::error::Error;
use std::process::Command;
use std::sync::atomic::Ordering;

use sections::{Access, ErrorKind, Namespace, Section};

const SIZE: u64 = 64 * 1024;
/// Where the records start: after the counter (and its cache line).
const RECORDS_AT: usize = 64;
const RECORD_LEN: usize = 32;
const RECORDS: u64 = 100;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => parent(),
        [role, dir] if role == "writer" => writer(&Namespace::at(dir)),
        _ => Err("usage: file_section [writer NAMESPACE_DIR]".into()),
    }
}

/// Record `i`, padded with spaces to `RECORD_LEN` bytes.
fn record(i: u64) -> [u8; RECORD_LEN] {
    let mut out = [b' '; RECORD_LEN];
    let text = format!("entry {i:03}: {}", i * i);
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let names = dir.path().join("names");
    std::fs::create_dir(&names)?;
    let ns = Namespace::at(&names);
    let path = dir.path().join("journal.dat");

    // The file is made at this size; the name `journal` now stands for it.
    let section = Section::options()
        .size(SIZE)
        .file(&path)
        .namespace(&ns)
        .create("journal")?;
    let view = section.map_all(Access::ReadWrite)?;

    let status = Command::new(std::env::current_exe()?)
        .arg("writer")
        .arg(&names)
        .status()?;
    if !status.success() {
        return Err(format!("the writer failed: {status}").into());
    }

    // Through the section: the writer's bytes are in our view.
    let written = view.atomic_u64(0)?.load(Ordering::Acquire);
    if written != RECORDS {
        return Err(format!("the writer says {written} records, expected {RECORDS}").into());
    }
    for i in 0..RECORDS {
        let mut got = [0u8; RECORD_LEN];
        view.read_at(RECORDS_AT + i as usize * RECORD_LEN, &mut got)?;
        if got != record(i) {
            return Err(format!("record {i} differs in the view").into());
        }
    }
    println!("parent: {written} records read through the section");

    // The last holder lets go: the name is gone, the file stays.
    drop((view, section));
    match Section::options().namespace(&ns).open("journal") {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Ok(_) => return Err("the name outlived its last holder".into()),
        Err(e) => return Err(e.into()),
    }
    let file = std::fs::read(&path)?;
    for i in 0..RECORDS {
        let at = RECORDS_AT + i as usize * RECORD_LEN;
        if file[at..at + RECORD_LEN] != record(i) {
            return Err(format!("record {i} differs in the file").into());
        }
    }
    println!(
        "parent: the name is gone; {} holds all {RECORDS} records",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    Ok(())
}

/// Opens the section by name, writes the records, and publishes their
/// count after them.
fn writer(ns: &Namespace) -> Result<(), Box<dyn Error>> {
    let section = Section::options().namespace(ns).open("journal")?;
    let view = section.map_all(Access::ReadWrite)?;
    for i in 0..RECORDS {
        view.write_at(RECORDS_AT + i as usize * RECORD_LEN, &record(i))?;
    }
    // Release: a reader that sees the count sees the records before it.
    view.atomic_u64(0)?.store(RECORDS, Ordering::Release);
    // On disk before we say we are done (the parent sees the bytes
    // through the section either way).
    view.flush_durable()?;
    println!("writer: wrote {RECORDS} records to 'journal' by name");
    Ok(())
}
