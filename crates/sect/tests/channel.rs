#![cfg(target_os = "linux")]
//! `sect send` and `sect recv`: a channel's two ends between two `sect`
//! processes, messages escaped on the terminal, bad input refused cleanly.

mod common;

use std::process::{Command as StdCommand, Stdio};

use common::{namespace, sect, stderr_of_failure, stdout_of, SECT};

/// Starts `sect recv NAME --create 64K EXTRA...`, waits for the channel,
/// runs `send` against it, and returns what the receiver printed once every
/// sender was gone.
fn through_a_channel(extra: &[&str], send: impl FnOnce(&std::path::Path)) -> Vec<u8> {
    let ns = namespace();
    let receiver = StdCommand::new(SECT)
        .arg("--namespace")
        .arg(ns.path())
        .args(["recv", "pipe", "--create", "64K", "--timeout", "60"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !ns.path().join("pipe").exists() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the receiver never created the channel"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    send(ns.path());
    let out = receiver.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn send_and_recv_carry_arguments_lines_and_files_in_order() {
    let args = through_a_channel(&[], |ns| {
        sect(ns)
            .args(["send", "pipe", "one", "bell\x07 and \x1b[2J", ""])
            .assert()
            .success();
    });
    assert_eq!(
        String::from_utf8(args).unwrap().lines().collect::<Vec<_>>(),
        ["one", "bell\\x07 and \\x1b[2J", ""],
        "every message, in order, no raw control character"
    );
    let lines = through_a_channel(&["--count", "2"], |ns| {
        sect(ns)
            .args(["send", "pipe"])
            .write_stdin("line a\nline b\n")
            .assert()
            .success();
    });
    assert_eq!(lines, b"line a\nline b\n");
    let hex = through_a_channel(&["--hex"], |ns| {
        let file = ns.join("payload.bin");
        std::fs::write(&file, [0u8, 255, b'\\']).unwrap();
        sect(ns)
            .args(["send", "pipe", "--file"])
            .arg(&file)
            .assert()
            .success();
        std::fs::remove_file(file).unwrap();
    });
    assert_eq!(hex, b"00ff5c\n");
    let raw = through_a_channel(&["--raw"], |ns| {
        sect(ns)
            .args(["send", "pipe", "ab", "cd"])
            .assert()
            .success();
    });
    assert_eq!(raw, b"abcd");
}

#[test]
fn a_channel_goes_with_its_last_holder() {
    let ns = namespace();
    let mut holder = StdCommand::new(SECT)
        .arg("--namespace")
        .arg(ns.path())
        .args(["recv", "held", "--create", "4K", "--count", "0"])
        .spawn()
        .unwrap();
    assert!(holder.wait().unwrap().success());
    // Nothing holds it now: the name is gone with its holder.
    let err = stderr_of_failure(sect(ns.path()).args(["send", "held", "x"]), 1);
    assert!(
        err.starts_with("sect: error:") && err.contains("not found"),
        "{err}"
    );
    // A sender that creates it and leaves: the messages go with it.
    let mut create = sect(ns.path());
    create
        .args(["send", "gone", "--create", "4K", "lost"])
        .assert()
        .success();
    assert!(!ns.path().join("gone").exists());
    let _ = stdout_of(&mut create);
}

#[test]
fn bad_input_to_send_and_recv_is_one_error_line() {
    let ns = namespace();
    for (args, code, says) in [
        (
            vec!["recv", "x", "--timeout", "-1"],
            2,
            "unexpected argument",
        ),
        (
            vec!["recv", "x", "--timeout", "nan"],
            1,
            "expected a number of seconds",
        ),
        (
            vec!["recv", "x", "--timeout", "1e300"],
            1,
            "expected a number of seconds",
        ),
        (
            vec!["send", "x", "--create", "8G", "m"],
            1,
            "more than a channel holds",
        ),
        (
            vec!["send", "x", "--create", "64", &"y".repeat(100)],
            1,
            "cannot fit",
        ),
        (vec!["send", "missing\x1b[2J", "m"], 1, "missing\\u{1b}[2J"),
        (vec!["recv", "a/b"], 1, "invalid name"),
        (
            vec!["send", "x", "m", "--file", "f"],
            2,
            "cannot be used with",
        ),
        (
            vec!["recv", "x", "--hex", "--raw"],
            2,
            "cannot be used with",
        ),
    ] {
        let err = stderr_of_failure(sect(ns.path()).args(&args), code);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains('\x1b'),
            "{args:?}: a raw escape reached the terminal"
        );
    }
    let left: Vec<_> = std::fs::read_dir(ns.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing was left behind: {left:?}");
}
