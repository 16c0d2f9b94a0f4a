#![cfg(target_os = "linux")]
//! `sect` end to end: the real binary, real processes, real signals.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

mod common;
use common::{entry, json_of, namespace, sect, stderr_of_failure, stdout_of, SECT};

fn unique(tag: &str) -> String {
    format!("sect-test-{}-{tag}", std::process::id())
}

/// A `sect` process that holds a section, with its "holding" line read.
struct Holder {
    child: Child,
    line: String,
}

fn spawn_holder(args: &[&str]) -> Holder {
    let mut child = StdCommand::new(SECT)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("holding"), "{line:?}");
    Holder { child, line }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn full_cycle(ns: &Path, name: &str) {
    let out = stdout_of(sect(ns).args(["create", name, "--size", "8K"]));
    assert!(out.contains("persistent"), "{out}");
    assert!(ns.join(name).exists());

    let assert = sect(ns)
        .args(["write", name, "--offset", "100"])
        .write_stdin("hello, sections")
        .assert()
        .success();
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(err.contains("wrote 15 bytes"), "{err}");

    let bytes = sect(ns)
        .args(["cat", name, "--offset", "100", "--len", "15"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(bytes, b"hello, sections");
    let whole = sect(ns)
        .args(["cat", name])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(whole.len(), 8192);

    let hex = stdout_of(sect(ns).args(["cat", name, "--offset", "96", "--len", "32", "--hex"]));
    assert_eq!(
        hex,
        "00000060  00 00 00 00 68 65 6c 6c  6f 2c 20 73 65 63 74 69  |....hello, secti|\n\
         00000070  6f 6e 73 00 00 00 00 00  00 00 00 00 00 00 00 00  |ons.............|\n"
    );

    let table = stdout_of(sect(ns).arg("ls"));
    let header = table.lines().next().unwrap();
    for column in [
        "NAME",
        "SIZE",
        "OBJECT",
        "KIND",
        "OWNER",
        "MODE",
        "LIFETIME",
        "HOLDERS",
        "RESIDENT",
        "STATE",
        "LOCKED BY",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row = table.lines().find(|l| l.starts_with(name)).unwrap();
    for cell in ["8 KiB", "section", "memory", "600", "persistent", "live"] {
        assert!(row.contains(cell), "{row}");
    }

    let list = json_of(sect(ns).args(["ls", "--json"]));
    let e = entry(&list, name).unwrap();
    assert_eq!(e["size"], 8192);
    assert_eq!(e["object"], "section");
    assert_eq!(e["kind"], "memory");
    assert_eq!(e["mode"], "600");
    assert_eq!(e["persistent"], true);
    assert_eq!(e["stale"], false);
    // SAFETY: geteuid has no preconditions.
    assert_eq!(e["owner_uid"], unsafe { libc::geteuid() });
    assert!(e["holders"].as_array().unwrap().is_empty());
    assert!(e["resident_bytes"].as_u64().unwrap() >= 4096);

    let info = json_of(sect(ns).args(["info", name, "--json"]));
    assert_eq!(info["name"], name);
    assert!(info["maps"].as_array().unwrap().is_empty());
    let text = stdout_of(sect(ns).args(["info", name]));
    assert!(text.contains("8192 bytes"), "{text}");

    let out = stdout_of(sect(ns).args(["rm", name]));
    assert!(out.contains("removed"), "{out}");
    assert!(!ns.join(name).exists());
    stderr_of_failure(sect(ns).args(["cat", name]), 1);
}

#[test]
fn create_write_cat_ls_info_rm_in_a_private_namespace() {
    let ns = namespace();
    full_cycle(ns.path(), "cycle");
    // gc in a namespace without stale names removes nothing.
    assert_eq!(stdout_of(sect(ns.path()).arg("gc")), "");
}

#[test]
fn create_write_cat_ls_info_rm_in_dev_shm() {
    full_cycle(Path::new("/dev/shm"), &unique("cycle"));
}

#[test]
fn file_backed_section_over_a_path() {
    let ns = namespace();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("data.bin");
    stdout_of(
        sect(ns.path())
            .args(["create", "onfile", "--size", "4K", "--file"])
            .arg(&path),
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    sect(ns.path())
        .args(["write", "onfile"])
        .write_stdin("on disk")
        .assert()
        .success();
    assert_eq!(&std::fs::read(&path).unwrap()[..7], b"on disk");
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    let e = entry(&list, "onfile").unwrap();
    assert_eq!(e["kind"], "file");
    assert_eq!(e["size"], 4096);
    stdout_of(sect(ns.path()).args(["rm", "onfile"]));
    assert!(path.exists(), "removing the name keeps the file");
}

#[test]
fn hold_lives_until_a_signal_and_then_the_name_is_gone() {
    let ns = namespace();
    let nsarg = ns.path().to_str().unwrap();
    for (i, sig) in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP]
        .into_iter()
        .enumerate()
    {
        let name = format!("held{i}");
        let mut holder = spawn_holder(&[
            "--namespace",
            nsarg,
            "create",
            &name,
            "--size",
            "4K",
            "--hold",
        ]);
        assert!(ns.path().join(&name).exists());
        let list = json_of(sect(ns.path()).args(["ls", "--json"]));
        let e = entry(&list, &name).unwrap();
        assert_eq!(e["persistent"], false);
        assert_eq!(e["stale"], false);
        assert!(e["holders"]
            .as_array()
            .unwrap()
            .contains(&Value::from(holder.child.id())));
        signal(&holder.child, sig);
        let status = holder.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "released on signal {sig}");
        assert!(
            !ns.path().join(&name).exists(),
            "the last holder took the name with it"
        );
    }
}

#[test]
fn kill9_of_a_holder_leaves_a_stale_name_that_gc_removes() {
    let ns = namespace();
    let nsarg = ns.path().to_str().unwrap();
    let mut holder = spawn_holder(&[
        "--namespace",
        nsarg,
        "create",
        "doomed",
        "--size",
        "4K",
        "--hold",
    ]);
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    assert_eq!(entry(&list, "doomed").unwrap()["stale"], true);
    let table = stdout_of(sect(ns.path()).arg("ls"));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("doomed") && l.ends_with("stale")),
        "{table}"
    );
    let err = stderr_of_failure(sect(ns.path()).args(["cat", "doomed"]), 1);
    assert!(
        err.starts_with("sect: error:") && err.contains("stale"),
        "{err}"
    );
    assert_eq!(
        stdout_of(sect(ns.path()).args(["gc", "--dry-run"])),
        "would remove stale 'doomed'\n"
    );
    assert!(
        ns.path().join("doomed").exists(),
        "a dry run removes nothing"
    );
    assert_eq!(
        stdout_of(sect(ns.path()).arg("gc")),
        "removed stale 'doomed'\n"
    );
    assert!(!ns.path().join("doomed").exists());
}

#[test]
fn info_and_rm_name_the_processes_that_map_a_section() {
    let ns = namespace();
    let nsarg = ns.path().to_str().unwrap();
    stdout_of(sect(ns.path()).args(["create", "shared", "--size", "64K"]));
    let mut holder = spawn_holder(&["--namespace", nsarg, "hold", "shared"]);
    assert!(holder.line.contains("persistent"), "{}", holder.line);
    let pid = holder.child.id();
    let info = json_of(sect(ns.path()).args(["info", "shared", "--json"]));
    assert!(
        info["holders"]
            .as_array()
            .unwrap()
            .contains(&Value::from(pid)),
        "{info}"
    );
    let maps = info["maps"].as_array().unwrap();
    let map = maps
        .iter()
        .find(|m| m["pid"] == pid)
        .expect("the holder's mapping");
    assert_eq!(map["comm"], "sect");
    assert_eq!(
        map["end"].as_u64().unwrap() - map["start"].as_u64().unwrap(),
        65536
    );
    assert_eq!(map["perms"], "r--s");
    let text = stdout_of(sect(ns.path()).args(["info", "shared"]));
    assert!(
        text.contains(&pid.to_string()) && text.contains("r--s"),
        "{text}"
    );

    let out = stdout_of(sect(ns.path()).args(["rm", "shared"]));
    assert!(
        out.contains("keep their mappings") && out.contains(&pid.to_string()),
        "{out}"
    );
    signal(&holder.child, libc::SIGTERM);
    assert!(holder.child.wait().unwrap().success());
}

fn python3() -> Option<PathBuf> {
    let found = StdCommand::new("python3").arg("--version").output().ok()?;
    found.status.success().then(|| PathBuf::from("python3"))
}

/// Attaching in Python 3.8-3.12 registers the segment with the resource
/// tracker, which unlinks it at exit; a real user has to unregister it.
const PY_PRELUDE: &str = "
import sys
from multiprocessing import shared_memory, resource_tracker
def keep(shm):
    resource_tracker.unregister(shm._name, 'shared_memory')
";

#[test]
fn python_shared_memory_and_sect_see_the_same_bytes() {
    let Some(python) = python3() else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let shm = Path::new("/dev/shm");
    let py = |body: &str, name: &str| {
        let script = format!("{PY_PRELUDE}\n{body}");
        let status = StdCommand::new(&python)
            .args(["-c", &script, name])
            .status()
            .unwrap();
        assert!(status.success(), "python failed: {body}");
    };
    let cat = |name: &str, len: &str| {
        sect(shm)
            .args(["cat", name, "--len", len])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };

    // sect creates, Python writes, sect reads.
    let name = unique("py1");
    stdout_of(sect(shm).args(["create", &name, "--size", "4K"]));
    py(
        "shm = shared_memory.SharedMemory(sys.argv[1])\nkeep(shm)\nassert shm.size == 4096, shm.size\nshm.buf[:12] = b'from python!'\nshm.close()\n",
        &name,
    );
    assert_eq!(cat(&name, "12"), b"from python!");
    stdout_of(sect(shm).args(["rm", &name]));

    // Python creates, sect reads and lists it as it is.
    let name = unique("py2");
    py(
        "shm = shared_memory.SharedMemory(sys.argv[1], create=True, size=8192)\nkeep(shm)\nshm.buf[:9] = b'python ok'\nshm.close()\n",
        &name,
    );
    assert_eq!(cat(&name, "9"), b"python ok");
    let list = json_of(sect(shm).args(["ls", "--json"]));
    let e = entry(&list, &name).unwrap();
    assert_eq!(
        (e["size"].as_u64(), e["persistent"].as_bool()),
        (Some(8192), Some(true))
    );
    stdout_of(sect(shm).args(["rm", &name]));
    assert!(!shm.join(&name).exists());
}

#[test]
fn hostile_names_fail_cleanly_and_touch_nothing_outside() {
    let outer = namespace();
    let ns = outer.path().join("ns");
    std::fs::create_dir(&ns).unwrap();
    let long = "n".repeat(300);
    for name in ["..", "../x", "a/b", "", long.as_str(), "."] {
        for args in [
            vec!["create", name, "--size", "4K"],
            vec!["cat", name],
            vec!["rm", name],
            vec!["info", name],
        ] {
            let err = stderr_of_failure(sect(&ns).args(&args), 1);
            assert!(
                err.starts_with("sect: error:") && err.lines().count() == 1,
                "{err}"
            );
            assert!(err.contains("invalid name"), "{err}");
        }
    }
    assert_eq!(std::fs::read_dir(&ns).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(outer.path()).unwrap().count(),
        1,
        "nothing beside the namespace"
    );
}

#[test]
fn bad_sizes_offsets_and_missing_sections() {
    let ns = namespace();
    for size in ["0", "-1", "abc", "10Q", "1.5K"] {
        let err = stderr_of_failure(sect(ns.path()).args(["create", "s", "--size", size]), 2);
        assert!(err.contains("--size"), "{err}");
    }
    assert_eq!(std::fs::read_dir(ns.path()).unwrap().count(), 0);

    stdout_of(sect(ns.path()).args(["create", "small", "--size", "4096"]));
    let err = stderr_of_failure(
        sect(ns.path())
            .args(["write", "small", "--offset", "4000"])
            .write_stdin(vec![1u8; 200]),
        1,
    );
    assert!(err.contains("room for 96"), "{err}");
    // An offset past the end is refused whatever the input, even none.
    for input in ["x", ""] {
        let err = stderr_of_failure(
            sect(ns.path())
                .args(["write", "small", "--offset", "5000"])
                .write_stdin(input),
            1,
        );
        assert!(err.contains("past the end"), "{input:?}: {err}");
        assert!(err.contains("nothing was written"), "{input:?}: {err}");
    }
    // At the very end, an empty input writes nothing and is fine.
    sect(ns.path())
        .args(["write", "small", "--offset", "4096"])
        .write_stdin("")
        .assert()
        .success();
    let err = stderr_of_failure(
        sect(ns.path()).args(["cat", "small", "--offset", "5000"]),
        1,
    );
    assert!(err.contains("past the end"), "{err}");
    let err = stderr_of_failure(
        sect(ns.path()).args(["cat", "small", "--offset", "4000", "--len", "100"]),
        1,
    );
    assert!(err.contains("96 left"), "{err}");
    let nothing = sect(ns.path())
        .args(["cat", "small"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(nothing, vec![0u8; 4096], "a refused write changed nothing");

    let err = stderr_of_failure(sect(ns.path()).args(["cat", "missing"]), 1);
    assert!(err.contains("not found"), "{err}");
    let err = stderr_of_failure(sect(ns.path()).args(["hold", "missing"]), 1);
    assert!(err.contains("not found"), "{err}");
    let err = stderr_of_failure(sect(ns.path()).args(["create", "small", "--size", "4K"]), 1);
    assert!(err.contains("already exists"), "{err}");
    let err = stderr_of_failure(
        sect(ns.path()).args(["write", "small", "/nonexistent/input"]),
        1,
    );
    assert!(err.contains("/nonexistent/input"), "{err}");
    stderr_of_failure(
        sect(ns.path()).args(["create", "m", "--size", "4K", "--mode", "999"]),
        2,
    );
    stderr_of_failure(sect(ns.path()).arg("frobnicate"), 2);
    stderr_of_failure(&mut Command::new(SECT), 2);
    let err = stderr_of_failure(
        Command::new(SECT).args([
            "--namespace",
            "/nonexistent/ns",
            "create",
            "x",
            "--size",
            "4K",
        ]),
        1,
    );
    assert!(err.contains("/nonexistent/ns"), "{err}");
}

/// A read-only tmpfs, unmounted on drop.
struct ReadOnlyMount(tempfile::TempDir);

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn read_only_namespace_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "sect-test"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // Without mount privileges, a directory without write permission
        // does the same for a user who is not root.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            eprintln!("skipped: cannot mount a read-only file system here");
            return;
        }
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
    }
    let guard = ReadOnlyMount(dir);
    let ns = guard.0.path();
    let err = stderr_of_failure(sect(ns).args(["create", "x", "--size", "4K"]), 1);
    assert!(
        err.starts_with("sect: error: section 'x': create:"),
        "{err}"
    );
    assert!(
        err.contains(ns.to_str().unwrap()) || err.contains("Read-only"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(ns).unwrap().count(), 0);
    // Listing a read-only namespace works.
    assert_eq!(stdout_of(sect(ns).args(["ls", "--json"])).trim(), "[]");
}

#[test]
fn completions_and_man_page_come_from_the_same_definitions() {
    let bash = stdout_of(Command::new(SECT).args(["completions", "bash"]));
    for word in [
        "create",
        "hold",
        "write",
        "cat",
        "ls",
        "info",
        "rm",
        "gc",
        "image",
        "--symbols",
        "--namespace",
        "--hex",
    ] {
        assert!(bash.contains(word), "completion lacks {word}");
    }
    let man = stdout_of(Command::new(SECT).arg("man"));
    assert!(man.starts_with(".ie") || man.contains(".TH"), "not roff");
    assert!(
        man.contains("allow\\-foreign\\-owner"),
        "man page lacks a global option"
    );
    let err = stderr_of_failure(Command::new(SECT).args(["completions", "cmd.exe"]), 2);
    assert!(err.contains("cmd.exe"), "{err}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let ns = namespace();
    stdout_of(sect(ns.path()).args(["create", "big", "--size", "4M"]));
    let mut child = StdCommand::new(SECT)
        .args([
            "--namespace",
            ns.path().to_str().unwrap(),
            "cat",
            "big",
            "--hex",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ls_and_info_show_sync_objects() {
    use sections::sync::{Reset, SyncOptions};
    let ns = namespace();
    let mut opts = SyncOptions::new();
    opts.namespace(&sections::Namespace::at(ns.path()));
    let mutex = opts.create_mutex("lock").unwrap();
    let event = opts.create_event("ready", Reset::Manual, false).unwrap();
    event.set().unwrap();
    let sem = opts.create_semaphore("slots", 2, 5).unwrap();
    sem.acquire().unwrap();

    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    let lock = entry(&list, "lock").unwrap();
    assert_eq!(
        (
            lock["kind"].as_str(),
            lock["object"].as_str(),
            lock["held"].as_bool()
        ),
        (Some("memory"), Some("mutex"), Some(false))
    );
    let guard = mutex.lock().unwrap().into_guard();
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    let lock = entry(&list, "lock").unwrap();
    assert_eq!(lock["held"], true);
    assert_eq!(lock["holder_pid"], std::process::id());
    let ready = entry(&list, "ready").unwrap();
    assert_eq!(
        (
            ready["object"].as_str(),
            ready["set"].as_bool(),
            ready["manual_reset"].as_bool()
        ),
        (Some("event"), Some(true), Some(true))
    );
    let slots = entry(&list, "slots").unwrap();
    assert_eq!(
        (slots["count"].as_u64(), slots["max"].as_u64()),
        (Some(1), Some(5))
    );

    let table = stdout_of(sect(ns.path()).arg("ls"));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lock") && l.contains("mutex")),
        "{table}"
    );
    let text = stdout_of(sect(ns.path()).args(["info", "lock"]));
    assert!(
        text.contains(&format!("held by pid {}", std::process::id())),
        "{text}"
    );
    drop(guard);
    let text = stdout_of(sect(ns.path()).args(["info", "slots"]));
    assert!(text.contains("1 of 5"), "{text}");

    let mut copts = sections::channel::ChannelOptions::new();
    copts
        .namespace(&sections::Namespace::at(ns.path()))
        .capacity(4096);
    let _channel = copts.create("pipe").unwrap();
    let mut tx = copts.open_sender("pipe").unwrap();
    let _rx = copts.open_receiver("pipe").unwrap();
    tx.send(&[1u8; 100]).unwrap();
    let list = json_of(sect(ns.path()).args(["ls", "--json"]));
    let pipe = entry(&list, "pipe").unwrap();
    assert_eq!(pipe["object"], "channel");
    assert_eq!(
        (pipe["capacity"].as_u64(), pipe["fill"].as_u64()),
        (Some(4096), Some(16 + 112))
    );
    assert_eq!(
        (pipe["senders"].as_u64(), pipe["receiver"].as_bool()),
        (Some(1), Some(true))
    );
    let me = u64::from(std::process::id());
    assert_eq!(
        (
            pipe["receiver_process"]["pid"].as_u64(),
            pipe["receiver_process"]["pid_namespace"].as_str(),
            pipe["sender_processes"][0]["pid"].as_u64(),
        ),
        (Some(me), Some("ours"), Some(me))
    );
    let text = stdout_of(sect(ns.path()).args(["info", "pipe"]));
    assert!(
        text.contains(&format!(
            "1 sender(s) (pid {me}), receiver connected (pid {me})"
        )),
        "{text}"
    );
}

/// Runs `sect ARGS` and returns (exit status, stdout, stderr, peak
/// resident kilobytes, CPU seconds), measured with `wait4` for this child
/// alone. Its output goes to files outside the namespace.
fn measured(ns: &Path, args: &[&str]) -> (Result<i32, String>, String, String, i64, f64) {
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("out");
    let err_path = out_dir.path().join("err");
    let child = StdCommand::new(SECT)
        .arg("--namespace")
        .arg(ns)
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child,
    // which `child` never waits for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    std::mem::forget(child);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let ended = if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(format!("killed by signal {}", libc::WTERMSIG(status)))
    };
    (
        ended,
        std::fs::read_to_string(&out_path).unwrap(),
        std::fs::read_to_string(&err_path).unwrap(),
        usage.ru_maxrss,
        secs(usage.ru_utime) + secs(usage.ru_stime),
    )
}

/// Makes any read of `path` move its access time (even on `relatime`).
fn make_reads_visible(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000))
            .set_modified(std::time::SystemTime::now()),
    )
    .unwrap();
}

fn accessed(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().accessed().unwrap()
}

#[test]
fn huge_sparse_entries_cost_ls_info_and_rm_nothing() {
    // Anyone who can write to /dev/shm can make a 4 TiB sparse file; ls,
    // info and rm must not map it whole (that took 37 s and 1 GiB here).
    let ns = namespace();
    std::fs::File::create(ns.path().join("huge"))
        .unwrap()
        .set_len(4 << 40)
        .unwrap();
    stdout_of(sect(ns.path()).args(["create", "small", "--size", "4K"]));
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["info", "huge"],
        &["info", "small", "--json"],
        &["rm", "small"],
    ] {
        let (ended, out, err, peak_kib, cpu) = measured(ns.path(), args);
        assert_eq!(ended, Ok(0), "{args:?}: {err}");
        assert!(peak_kib < 64 * 1024, "{args:?} peaked at {peak_kib} KiB");
        assert!(cpu < 5.0, "{args:?} used {cpu} s of CPU");
        if args == ["info", "huge"] {
            assert!(out.contains("4398046511104 bytes (4 TiB)"), "{out}");
        }
    }
}

#[test]
fn info_and_rm_look_at_their_entry_only() {
    let ns = namespace();
    stdout_of(sect(ns.path()).args(["create", "small", "--size", "4K"]));
    let neighbour = ns.path().join("neighbour");
    std::fs::write(&neighbour, b"untouched").unwrap();
    make_reads_visible(&neighbour);
    let before = accessed(&neighbour);
    stdout_of(sect(ns.path()).args(["info", "small"]));
    stdout_of(sect(ns.path()).args(["info", "small", "--json"]));
    stdout_of(sect(ns.path()).args(["rm", "small"]));
    assert_eq!(
        accessed(&neighbour),
        before,
        "info or rm read another entry"
    );
    // The probe works: ls reads every entry.
    stdout_of(sect(ns.path()).args(["ls"]));
    assert_ne!(
        accessed(&neighbour),
        before,
        "the neighbour cannot show reads"
    );
}

#[test]
fn names_with_control_characters_never_reach_the_terminal_raw() {
    let ns = namespace();
    let name = "bell\u{7}\rclear\u{1b}[2J";
    let raw = |text: &str| text.chars().any(|c| c.is_control() && c != '\n');
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], stdin: &str| {
        let out = sect(ns.path())
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap();
        outputs.push((
            format!("{args:?}"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    };
    run(&["create", name, "--size", "4K"], "");
    run(&["write", name, "--offset", "0"], "hello");
    run(&["write", name, "--offset", "9999"], "");
    run(&["cat", name, "--offset", "9999"], "");
    run(&["ls"], "");
    run(&["info", name], "");
    run(&["rm", name], "");
    run(&["rm", name], "");
    run(&["info", name], "");
    run(
        &[
            "create",
            "x",
            "--size",
            "4K",
            "--file",
            &format!("/nonexistent/{name}"),
        ],
        "",
    );
    for (args, out, err) in &outputs {
        assert!(!raw(out), "{args}: stdout {out:?}");
        assert!(!raw(err), "{args}: stderr {err:?}");
    }
    // The names are there, escaped, where they are shown.
    let (_, _, created) = &outputs[1];
    assert!(
        created.contains("bell\\u{7}\\rclear\\u{1b}[2J"),
        "{created}"
    );
}

#[test]
fn rm_refuses_entries_that_are_not_sections() {
    let ns = namespace();
    let fifo = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
        ns.path().join("pipe").as_os_str(),
    ))
    .unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/etc/passwd", ns.path().join("link")).unwrap();
    for (name, what) in [("pipe", "FIFO"), ("link", "symbolic link")] {
        let err = stderr_of_failure(sect(ns.path()).args(["rm", name]), 1);
        assert!(err.contains(what), "{err}");
        assert!(err.contains("not a section"), "{err}");
        assert!(std::fs::symlink_metadata(ns.path().join(name)).is_ok());
    }
}
