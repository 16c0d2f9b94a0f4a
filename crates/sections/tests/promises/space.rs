//! "No lost data": a section that does not fit its namespace is refused
//! when it is created or grown, with the room left in the message, and
//! leaves nothing behind. A sparse section that meets a full file system
//! fails loudly, and keeps failing. Each test mounts a 4 MiB tmpfs (the
//! size of a small container's `/dev/shm`), which needs root; CI runs as
//! root and sets `SECTIONS_REQUIRE_ROOT=1`, so that these tests cannot
//! pass by skipping there.

use std::path::Path;
use std::process::Command;

use libtest_mimic::Failed;
use sections::channel::ChannelOptions;
use sections::{Access, ErrorKind, Namespace, Section};

use crate::peer::TestFn;

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "a_section_larger_than_its_namespace_is_refused_at_create",
            too_large_is_refused,
        ),
        (
            "sections_that_do_not_fit_together_are_refused",
            two_do_not_fit,
        ),
        ("growth_past_the_room_left_is_refused", growth_is_refused),
        (
            "a_channel_that_does_not_fit_says_so",
            channel_that_does_not_fit,
        ),
        (
            "a_sparse_section_on_a_full_namespace_fails_loudly_every_time",
            sparse_fails_loudly,
        ),
        (
            "a_full_disk_leaves_file_sections_as_they_were",
            full_disk_file_sections,
        ),
    ]
}

const MIB: u64 = 1 << 20;

/// A tmpfs of `size` bytes, unmounted (and its directory removed) on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
    ns: Namespace,
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn small_tmpfs(size: u64) -> Result<Option<SmallTmpfs>, Failed> {
    let dir = tempfile::Builder::new()
        .prefix("sections-full-")
        .tempdir()?;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size},mode=0700"))
        .arg("tmpfs")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    finish_mount(dir, mounted)
}

/// A small ext4 file system on a loop device (its image in a temporary
/// directory), where `fallocate` is not atomic as it is on tmpfs.
fn small_ext4(size: u64) -> Result<Option<SmallTmpfs>, Failed> {
    let dir = tempfile::Builder::new()
        .prefix("sections-ext4-")
        .tempdir()?;
    let image = tempfile::Builder::new()
        .prefix("sections-ext4-image-")
        .tempfile()?;
    image.as_file().set_len(size)?;
    let quiet = || std::process::Stdio::null();
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(image.path())
        .stdout(quiet())
        .stderr(quiet())
        .status()
        .is_ok_and(|s| s.success());
    let mounted = made
        && Command::new("mount")
            .args(["-o", "loop"])
            .arg(image.path())
            .arg(dir.path())
            .stderr(quiet())
            .status()
            .is_ok_and(|s| s.success());
    // The image may go once mounted: the loop device holds it open.
    drop(image);
    finish_mount(dir, mounted)
}

fn finish_mount(dir: tempfile::TempDir, mounted: bool) -> Result<Option<SmallTmpfs>, Failed> {
    if !mounted {
        if std::env::var_os("SECTIONS_REQUIRE_ROOT").is_some() {
            return Err("cannot mount a tmpfs, and SECTIONS_REQUIRE_ROOT is set".into());
        }
        eprintln!("skipped: mounting a small tmpfs needs root");
        return Ok(None);
    }
    let ns = Namespace::at(dir.path());
    Ok(Some(SmallTmpfs { dir, ns }))
}

/// Every name in `dir`, hidden ones included.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn too_large_is_refused() -> Result<(), Failed> {
    let Some(fs) = small_tmpfs(4 * MIB)? else {
        return Ok(());
    };
    let err = Section::options()
        .size(16 * MIB)
        .namespace(&fs.ns)
        .create("big")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    let text = err.to_string();
    assert!(text.contains("bytes free of 4194304"), "{text}");
    assert!(text.contains("nothing was created"), "{text}");
    assert!(
        entries(fs.dir.path()).is_empty(),
        "left behind: {:?}",
        entries(fs.dir.path())
    );
    // A section that fits is created, and all of it is there.
    let s = Section::options()
        .size(2 * MIB)
        .namespace(&fs.ns)
        .create("fits")?;
    let v = s.map_all(Access::ReadWrite)?;
    for off in (0..2 * MIB as usize).step_by(4096) {
        v.write_at(off, b"x")?;
    }
    Ok(())
}

fn two_do_not_fit() -> Result<(), Failed> {
    let Some(fs) = small_tmpfs(4 * MIB)? else {
        return Ok(());
    };
    let first = Section::options()
        .size(3 * MIB)
        .namespace(&fs.ns)
        .create("first")?;
    let err = Section::options()
        .size(3 * MIB)
        .namespace(&fs.ns)
        .create("second")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert_eq!(entries(fs.dir.path()), ["first"]);
    // Every store to the first one reaches it: another opener sees them.
    let v = first.map_all(Access::ReadWrite)?;
    for i in 0..(3 * MIB as usize / 4096) {
        v.atomic_u64(i * 4096)?
            .store(i as u64 + 1, std::sync::atomic::Ordering::Relaxed);
    }
    let other = Section::options()
        .namespace(&fs.ns)
        .access(Access::Read)
        .open("first")?
        .map_all(Access::Read)?;
    for i in 0..(3 * MIB as usize / 4096) {
        let mut word = [0u8; 8];
        other.read_at(i * 4096, &mut word)?;
        assert_eq!(u64::from_ne_bytes(word), i as u64 + 1, "page {i}");
    }
    Ok(())
}

fn growth_is_refused() -> Result<(), Failed> {
    let Some(fs) = small_tmpfs(4 * MIB)? else {
        return Ok(());
    };
    let s = Section::options()
        .size(MIB)
        .namespace(&fs.ns)
        .create("grows")?;
    let err = s.grow(16 * MIB).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert!(err.to_string().contains("keeps its size"), "{err}");
    assert_eq!(s.size()?, MIB);
    // Growth that fits is all there.
    s.grow(2 * MIB)?;
    let v = s.map_all(Access::ReadWrite)?;
    v.write_at(2 * MIB as usize - 1, b"z")?;
    Ok(())
}

fn channel_that_does_not_fit() -> Result<(), Failed> {
    let Some(fs) = small_tmpfs(4 * MIB)? else {
        return Ok(());
    };
    let err = ChannelOptions::new()
        .capacity(8 * MIB as u32)
        .namespace(&fs.ns)
        .create("ring")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    let text = err.to_string();
    assert!(text.contains("bytes free"), "{text}");
    assert!(!text.contains("shrank"), "{text}");
    assert!(entries(fs.dir.path()).is_empty());
    Ok(())
}

fn sparse_fails_loudly() -> Result<(), Failed> {
    let Some(fs) = small_tmpfs(4 * MIB)? else {
        return Ok(());
    };
    let s = Section::options()
        .size(16 * MIB)
        .sparse(true)
        .namespace(&fs.ns)
        .create("sparse")?;
    let v = s.map_all(Access::ReadWrite)?;
    let chunk = vec![7u8; 256 << 10];
    let pass = || -> Vec<Result<(), ErrorKind>> {
        (0..16 * MIB as usize)
            .step_by(chunk.len())
            .map(|off| v.write_at(off, &chunk).map_err(|e| e.kind()))
            .collect()
    };
    let first = pass();
    let failed = first.iter().filter(|r| r.is_err()).count();
    assert!(failed > 0, "16 MiB fit a 4 MiB tmpfs?");
    assert!(first
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(ErrorKind::Truncated))));
    let err = v.write_at(15 * MIB as usize, b"x").unwrap_err();
    assert!(err.to_string().contains("no room"), "{err}");
    // The second pass must not report success where the first failed.
    let second = pass();
    for (i, (a, b)) in first.iter().zip(&second).enumerate() {
        if a.is_err() {
            assert!(b.is_err(), "chunk {i}: failed, then reported as written");
        }
    }
    // What was reported written is there for another process.
    let other = Section::options()
        .namespace(&fs.ns)
        .access(Access::Read)
        .open("sparse")?
        .map_all(Access::Read)?;
    for (i, r) in second.iter().enumerate() {
        if r.is_ok() {
            let mut byte = [0u8];
            other.read_at(i * chunk.len() + chunk.len() - 1, &mut byte)?;
            assert_eq!(byte, [7], "chunk {i} reported written but is not there");
        }
    }
    Ok(())
}

fn full_disk_file_sections() -> Result<(), Failed> {
    let Some(fs) = small_ext4(16 * MIB)? else {
        return Ok(());
    };
    let free_before = free_bytes(fs.dir.path());
    // A new file-backed section larger than the disk: refused, and the file
    // it would have made is not left behind.
    let path = fs.dir.path().join("new.bin");
    let err = Section::options()
        .size(64 * MIB)
        .file(&path)
        .namespace(&Namespace::at("/dev/shm"))
        .create(&format!("sections-ext4-{}", std::process::id()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert!(!path.exists(), "the half-allocated file was left behind");
    // Growing an existing file past the room: refused, and the file keeps
    // its size (ext4 may have allocated part of it before giving up).
    let path = fs.dir.path().join("grows.bin");
    std::fs::write(&path, vec![1u8; MIB as usize])?;
    let s = Section::from_path(&path, Access::ReadWrite)?;
    let err = s.grow(64 * MIB).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoSpace, "{err}");
    assert_eq!(s.size()?, MIB);
    assert_eq!(std::fs::metadata(&path)?.len(), MIB);
    // And the room is still there for what fits.
    let free_after = free_bytes(fs.dir.path());
    assert!(
        free_after + 2 * MIB >= free_before - MIB,
        "{free_before} bytes free before, {free_after} after"
    );
    s.grow(2 * MIB)?;
    let v = s.map_all(Access::ReadWrite)?;
    v.write_at(2 * MIB as usize - 1, b"z")?;
    Ok(())
}

fn free_bytes(dir: &Path) -> u64 {
    let st = rustix::fs::statvfs(dir).unwrap();
    st.f_bavail * st.f_frsize
}
