//! Real peer processes for the multi-process tests: the test binary runs
//! itself again with a role named in an environment variable, and the
//! test reads the peer's stdout line by line.

// Each test binary uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a peer may stay silent before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variable that tells a re-executed test binary its role.
pub const ROLE: &str = "SECTIONS_TEST_ROLE";

/// The role this process was started in, if it is a peer.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// One named test of a libtest-mimic binary.
pub type TestFn = fn() -> Result<(), libtest_mimic::Failed>;

/// How a peer plays its role, given the arguments it was spawned with.
pub type RoleFn = fn(&str, &[String]) -> Result<(), Box<dyn std::error::Error>>;

/// The entry point of a multi-process test binary: a re-executed peer plays
/// its role (a failure is a `role-error` line and exit code 3, which the
/// test reading it reports); otherwise the tests run.
pub fn main(tests: Vec<(&'static str, TestFn)>, play: RoleFn) {
    if let Some(role) = role() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Err(e) = play(&role, &args) {
            println!("role-error {e}");
            std::process::exit(3);
        }
        return;
    }
    let trials = tests
        .into_iter()
        .map(|(name, f)| libtest_mimic::Trial::test(name, f))
        .collect();
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit();
}

/// A child process running one role.
pub struct Peer {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

pub fn spawn(role: &str, args: &[&str]) -> Peer {
    spawn_with(role, args, |_| {})
}

pub fn spawn_with(role: &str, args: &[&str], setup: impl FnOnce(&mut Command)) -> Peer {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args);
    setup(&mut cmd);
    spawn_command(role, cmd)
}

/// A peer in a PID namespace of its own (`unshare --pid --fork
/// --kill-child --mount-proc`, as root): it is pid 1 there, and killing it
/// (the `unshare` process) kills the namespace. `None` when `unshare`
/// cannot make one here.
#[cfg(target_os = "linux")]
pub fn spawn_in_new_pid_namespace(role: &str, args: &[&str]) -> Option<Peer> {
    spawn_in_new_pid_namespace_with(role, args, &[])
}

/// As `spawn_in_new_pid_namespace`, with more `unshare` options (such as
/// `--setuid`).
#[cfg(target_os = "linux")]
pub fn spawn_in_new_pid_namespace_with(
    role: &str,
    args: &[&str],
    unshare: &[&str],
) -> Option<Peer> {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !probe {
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc"])
        .args(unshare)
        .arg(std::env::current_exe().unwrap())
        .args(args);
    Some(spawn_command(role, cmd))
}

/// Starts `cmd` (which runs this test binary) as a peer playing `role`.
pub fn spawn_command(role: &str, mut cmd: Command) -> Peer {
    cmd.env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Wine now and then fails a CreateProcess with ERROR_INTERNAL_ERROR
    // (1359) while the suites start and kill hundreds of processes; the
    // spawn is tried again a few times before the test fails.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e) if tries < 5 && e.raw_os_error() == Some(1359) && cfg!(windows) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("spawn a peer process: {e:?}"),
        }
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim_end().to_owned()).is_err() {
                break;
            }
        }
    });
    Peer {
        stdin: child.stdin.take(),
        child,
        lines: rx,
    }
}

impl Peer {
    /// The next line, failing the test after [`TIMEOUT`].
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                panic!("peer said nothing within {TIMEOUT:?}");
            }
        }
    }

    /// The next line if one comes within `wait`.
    pub fn line_within(&mut self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "peer output");
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the peer's stdin (its cue to let go and exit) and waits.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "peer failed: {status}");
    }

    /// Kills the peer outright: SIGKILL, or TerminateProcess on Windows.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A test that fails (panics) while a peer runs must not leave it running:
/// a peer that spins until killed would spin on, and would keep the test
/// run's output pipe open.
impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// For peers: block until the test closes our stdin.
pub fn wait_stdin_eof() {
    let mut line = String::new();
    while std::io::stdin()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        line.clear();
    }
}
