//! Readiness and `Select` across real processes (Linux, and Windows under
//! Wine): an event loop's receiver or sender woken by its bell, never a
//! lost wake-up, a dead peer noticed, receivers in another PID namespace.

#[cfg(any(target_os = "linux", windows))]
mod cases;

fn main() {
    #[cfg(any(target_os = "linux", windows))]
    cases::main();
}
