//! Attacks on the promises the README makes (listed in docs/PROMISES.md):
//! peers killed between being woken and acting, hostile values in the
//! words a peer can write, full file systems, thousands of views, mixed
//! object kinds in one process. Linux; Windows keeps these promises with
//! kernel objects, and its suites are `portable`, `sync` and `channel`.

#[cfg(target_os = "linux")]
mod containers;
#[cfg(target_os = "linux")]
mod forks;
#[cfg(target_os = "linux")]
mod guard;
#[cfg(target_os = "linux")]
mod hostile;
#[cfg(target_os = "linux")]
mod space;
#[cfg(target_os = "linux")]
mod wakeups;

#[cfg(target_os = "linux")]
#[path = "../common/ns.rs"]
mod ns;
#[cfg(target_os = "linux")]
#[path = "../common/peer.rs"]
mod peer;

#[cfg(target_os = "linux")]
fn main() {
    let mut tests: Vec<(&'static str, peer::TestFn)> = Vec::new();
    tests.extend(guard::tests());
    tests.extend(space::tests());
    tests.extend(wakeups::tests());
    tests.extend(hostile::tests());
    tests.extend(containers::tests());
    tests.extend(forks::tests());
    peer::main(tests, |role, args| {
        guard::role(role, args)
            .or_else(|| wakeups::role(role, args))
            .or_else(|| hostile::role(role, args))
            .or_else(|| containers::role(role, args))
            .or_else(|| forks::role(role, args))
            .unwrap_or_else(|| Err(format!("unknown role {role}").into()))
    });
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("these attacks are Linux-specific; Windows keeps the promises with kernel objects");
}
