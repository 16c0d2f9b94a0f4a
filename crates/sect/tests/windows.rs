#![cfg(windows)]
//! `sect` on Windows (run under Wine): the commands that open by name work,
//! lifetime is the kernel's, and the ones that need /proc or a directory
//! namespace say so.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// `sect.exe` beside this test's directory (an absolute Windows path; the
/// build-time path is a Linux one when cross-compiled).
fn sect_exe() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    me.parent().unwrap().parent().unwrap().join("sect.exe")
}

fn sect(args: &[&str]) -> Output {
    Command::new(sect_exe()).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn hold_write_cat_and_the_name_goes_with_its_holder() {
    let name = format!("sect-windows-{}", std::process::id());
    let mut holder = Command::new(sect_exe())
        .args(["create", &name, "--size", "64K", "--hold"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("holding"), "{line:?}");

    let mut write = Command::new(sect_exe())
        .args(["write", &name, "--offset", "16"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut write.stdin.take().unwrap(), b"hello windows").unwrap();
    assert!(write.wait().unwrap().success());
    let out = sect(&["cat", &name, "--offset", "16", "--len", "13"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"hello windows");

    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = sect(&["cat", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn commands_without_a_windows_counterpart_say_so() {
    let out = sect(&["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("sect: error:") && text(&out.stderr).contains("unsupported")
    );
    let out = sect(&["create", "kept", "--size", "4K"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "persistent sections do not exist on Windows"
    );
    assert!(
        text(&out.stderr).contains("--hold"),
        "says what to use instead: {}",
        text(&out.stderr)
    );
    let out = sect(&["bench", "--quick"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Linux only"));
    let out = sect(&["create", "../x", "--size", "4K", "--hold"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid name"));
}

#[test]
fn send_and_recv_carry_messages_between_two_sect_processes() {
    let name = format!("sect-windows-channel-{}", std::process::id());
    let receiver = Command::new(sect_exe())
        .args(["recv", &name, "--create", "64K", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The receiver creates the channel; until then a send finds nothing.
    let started = std::time::Instant::now();
    loop {
        let out = sect(&["send", &name, "one", "two\x1b[2J"]);
        if out.status.success() {
            break;
        }
        assert!(
            text(&out.stderr).contains("not found") && started.elapsed().as_secs() < 60,
            "{}",
            text(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = receiver.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        ["one", "two\\x1b[2J"]
    );
}
