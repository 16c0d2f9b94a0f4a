//! A robust mutex guarding shared state across processes, when a holder is
//! killed in the middle of an update.
//!
//! Two accounts live in shared memory as a `Guarded` value, reachable only
//! through its mutex; their total is always 1000. A child process (this
//! program again) locks them, starts a transfer (takes 300 from one
//! account and notes the amount in flight), says so through a named event,
//! and is killed before it can finish, as `kill -9` would (`Child::kill`:
//! SIGKILL on Unix, `TerminateProcess` on Windows).
//!
//! The parent's next `lock` returns `Locked::Abandoned`: it holds the
//! lock, and is told that the state may be half-updated. It finds the
//! transfer in flight, rolls it back, and calls `mark_consistent`. A
//! second child then locks normally (`Locked::Acquired`: the news was
//! told once) and finds the total intact.
//!
//! Run it with
//!
//! ```text
//! cargo run -p sections --example robust_mutex
//! ```
//!
//! It exits 0 when the abandonment was seen and repaired. The objects live
//! in a private namespace (a temporary directory, removed at the end).
//! Linux (a process-shared robust pthread mutex) and Windows (a named
//! kernel mutex: `WAIT_ABANDONED`).

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use sections::sync::{Locked, Reset, SyncOptions};
use sections::Namespace;

/// The state every process shares: three `u64`s, the same bytes in every
/// process. (A `#[repr(C)]` struct implementing `bytemuck::Pod` works as
/// well; see `sync::Guarded`.)
type Accounts = [u64; 3];
const CHECKING: usize = 0;
const SAVINGS: usize = 1;
/// The amount of a transfer taken from checking but not yet added to
/// savings: zero between transfers.
const IN_FLIGHT: usize = 2;

const TOTAL: u64 = 1000;
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => parent(),
        [role, dir] if role == "holder" => holder(&Namespace::at(dir)),
        [role, dir] if role == "auditor" => auditor(&Namespace::at(dir)),
        _ => Err("usage: robust_mutex [holder|auditor NAMESPACE_DIR]".into()),
    }
}

fn options(ns: &Namespace) -> SyncOptions {
    let mut opts = SyncOptions::new();
    opts.namespace(ns);
    opts
}

fn spawn(role: &str, dir: &std::path::Path) -> Result<KillOnDrop, Box<dyn Error>> {
    let child = Command::new(std::env::current_exe()?)
        .arg(role)
        .arg(dir)
        .spawn()?;
    Ok(KillOnDrop(child))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let ns = Namespace::at(dir.path());
    let opts = options(&ns);

    let mut start: Accounts = [0; 3];
    start[CHECKING] = TOTAL;
    let accounts = opts.create_guarded("accounts", start)?;
    let midway = opts.create_event("midway", Reset::Manual, false)?;

    // The holder locks, starts a transfer and says so; then it is killed.
    let mut holder = spawn("holder", dir.path())?;
    if !midway.wait_timeout(PATIENCE)? {
        return Err("the holder never got midway".into());
    }
    holder.0.kill()?;
    holder.0.wait()?;
    println!("parent: killed the holder in the middle of a transfer");

    match accounts.lock()? {
        Locked::Acquired(_) => {
            return Err("the lock was not reported abandoned".into());
        }
        Locked::Abandoned(mut state) => {
            println!(
                "parent: the lock was abandoned; state left behind: {:?}",
                *state
            );
            if state.iter().sum::<u64>() != TOTAL {
                return Err(format!("the state cannot be repaired: {:?}", *state).into());
            }
            // The repair this state allows: roll the transfer back.
            state[CHECKING] += state[IN_FLIGHT];
            state[IN_FLIGHT] = 0;
            state.mark_consistent()?;
            println!("parent: rolled the transfer back: {:?}", *state);
        }
    }

    // Another process finds the mutex usable and the state whole.
    let auditor = spawn("auditor", dir.path())?;
    let status = auditor.wait()?;
    if !status.success() {
        return Err(format!("the auditor failed: {status}").into());
    }
    println!("parent: done");
    Ok(())
}

/// Locks, takes 300 out of `checking`, and is killed before it puts them
/// into `savings`.
fn holder(ns: &Namespace) -> Result<(), Box<dyn Error>> {
    let opts = options(ns);
    let accounts = opts.open_guarded::<Accounts>("accounts")?;
    let midway = opts.open_event("midway")?;

    let mut state = accounts.lock()?.into_guard();
    state[CHECKING] -= 300;
    state[IN_FLIGHT] = 300;
    midway.set()?;
    // Killed here, holding the lock. (Should the parent be gone instead,
    // finish the transfer after a while and report it.)
    std::thread::sleep(Duration::from_secs(60));
    state[SAVINGS] += state[IN_FLIGHT];
    state[IN_FLIGHT] = 0;
    Err("the holder was not killed".into())
}

/// Checks, in another process, that the repaired state is whole and that
/// the abandonment was reported only once.
fn auditor(ns: &Namespace) -> Result<(), Box<dyn Error>> {
    let accounts = options(ns).open_guarded::<Accounts>("accounts")?;
    let Some(locked) = accounts.lock_timeout(PATIENCE)? else {
        return Err("the accounts stayed locked".into());
    };
    if locked.is_abandoned() {
        return Err("the abandonment was reported again".into());
    }
    let state = locked.into_guard();
    if state[CHECKING] + state[SAVINGS] != TOTAL || state[IN_FLIGHT] != 0 {
        return Err(format!("the auditor found {:?}", *state).into());
    }
    println!("auditor: {:?}, total {TOTAL}", *state);
    Ok(())
}

/// Kills the child if the parent returns early (on an error), so that the
/// example never leaves a process behind.
struct KillOnDrop(Child);

impl KillOnDrop {
    fn wait(mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
