//! What the Linux `sect` suites share: a private namespace, the binary,
//! and reading what it printed.
#![allow(dead_code)] // each suite uses its own part

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

pub const SECT: &str = env!("CARGO_BIN_EXE_sect");

/// A private namespace in /dev/shm, removed on drop.
pub fn namespace() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sect-cli-")
        .tempdir_in("/dev/shm")
        .unwrap()
}

/// `sect --namespace NS`.
pub fn sect(ns: &Path) -> Command {
    let mut cmd = Command::new(SECT);
    cmd.arg("--namespace").arg(ns);
    cmd
}

/// Standard output of a command that must succeed.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

pub fn json_of(cmd: &mut Command) -> Value {
    serde_json::from_str(&stdout_of(cmd)).expect("valid JSON")
}

/// The entry `name` of an `ls --json` list.
pub fn entry<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|e| e["name"] == name)
}

/// Standard error of a command that must fail with `code`; a runtime
/// failure (1) prints nothing on standard output.
pub fn stderr_of_failure(cmd: &mut Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().clone();
    assert!(out.stdout.is_empty() || code == 2, "no output on failure");
    String::from_utf8(out.stderr).unwrap()
}

/// Whether this process is root (the tests that mount a file system or
/// give a file away need it).
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips a test that needs root, unless CI said it must not skip.
pub fn skip_without_root(what: &str) -> bool {
    if root() {
        return false;
    }
    assert!(
        std::env::var_os("SECTIONS_REQUIRE_ROOT").is_none(),
        "{what} needs root, and SECTIONS_REQUIRE_ROOT is set"
    );
    eprintln!("skipped: {what} needs root");
    true
}
