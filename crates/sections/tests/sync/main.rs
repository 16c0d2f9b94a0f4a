//! Sync objects across real processes (Linux, and Windows under Wine).

#[cfg(any(target_os = "linux", windows))]
mod objects;

fn main() {
    #[cfg(any(target_os = "linux", windows))]
    objects::main();
}
