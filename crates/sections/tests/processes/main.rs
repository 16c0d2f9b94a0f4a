//! Linux-specific behaviour across real processes (stale names, races,
//! POSIX interop, descriptor passing). The behaviour every backend shares
//! is in `tests/portable.rs`.

#[cfg(target_os = "linux")]
mod linux;

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    println!(
        "the multi-process tests in this binary are Linux-specific; tests/portable.rs runs here"
    );
}
