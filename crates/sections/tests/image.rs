//! Image sections: parsing, mapping by segments, calling position-independent
//! code without a dynamic loader, residency, sharing between processes, and
//! hostile headers.

use sections::{ErrorKind, Image};

#[cfg(target_os = "linux")]
mod linux {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use proptest::prelude::*;
    use sections::{Advice, ErrorKind, Image, ImageKind, Protection, SymbolKind};

    /// Pure functions and a little data, nothing that needs the PLT, the
    /// GOT or a relocation.
    const TINY_C: &str = r#"
static unsigned long counter;
static const unsigned long table[4] = {2, 3, 5, 7};
unsigned long add(unsigned long a, unsigned long b) { return a + b; }
unsigned long fib(unsigned long n) {
    unsigned long a = 0, b = 1;
    while (n--) { unsigned long t = a + b; a = b; b = t; }
    return a;
}
unsigned long bump(void) { return ++counter; }
unsigned long prime(unsigned long i) { return table[i & 3]; }
"#;

    /// The same functions reached through a table of pointers: the table
    /// needs `R_X86_64_RELATIVE` relocations.
    const RELOC_C: &str = r#"
static unsigned long one(void) { return 1; }
static unsigned long two(void) { return 2; }
unsigned long (*const table[2])(void) = {one, two};
unsigned long pick(unsigned long i) { return table[i & 1](); }
"#;

    fn cc(dir: &Path, name: &str, source: &str, extra: &[&str]) -> Option<PathBuf> {
        let c = dir.join(format!("{name}.c"));
        std::fs::write(&c, source).unwrap();
        let out = dir.join(format!("{name}.so"));
        let status = Command::new("cc")
            .args([
                "-shared",
                "-fPIC",
                "-nostdlib",
                "-fvisibility=hidden",
                "-O2",
            ])
            .args(extra)
            .arg("-o")
            .arg(&out)
            .arg(&c)
            .status();
        match status {
            Ok(s) if s.success() => Some(out),
            _ if std::env::var_os("CI").is_some() => panic!("the C compiler failed"),
            _ => {
                eprintln!("no working C compiler (cc): skipped");
                None
            }
        }
    }

    fn tiny(dir: &Path) -> Option<PathBuf> {
        cc(dir, "tiny", TINY_C, &[])
    }

    /// `readelf -lW`'s LOAD lines: (offset, vaddr, filesz, memsz, flags).
    /// One LOAD line: (offset, vaddr, filesz, memsz, flags).
    type Load = (u64, u64, u64, u64, String);

    fn readelf_loads(path: &Path) -> Option<Vec<Load>> {
        let out = match Command::new("readelf").arg("-lW").arg(path).output() {
            Ok(o) if o.status.success() => o,
            _ if std::env::var_os("CI").is_some() => panic!("readelf failed (binutils)"),
            _ => return None,
        };
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        Some(
            text.lines()
                .filter(|l| l.trim_start().starts_with("LOAD "))
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    // LOAD off vaddr paddr filesz memsz flags... align
                    let flags = f[6..f.len() - 1].join("");
                    (hex(f[1]), hex(f[2]), hex(f[4]), hex(f[5]), flags)
                })
                .collect(),
        )
    }

    fn flags(p: Protection) -> String {
        let mut s = String::new();
        if p.read {
            s.push('R');
        }
        if p.write {
            s.push('W');
        }
        if p.execute {
            s.push('E');
        }
        s
    }

    fn assert_matches_readelf(path: &Path) {
        let image = Image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Some(loads) = readelf_loads(path) else {
            return;
        };
        let ours: Vec<_> = image
            .segments()
            .iter()
            .map(|s| {
                (
                    s.file_offset,
                    s.address,
                    s.file_size,
                    s.mem_size,
                    flags(s.protection),
                )
            })
            .collect();
        assert_eq!(ours, loads, "{}", path.display());
    }

    /// Drops `path` from the page cache (written back first).
    fn evict(path: &Path) {
        let file = std::fs::File::open(path).unwrap();
        file.sync_all().unwrap();
        // SAFETY: plain advice on our own descriptor.
        unsafe {
            libc::posix_fadvise(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
                0,
                libc::POSIX_FADV_DONTNEED,
            )
        };
    }

    /// A copy of this test program that any user (`nobody`) may run,
    /// wherever the build directory is; the directory goes with the guard.
    fn copy_anyone_may_run() -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("image-test");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, exe)
    }

    /// The system's libc, resolved.
    fn system_libc() -> Option<PathBuf> {
        system_images()
            .into_iter()
            .find(|p| p.to_string_lossy().contains("libc.so"))
    }

    fn system_images() -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in [
            "/usr/bin/ls",
            "/bin/sh",
            "/usr/bin/env",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/aarch64-linux-gnu/libc.so.6",
            // Statically linked on Debian and Ubuntu.
            "/usr/sbin/ldconfig",
            "/sbin/ldconfig",
        ] {
            let p = PathBuf::from(p);
            if let Ok(real) = p.canonicalize() {
                if !out.contains(&real) {
                    out.push(real);
                }
            }
        }
        out
    }

    #[test]
    fn segments_match_readelf() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = system_images();
        assert!(!paths.is_empty(), "no system binary found");
        if let Some(t) = tiny(dir.path()) {
            paths.push(t);
        }
        for p in &paths {
            assert_matches_readelf(p);
        }
    }

    #[test]
    fn a_position_independent_function_runs_without_a_loader() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let image = Image::open(&path).unwrap();
        assert_eq!(image.kind(), ImageKind::Relocatable);
        assert!(image.relocations().is_empty(), "{:?}", image.relocations());
        assert_eq!(image.symbol("add").unwrap().kind, SymbolKind::Function);
        let mapped = image.map().unwrap();
        // SAFETY: the functions' true types, as in TINY_C.
        unsafe {
            let add: extern "C" fn(u64, u64) -> u64 = mapped.function("add").unwrap();
            let fib: extern "C" fn(u64) -> u64 = mapped.function("fib").unwrap();
            let bump: extern "C" fn() -> u64 = mapped.function("bump").unwrap();
            let prime: extern "C" fn(u64) -> u64 = mapped.function("prime").unwrap();
            assert_eq!(add(40, 2), 42);
            assert_eq!(fib(50), 12_586_269_025);
            // .bss starts at zero and is this mapping's own copy.
            assert_eq!(bump(), 1);
            assert_eq!(bump(), 2);
            assert_eq!(prime(2), 5);
            // Data, not code: not callable.
            let e = mapped
                .function::<extern "C" fn() -> u64>("table")
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            let e = mapped.function::<u8>("add").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidSize);
        }
        // A second mapping has its own .bss.
        let again = image.map().unwrap();
        // SAFETY: as above.
        let bump: extern "C" fn() -> u64 = unsafe { again.function("bump") }.unwrap();
        assert_eq!(bump(), 1);
        // The file is unchanged by the writes to .bss and .data.
        let before = std::fs::read(&path).unwrap();
        drop((mapped, again));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn segments_are_mapped_with_their_protections_never_writable_and_executable() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let image = Image::open(&path).unwrap();
        let mapped = image.map().unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let base = mapped.base() as usize;
        let end = base + mapped.len();
        let mut seen = Vec::new();
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let a = usize::from_str_radix(a, 16).unwrap();
            let b = usize::from_str_radix(b, 16).unwrap();
            if a >= base && b <= end {
                assert!(
                    !(perms.contains('w') && perms.contains('x')),
                    "writable and executable: {line}"
                );
                seen.push(perms[..3].to_owned());
            }
        }
        assert!(seen.contains(&"r-x".to_owned()), "{seen:?}");
        assert!(seen.contains(&"rw-".to_owned()), "{seen:?}");
        assert!(seen.contains(&"r--".to_owned()), "{seen:?}");
    }

    #[test]
    fn an_image_that_needs_relocations_hands_out_no_functions() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = cc(dir.path(), "reloc", RELOC_C, &[]) else {
            return;
        };
        let image = Image::open(&path).unwrap();
        assert!(!image.relocations().is_empty());
        let mapped = image.map().unwrap();
        // SAFETY: never called: the lookup must fail.
        let e = unsafe { mapped.function::<extern "C" fn(u64) -> u64>("pick") }.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NeedsRelocation);
        assert!(e.to_string().contains("DT_RELA"), "{e}");
        // Mapped for inspection all the same.
        assert!(mapped.symbol_address("pick").is_ok());
        // A system program: other libraries and relocations.
        let ls = Image::open("/usr/bin/ls").unwrap();
        let m = ls.map().unwrap();
        // SAFETY: never called.
        let e = unsafe { m.function::<extern "C" fn()>("main") }.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::NeedsRelocation | ErrorKind::NotFound),
            "{e}"
        );
    }

    #[test]
    fn residency_shows_the_pages_a_call_touched() {
        let dir = tempfile::tempdir().unwrap();
        // Functions 64 KiB apart: even where the kernel reads a small
        // folio of several pages for one fault, one call touches one
        // function's pages only.
        let source = "__attribute__((aligned(65536))) unsigned long first(void) { return 1; }\n\
                      __attribute__((aligned(65536))) unsigned long second(void) { return 2; }\n\
                      __attribute__((aligned(65536))) unsigned long third(void) { return 3; }\n";
        let Some(path) = cc(dir.path(), "pages", source, &[]) else {
            return;
        };
        let image = Image::open(&path).unwrap();
        let mapped = image.map().unwrap();
        let sym = |n: &str| image.symbol(n).unwrap().clone();
        let before = mapped.touched().unwrap();
        for n in ["first", "second", "third"] {
            let s = sym(n);
            assert_eq!(
                before.count(s.address, s.size.max(1)).resident_pages,
                0,
                "{n}"
            );
        }
        // Read-ahead off, and a cold cache (opening the image read its
        // headers, and read-ahead brought the rest of this small file in):
        // a fault then reads and maps its own page only.
        mapped.advise(Advice::Random).unwrap();
        evict(&path);
        // Memory file systems (tmpfs) keep their pages whatever the advice.
        let cold = image.page_cache().unwrap().unwrap().total().resident_pages == 0;
        // SAFETY: the function's true type.
        let second: extern "C" fn() -> u64 = unsafe { mapped.function("second") }.unwrap();
        assert_eq!(second(), 2);
        let after = mapped.touched().unwrap();
        let count = |n: &str| {
            let s = sym(n);
            after.count(s.address, s.size.max(1)).resident_pages
        };
        if cold {
            assert_eq!((count("first"), count("second"), count("third")), (0, 1, 0));
        } else {
            eprintln!("the page cache kept the file (tmpfs?): neighbours may be mapped too");
            assert_eq!(count("second"), 1);
        }
        // Per segment: only the code segment gained a page.
        let per = mapped.residency().unwrap();
        let code = image
            .segments()
            .iter()
            .position(|s| s.protection.execute)
            .unwrap();
        assert!(
            (1..=16).contains(&per[code].resident_pages),
            "one fault, at most one 64 KiB folio: {per:?}"
        );
        // The page cache has the file's pages (we wrote it, we may ask).
        let cache = image.page_cache().unwrap().expect("our own file");
        let range = image.file_range_of(sym("second").address, 1).unwrap();
        assert_eq!(cache.count(range.start, 1).resident_pages, 1);
    }

    #[test]
    fn opening_an_image_reads_only_its_headers() {
        // A copy of libc: its symbol tables lie just before its code, which
        // read-ahead would bring into the page cache with them.
        let Some(libc) = system_libc() else {
            assert!(std::env::var_os("CI").is_none(), "no libc.so.6");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libc-copy.so");
        std::fs::copy(&libc, &path).unwrap();
        evict(&path);
        let image = Image::open(&path).unwrap();
        assert!(!image.symbols().is_empty());
        let cache = image.page_cache().unwrap().unwrap();
        if cache.total().resident_pages * 2 > cache.total().total_pages {
            // Eviction did not work (a memory file system): nothing to see.
            eprintln!("the file stayed cached: skipped");
            return;
        }
        // Parsing read the headers and symbol tables, not the code.
        let code = image
            .segments()
            .iter()
            .find(|s| s.protection.execute)
            .unwrap();
        let r = cache.count(code.file_offset, code.file_size);
        assert!(
            r.resident_pages <= 1,
            "{} of {} code pages cached after parsing",
            r.resident_pages,
            r.total_pages
        );
    }

    /// The child side of `two_processes_share_code_pages`.
    #[test]
    fn child_maps_and_waits() {
        let Some(path) = std::env::var_os("SECTIONS_IMAGE_CHILD") else {
            return;
        };
        let image = Image::open(path).unwrap();
        let mapped = image.map().unwrap();
        // SAFETY: the function's true type.
        let fib: extern "C" fn(u64) -> u64 = unsafe { mapped.function("fib") }.unwrap();
        assert_eq!(fib(10), 55);
        println!("ready");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
    }

    /// `Shared_Clean` plus `Shared_Dirty` (a file just written is still
    /// dirty in the page cache) of the mapping of `addr` in
    /// `/proc/PID/smaps`, in kB: pages another process maps too.
    fn shared_kb(pid: u32, addr: usize) -> u64 {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
        let mut inside = false;
        let mut clean = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = a <= addr && addr < b;
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("Shared_Clean:") {
                    clean = Some(
                        v.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .unwrap(),
                    );
                }
                if let Some(v) = line.strip_prefix("Shared_Dirty:") {
                    let dirty: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap();
                    return clean.expect("Shared_Clean comes first") + dirty;
                }
            }
        }
        panic!("no mapping of {addr:#x} in /proc/{pid}/smaps");
    }

    #[test]
    fn two_processes_share_code_pages() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let image = Image::open(&path).unwrap();
        let mapped = image.map().unwrap();
        // SAFETY: the function's true type.
        let fib: extern "C" fn(u64) -> u64 = unsafe { mapped.function("fib") }.unwrap();
        assert_eq!(fib(10), 55);
        let code = mapped.symbol_address("fib").unwrap() as usize;
        let me = std::process::id();
        assert_eq!(shared_kb(me, code), 0, "nobody else maps it yet");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "linux::child_maps_and_waits", "--nocapture"])
            .env("SECTIONS_IMAGE_CHILD", &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            use std::io::BufRead;
            assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
            if line.trim() == "ready" {
                break;
            }
        }
        // The code page is the same physical page in both processes.
        let shared = shared_kb(me, code);
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert!(shared >= 4, "shared {shared} kB");
    }

    #[test]
    fn page_cache_residency_is_not_observable_without_write_access() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // As an ordinary user, a system library is not ours to ask about.
            let libc = system_libc();
            let libc = libc.expect("libc.so.6 in a standard place");
            let image = Image::open(libc).unwrap();
            assert_eq!(image.page_cache().unwrap(), None);
            // Our own file: observable.
            let dir = tempfile::tempdir().unwrap();
            let own = dir.path().join("own");
            std::fs::copy(std::env::current_exe().unwrap(), &own).unwrap();
            assert!(Image::open(&own).unwrap().page_cache().unwrap().is_some());
            return;
        }
        // As root: ask again as nobody, in a child.
        let (_dir, exe) = copy_anyone_may_run();
        let Ok(status) = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([
                "--exact",
                "linux::page_cache_residency_is_not_observable_without_write_access",
            ])
            .status()
        else {
            assert!(std::env::var_os("CI").is_none(), "setpriv is missing");
            return;
        };
        assert!(status.success());
    }

    /// The child side of the test below: root in a user namespace of
    /// nobody's, asking about libc (owned by the real root).
    #[test]
    fn child_asks_in_a_user_namespace() {
        let Some(libc) = std::env::var_os("SECTIONS_IMAGE_USERNS") else {
            return;
        };
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "root in the namespace");
        let image = Image::open(libc).unwrap();
        assert_eq!(image.page_cache().unwrap(), None);
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        std::fs::copy(std::env::current_exe().unwrap(), &own).unwrap();
        assert!(Image::open(&own).unwrap().page_cache().unwrap().is_some());
    }

    #[test]
    fn root_in_a_user_namespace_gets_no_made_up_residency() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // needs setpriv as root
        }
        let libc = system_libc().expect("libc.so.6 in a standard place");
        let (_dir, exe) = copy_anyone_may_run();
        let probe = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["unshare", "--user", "--map-root-user", "true"])
            .status();
        if !matches!(probe, Ok(s) if s.success()) {
            eprintln!("nobody cannot make a user namespace here: skipped");
            return;
        }
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["unshare", "--user", "--map-root-user"])
            .arg(&exe)
            .args([
                "--exact",
                "linux::child_asks_in_a_user_namespace",
                "--nocapture",
            ])
            .env("SECTIONS_IMAGE_USERNS", &libc)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
    }

    /// A valid tiny image with its bytes changed by proptest: never a panic
    /// or a crash, always an image or a clean error; mapping what parses
    /// never crashes either.
    fn hostile(bytes: &[u8], dir: &Path) {
        let path = dir.join("hostile.so");
        std::fs::write(&path, bytes).unwrap();
        match Image::open(&path) {
            Ok(image) => {
                if let Ok(m) = image.map() {
                    let _ = m.touched().unwrap();
                }
            }
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::BadImage),
                "{e} ({:?})",
                e.kind()
            ),
        }
    }

    fn put(bytes: &mut [u8], at: usize, value: u64, width: usize) {
        if at + width <= bytes.len() {
            bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn hostile_headers_are_clean_errors(
            edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16),
            cut in proptest::option::of(0usize..16384),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let Some(path) = tiny(dir.path()) else { return Ok(()) };
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, v) in edits {
                if at < bytes.len() {
                    bytes[at] = v;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.min(bytes.len()));
            }
            hostile(&bytes, dir.path());
        }

        #[test]
        fn hostile_program_header_fields_are_clean_errors(
            which in 0usize..6,
            field in 0usize..7,
            value in prop_oneof![
                Just(0u64), Just(1), Just(0xfff), Just(0x1000), Just(u64::MAX),
                Just(u64::MAX / 2), Just(1 << 40), Just(1 << 47), any::<u64>()
            ],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let Some(path) = tiny(dir.path()) else { return Ok(()) };
            let mut bytes = std::fs::read(&path).unwrap();
            // ELF64: e_phoff at 32, e_phentsize 56; fields p_type(4) p_flags(4)
            // p_offset p_vaddr p_paddr p_filesz p_memsz p_align (8 each).
            let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
            let at = phoff + which * 56;
            let (off, width) = [(0, 4), (4, 4), (8, 8), (16, 8), (32, 8), (40, 8), (48, 8)][field];
            put(&mut bytes, at + off, value, width);
            hostile(&bytes, dir.path());
        }
    }

    #[test]
    fn a_segment_asking_for_write_and_execute_is_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let mut bytes = std::fs::read(&path).unwrap();
        let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
        // The code segment (the second LOAD of TINY_C) asks for rwx.
        let code = phoff + 56;
        assert_eq!(
            u32::from_le_bytes(bytes[code + 4..code + 8].try_into().unwrap()),
            5
        );
        put(&mut bytes, code + 4, 7, 4);
        let rwx = dir.path().join("rwx.so");
        std::fs::write(&rwx, &bytes).unwrap();
        let image = Image::open(&rwx).unwrap();
        let mapped = image.map().unwrap();
        let (base, end) = (
            mapped.base() as usize,
            mapped.base() as usize + mapped.len(),
        );
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let (range, rest) = line.split_once(' ').unwrap();
            let (a, _) = range.split_once('-').unwrap();
            let a = usize::from_str_radix(a, 16).unwrap();
            if (base..end).contains(&a) {
                assert!(!rest.starts_with("rwx"), "{line}");
            }
        }
        // SAFETY: never called: the lookup must fail.
        let e = unsafe { mapped.function::<extern "C" fn(u64, u64) -> u64>("add") }.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    }

    /// The tests that measure peak memory run one at a time.
    static MEMORY: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Peak resident memory of this process, in KiB.
    fn max_rss_kb() -> i64 {
        // SAFETY: getrusage fills the struct we pass.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut u);
            u.ru_maxrss
        }
    }

    #[test]
    fn a_huge_symbol_table_claim_in_a_huge_sparse_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let mut bytes = std::fs::read(&path).unwrap();
        let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
        let shnum = u16::from_le_bytes(bytes[60..62].try_into().unwrap()) as usize;
        let symtab = (0..shnum)
            .map(|i| shoff + i * 64)
            .find(|&h| u32::from_le_bytes(bytes[h + 4..h + 8].try_into().unwrap()) == 2)
            .expect("a .symtab");
        // The symbol table claims 6 GiB, and the file is 8 GiB (sparse), so
        // the claim lies inside the file.
        put(&mut bytes, symtab + 32, 6 << 30, 8);
        let huge = dir.path().join("huge.so");
        std::fs::write(&huge, &bytes).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&huge)
            .unwrap()
            .set_len(8 << 30)
            .unwrap();
        let _one = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        let before = max_rss_kb();
        let image = Image::open(&huge).expect("segments are fine; only symbols are absurd");
        assert!(image.symbols().is_empty());
        let grew = max_rss_kb() - before;
        assert!(grew < 64 << 10, "peak memory grew by {grew} KiB");
    }

    /// Writes `bytes` (a patched tiny object) and opens it.
    fn patched(dir: &Path, name: &str, bytes: &[u8]) -> sections::Result<Image> {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Image::open(&path)
    }

    #[test]
    fn what_only_a_loader_or_another_machine_could_run_is_not_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let bytes = std::fs::read(&path).unwrap();
        // Another architecture (AArch64 on x86-64, x86-64 elsewhere).
        let mut other = bytes.clone();
        let machine = if cfg!(target_arch = "x86_64") {
            183
        } else {
            62
        };
        put(&mut other, 18, machine, 2);
        let image = patched(dir.path(), "other.so", &other).unwrap();
        let mapped = image.map().unwrap();
        // SAFETY: never called: the lookup must fail.
        let e = unsafe { mapped.function::<extern "C" fn(u64, u64) -> u64>("add") }.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("machine"), "{e}");
        // Thread-local storage: the code would use the caller's.
        let tls = "__thread unsigned long slot = 7;\n\
                   unsigned long tls_read(void) { return slot; }\n";
        if let Some(tls) = cc(dir.path(), "tls", tls, &["-fPIE", "-pie", "-Wl,-e,0"]) {
            let image = Image::open(&tls).unwrap();
            assert!(
                image.relocations().iter().any(|r| r.contains("PT_TLS")),
                "{:?}",
                image.relocations()
            );
            let mapped = image.map().unwrap();
            // SAFETY: never called: the lookup must fail.
            let e = unsafe { mapped.function::<extern "C" fn() -> u64>("tls_read") }.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NeedsRelocation, "{e}");
        }
        // An indirect function: its address is a resolver.
        let source = "static unsigned long real(void) { return 42; }\n\
                      static void *resolve(void) { return (void *)real; }\n\
                      unsigned long answer(void) __attribute__((ifunc(\"resolve\")));\n";
        let Some(ifunc) = cc(dir.path(), "ifunc", source, &[]) else {
            return;
        };
        let image = Image::open(&ifunc).unwrap();
        if let Some(sym) = image.symbol("answer") {
            assert_eq!(sym.kind, SymbolKind::IndirectFunction);
            let mapped = image.map().unwrap();
            // SAFETY: never called: the lookup must fail.
            let e = unsafe { mapped.function::<extern "C" fn() -> u64>("answer") }.unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Unsupported | ErrorKind::NeedsRelocation
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn segments_sharing_a_page_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let mut bytes = std::fs::read(&path).unwrap();
        let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
        // The read-only segment after the code moved onto the code's page
        // (0x1800, offset 0x2800: no byte overlaps, the page is shared).
        let ro = phoff + 2 * 56;
        put(&mut bytes, ro + 8, 0x2800, 8);
        put(&mut bytes, ro + 16, 0x1800, 8);
        let e = patched(dir.path(), "shared-page.so", &bytes).unwrap_err();
        assert!(e.to_string().contains("share a page"), "{e}");
    }

    #[test]
    fn a_file_shrunk_between_open_and_map_is_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let image = Image::open(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let e = image.map().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated, "{e}");
    }

    #[test]
    fn residency_of_a_file_grown_huge_after_open_is_refused_not_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let image = Image::open(&path).unwrap();
        // 300 GiB, sparse: a flag per page would be 75 million flags.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(300 << 30)
            .unwrap();
        let e = image.page_cache().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidSize, "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Image::open(&fifo).map(|_| ()).map_err(|e| e.kind()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("Image::open on a FIFO must not block");
        assert_eq!(got, Err(ErrorKind::BadImage));
    }

    #[test]
    fn an_empty_segment_with_an_absurd_offset_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let Some(path) = tiny(dir.path()) else { return };
        let mut bytes = std::fs::read(&path).unwrap();
        let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
        let seg = phoff + 2 * 56;
        put(&mut bytes, seg + 4, 7, 4); // rwx
        put(&mut bytes, seg + 8, u64::MAX, 8); // offset
        put(&mut bytes, seg + 32, 0, 8); // filesz
        put(&mut bytes, seg + 40, 0, 8); // memsz
        let e = patched(dir.path(), "empty.so", &bytes).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
    }

    #[test]
    fn long_names_for_many_symbols_do_not_take_memory_without_bound() {
        // 40,000 symbols each named by the same 4000-byte string: 160 MB of
        // names from a file of about 1 MB.
        let dir = tempfile::tempdir().unwrap();
        let name = "n".repeat(4000);
        let mut source = String::new();
        for i in 0..40_000 {
            source.push_str(&format!("unsigned long f{i}(void) {{ return {i}; }}\n"));
        }
        let Some(path) = cc(dir.path(), "many", &source, &["-O0"]) else {
            return;
        };
        let mut bytes = std::fs::read(&path).unwrap();
        // Point every .symtab name at one long string appended to the file,
        // as the new string table.
        let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
        let shnum = u16::from_le_bytes(bytes[60..62].try_into().unwrap()) as usize;
        let header = |i: usize| shoff + i * 64;
        let symtab = (0..shnum)
            .find(|&i| u32::from_le_bytes(bytes[header(i) + 4..][..4].try_into().unwrap()) == 2)
            .expect("a .symtab");
        let sh = header(symtab);
        let link = u32::from_le_bytes(bytes[sh + 40..sh + 44].try_into().unwrap()) as usize;
        let strtab = header(link);
        let at = bytes.len() as u64;
        bytes.push(0);
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        put(&mut bytes, strtab + 24, at, 8);
        put(&mut bytes, strtab + 32, name.len() as u64 + 2, 8);
        let sym_off = u64::from_le_bytes(bytes[sh + 24..sh + 32].try_into().unwrap()) as usize;
        let sym_size = u64::from_le_bytes(bytes[sh + 32..sh + 40].try_into().unwrap()) as usize;
        for k in 1..sym_size / 24 {
            put(&mut bytes, sym_off + k * 24, 1, 4);
        }
        let _one = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        let before = max_rss_kb();
        let image = patched(dir.path(), "long-names.so", &bytes).unwrap();
        let grew = max_rss_kb() - before;
        assert!(!image.symbols_complete());
        assert!(grew < 120 << 10, "peak memory grew by {grew} KiB");
    }

    fn crafted(dir: &Path, edit: impl Fn(&mut Vec<u8>, usize)) -> sections::Error {
        let path = tiny(dir).expect("cc");
        let mut bytes = std::fs::read(&path).unwrap();
        let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
        edit(&mut bytes, phoff);
        let bad = dir.join("crafted.so");
        std::fs::write(&bad, &bytes).unwrap();
        Image::open(&bad).expect_err("a crafted header must be refused")
    }

    #[test]
    fn malicious_headers_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        if tiny(dir.path()).is_none() {
            return;
        }
        let d = dir.path();
        // Offsets past the end of the file.
        let e = crafted(d, |b, ph| put(b, ph + 56 + 8, 1 << 40, 8));
        assert!(e.to_string().contains("past the end"), "{e}");
        // Overlapping segments: the second moved onto the first.
        let e = crafted(d, |b, ph| {
            put(b, ph + 56 + 16, 0x100, 8);
            put(b, ph + 56 + 8, 0x100, 8);
        });
        assert!(e.to_string().contains("overlaps"), "{e}");
        // More file than memory.
        let e = crafted(d, |b, ph| put(b, ph + 32, 1 << 20, 8));
        assert!(e.to_string().contains("bytes of file in"), "{e}");
        // An absurd memory size.
        let e = crafted(d, |b, ph| put(b, ph + 56 * 3 + 40, 1 << 50, 8));
        assert!(e.to_string().contains("span"), "{e}");
        // An address that cannot be mapped from its offset.
        let e = crafted(d, |b, ph| put(b, ph + 56 + 16, 0x1008, 8));
        assert!(e.to_string().contains("modulo the page size"), "{e}");
        // A header claiming 65535 program headers.
        let e = crafted(d, |b, _| put(b, 56, 0xffff, 2));
        assert_eq!(e.kind(), ErrorKind::BadImage, "{e}");
        // Not an ELF type that loads (a relocatable object).
        let e = crafted(d, |b, _| put(b, 16, 1, 2));
        assert!(e.to_string().contains("not a loadable image"), "{e}");
    }
}

#[test]
fn files_that_are_not_images_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let e = Image::open(&empty).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadImage);
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(e.to_string().starts_with("image '"), "{e}");
    let text = dir.path().join("text");
    std::fs::write(&text, b"#!/bin/sh\necho hello\n").unwrap();
    assert_eq!(Image::open(&text).unwrap_err().kind(), ErrorKind::BadImage);
    let missing = dir.path().join("missing");
    assert_eq!(
        Image::open(&missing).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A control character in a name is shown escaped (Windows refuses
    // such names outright).
    #[cfg(unix)]
    {
        let odd = dir.path().join("bad\x1bname");
        std::fs::write(&odd, b"\x7fELF").unwrap();
        let e = Image::open(&odd).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadImage);
        assert!(!e.to_string().contains('\x1b'), "{e:?}");
    }
    // Every truncation of this test's own executable is an image or a
    // clean error.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let cut = dir.path().join("cut");
    for len in [1, 4, 16, 52, 63, 64, 100, 512, 4096, 65536] {
        std::fs::write(&cut, &me[..len.min(me.len())]).unwrap();
        if let Err(e) = Image::open(&cut) {
            assert_eq!(e.kind(), ErrorKind::BadImage, "{len}: {e}");
        }
    }
}

/// Windows maps PE files as the system's image section (run under Wine).
#[cfg(windows)]
#[test]
fn windows_maps_this_exe_as_an_image_section() {
    use sections::ImageFormat;
    let exe = std::env::current_exe().unwrap();
    let image = Image::open(&exe).unwrap();
    assert_eq!(image.format(), ImageFormat::Pe64);
    let text = image
        .segments()
        .iter()
        .find(|s| s.name.as_deref() == Some(".text"))
        .expect("a .text section");
    assert!(text.protection.execute && !text.protection.write);
    let mapped = image.map().unwrap();
    // SAFETY: the first bytes of the mapped headers, inside the view.
    let magic = unsafe { std::slice::from_raw_parts(mapped.base(), 2) };
    assert_eq!(magic, b"MZ");
    let last = image
        .segments()
        .iter()
        .map(|s| s.address + s.mem_size)
        .max()
        .unwrap();
    assert!(mapped.len() as u64 >= last, "{} < {last}", mapped.len());
    // Touch one byte of .text and see its page in the working set.
    let at = mapped.address(text.address).unwrap();
    // SAFETY: inside the mapped .text section, which is readable.
    unsafe { std::ptr::read_volatile(at) };
    let touched = mapped.touched().unwrap();
    assert_eq!(touched.count(text.address, 1).resident_pages, 1);
}
