//! The channel across real processes (Linux, and Windows under Wine).

#[cfg(any(target_os = "linux", windows))]
mod cases;

fn main() {
    #[cfg(any(target_os = "linux", windows))]
    cases::main();
}
