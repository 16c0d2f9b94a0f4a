#![cfg(target_os = "linux")]
//! What a newcomer meets first: the units sizes are typed and printed in,
//! the messages when something is missing, too large or someone else's,
//! what `ls` says an entry is, and the man pages.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;

mod common;
use common::{
    entry, json_of, namespace, root, sect, skip_without_root, stderr_of_failure, stdout_of, SECT,
};

fn size_of(ns: &Path, name: &str) -> u64 {
    let list = json_of(sect(ns).args(["ls", "--json"]));
    entry(&list, name).unwrap()["size"].as_u64().unwrap()
}

#[test]
fn sizes_follow_one_rule_binary_letters_decimal_kb() {
    let ns = namespace();
    for (i, (text, bytes)) in [
        ("4096", 4096),
        ("64K", 64 << 10),
        ("64k", 64 << 10),
        ("64KiB", 64 << 10),
        ("64KB", 64_000),
        ("64kB", 64_000),
        ("1M", 1 << 20),
        ("1m", 1 << 20),
        ("1MiB", 1 << 20),
        ("1MB", 1_000_000),
        ("0x2000", 8192),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("s{i}");
        stdout_of(sect(ns.path()).args(["create", &name, "--size", text]));
        assert_eq!(size_of(ns.path(), &name), bytes, "--size {text}");
    }
}

#[test]
fn sizes_that_could_mean_bits_are_refused_with_the_accepted_forms() {
    let ns = namespace();
    for text in ["1mb", "1Mb", "1kb", "64Kb", "1gb", "8b"] {
        let err = stderr_of_failure(sect(ns.path()).args(["create", "x", "--size", text]), 2);
        assert!(err.contains("could mean bits"), "{text}: {err}");
        for form in ["KiB", "MiB", "MB", "powers of 1024", "powers of 1000"] {
            assert!(err.contains(form), "{text}: {err}");
        }
    }
    assert_eq!(std::fs::read_dir(ns.path()).unwrap().count(), 0);
}

#[test]
fn negative_sizes_and_offsets_say_they_cannot_be_negative() {
    let ns = namespace();
    let err = stderr_of_failure(sect(ns.path()).args(["create", "x", "--size", "-1"]), 2);
    assert!(
        err.contains("--size") && err.contains("cannot be negative"),
        "{err}"
    );
    assert!(
        !err.contains("-- -1"),
        "clap's tip for a value that looks like a flag: {err}"
    );
    stdout_of(sect(ns.path()).args(["create", "x", "--size", "4K"]));
    for args in [
        &["cat", "x", "--offset", "-16"][..],
        &["cat", "x", "--len", "-1"],
        &["cat", "x", "--offset", "-0x10"],
        &["write", "x", "--offset", "-1"],
    ] {
        let err = stderr_of_failure(sect(ns.path()).args(args).write_stdin("data"), 2);
        assert!(err.contains("cannot be negative"), "{args:?}: {err}");
    }
    // A flag where a value belongs is named as such, not as a negative size.
    let err = stderr_of_failure(sect(ns.path()).args(["create", "y", "--size", "--hold"]), 2);
    assert!(err.contains("needs a value"), "{err}");
    assert_eq!(std::fs::read_dir(ns.path()).unwrap().count(), 1);
}

#[test]
fn hexadecimal_offsets_reach_the_same_bytes() {
    let ns = namespace();
    stdout_of(sect(ns.path()).args(["create", "h", "--size", "0x1000"]));
    sect(ns.path())
        .args(["write", "h", "--offset", "0x100"])
        .write_stdin("at 256")
        .assert()
        .success();
    let decimal = sect(ns.path())
        .args(["cat", "h", "--offset", "256", "--len", "6"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(decimal, b"at 256");
    let hex = sect(ns.path())
        .args(["cat", "h", "--offset", "0X100", "--len", "0x6"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(hex, b"at 256");
    let err = stderr_of_failure(sect(ns.path()).args(["cat", "h", "--offset", "0x10K"]), 2);
    assert!(err.contains("hexadecimal"), "{err}");
}

#[test]
fn sizes_are_printed_exactly() {
    let ns = namespace();
    let out = stdout_of(sect(ns.path()).args(["create", "odd", "--size", "4097"]));
    assert!(
        out.contains("'odd': 4097 B (~4.0 KiB) memory section"),
        "{out}"
    );
    let out = stdout_of(sect(ns.path()).args(["create", "even", "--size", "6K"]));
    assert!(out.contains("'even': 6 KiB memory section"), "{out}");
    let out = stdout_of(sect(ns.path()).args(["create", "half", "--size", "1536K"]));
    assert!(out.contains("'half': 1.5 MiB memory section"), "{out}");

    let table = stdout_of(sect(ns.path()).arg("ls"));
    for (name, shown) in [
        ("odd", "4097 B (~4.0 KiB)"),
        ("even", "6 KiB"),
        ("half", "1.5 MiB"),
    ] {
        assert_eq!(cell(&table, name, "SIZE"), shown, "{table}");
    }
    let info = stdout_of(sect(ns.path()).args(["info", "odd"]));
    assert!(info.contains("4097 bytes (~4.0 KiB)"), "{info}");
    // JSON keeps the integer.
    assert_eq!(size_of(ns.path(), "odd"), 4097);
}

#[test]
fn help_and_man_page_state_the_size_rule() {
    for args in [&["--help"][..], &["create", "--help"], &["cat", "--help"]] {
        let help = stdout_of(Command::new(SECT).args(args));
        for words in [
            "powers of 1024",
            "powers of 1000",
            "0x1000",
            "could mean bits",
        ] {
            assert!(help.contains(words), "{args:?} lacks {words:?}: {help}");
        }
    }
}

/// A tmpfs of `size` bytes, unmounted on drop.
struct SmallTmpfs(tempfile::TempDir);

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg(self.0.path()).status();
    }
}

fn small_tmpfs(size: &str) -> SmallTmpfs {
    let dir = tempfile::Builder::new()
        .prefix("sect-full-")
        .tempdir()
        .unwrap();
    let mounted = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={size},mode=0700"))
        .arg("sect-test")
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "root cannot mount a tmpfs here");
    SmallTmpfs(dir)
}

#[test]
fn a_section_larger_than_its_namespace_names_the_room_left() {
    if skip_without_root("mounting a small tmpfs") {
        return;
    }
    let fs = small_tmpfs("1m");
    let ns = fs.0.path();
    let err = stderr_of_failure(sect(ns).args(["create", "big", "--size", "4M"]), 1);
    assert!(
        err.starts_with("sect: error: section 'big': create: no space") && err.lines().count() == 1,
        "{err}"
    );
    assert!(err.contains("1048576 bytes free of 1048576"), "{err}");
    assert!(err.contains("nothing was created"), "{err}");
    assert_eq!(std::fs::read_dir(ns).unwrap().count(), 0);
    // What fits is still created.
    stdout_of(sect(ns).args(["create", "small", "--size", "512K"]));
}

#[test]
fn another_users_section_names_the_flag_that_opens_it() {
    if skip_without_root("giving a section to another user") {
        return;
    }
    let ns = namespace();
    stdout_of(sect(ns.path()).args(["create", "theirs", "--size", "4K"]));
    sect(ns.path())
        .args(["write", "theirs"])
        .write_stdin("squatted")
        .assert()
        .success();
    std::os::unix::fs::chown(ns.path().join("theirs"), Some(65534), Some(65534)).unwrap();
    for args in [
        &["cat", "theirs"][..],
        &["hold", "theirs"],
        &["write", "theirs"],
    ] {
        let err = stderr_of_failure(sect(ns.path()).args(args).write_stdin("x"), 1);
        assert!(
            err.starts_with("sect: error: section 'theirs': open: permission denied"),
            "{err}"
        );
        assert!(
            err.contains("owned by uid 65534, not by this user (uid 0)"),
            "{err}"
        );
        assert!(err.contains("pass --allow-foreign-owner"), "{err}");
        assert!(
            !err.contains("allow_foreign_owner"),
            "the library's name: {err}"
        );
    }
    let bytes = sect(ns.path())
        .args(["--allow-foreign-owner", "cat", "theirs", "--len", "8"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(bytes, b"squatted");
}

#[test]
fn every_command_says_not_found_the_same_way() {
    let ns = namespace();
    let want = format!(
        "sect: error: section 'missing': not found in {}\n",
        ns.path().display()
    );
    for command in ["cat", "info", "rm", "hold", "write"] {
        let err = stderr_of_failure(
            sect(ns.path()).args([command, "missing"]).write_stdin(""),
            1,
        );
        assert_eq!(err, want, "{command}");
    }
    let err = stderr_of_failure(sect(ns.path()).args(["info", "missing", "--json"]), 1);
    assert_eq!(err, want);
}

/// The cell of `table` in the row that starts with `name`, under `column`.
fn cell(table: &str, name: &str, column: &str) -> String {
    let header = table.lines().next().unwrap();
    let start = header
        .find(column)
        .unwrap_or_else(|| panic!("no {column}: {header}"));
    let end = header[start + column.len()..]
        .find(|c: char| !c.is_whitespace())
        .map(|gap| {
            // The next column starts at the next non-blank after this one.
            start + column.len() + gap
        })
        .unwrap_or(usize::MAX);
    let row = table
        .lines()
        .find(|l| l.split("  ").next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name}: {table}"));
    row.get(start..end.min(row.len()))
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[test]
fn ls_table_and_json_agree_on_what_an_entry_is_and_who_locks_a_mutex() {
    use sections::sync::{Reset, SyncOptions};
    let ns = namespace();
    stdout_of(sect(ns.path()).args(["create", "plain", "--size", "4K"]));
    let mut opts = SyncOptions::new();
    opts.namespace(&sections::Namespace::at(ns.path()));
    let mutex = opts.create_mutex("lock").unwrap();
    let _event = opts.create_event("ready", Reset::Auto, false).unwrap();
    let me = std::process::id();

    let guard = mutex.lock().unwrap().into_guard();
    let table = stdout_of(sect(ns.path()).arg("ls"));
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    for (name, object) in [("plain", "section"), ("lock", "mutex"), ("ready", "event")] {
        let e = entry(&list, name).unwrap();
        assert_eq!(e["object"], object, "{name}");
        assert_eq!(cell(&table, name, "OBJECT"), object, "{table}");
        assert_eq!(e["kind"], "memory", "{name}");
        assert_eq!(cell(&table, name, "KIND"), "memory", "{table}");
    }
    assert_eq!(entry(&list, "lock").unwrap()["holder_pid"], me);
    assert_eq!(
        cell(&table, "lock", "LOCKED BY"),
        format!("pid {me}"),
        "{table}"
    );
    assert_eq!(cell(&table, "plain", "LOCKED BY"), "", "{table}");
    assert_eq!(cell(&table, "ready", "LOCKED BY"), "", "{table}");
    let info = stdout_of(sect(ns.path()).args(["info", "lock"]));
    assert!(info.contains("object:    mutex"), "{info}");
    assert!(
        info.contains(&format!("mutex:     held by pid {me}")),
        "{info}"
    );

    drop(guard);
    let table = stdout_of(sect(ns.path()).arg("ls"));
    assert_eq!(cell(&table, "lock", "LOCKED BY"), "-", "{table}");
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    assert_eq!(entry(&list, "lock").unwrap()["held"], false);
}

#[test]
fn man_dir_writes_every_page_sect_1_refers_to() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("man1");
    let listed = stdout_of(Command::new(SECT).arg("man").arg("--dir").arg(&dir));
    let sect1 = std::fs::read_to_string(dir.join("sect.1")).unwrap();
    assert!(sect1.contains(".TH sect 1"), "{sect1}");
    // Every page sect.1 names, e.g. `sect\-create(1)`, was written.
    let mut referred = Vec::new();
    for (at, _) in sect1.match_indices("(1)") {
        let before = &sect1[..at];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == '"')
            .map_or(0, |i| i + 1);
        let page = before[start..].replace("\\-", "-").replace("\\fB", "");
        if page.starts_with("sect-") {
            referred.push(page);
        }
    }
    for command in [
        "create", "hold", "write", "cat", "ls", "info", "rm", "gc", "image", "man",
    ] {
        let page = format!("sect-{command}");
        assert!(
            referred.contains(&page),
            "sect.1 does not refer to {page}: {referred:?}"
        );
    }
    for page in &referred {
        let path = dir.join(format!("{page}.1"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{page}(1) is referred to but {}: {e}", path.display()));
        assert!(text.contains(&format!(".TH {page} 1")), "{text}");
        assert!(listed.contains(&path.display().to_string()), "{listed}");
    }
    assert!(
        !dir.join("sect-help.1").exists(),
        "no page for the help command"
    );
    let create = std::fs::read_to_string(dir.join("sect-create.1")).unwrap();
    assert!(create.contains("powers of 1024"), "{create}");
    // Without --dir, sect.1 goes to standard output as before.
    let printed = stdout_of(Command::new(SECT).arg("man"));
    assert_eq!(printed, sect1);
}

#[test]
fn man_dir_that_cannot_be_written_is_one_error_line() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = stderr_of_failure(
        Command::new(SECT).arg("man").arg("--dir").arg(file.path()),
        1,
    );
    assert!(
        err.starts_with("sect: error: writing man pages to"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// What `id` (the user database, through NSS) calls user `uid`.
fn id_name(uid: u32) -> Option<String> {
    let out = StdCommand::new("id")
        .args(["-nu", &uid.to_string()])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn owners_are_named_by_the_user_database() {
    let ns = namespace();
    stdout_of(sect(ns.path()).args(["create", "mine", "--size", "4K"]));
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    let e = entry(&list, "mine").unwrap();
    assert_eq!(e["owner_uid"], me);
    match id_name(me) {
        Some(name) => assert_eq!(e["owner"], name.as_str()),
        None => assert_eq!(e["owner"], me.to_string().as_str()),
    }
    if !root() {
        return;
    }
    // A uid the database has no name for is shown as its number.
    let unnamed = (40_000..60_000)
        .find(|&uid| id_name(uid).is_none())
        .unwrap();
    stdout_of(sect(ns.path()).args(["create", "nobodys", "--size", "4K"]));
    std::os::unix::fs::chown(ns.path().join("nobodys"), Some(unnamed), None).unwrap();
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    assert_eq!(
        entry(&list, "nobodys").unwrap()["owner"],
        unnamed.to_string().as_str()
    );
    let table = stdout_of(sect(ns.path()).arg("ls"));
    assert_eq!(
        cell(&table, "nobodys", "OWNER"),
        unnamed.to_string(),
        "{table}"
    );
}
