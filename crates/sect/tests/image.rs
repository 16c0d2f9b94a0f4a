#![cfg(target_os = "linux")]
//! `sect image` end to end: the real binary on the system's own images
//! (checked against `readelf`), on a tiny shared object of our own (checked
//! against `nm`), as an unprivileged user, and on files that are not images.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use serde_json::Value;

mod common;
use common::{json_of, root, stderr_of_failure, stdout_of, SECT};

/// Skips what this machine cannot run, with the reason printed; under CI
/// (env CI set) nothing is skipped: the reason fails the test.
fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason} (CI is set, so this is not skipped)"
    );
    eprintln!("skipped: {reason}");
}

fn sect_image() -> Command {
    let mut cmd = Command::new(SECT);
    cmd.arg("image");
    cmd
}

/// System images that exist here: a PIE program, a shell, libc.
fn system_images() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["/usr/bin/ls", "/bin/ls", "/bin/sh", "/usr/bin/env"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Ok(out) = StdCommand::new("cc")
        .arg("-print-file-name=libc.so.6")
        .output()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ));
    }
    for libc in [
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib64/libc.so.6",
    ] {
        candidates.push(PathBuf::from(libc));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in candidates {
        if let Ok(real) = p.canonicalize() {
            if real.is_file() && !out.contains(&real) {
                out.push(real);
            }
        }
    }
    assert!(!out.is_empty(), "no system binary found");
    out
}

/// A `PT_LOAD` line of `readelf -lW`.
#[derive(Debug, PartialEq)]
struct Load {
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
    /// As `sect` writes it: `r-x`.
    protection: String,
}

/// What `readelf -lW` says about an image: its type (`DYN`, `EXEC`), entry
/// point and loadable segments. `None` where readelf is missing.
fn readelf(path: &Path) -> Option<(String, u64, Vec<Load>)> {
    let out = match StdCommand::new("readelf").arg("-lW").arg(path).output() {
        Ok(o) if o.status.success() => o,
        _ => {
            skip("readelf (binutils) is missing or failed");
            return None;
        }
    };
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let kind = text
        .lines()
        .find_map(|l| l.strip_prefix("Elf file type is "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let entry = text
        .lines()
        .find_map(|l| l.strip_prefix("Entry point "))
        .map(hex)
        .unwrap();
    let loads = text
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD "))
        .map(|l| {
            // LOAD offset vaddr paddr filesz memsz flags... align
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = f[6..f.len() - 1].join("");
            let has = |c: char, shown: char| if flags.contains(c) { shown } else { '-' };
            Load {
                offset: hex(f[1]),
                vaddr: hex(f[2]),
                file_size: hex(f[4]),
                mem_size: hex(f[5]),
                protection: [has('R', 'r'), has('W', 'w'), has('E', 'x')]
                    .iter()
                    .collect(),
            }
        })
        .collect();
    Some((kind, entry, loads))
}

/// The rows of the segment table of `sect image`'s text output, split at
/// whitespace (sizes take several words; index and address one each).
fn segment_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("SEGMENT "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Whether a residency cell reads `R/T (P%)` with R <= T.
fn is_residency(cell: &str) -> bool {
    let Some((pages, percent)) = cell.split_once(" (") else {
        return false;
    };
    let Some((r, t)) = pages.split_once('/') else {
        return false;
    };
    let (Ok(r), Ok(t)) = (r.parse::<u64>(), t.parse::<u64>()) else {
        return false;
    };
    r <= t && percent.ends_with("%)") && percent[..percent.len() - 2].parse::<u64>().is_ok()
}

#[test]
fn system_images_show_a_segment_per_load_line_of_readelf() {
    for path in system_images() {
        let Some((_, entry, loads)) = readelf(&path) else {
            return;
        };
        let text = stdout_of(sect_image().arg(&path));
        for key in [
            "image:",
            "format:",
            "file size:",
            "entry:",
            "span:",
            "relocations:",
            "page cache:",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(key)),
                "{}: no {key} line\n{text}",
                path.display()
            );
        }
        assert!(text.contains("ELF"), "{text}");
        assert!(text.contains(&format!("entry:       {entry:#x}")), "{text}");
        let rows = segment_rows(&text);
        assert_eq!(rows.len(), loads.len(), "{}\n{text}", path.display());
        for (i, (row, load)) in rows.iter().zip(&loads).enumerate() {
            assert_eq!(row[0], i.to_string(), "{text}");
            assert_eq!(row[1], format!("{:#x}", load.vaddr), "{text}");
            assert!(row.contains(&load.protection), "{row:?} {load:?}");
            // The last column: residency, whole when root may see it.
            let tail = row[row.len() - 2..].join(" ");
            if root() && load.file_size > 0 {
                assert!(is_residency(&tail), "{row:?}");
            }
        }
        if root() {
            assert!(text.contains("pages of the file resident"), "{text}");
            assert!(!text.contains("not observable"), "{text}");
        }
    }
}

#[test]
fn json_has_the_segments_readelf_lists_and_residency_as_root() {
    for path in system_images() {
        let Some((kind, entry, loads)) = readelf(&path) else {
            return;
        };
        let r = json_of(sect_image().arg(&path).arg("--json"));
        assert_eq!(r["path"], path.display().to_string());
        assert!(r["format"].as_str().unwrap().starts_with("ELF"), "{r}");
        assert_eq!(
            r["kind"],
            if kind == "EXEC" {
                "executable"
            } else {
                "relocatable"
            },
            "{kind}"
        );
        assert_eq!(r["entry"], entry);
        assert_eq!(
            r["file_size"],
            std::fs::metadata(&path).unwrap().len(),
            "{r}"
        );
        assert!(r["span"].as_u64().unwrap() > 0);
        assert!(r["relocations"].is_array());
        assert!(r["runs_unrelocated"].is_boolean());
        assert!(r["symbol_count"].is_u64());
        assert!(r.get("symbols").is_none(), "only with --symbols");
        let segments = r["segments"].as_array().unwrap();
        assert_eq!(segments.len(), loads.len(), "{}", path.display());
        let observable = r["residency_observable"].as_bool().unwrap();
        if root() {
            assert!(observable, "root sees the page cache: {r}");
        }
        let page = r["page_size"].as_u64();
        for (i, (s, load)) in segments.iter().zip(&loads).enumerate() {
            assert_eq!(s["index"], i as u64);
            assert_eq!(s["name"], Value::Null, "ELF segments have no name");
            assert_eq!(s["address"], load.vaddr, "{s}");
            assert_eq!(s["file_offset"], load.offset, "{s}");
            assert_eq!(s["file_size"], load.file_size, "{s}");
            assert_eq!(s["mem_size"], load.mem_size, "{s}");
            assert_eq!(s["protection"], load.protection.as_str(), "{s}");
            if observable {
                let page = page.unwrap();
                let want = if load.file_size == 0 {
                    0
                } else {
                    (load.offset + load.file_size).div_ceil(page) - load.offset / page
                };
                assert_eq!(s["total_pages"], want, "{s}");
                assert!(s["resident_pages"].as_u64().unwrap() <= want, "{s}");
            } else {
                assert_eq!(s["total_pages"], Value::Null, "{s}");
                assert_eq!(s["resident_pages"], Value::Null, "{s}");
            }
        }
        if observable {
            let file_pages = std::fs::metadata(&path)
                .unwrap()
                .len()
                .div_ceil(page.unwrap());
            assert_eq!(r["total_pages"], file_pages);
            assert!(r["resident_pages"].as_u64().unwrap() <= file_pages);
        }
    }
}

/// A root-owned system file that nobody but root may write.
fn root_owned_system_image() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    system_images().into_iter().find(|p| {
        let m = std::fs::metadata(p).unwrap();
        m.uid() == 0 && m.mode() & 0o022 == 0
    })
}

/// `sect ARGS` as an unprivileged user: as nobody through setpriv when
/// this test runs as root, as this user otherwise. `None` (skipped) where
/// that cannot be done.
fn unprivileged(args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    if !root() {
        return Some(StdCommand::new(SECT).args(args).output().unwrap());
    }
    // A copy of `sect` that nobody may run, wherever the build directory
    // is (a checkout under /root is private).
    let dir = tempfile::tempdir().unwrap();
    let sect = dir.path().join("sect");
    std::fs::copy(SECT, &sect).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sect, std::fs::Permissions::from_mode(0o755)).unwrap();
    let setpriv = || {
        let mut cmd = StdCommand::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&sect);
        cmd
    };
    match setpriv().arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(&format!(
                "nobody cannot run a copy of sect in {}: {}",
                dir.path().display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return None;
        }
        Err(e) => {
            skip(&format!("setpriv (util-linux) cannot run: {e}"));
            return None;
        }
    }
    Some(setpriv().args(args).output().unwrap())
}

#[test]
fn residency_of_a_file_this_user_cannot_write_is_not_observable() {
    let Some(path) = root_owned_system_image() else {
        skip("no root-owned system image that only root may write");
        return;
    };
    let path = path.as_os_str();
    let text_of = |args: &[&std::ffi::OsStr]| -> Option<String> {
        let out = unprivileged(args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        Some(String::from_utf8(out.stdout).unwrap())
    };
    let Some(text) = text_of(&["image".as_ref(), path]) else {
        return;
    };
    let cache = text.lines().find(|l| l.starts_with("page cache:")).unwrap();
    assert!(cache.contains("not observable"), "{cache}");
    assert!(cache.contains("run as the owner or root"), "{cache}");
    let rows = segment_rows(&text);
    assert!(!rows.is_empty(), "{text}");
    for row in &rows {
        assert_eq!(row.last().unwrap(), "-", "no numbers: {row:?}");
    }
    assert!(!text.contains('%'), "{text}");

    let json = text_of(&["image".as_ref(), path, "--json".as_ref()]).unwrap();
    let r: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["residency_observable"], false);
    for key in ["resident_pages", "total_pages", "page_size"] {
        assert_eq!(r[key], Value::Null, "{key}: {r}");
    }
    for s in r["segments"].as_array().unwrap() {
        assert_eq!(s["resident_pages"], Value::Null, "{s}");
        assert_eq!(s["total_pages"], Value::Null, "{s}");
    }

    let json = text_of(&[
        "image".as_ref(),
        path,
        "--json".as_ref(),
        "--symbols".as_ref(),
    ])
    .unwrap();
    let r: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["symbols"]["hottest"], Value::Null, "{r}");
    assert_eq!(r["symbols"]["coldest"], Value::Null, "{r}");
    assert!(r["symbols"]["count"].is_u64(), "counts are still shown");

    let text = text_of(&["image".as_ref(), path, "--symbols".as_ref()]).unwrap();
    assert!(!text.contains("hottest"), "{text}");
    if r["symbol_count"] != 0 {
        assert!(
            text.contains("their page-cache residency is not observable"),
            "{text}"
        );
    }
}

/// Functions and data of known sizes, and a function whose name holds an
/// escape sequence (written in assembly: C cannot name it).
const TINY_C: &str = r#"
unsigned long sect_image_add(unsigned long a, unsigned long b) { return a + b; }
unsigned long sect_image_mul(unsigned long a, unsigned long b) { return a * b; }
unsigned long sect_image_fib(unsigned long n) {
    unsigned long a = 0, b = 1;
    while (n--) { unsigned long t = a + b; a = b; b = t; }
    return a;
}
const unsigned long sect_image_table[1024] = {1, 2, 3};
"#;

const EVIL: &str = "evil\u{1b}[2Jname";

/// The tiny shared object: TINY_C (every symbol hidden: only `.symtab`
/// names them), and with `evil` the exported function of EVIL's name.
fn tiny(dir: &Path, evil: bool) -> Option<PathBuf> {
    let c = dir.join("tiny.c");
    std::fs::write(&c, TINY_C).unwrap();
    let s = dir.join("evil.s");
    std::fs::write(
        &s,
        format!(
            "\t.text\n\t.globl \"{EVIL}\"\n\t.type \"{EVIL}\", @function\n\"{EVIL}\":\n\
             \tret\n\t.size \"{EVIL}\", .-\"{EVIL}\"\n\
             \t.section .note.GNU-stack,\"\",@progbits\n"
        ),
    )
    .unwrap();
    let out = dir.join(if evil { "tiny.so" } else { "hidden.so" });
    let mut cc = StdCommand::new("cc");
    cc.args([
        "-shared",
        "-fPIC",
        "-nostdlib",
        "-fvisibility=hidden",
        "-O2",
    ])
    .arg("-o")
    .arg(&out)
    .arg(&c);
    if evil {
        cc.arg(&s);
    }
    let status = cc.status();
    match status {
        Ok(s) if s.success() => Some(out),
        _ => {
            skip("no working C compiler (cc)");
            None
        }
    }
}

/// `nm -S`: (address, size) of each symbol by name.
fn nm(path: &Path) -> Vec<(String, u64, u64)> {
    let out = StdCommand::new("nm").arg("-S").arg(path).output().unwrap();
    assert!(out.status.success());
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            (f.len() == 4).then(|| (f[3].to_owned(), hex(f[0]), hex(f[1])))
        })
        .collect()
}

#[test]
fn symbols_are_ranked_with_the_addresses_nm_gives() {
    let dir = tempfile::tempdir().unwrap();
    let Some(so) = tiny(dir.path(), true) else {
        return;
    };
    let symbols = nm(&so);
    let add = symbols
        .iter()
        .find(|s| s.0 == "sect_image_add")
        .expect("nm lists sect_image_add");

    let text = stdout_of(sect_image().arg(&so).args(["--symbols", "--top", "100"]));
    // Our own file: its page cache is ours to see, root or not.
    assert!(text.contains("pages of the file resident"), "{text}");
    assert!(text.contains("hottest"), "{text}");
    let row = text
        .lines()
        .find(|l| l.ends_with(" sect_image_add"))
        .unwrap_or_else(|| panic!("no row for sect_image_add\n{text}"));
    assert!(row.starts_with(&format!("{:#x} ", add.1)), "{row}");
    assert!(row.contains(&format!("{} B", add.2)), "{row}");
    // The escape sequence is shown escaped, never raw.
    assert!(text.contains("evil\\u{1b}[2Jname"), "{text}");
    assert!(!text.contains('\u{1b}'), "raw escape in {text:?}");

    let r = json_of(
        sect_image()
            .arg(&so)
            .args(["--symbols", "--json", "--top", "100"]),
    );
    assert_eq!(r["residency_observable"], true);
    let s = &r["symbols"];
    let listed: Vec<&Value> = s["hottest"]
        .as_array()
        .unwrap()
        .iter()
        .chain(s["coldest"].as_array().unwrap())
        .collect();
    // Every function and data symbol with a size is ranked: with room for
    // all of them, each is in one list or the other.
    for (name, address, size) in &symbols {
        if name.starts_with("sect_image_") || name == EVIL {
            let found = listed
                .iter()
                .find(|e| e["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name:?} is not ranked: {s}"));
            assert_eq!(found["address"], *address, "{found}");
            assert_eq!(found["size"], *size, "{found}");
            let total = found["total_pages"].as_u64().unwrap();
            assert!((1..=3).contains(&total), "{found}");
            assert!(found["resident_pages"].as_u64().unwrap() <= total);
        }
    }
    let table = listed
        .iter()
        .find(|e| e["name"] == "sect_image_table")
        .unwrap();
    assert_eq!(table["kind"], "data");
    assert_eq!(table["size"], 8192);
    assert!(s["ranked"].as_u64().unwrap() >= 5, "{s}");
    assert!(s["functions"].as_u64().unwrap() >= 4, "{s}");

    // The top N of each list, no more.
    let r = json_of(
        sect_image()
            .arg(&so)
            .args(["--symbols", "--json", "--top", "1"]),
    );
    assert!(r["symbols"]["hottest"].as_array().unwrap().len() <= 1);
    assert!(r["symbols"]["coldest"].as_array().unwrap().len() <= 1);

    // Without its symbol table (and nothing exported), the image has none
    // to rank.
    let hidden = tiny(dir.path(), false).unwrap();
    let stripped = dir.path().join("stripped.so");
    let ok = StdCommand::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped)
        .arg(&hidden)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let text = stdout_of(sect_image().arg(&stripped).arg("--symbols"));
        assert!(text.contains("no symbol table"), "{text}");
        let r = json_of(sect_image().arg(&stripped).args(["--symbols", "--json"]));
        assert_eq!(r["symbol_count"], 0);
        assert_eq!(r["symbols"]["count"], 0);
    } else {
        skip("strip (binutils) is missing");
    }
}

#[test]
fn pe_images_show_their_named_sections() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("lib.c");
    std::fs::write(
        &c,
        "__declspec(dllexport) int add(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    let dll = dir.path().join("lib.dll");
    let built = StdCommand::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(&dll)
        .arg(&c)
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        // Only the Windows cross build needs MinGW; this test is a bonus.
        eprintln!("skipped: no MinGW compiler (x86_64-w64-mingw32-gcc)");
        return;
    }
    let text = stdout_of(sect_image().arg(&dll).arg("--symbols"));
    assert!(text.contains("PE32+"), "{text}");
    assert!(text.contains("no symbol table"), "{text}");
    let rows = segment_rows(&text);
    let text_row = rows.iter().find(|r| r[0] == ".text").expect(".text");
    assert!(text_row.contains(&"r-x".to_owned()), "{text_row:?}");
    let r = json_of(sect_image().arg(&dll).arg("--json"));
    assert_eq!(r["format"], "PE32+");
    assert!(r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == ".text" && s["protection"] == "r-x"));
}

#[test]
fn files_that_are_not_images_are_one_clean_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("empty"), b"").unwrap();
    std::fs::write(d.join("notes.txt"), "not an image\n").unwrap();
    std::fs::create_dir(d.join("subdir")).unwrap();
    let evil = d.join("evil\u{1b}[2J.so");
    std::fs::write(&evil, "\u{1b}[2J not an image either").unwrap();
    let fifo = d.join("fifo");
    let c_fifo =
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(fifo.as_os_str())).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    for (path, said) in [
        (d.join("empty"), "empty"),
        (d.join("notes.txt"), "not an ELF or PE image"),
        (d.join("subdir"), "directory"),
        (d.join("missing"), "not found"),
        (evil.clone(), "not an ELF or PE image"),
        (fifo, "FIFO"),
    ] {
        for extra in [&[][..], &["--json"], &["--symbols"]] {
            let err = stderr_of_failure(sect_image().arg(&path).args(extra), 1);
            assert!(
                err.starts_with("sect: error: image '") && err.lines().count() == 1,
                "{err}"
            );
            assert!(err.contains(said), "{}: {err}", path.display());
            assert!(!err.contains("panicked"), "{err}");
            assert!(
                !err.chars().any(|c| c.is_control() && c != '\n'),
                "raw control character: {err:?}"
            );
        }
    }
    let err = stderr_of_failure(sect_image().arg(&evil), 1);
    assert!(err.contains("evil\\u{1b}[2J.so"), "{err}");

    // Usage errors: no file, --top without --symbols, a zero --top.
    stderr_of_failure(&mut sect_image(), 2);
    let so = system_images().remove(0);
    let err = stderr_of_failure(sect_image().arg(&so).args(["--top", "3"]), 2);
    assert!(err.contains("--symbols"), "{err}");
    stderr_of_failure(sect_image().arg(&so).args(["--symbols", "--top", "0"]), 2);
}
